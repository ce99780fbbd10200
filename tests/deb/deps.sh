#!/bin/sh
# tests/deb/deps.sh [build]: the host's packages for make deb ("build")
# and make check-deb. Missing and root: installed; otherwise named.
#   dpkg-dev debhelper    dpkg-buildpackage, dh (compat 13)
#   fakeroot              dpkg-buildpackage's default gain-root command
#   build-essential       what dpkg-buildpackage checks the build with
#   lintian               the package's checks
#   devscripts            hardening-check on the packaged binary
#   + the Build-Depends of debian/control
# make check-deb also boots the container of make check-systemd, whose
# host packages tests/systemd/deps.sh installs.
set -eu

PACKAGES="dpkg-dev debhelper fakeroot build-essential pkg-config
libpam0g-dev libssl-dev liblockfile-dev"
[ "${1:-}" = build ] || PACKAGES="$PACKAGES lintian devscripts"

missing=""
for pkg in $PACKAGES; do
	case "$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null)" in
	ii*) ;;
	*) missing="$missing $pkg" ;;
	esac
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "pop3d: make deb needs:$missing" >&2
	echo "    apt-get install --no-install-recommends$missing" >&2
	exit 1
fi
echo "pop3d: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update </dev/null >/dev/null
# shellcheck disable=SC2086 # word splitting of the list is intended
apt-get install -y --no-install-recommends $missing </dev/null >/dev/null
