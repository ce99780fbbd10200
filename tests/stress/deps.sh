#!/bin/sh
# The tools the stress harness needs beyond tests/deps.sh: procmail (the
# MDA, and formail to split spools) and systemd-socket-activate; with
# "postfix", also Debian's Postfix for stress.py --mta postfix (make
# stress-postfix), installed "Local only" without questions. Missing and
# root: install them with apt-get; missing and not root: say so.
set -eu
missing=""
command -v procmail >/dev/null 2>&1 && command -v formail >/dev/null 2>&1 ||
	missing="$missing procmail"
command -v systemd-socket-activate >/dev/null 2>&1 || missing="$missing systemd"
case "${1:-}" in
postfix)
	[ -x /usr/sbin/postfix ] || missing="$missing postfix"
	;;
"") ;;
*)
	echo "usage: $0 [postfix]" >&2
	exit 2
	;;
esac
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "stress: missing Debian packages:$missing" >&2
	echo "    apt-get install --no-install-recommends$missing" >&2
	exit 1
fi
echo "stress: installing missing Debian packages:$missing"
export DEBIAN_FRONTEND=noninteractive
case "$missing" in
*postfix*)
	# Local delivery only: no SMTP from outside, no relay host. The
	# stress run starts and stops it itself (postfix start/stop).
	printf '%s\n' \
		"postfix postfix/main_mailer_type select Local only" \
		"postfix postfix/mailname string $(hostname --fqdn 2>/dev/null || hostname)" |
		debconf-set-selections
	;;
esac
apt-get update </dev/null >/dev/null
# Installed for the tests, Postfix must not start (nor start at boot):
# the run starts and stops it itself. A policy-rc.d of our own, only if
# the host has none, keeps the package scripts from starting it.
policy=""
case "$missing" in
*postfix*)
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 0755 /usr/sbin/policy-rc.d
		policy=/usr/sbin/policy-rc.d
	fi
	;;
esac
# shellcheck disable=SC2086 # one word per package
apt-get install -y --no-install-recommends $missing </dev/null || {
	[ -z "$policy" ] || rm -f "$policy"
	exit 1
}
[ -z "$policy" ] || rm -f "$policy"
case "$missing" in
*postfix*)
	if command -v systemctl >/dev/null 2>&1; then
		systemctl disable postfix.service >/dev/null 2>&1 || true
	fi
	;;
esac
