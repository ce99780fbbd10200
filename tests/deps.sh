#!/bin/sh
# tests/deps.sh [build]: make sure the Debian packages that the build, the
# tests and the demo need are installed; with "build", only those that
# make and make install need (the Makefile runs this before any rule).
#
# Nothing missing: silent, exit 0. Missing and root: install them with
# apt-get (no prompts; CI runs with stdin closed). Missing and not root:
# print the apt-get line to run, exit 1.
set -eu

# What each is for:
#   gcc libc6-dev make    the build (gcc brings libasan/libubsan for ASan)
#   pkg-config            compiler flags for every library
#   libpam0g-dev          auth.c
#   libssl-dev            libcrypto: UIDL digests (TLS later)
#   liblockfile-dev       dotlocks for UPDATE (and the dotlockfile helper)
#   libidn-dev            SASLprep of UTF-8 USER/PASS arguments (utf8.c)
#   check                 unit tests
#   libpam-wrapper libnss-wrapper libuid-wrapper
#                         cwrap: PAM (pam_matrix), passwd and root without
#                         touching /etc, for the integration tests and demo
#   libcrypt-dev          the ASan build links libcrypt (see Makefile)
#   procmail              make stress: a real MDA (and formail)
#   python3               test helpers
#   openssl               test certificates for the TLS tests
#   cppcheck clang-tidy   make lint
#   clang                 make fuzz (libFuzzer)
#   valgrind              make check-valgrind
#   curl                  the demo's client
#   systemd               systemd-socket-activate, for the demo and the
#                         Accept=no listener in the --proxy-from tests
#   haproxy               make check-proxy: Debian's HAProxy in front of
#                         pop3d (send-proxy, send-proxy-v2, health checks)
#   fuse3 libfuse3-dev    make check-blkcrash: blklog, the FUSE file that
#                         logs a loop device's block writes and flushes
#   xfsprogs btrfs-progs  make check-blkcrash on XFS and btrfs too, and
#                         make check-faults' full-btrfs tests
BUILD_PACKAGES="gcc libc6-dev make pkg-config libpam0g-dev libssl-dev
liblockfile-dev libidn-dev"
PACKAGES="$BUILD_PACKAGES check libpam-wrapper libnss-wrapper
libuid-wrapper libcrypt-dev procmail python3 curl openssl cppcheck
clang-tidy clang valgrind haproxy fuse3 libfuse3-dev xfsprogs btrfs-progs"
case "${1:-}" in
build) PACKAGES=$BUILD_PACKAGES ;;
"") ;;
*)
	echo "usage: $0 [build]" >&2
	exit 2
	;;
esac

missing=""
for pkg in $PACKAGES; do
	status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null) ||
		status=""
	case "$status" in
	ii*) ;;
	*) missing="$missing $pkg" ;;
	esac
done

# The systemd package is large and a container may run without it; all
# the demo needs from it is this one binary.
if [ "${1:-}" != build ] &&
	! command -v systemd-socket-activate >/dev/null 2>&1 &&
	[ ! -x /usr/bin/systemd-socket-activate ] &&
	[ ! -x /lib/systemd/systemd-socket-activate ]; then
	missing="$missing systemd"
fi

[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "pop3d: missing Debian packages:$missing" >&2
	echo "Install them as root (or with sudo), then run make again:" >&2
	echo "" >&2
	echo "    apt-get update && apt-get install --no-install-recommends$missing" >&2
	echo "" >&2
	exit 1
fi

echo "pop3d: installing missing Debian packages:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update </dev/null
# shellcheck disable=SC2086 # word splitting of the list is intended
apt-get install -y --no-install-recommends $missing </dev/null
