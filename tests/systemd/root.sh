#!/bin/bash
# tests/systemd/root.sh: print the path of a tarball holding a Debian 12
# root that boots with systemd as PID 1, building it (debootstrap, about
# a minute) only when no tarball for this package list is cached.
#
# The cache is keyed by the package list and this script, so changing
# either builds a new root; old tarballs are removed. The root carries
# what a sysadmin would have installed before following INSTALL: systemd,
# PAM, the build packages INSTALL names, liblockfile's setgid helper,
# ssl-cert's snakeoil pair, both inetds and fail2ban (disabled until a
# test turns one on).
set -euo pipefail

CACHE=${POP3D_SYSTEMD_CACHE:-/var/cache/pop3d-test}
MIRROR=${POP3D_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm

# What each is for:
#   systemd systemd-sysv dbus       PID 1, systemctl, journalctl
#   libpam-modules libpam-runtime   pam_unix and the common-* stacks
#   passwd                          useradd, chpasswd
#   gcc libc6-dev make pkg-config libpam0g-dev libssl-dev
#   liblockfile-dev libsystemd-dev  INSTALL step 1, built inside
#   libidn-dev
#   liblockfile-bin                 the setgid-mail dotlockfile helper
#   ssl-cert                        the snakeoil pair pop3s@.service names
#   openbsd-inetd netbase           inetd.conf (and /etc/services, which
#                                   every Debian install has)
#   fail2ban python3-systemd        fail2ban-regex on the journal
#   procps iproute2                 pgrep, ss for the checks
# xinetd conflicts with openbsd-inetd: only its .deb is put in apt's
# cache, for the test's own apt-get install to use.
BOOT="systemd,systemd-sysv,dbus"
PACKAGES="libpam-modules libpam-runtime passwd gcc libc6-dev make pkg-config
libpam0g-dev libssl-dev liblockfile-dev libidn-dev libsystemd-dev liblockfile-bin
ssl-cert openbsd-inetd netbase fail2ban python3-systemd procps iproute2"
LATER="xinetd"

key=$( (echo "$SUITE $BOOT $PACKAGES $LATER" && cat "$0") | sha256sum | cut -c1-16)
tarball="$CACHE/debian12-$key.tar"
if [ -s "$tarball" ]; then
	echo "$tarball"
	exit 0
fi

mkdir -p "$CACHE"
build=$(mktemp -d "$CACHE/build.XXXXXX")
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	umount -R "$build/root/proc" "$build/root/sys" 2>/dev/null || true
	rm -rf "$build"
}
trap cleanup EXIT

echo "systemd root: debootstrap $SUITE into $build (cached as $tarball)" >&2
mkdir -p "$CACHE/debs"
debootstrap --variant=minbase --cache-dir="$CACHE/debs" --include="$BOOT" \
	"$SUITE" "$build/root" "$MIRROR" >"$build/debootstrap.log" 2>&1 || {
	tail -20 "$build/debootstrap.log" >&2
	exit 1
}
# The rest through apt, which orders the installs; no service starts.
printf '#!/bin/sh\nexit 101\n' >"$build/root/usr/sbin/policy-rc.d"
chmod 0755 "$build/root/usr/sbin/policy-rc.d"
mount -t proc proc "$build/root/proc"
in_root() {
	DEBIAN_FRONTEND=noninteractive chroot "$build/root" "$@" \
		</dev/null >>"$build/apt.log" 2>&1 || {
		tail -20 "$build/apt.log" >&2
		exit 1
	}
}
in_root apt-get update
# shellcheck disable=SC2086 # word splitting of the lists is intended
in_root apt-get install -y --no-install-recommends $PACKAGES
# shellcheck disable=SC2086
in_root apt-get install -y --no-install-recommends --download-only $LATER
umount "$build/root/proc"
rm "$build/root/usr/sbin/policy-rc.d"

# Services the tests start themselves: nothing may hold port 110 or 995
# at boot, and fail2ban is used only through fail2ban-regex.
for unit in inetd.service xinetd.service fail2ban.service; do
	chroot "$build/root" systemctl disable "$unit" >/dev/null 2>&1 || true
done
# No getty on the console the tests never read, no waiting for a network.
chroot "$build/root" systemctl mask console-getty.service \
	systemd-networkd-wait-online.service >/dev/null 2>&1 || true
echo pop3d-test >"$build/root/etc/hostname"

rm -f "$CACHE"/debian12-*.tar
tar -C "$build/root" -cf "$tarball.tmp" .
mv "$tarball.tmp" "$tarball"
echo "$tarball"
