#!/bin/sh
# The tools the stress harness needs beyond tests/deps.sh: procmail (the
# MDA, and formail to split spools) and systemd-socket-activate. Missing
# and root: install them with apt-get; missing and not root: say so.
set -eu
missing=""
command -v procmail >/dev/null 2>&1 && command -v formail >/dev/null 2>&1 ||
	missing="$missing procmail"
command -v systemd-socket-activate >/dev/null 2>&1 || missing="$missing systemd"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "stress: missing Debian packages:$missing" >&2
	echo "    apt-get install --no-install-recommends$missing" >&2
	exit 1
fi
echo "stress: installing missing Debian packages:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update </dev/null >/dev/null
# shellcheck disable=SC2086 # one word per package
apt-get install -y --no-install-recommends $missing </dev/null
