#!/bin/sh
# The host's side of make check-systemd: debootstrap builds the Debian
# root, systemd-nspawn (systemd-container) boots it, nsenter (util-linux)
# runs commands in it, and the clients talk to it from the host.
set -eu

PACKAGES="debootstrap systemd-container util-linux curl fetchmail python3"
missing=""
for pkg in $PACKAGES; do
	case "$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null)" in
	ii*) ;;
	*) missing="$missing $pkg" ;;
	esac
done
[ -z "$missing" ] && exit 0
echo "check-systemd: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update </dev/null >/dev/null
# shellcheck disable=SC2086 # word splitting of the list is intended
apt-get install -y --no-install-recommends $missing </dev/null >/dev/null
