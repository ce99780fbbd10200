# shellcheck shell=sh
# cwrap test environment for pop3d: fake root, fake users, fake PAM.
#
# Source this file (POSIX sh or bash); nothing under /etc is read or written
# and no real root is needed. pop3d then believes it starts as root, looks
# users up in our passwd/group files, authenticates them with pam_matrix
# against our passdb, and really calls initgroups/setgid/setuid (simulated
# by uid_wrapper).
#
# Input (set by the caller before sourcing):
#   POP3D_TEST_ENV_DIR  an existing writable directory; passwd, group,
#                       passdb, pam.d/ and home/<user>/ are written there.
#   POP3D_TEST_ASAN     optional; 1 when the binary under test is built with
#                       AddressSanitizer (adds the settings it needs).
#   POP3D_TEST_LEAKS    optional; 0 turns LeakSanitizer off (default 1).
#
# Exported:
#   POP3D_CWRAP_PRELOAD  value for LD_PRELOAD, to be set for pop3d ONLY (not
#                        for the calling shell: every tool would then run as
#                        fake root with fake users). Use cwrap_run below.
#   UID_WRAPPER=1 UID_WRAPPER_ROOT=1
#   NSS_WRAPPER_PASSWD NSS_WRAPPER_GROUP
#   PAM_WRAPPER=1 PAM_WRAPPER_SERVICE_DIR   (services "pop3" and "imap")
#   ASAN_OPTIONS, UBSAN_OPTIONS and *_WRAPPER_DISABLE_DEEPBIND=1 (ASan only)
#   POP3D_CWRAP_VARS     names of all the variables above (including
#                        LD_PRELOAD), for tools that pass only chosen
#                        variables to their child, e.g.
#                          for v in $POP3D_CWRAP_VARS; do set -- "$@" -E "$v"; done
#                        with LD_PRELOAD="$POP3D_CWRAP_PRELOAD" set for them.
#   POP3D_TEST_ROOT      1 if we really run as root (spools must then be
#                        chowned to the user's uid: pop3d requires the spool
#                        to be owned by the user), else 0.
#   POP3D_TEST_ARGS      extra pop3d flags this environment needs: empty as
#                        root; "--min-uid=UID" otherwise (see below).
#   POP3D_DEMO_UID POP3D_DEMO_GID  owner to give the demo user's spool.
#
# Users (user / password in passdb / uid when really root):
#   alice / secret / 1000     bob / hunter2 / 1001     carol / "a b c" / 1002
#   demo / demo / 1003        erin / erinpw / 1004 (passdb service "imap",
#   so the "pop3" service refuses her account)      daemonish / daemonpw / 999
#   root / rootpw / 0
# A name in neither file (e.g. "nosuchuser") is unknown to PAM and NSS.
#
# Not really root: files we create belong to us and cannot be chowned, so
# every ordinary user gets our real uid and gid, daemonish gets uid-1, and
# POP3D_TEST_ARGS carries --min-uid=<our uid> so the same tests hold.
#
# Functions:
#   cwrap_run CMD [ARG...]   run CMD with LD_PRELOAD set to the wrappers.
#   cwrap_uid USER           print USER's uid from our passwd file.

cwrap_find_lib() {
	# $1: pkg-config module, $2: library file name. pkg-config knows the
	# exact path on Debian; the directory scan covers other layouts.
	_p=$(pkg-config --libs "$1" 2>/dev/null | tr ' ' '\n' | grep "/$2\$" | head -n 1)
	if [ -n "$_p" ] && [ -e "$_p" ]; then
		echo "$_p"
		return 0
	fi
	_ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null ||
		gcc -print-multiarch 2>/dev/null)
	for _d in ${_ma:+/usr/lib/$_ma} /usr/lib64 /usr/lib /usr/local/lib; do
		if [ -e "$_d/$2" ]; then
			echo "$_d/$2"
			return 0
		fi
	done
	echo "cwrap/env.sh: $2 not found (install $1, Debian: lib${1%_wrapper}-wrapper)" >&2
	return 1
}

