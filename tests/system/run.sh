#!/bin/bash
# Tests of pop3d on the real system: tests/system/run.sh BINARY
#
# Run as root (make check-system, .ci/run). Unlike the integration tests
# these use no cwrap: real users made with useradd/chpasswd, the real
# pam_unix through /etc/pam.d/pop3-systest, spools in /var/mail owned
# user:mail 0660 as Debian's MTAs make them, BINARY run under
# systemd-socket-activate on 127.0.0.1 in each socket mode, plain and over
# TLS (STLS, implicit), with its pre-auth process as a throwaway system
# user in an empty chroot, and real clients (curl, fetchmail, mpop,
# Python's poplib).
#
# This script owns every change to the system: it makes the throwaway
# users, group, PAM files, directories and certificate, hands them to
# systest.py (the checks), and removes them again on any exit (trap), then
# checks that nothing is left and prints the final "N passed, N failed".
set -uo pipefail

if [ $# -ne 1 ]; then
	echo "usage: $0 BINARY" >&2
	exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "$0: the system tests make users and PAM files: run as root" >&2
	exit 2
fi
[ -x "$1" ] || {
	echo "$0: $1: not an executable (run make first)" >&2
	exit 2
}
binary=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)

# --- packages ---------------------------------------------------------------
# Debian package -> a file it brings (tests/deps.sh has the build's own).
need_pkgs=""
for pair in fetchmail:/usr/bin/fetchmail mpop:/usr/bin/mpop \
	fail2ban:/usr/bin/fail2ban-regex passwd:/usr/sbin/useradd \
	procps:/usr/bin/ps python3:/usr/bin/python3 curl:/usr/bin/curl \
	openssl:/usr/bin/openssl iproute2:/usr/bin/ss \
	systemd:/usr/bin/systemd-socket-activate \
	liblockfile-bin:/usr/bin/dotlockfile; do
	[ -e "${pair#*:}" ] || need_pkgs="$need_pkgs ${pair%%:*}"
done
if [ -n "$need_pkgs" ]; then
	echo "system tests: installing$need_pkgs"
	export DEBIAN_FRONTEND=noninteractive
	apt_log=$(mktemp)
	# shellcheck disable=SC2086 # word splitting of the list is intended
	if ! { apt-get update -q && apt-get install -y -q \
		--no-install-recommends $need_pkgs; } </dev/null >"$apt_log" 2>&1; then
		tail -n 20 "$apt_log"
		rm -f "$apt_log"
		echo "FAIL - packages: apt-get install$need_pkgs failed"
		echo "0 passed, 1 failed"
		exit 1
	fi
	rm -f "$apt_log"
fi

# --- names --------------------------------------------------------------------
# A run's users and group carry its pid, so that they never collide with
# real accounts; the GECOS marker lets a later run recognise leftovers of a
# run that was killed with SIGKILL (no trap) and remove them.
MARK="pop3d-systest"
tag="p3st$$"
main_user="${tag}a"   # uid >= 1000, the mail user of every client test
b_user="${tag}b"      # uid >= 1000, a second mail user for parallel tests
lock_user="${tag}l"   # usermod -L
exp_user="${tag}e"    # chage -E 0
sys_user="${tag}s"    # useradd -r: uid < 1000
preauth_user="${tag}p" # useradd -r: pop3d's --preauth-user (no password)
extra_group="${tag}g" # a supplementary group of main_user
users="$main_user $b_user $lock_user $exp_user $sys_user $preauth_user"
pam_service="pop3-systest"
pam_file="/etc/pam.d/$pam_service"
# The same with pam_exec recording PAM_RHOST and PAM_USER as pop3d set them.
rhost_service="pop3-systest-rhost"
rhost_file="/etc/pam.d/$rhost_service"
# pam_permit for everyone: root's refusal by uid, never by its password
# (root's account is not touched). Only the test's own server names it.
permit_service="pop3-systest-permit"
permit_file="/etc/pam.d/$permit_service"

work=$(mktemp -d /tmp/pop3d-systest.XXXXXX)
# Traversable by the test users: the journal directory is below it.
chmod 0711 "$work"
# pop3d's --preauth-dir (an empty chroot: root's, writable by nobody) and
# --journal-dir (the monitor makes <uid>/ in it for each user), and a
# throwaway certificate for the TLS servers (key root's alone, 0600).
empty_dir="$work/empty"
journal_dir="$work/journal"
tls_cert="$work/tls-cert.pem"
tls_key="$work/tls-key.pem"
made_var_mail=0
cleanup_done=0
py_pid=""

remove_user() {
	local u=$1
	getent passwd "$u" >/dev/null || return 0
	userdel -r "$u" >/dev/null 2>&1 || userdel -f -r "$u" >/dev/null 2>&1
	getent group "$u" >/dev/null && groupdel "$u" >/dev/null 2>&1
	rm -f "/var/mail/$u" "/var/mail/$u".*
}

