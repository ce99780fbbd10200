#!/bin/bash
# tests/demo-check.sh: the README's quick start, checked the way a new user
# runs it. Starts "make demo" in the background on a free port (so on a
# fresh machine make first installs the packages and builds pop3d), waits
# for the port, fetches message 1 and the LIST with curl, checks what came
# back, then stops the demo by its pid (SIGTERM to make) and checks that
# it cleaned up.
#
# Run it from the top of a checkout, as root on a fresh machine (it is
# make that installs the packages). One line per step, "ok" or "FAIL ...";
# exit status 0 only if every step passed.
#
# Environment: DEMO_CHECK_PORT (default: a free port), DEMO_CHECK_TIMEOUT
# (seconds to wait for the port, default 600: apt-get and a build may come
# first), MAKE (default make).
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
timeout=${DEMO_CHECK_TIMEOUT:-600}
make=${MAKE:-make}
work=$(mktemp -d "${TMPDIR:-/tmp}/pop3d-demo-check.XXXXXX")
log="$work/make-demo.log"
failed=0
make_pid=""

ok() { echo "ok   demo: $*"; }
fail() {
	echo "FAIL demo: $*"
	failed=1
}

# A port nobody listens on now. (Another program could take it before the
# demo binds it; then the demo fails with "port in use", and says so.)
free_port() {
	python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])' 2>/dev/null || echo 11110
}

# make gets SIGTERM, which it passes on to tests/demo.sh, which stops its
# server. (Not SIGINT, what Ctrl-C sends: a command started with & from a
# script ignores it.) make and the demo script run in a process group of
# their own (setsid), watched until it is empty.
stop_demo() {
	[ -n "$make_pid" ] || return 0
	kill -TERM "$make_pid" 2>/dev/null
	for _ in $(seq 50); do
		kill -0 -- "-$make_pid" 2>/dev/null || break
		sleep 0.2
	done
	if kill -0 -- "-$make_pid" 2>/dev/null; then
		fail "processes of the demo still running 10 s after SIGTERM; killed"
		kill -KILL -- "-$make_pid" 2>/dev/null
	fi
	wait "$make_pid" 2>/dev/null
	make_pid=""
}

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	stop_demo
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

port=${DEMO_CHECK_PORT:-$(free_port)}
url="pop3://127.0.0.1:$port"

# --- start -------------------------------------------------------------------
cd "$top" || exit 1
t0=$(date +%s)
setsid "$make" demo POP3D_DEMO_PORT="$port" </dev/null >"$log" 2>&1 &
make_pid=$!

up=0
while [ $(($(date +%s) - t0)) -lt "$timeout" ]; do
	if ! kill -0 "$make_pid" 2>/dev/null; then
		break
	fi
	# Only the banner's port: a connection before it would be the
	# previous owner of the port, or nothing.
	if grep -q "listening on  $url" "$log" &&
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		up=1
		break
	fi
	sleep 0.5
done
took=$(($(date +%s) - t0))
# What make installed first, if anything (tests/deps.sh says it).
grep -m1 '^pop3d: installing missing Debian packages:' "$log" | sed 's/^pop3d: /note demo: /'
if [ "$up" = 1 ]; then
	ok "make demo serves $url after ${took}s"
else
	fail "make demo did not serve $url within ${took}s; its output ends:"
	tail -n 30 "$log" | sed 's/^/    /'
	exit 1
fi

# --- fetch -------------------------------------------------------------------
# RETR 1: the welcome message, byte for byte where it matters, with the
# dot-stuffed line unstuffed again by curl.
if curl -sS --max-time 20 "$url/1" -u demo:demo -o "$work/raw1" 2>"$work/curl1"; then
	tr -d '\r' <"$work/raw1" >"$work/msg1"
	if grep -qx 'Subject: Welcome to pop3d' "$work/msg1" &&
		grep -qx '\.signature files are a thing of the past\.' "$work/msg1" &&
		[ "$(head -c 5 "$work/msg1")" = "Retur" ] &&
		[ "$(tail -n 1 "$work/msg1")" = "Alice" ]; then
		ok "RETR 1 is the welcome message ($(wc -c <"$work/raw1") bytes)"
	else
		fail "RETR 1 is not the welcome message:"
		head -n 20 "$work/msg1" | sed 's/^/    /'
	fi
else
	fail "curl RETR 1: $(cat "$work/curl1")"
fi

# LIST: three messages, numbered 1 to 3, each with a size.
if curl -sS --max-time 20 "$url" -u demo:demo -o "$work/list" 2>"$work/curl2"; then
	if tr -d '\r' <"$work/list" | awk '
		$1 != NR || $2 !~ /^[1-9][0-9]*$/ || NF != 2 { bad = 1 }
		END { exit bad || NR != 3 }'; then
		ok "LIST shows 3 messages ($(tr -d '\r' <"$work/list" | tr '\n' ' '))"
	else
		fail "LIST is not 3 numbered messages:"
		sed 's/^/    /' "$work/list"
	fi
else
	fail "curl LIST: $(cat "$work/curl2")"
fi

# The demo logged both sessions (its pop3d --log=stderr lines).
if grep -q '^<6>logout: user=demo reason=QUIT retrieved=1/' "$log"; then
	ok "the demo logged the sessions"
else
	fail "no logout line for the RETR session in the demo's output"
fi

# --- stop --------------------------------------------------------------------
demo_dir=$(sed -n 's/^  maildrop      \(.*\)\/demo  (3 messages, mbox)$/\1/p' "$log")
stop_demo
if [ -z "$demo_dir" ]; then
	fail "the demo did not print its maildrop"
elif [ -e "$demo_dir" ]; then
	fail "SIGTERM left $demo_dir behind"
else
	ok "SIGTERM stopped it and removed its directory"
fi
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
	fail "port $port still accepts connections after the demo stopped"
fi

exit "$failed"
