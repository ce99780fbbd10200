#!/bin/bash
# tests/demo.sh BINARY: serve a demo maildrop with BINARY on 127.0.0.1:1110
# (POP3D_DEMO_PORT overrides the port) until Ctrl-C.
#
# User "demo", password "demo", three messages. Nothing in /etc or
# /var/mail is touched: the user exists only through cwrap
# (tests/cwrap/env.sh: nss_wrapper's passwd, pam_wrapper with pam_matrix,
# uid_wrapper so that pop3d believes it is root and can drop to the user).
# systemd-socket-activate plays inetd: one pop3d per connection, with the
# connection on stdin/stdout, as on a real host.
set -euo pipefail

die() {
	echo "demo: $*" >&2
	exit 1
}

[ $# -eq 1 ] || die "usage: $0 BINARY"
[ -x "$1" ] || die "$1: not an executable (run make first)"
binary=$(realpath "$1")
top=$(cd "$(dirname "$0")/.." && pwd)
host=127.0.0.1
port=${POP3D_DEMO_PORT:-1110}

command -v systemd-socket-activate >/dev/null ||
	die "systemd-socket-activate not found (Debian package systemd; run tests/deps.sh)"

demo_dir=$(mktemp -d "${TMPDIR:-/tmp}/pop3d-demo.XXXXXX")
server_pid=""

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	# A second signal (make passes SIGTERM on to us, and whoever sent it
	# may signal our group as well) must not cut the cleanup short.
	trap '' INT TERM HUP
	# The server runs in its own session (setsid below): signal the whole
	# group, so that pop3d processes still serving a client end too.
	if [ -n "$server_pid" ]; then
		kill -TERM -- "-$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	rm -rf "$demo_dir"
	echo "demo: stopped, $demo_dir removed" >&2
}
trap cleanup EXIT
trap 'exit 0' INT  # Ctrl-C is how the demo stops
trap 'exit 143' TERM HUP

# --- cwrap: the demo user, PAM and fake root -------------------------------
# tests/cwrap/env.sh writes passwd, group, the pam_matrix passdb and the PAM
# services into POP3D_TEST_ENV_DIR and exports the wrappers' variables. It
# leaves LD_PRELOAD alone: only pop3d runs under the wrappers.
export POP3D_TEST_ENV_DIR="$demo_dir/cwrap"
mkdir "$POP3D_TEST_ENV_DIR"
# shellcheck source=tests/cwrap/env.sh
. "$top/tests/cwrap/env.sh" || die "tests/cwrap/env.sh failed"

# systemd-socket-activate gives its children a clean environment: pass
# each cwrap variable with -E.
setenv=()
for name in $POP3D_CWRAP_VARS; do
	if [ "$name" = LD_PRELOAD ]; then
		setenv+=(-E "LD_PRELOAD=$POP3D_CWRAP_PRELOAD")
	else
		setenv+=(-E "$name=${!name}")
	fi
done
# Extra flags the environment needs (--min-uid when not really root).
read -r -a extra_args <<<"${POP3D_TEST_ARGS:-}"

# --- the maildrop ------------------------------------------------------------
spool="$demo_dir/demo"
cat >"$spool" <<'EOF'
From alice@example.org Mon Mar  3 09:14:07 2025
Return-Path: <alice@example.org>
X-Original-To: demo@localhost
Delivered-To: demo@localhost
Received: from mail.example.org (mail.example.org [192.0.2.25])
	by localhost (Postfix) with ESMTPS id 4Z6h1Q2x3Kz9sWq
	for <demo@localhost>; Mon,  3 Mar 2025 09:14:07 +0000 (UTC)
Date: Mon, 3 Mar 2025 10:14:02 +0100
From: Alice Martin <alice@example.org>
To: demo@localhost
Subject: Welcome to pop3d
Message-ID: <20250303091402.GA1234@mail.example.org>
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii

Hello,

this is the first message of the pop3d demo maildrop: curl fetched it
with RETR 1. "curl pop3://127.0.0.1:1110 -u demo:demo" lists all three.