# Leftovers of an earlier run that died without its trap (SIGKILL).
for u in $(getent passwd | awk -F: -v m="$MARK" '$5 == m && $1 ~ /^p3st[0-9]+[ablesp]$/ {print $1}'); do
	echo "system tests: removing leftover user $u of an earlier run"
	remove_user "$u"
done
for f in /etc/pam.d/pop3-systest /etc/pam.d/pop3-systest-*; do
	[ -e "$f" ] || continue
	echo "system tests: removing leftover $f of an earlier run"
	rm -f "$f"
done
for g in $(getent group | awk -F: '$1 ~ /^p3st[0-9]+g$/ {print $1}'); do
	echo "system tests: removing leftover group $g of an earlier run"
	groupdel "$g" >/dev/null 2>&1
done

# Stop every server systest.py recorded (it stops them itself; this is the
# backstop if it was killed). Each runs in a process group of its own,
# led by the process systest.py started.
stop_servers() {
	local pid
	[ -f "$work/pids" ] || return 0
	while read -r pid; do
		[ -n "$pid" ] || continue
		kill -0 -- "-$pid" 2>/dev/null || continue
		kill -TERM -- "-$pid" 2>/dev/null
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			kill -0 -- "-$pid" 2>/dev/null || break
			sleep 0.2
		done
		kill -KILL -- "-$pid" 2>/dev/null
	done <"$work/pids"
}