cwrap_setup() {
	if [ -z "${POP3D_TEST_ENV_DIR:-}" ] || [ ! -d "$POP3D_TEST_ENV_DIR" ]; then
		echo "cwrap/env.sh: set POP3D_TEST_ENV_DIR to an existing directory" >&2
		return 1
	fi
	_dir=$POP3D_TEST_ENV_DIR

	_uidlib=$(cwrap_find_lib uid_wrapper libuid_wrapper.so) || return 1
	_nsslib=$(cwrap_find_lib nss_wrapper libnss_wrapper.so) || return 1
	_pamlib=$(cwrap_find_lib pam_wrapper libpam_wrapper.so) || return 1
	_moddir=$(pkg-config --variable=modules pam_wrapper 2>/dev/null)
	[ -n "$_moddir" ] || _moddir=$(dirname "$_pamlib")/pam_wrapper
	_matrix=$_moddir/pam_matrix.so
	if [ ! -e "$_matrix" ]; then
		echo "cwrap/env.sh: $_matrix not found (Debian: libpam-wrapper)" >&2
		return 1
	fi

	_ruid=$(id -u)
	_rgid=$(id -g)
	if [ "$_ruid" -eq 0 ]; then
		POP3D_TEST_ROOT=1
		POP3D_TEST_ARGS="--preauth-dir=$_dir/empty --journal-dir=$_dir/journal"
		_a=1000 _b=1001 _c=1002 _dm=1003 _e=1004 _low=999
		_ga=1000 _gb=1001 _gc=1002 _gdm=1003 _ge=1004 _glow=999
	else
		POP3D_TEST_ROOT=0
		POP3D_TEST_ARGS="--min-uid=$_ruid --preauth-dir=$_dir/empty --journal-dir=$_dir/journal"
		_a=$_ruid _b=$_ruid _c=$_ruid _dm=$_ruid _e=$_ruid
		_low=$((_ruid - 1))
		_ga=$_rgid _gb=$_rgid _gc=$_rgid _gdm=$_rgid _ge=$_rgid _glow=$_rgid
	fi

	mkdir -p "$_dir/pam.d" "$_dir/home" || return 1
	# The pre-login process's chroot: empty, owned by root, writable by
	# nobody (pop3d refuses it otherwise). The chroot itself needs real
	# root: uid_wrapper cannot fake it.
	mkdir -p "$_dir/empty" && chmod 0555 "$_dir/empty" || return 1
	for _u in alice bob carol demo erin daemonish; do
		mkdir -p "$_dir/home/$_u" || return 1
	done
	_h=$_dir/home
	cat >"$_dir/passwd" <<EOF
root:x:0:0:root:/root:/bin/sh
pop3d:x:101:65534:pop3d pre-login:/nonexistent:/usr/sbin/nologin
daemonish:x:$_low:$_glow:system account:$_h/daemonish:/bin/sh
alice:x:$_a:$_ga:Alice:$_h/alice:/bin/sh
bob:x:$_b:$_gb:Bob:$_h/bob:/bin/sh
carol:x:$_c:$_gc:Carol:$_h/carol:/bin/sh
demo:x:$_dm:$_gdm:Demo:$_h/demo:/bin/sh
erin:x:$_e:$_ge:Erin:$_h/erin:/bin/sh
EOF
	# alice is also in "mail" so initgroups has a supplementary group to set.
	if [ "$_ruid" -eq 0 ]; then
		cat >"$_dir/group" <<EOF
root:x:0:
mail:x:8:alice
nogroup:x:65534:
daemonish:x:$_glow:
alice:x:$_ga:
bob:x:$_gb:
carol:x:$_gc:
demo:x:$_gdm:
erin:x:$_ge:
EOF
	else
		cat >"$_dir/group" <<EOF
root:x:0:
mail:x:8:alice
nogroup:x:65534:
users:x:$_rgid:
EOF
	fi
	# pam_matrix format: user:password:service (the password may hold spaces).
	cat >"$_dir/passdb" <<EOF
alice:secret:pop3
bob:hunter2:pop3
carol:a b c:pop3
demo:demo:pop3
erin:erinpw:imap
daemonish:daemonpw:pop3
root:rootpw:pop3
EOF
	for _svc in pop3 imap; do
		cat >"$_dir/pam.d/$_svc" <<EOF
auth required $_matrix passdb=$_dir/passdb
account required $_matrix passdb=$_dir/passdb
EOF
	done
	# Linux-PAM also reads "other" and complains on stderr when it is
	# missing; an empty passdb makes it refuse everyone, like a stock one.
	: >"$_dir/passdb.empty"
	cat >"$_dir/pam.d/other" <<EOF
auth required $_matrix passdb=$_dir/passdb.empty
account required $_matrix passdb=$_dir/passdb.empty
EOF

	POP3D_CWRAP_PRELOAD="$_uidlib:$_nsslib:$_pamlib"
	UID_WRAPPER=1
	UID_WRAPPER_ROOT=1
	NSS_WRAPPER_PASSWD=$_dir/passwd
	NSS_WRAPPER_GROUP=$_dir/group
	PAM_WRAPPER=1
	PAM_WRAPPER_SERVICE_DIR=$_dir/pam.d
	POP3D_DEMO_UID=$_dm
	POP3D_DEMO_GID=$_gdm
	export POP3D_CWRAP_PRELOAD UID_WRAPPER UID_WRAPPER_ROOT NSS_WRAPPER_PASSWD \
		NSS_WRAPPER_GROUP PAM_WRAPPER PAM_WRAPPER_SERVICE_DIR POP3D_TEST_ROOT \
		POP3D_TEST_ARGS POP3D_DEMO_UID POP3D_DEMO_GID
	POP3D_CWRAP_VARS="LD_PRELOAD UID_WRAPPER UID_WRAPPER_ROOT NSS_WRAPPER_PASSWD NSS_WRAPPER_GROUP PAM_WRAPPER PAM_WRAPPER_SERVICE_DIR"

	if [ "${POP3D_TEST_ASAN:-0}" = 1 ]; then
		# The wrappers are preloaded ahead of libasan, which ASan would
		# otherwise refuse; RTLD_DEEPBIND in the wrappers breaks ASan's
		# interception of malloc and friends. LeakSanitizer works under
		# the three wrappers (PAM, NSS and setuid calls included), so
		# leaks are checked unless POP3D_TEST_LEAKS=0. exitcode 99 tells
		# a sanitizer report from pop3d's own exit statuses.
		ASAN_OPTIONS="verify_asan_link_order=0:detect_leaks=${POP3D_TEST_LEAKS:-1}:abort_on_error=0:exitcode=99"
		UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=99"
		UID_WRAPPER_DISABLE_DEEPBIND=1
		NSS_WRAPPER_DISABLE_DEEPBIND=1
		PAM_WRAPPER_DISABLE_DEEPBIND=1
		export ASAN_OPTIONS UBSAN_OPTIONS UID_WRAPPER_DISABLE_DEEPBIND \
			NSS_WRAPPER_DISABLE_DEEPBIND PAM_WRAPPER_DISABLE_DEEPBIND
		POP3D_CWRAP_VARS="$POP3D_CWRAP_VARS ASAN_OPTIONS UBSAN_OPTIONS UID_WRAPPER_DISABLE_DEEPBIND NSS_WRAPPER_DISABLE_DEEPBIND PAM_WRAPPER_DISABLE_DEEPBIND"
	fi
	export POP3D_CWRAP_VARS
}

cwrap_run() {
	LD_PRELOAD="$POP3D_CWRAP_PRELOAD${LD_PRELOAD:+:$LD_PRELOAD}" "$@"
}

cwrap_uid() {
	awk -F: -v u="$1" '$1 == u { print $3; found = 1 } END { exit !found }' \
		"$NSS_WRAPPER_PASSWD"
}

cwrap_setup