The next line starts with a dot, so pop3d sends it dot-stuffed and
curl removes the extra dot again:
.signature files are a thing of the past.

Alice

From bob@example.net Tue Mar  4 16:02:51 2025
Return-Path: <bob@example.net>
X-Original-To: demo@localhost
Delivered-To: demo@localhost
Received: from smtp.example.net (smtp.example.net [198.51.100.7])
	by localhost (Postfix) with ESMTPS id 4Z7Lx85Vq1z9sWr
	for <demo@localhost>; Tue,  4 Mar 2025 16:02:51 +0000 (UTC)
Date: Tue, 04 Mar 2025 11:02:44 -0500
From: Bob Chen <bob@example.net>
To: demo@localhost
Cc: alice@example.org
Subject: Re: Welcome to pop3d
In-Reply-To: <20250303091402.GA1234@mail.example.org>
References: <20250303091402.GA1234@mail.example.org>
Message-ID: <87h6tq0y3f.fsf@smtp.example.net>
MIME-Version: 1.0
Content-Type: text/plain; charset=us-ascii

Alice Martin <alice@example.org> writes:

>From the look of it, the spool is plain mbox: the MDA stored this line
with a ">" in front, and pop3d serves it as stored.

For the headers alone, try

    curl pop3://127.0.0.1:1110 -u demo:demo -X 'TOP 2 0'

and -X UIDL for the unique ids.

Bob

From reports@example.com Wed Mar  5 06:30:00 2025
Return-Path: <reports@example.com>
X-Original-To: demo@localhost
Delivered-To: demo@localhost
Received: from reports.example.com (reports.example.com [203.0.113.40])
	by localhost (Postfix) with ESMTP id 4Z8B0m1Hc2z9sWs
	for <demo@localhost>; Wed,  5 Mar 2025 06:30:00 +0000 (UTC)
Date: Wed, 05 Mar 2025 06:29:58 +0000
From: Nightly reports <reports@example.com>
To: demo@localhost
Subject: [report] disk usage on mailhost
Message-ID: <report-20250305-0629@reports.example.com>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="=-=report-boundary=-="

This is a multi-part message in MIME format.

--=-=report-boundary=-=
Content-Type: text/plain; charset=us-ascii

Filesystem      Size  Used Avail Use% Mounted on
/dev/vda1        40G   17G   21G  45% /
/dev/vdb1       200G  112G   78G  59% /var/mail

--=-=report-boundary=-=
Content-Type: text/csv; name="usage.csv"
Content-Disposition: attachment; filename="usage.csv"

filesystem,size_gb,used_gb
/dev/vda1,40,17
/dev/vdb1,200,112

--=-=report-boundary=-=--
EOF
chmod 0600 "$spool"
# pop3d serves only a spool owned by the user. Not really root, env.sh
# gave the demo user our own uid, and the file is ours already.
if [ "$POP3D_TEST_ROOT" = 1 ]; then
	chown "$POP3D_DEMO_UID:$POP3D_DEMO_GID" "$spool"
fi

# --- serve --------------------------------------------------------------------
cat <<EOF

pop3d demo: $binary
  listening on  pop3://$host:$port  (systemd-socket-activate, one pop3d per connection)
  user          demo
  password      demo
  maildrop      $spool  (3 messages, mbox)

In another terminal:

  curl -s pop3://$host:$port/1 -u demo:demo      # message 1 (RETR 1)
  curl pop3://$host:$port -u demo:demo           # the message list (LIST)

pop3d's log lines (--log=stderr) follow. Ctrl-C stops the demo and
removes $demo_dir.

EOF

# setsid: a process group of its own, which cleanup() signals as a whole.
setsid systemd-socket-activate --inetd --accept --listen="$host:$port" \
	"${setenv[@]}" \
	"$binary" --log=stderr --mailbox="$demo_dir/%u" "${extra_args[@]}" &
server_pid=$!

status=0
wait "$server_pid" || status=$?
server_pid=""
die "systemd-socket-activate exited with status $status (port $port in use? POP3D_DEMO_PORT=N picks another)"