cleanup() {
	[ "$cleanup_done" = 1 ] && return
	cleanup_done=1
	if [ -n "$py_pid" ]; then
		kill -TERM "$py_pid" 2>/dev/null
		wait "$py_pid" 2>/dev/null
	fi
	stop_servers
	for u in $users; do
		remove_user "$u"
	done
	getent group "$extra_group" >/dev/null && groupdel "$extra_group"
	rm -f "$pam_file" "$rhost_file" "$permit_file"
	if [ "$made_var_mail" = 1 ]; then
		rmdir /var/mail 2>/dev/null
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# --- the system state ---------------------------------------------------------
rand_pw() {
	# Letters, digits and a few punctuation marks that need no quoting in
	# a fetchmailrc, an mpop config or a curl -u argument.
	printf '%s' "$(head -c 18 /dev/urandom | base64 | tr -d '/+=\n')-Pw.$1!"
}

setup() {
	if [ ! -d /var/mail ]; then
		install -d -o root -g mail -m 2775 /var/mail || return 1
		made_var_mail=1
	fi
	cat >"$pam_file" <<-'EOF' || return 1
		# pop3d system tests (tests/system/run.sh); removed when they end.
		auth	required	pam_unix.so
		account	required	pam_unix.so
	EOF
	cat >"$work/pam-env.sh" <<-EOF || return 1
		#!/bin/sh
		echo "\$PAM_TYPE service=\$PAM_SERVICE user=\$PAM_USER rhost=\$PAM_RHOST" >>"$work/pam-env.log"
	EOF
	chmod 0755 "$work/pam-env.sh"
	cat >"$rhost_file" <<-EOF || return 1
		# pop3d system tests (tests/system/run.sh); removed when they end.
		auth	required	pam_unix.so
		account	required	pam_unix.so
		account	optional	pam_exec.so quiet $work/pam-env.sh
	EOF
	cat >"$permit_file" <<-'EOF' || return 1
		# pop3d system tests (tests/system/run.sh); removed when they end.
		auth	required	pam_permit.so
		account	required	pam_permit.so
	EOF
	groupadd "$extra_group" || return 1
	useradd -m -U -c "$MARK" -s /usr/sbin/nologin -G "$extra_group" \
		-K UID_MIN=1000 "$main_user" || return 1
	useradd -m -U -c "$MARK" -s /usr/sbin/nologin "$b_user" || return 1
	useradd -m -U -c "$MARK" -s /usr/sbin/nologin "$lock_user" || return 1
	useradd -m -U -c "$MARK" -s /usr/sbin/nologin "$exp_user" || return 1
	useradd -r -M -U -c "$MARK" -s /usr/sbin/nologin "$sys_user" || return 1
	useradd -r -M -U -c "$MARK" -s /usr/sbin/nologin "$preauth_user" || return 1
	install -d -o root -g root -m 0555 "$empty_dir" || return 1
	install -d -o root -g root -m 0711 "$journal_dir" || return 1
	(umask 077 && openssl req -x509 -newkey rsa:2048 -nodes -days 1 \
		-subj /CN=localhost -keyout "$tls_key" -out "$tls_cert") \
		</dev/null >"$work/openssl.out" 2>&1 || {
		cat "$work/openssl.out" >&2
		return 1
	}
	chown root:root "$tls_key" "$tls_cert" || return 1
	chmod 0600 "$tls_key" || return 1
	chmod 0644 "$tls_cert" || return 1
	main_pw=$(rand_pw a)
	b_pw=$(rand_pw b)
	lock_pw=$(rand_pw l)
	exp_pw=$(rand_pw e)
	sys_pw=$(rand_pw s)
	printf '%s:%s\n' "$main_user" "$main_pw" "$b_user" "$b_pw" \
		"$lock_user" "$lock_pw" \
		"$exp_user" "$exp_pw" "$sys_user" "$sys_pw" | chpasswd || return 1
}

if ! setup; then
	echo "FAIL - setup: users, group, PAM file, directories, certificate or /var/mail could not be made"
	cleanup
	echo "0 passed, 1 failed"
	exit 1
fi

export P3ST_BINARY="$binary" P3ST_WORK="$work" P3ST_PAM="$pam_service" \
	P3ST_MAIN_USER="$main_user" P3ST_MAIN_PW="$main_pw" \
	P3ST_B_USER="$b_user" P3ST_B_PW="$b_pw" P3ST_RHOST_PAM="$rhost_service" \
	P3ST_PERMIT_PAM="$permit_service" \
	P3ST_LOCK_USER="$lock_user" P3ST_LOCK_PW="$lock_pw" \
	P3ST_EXP_USER="$exp_user" P3ST_EXP_PW="$exp_pw" \
	P3ST_SYS_USER="$sys_user" P3ST_SYS_PW="$sys_pw" \
	P3ST_EXTRA_GROUP="$extra_group" P3ST_TAG="$tag" \
	P3ST_PREAUTH_USER="$preauth_user" P3ST_PREAUTH_DIR="$empty_dir" \
	P3ST_JOURNAL_DIR="$journal_dir" \
	P3ST_TLS_CERT="$tls_cert" P3ST_TLS_KEY="$tls_key"

# --- the checks ---------------------------------------------------------------
# Debian's python3 on purpose (standard library only). systest.py prints a
# line per check and writes "PASSED FAILED" to $work/counts.
# In the background, so that a signal to this script is handled at once
# (cleanup() stops systest.py first; timeout passes the signal on).
timeout -k 10 600 /usr/bin/python3 "$here/systest.py" </dev/null &
py_pid=$!
wait "$py_pid"
py_status=$?
py_pid=""
passed=0
failed=0
if [ -s "$work/counts" ]; then
	read -r passed failed <"$work/counts"
else
	echo "FAIL - systest.py: ended (status $py_status) without its counts"
	failed=1
fi
if [ "$py_status" -ne 0 ] && [ "$failed" -eq 0 ]; then
	echo "FAIL - systest.py: exit status $py_status"
	failed=$((failed + 1))
fi

# P3ST_KEEP_LOGS=DIR keeps the servers' logs (for a look at what pop3d said).
if [ -n "${P3ST_KEEP_LOGS:-}" ]; then
	mkdir -p "$P3ST_KEEP_LOGS" && cp "$work"/*.log "$P3ST_KEEP_LOGS"/ 2>/dev/null
fi

# --- cleanup, and a check that it was complete ----------------------------------
# The process groups of the servers systest.py started: pop3d sessions stay
# in them (other pop3d processes on this machine are none of our business).
our_pgids=" $(tr '\n' ' ' <"$work/pids" 2>/dev/null) "
cleanup
left=""
for u in $users; do
	getent passwd "$u" >/dev/null && left="$left user:$u"
	getent group "$u" >/dev/null && left="$left group:$u"
	[ -e "/home/$u" ] && left="$left /home/$u"
	[ -e "/var/mail/$u" ] && left="$left /var/mail/$u"
	for f in "/var/mail/$u".*; do
		[ -e "$f" ] && left="$left $f"
	done
done
getent group "$extra_group" >/dev/null && left="$left group:$extra_group"
[ -e "$pam_file" ] && left="$left $pam_file"
[ -e "$rhost_file" ] && left="$left $rhost_file"
[ -e "$permit_file" ] && left="$left $permit_file"
[ -e "$work" ] && left="$left $work"
# Any process still in a server's process group (a server or session
# systest.py started and failed to stop).
while read -r pid pgid; do
	case "$our_pgids" in
	*" $pgid "*) left="$left pid:$pid" ;;
	esac
done < <(ps -e -o pid=,pgid=)
if [ -z "$left" ]; then
	echo "ok   - cleanup: no test user, group, PAM file, spool or pop3d process left"
	passed=$((passed + 1))
else
	echo "FAIL - cleanup: left behind:$left"
	failed=$((failed + 1))
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
