"""Debian's Postfix as the MTA of the stress run (stress.py --mta postfix).

Postfix is installed "Local only" (tests/stress/deps.sh postfix), its
main.cf is changed for the run with postconf and put back afterwards, it
is started with `postfix start` and stopped with `postfix stop`. Messages
go in with Postfix's own sendmail; local(8) delivers them to the run's
spool directory with its default mailbox_delivery_lock (fcntl and
dotlock on Debian), or hands them to procmail (mailbox_command) with
procmail's own default LOCKSLEEP (8 s). Recipients are real system users
(local(8) looks them up in /etc/passwd) with the same uids as the cwrap
users pop3d authenticates; they are removed at the end.

Postfix prepends headers (Received by pickup; Return-Path, X-Original-To
and Delivered-To by local(8)), so a delivered message is checked as:
those header lines, then exactly the message that was injected.
"""

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

MAIN_CF = Path("/etc/postfix/main.cf")
FIRST_UID = 2101
# A header field line, or its folded continuation.
HEADER_LINE_RE = re.compile(rb"^([!-9;-~]+:[^\n]*|[ \t][^\n]*)$")
LOG_ID_RE = re.compile(rb"postfix/cleanup\[\d+\]: ([0-9A-F]+): message-id=<([^@>]+)@")
LOG_STATUS_RE = re.compile(
    rb"postfix/(?:local|qmgr)\[\d+\]: ([0-9A-F]+): to=<([^>]*)>.*? delay=([\d.]+), "
    rb"delays=([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+), dsn=[\d.]+, status=(\w+) (.*)$")


def available():
    return shutil.which("postfix") is not None and shutil.which("postqueue") is not None


def postfix_safe(msg):
    """What survives Postfix unchanged: LF line ends (its sendmail turns
    CRLF into LF) and lines well under line_length_limit (2048)."""
    out = []
    for line in msg.replace(b"\r\n", b"\n").split(b"\n"):
        while len(line) > 900:
            out.append(line[:900])
            line = line[900:]
        out.append(line)
    return b"\n".join(out)


def make_users(names):
    """Real users for local(8), uids from FIRST_UID; returns name -> uid."""
    uids = {}
    for i, name in enumerate(names):
        uid = FIRST_UID + i
        subprocess.run(["userdel", name], capture_output=True)
        subprocess.run(["groupdel", name], capture_output=True)
        subprocess.run(["groupadd", "-g", str(uid), name], check=True)
        subprocess.run(["useradd", "-u", str(uid), "-g", str(uid), "-M", "-d", "/nonexistent",
                        "-s", "/usr/sbin/nologin", name], check=True)
        uids[name] = uid
    return uids


def remove_users(names):
    for name in names:
        subprocess.run(["userdel", name], capture_output=True)
        subprocess.run(["groupdel", name], capture_output=True)


class Postfix:
    def __init__(self, workdir, maildir, mda, max_lock_wait):
        self.workdir = Path(workdir)
        self.log = self.workdir / "postfix.log"
        self.saved = self.workdir / "main.cf.orig"
        self.maildir = maildir
        self.mda = mda
        self.max_lock_wait = max_lock_wait
        self.started = False

    def start(self):
        # Never reconfigure a Postfix that is serving this host.
        if subprocess.run(["postfix", "status"], capture_output=True).returncode == 0:
            raise RuntimeError("Postfix is already running on this host; the run would "
                               "reconfigure it: stop it first (postfix stop)")
        shutil.copy2(MAIN_CF, self.saved)
        settings = [
            f"mail_spool_directory={self.maildir}",
            f"maillog_file={self.log}",
            # Postfix writes its log only under these (default /var).
            f"maillog_file_prefixes={self.workdir}",
            "inet_interfaces=loopback-only",
            "mydestination=localhost, $myhostname",
            "alias_maps=", "alias_database=",
            "home_mailbox=",
            # A deferred delivery is retried within seconds, not minutes:
            # the run waits for the queue to empty.
            "queue_run_delay=1s", "minimal_backoff_time=1s", "maximal_backoff_time=2s",
            "mailbox_command=" + (f"/usr/bin/procmail -a \"$EXTENSION\" "
                                  f"DEFAULT={self.maildir}/$USER" if self.mda == "procmail"
                                  else ""),
        ]
        subprocess.run(["postconf", "-e"] + settings, check=True)
        r = subprocess.run(["postfix", "start"], capture_output=True)
        if r.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise RuntimeError("postfix start failed: " + r.stderr.decode(errors="replace")
                               + log[-800:])
        self.started = True
        self.lock_setting = subprocess.run(["postconf", "-h", "mailbox_delivery_lock"],
                                           capture_output=True).stdout.decode().strip()

    def stop(self):
        if self.started:
            subprocess.run(["postfix", "stop"], capture_output=True)
            self.started = False
        if self.saved.exists():
            shutil.copy2(self.saved, MAIN_CF)

    def inject(self, user, msg):
        t0 = time.monotonic()
        r = subprocess.run(["/usr/sbin/sendmail", "-i", "-f", "sender@example.org", "--",
                            f"{user}@localhost"], input=msg, capture_output=True)
        return r.returncode == 0, (time.monotonic() - t0) * 1000

    def queue_empty(self):
        r = subprocess.run(["postqueue", "-p"], capture_output=True)
        return b"Mail queue is empty" in r.stdout

    def wait_empty(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.queue_empty():
                return True
            time.sleep(0.5)
        return False

    def outcomes(self):
        """From Postfix's own log: token -> list of (status, delay, delays
        d, text) for each delivery attempt."""
        text = self.log.read_bytes() if self.log.exists() else b""
        tok_of, out = {}, {}
        for line in text.splitlines():
            m = LOG_ID_RE.search(line)
            if m:
                tok_of[m.group(1)] = m.group(2).decode()
                continue
            m = LOG_STATUS_RE.search(line)
            if m and m.group(1) in tok_of:
                out.setdefault(tok_of[m.group(1)], []).append(
                    (m.group(8).decode(), float(m.group(3)), float(m.group(7)),
                     m.group(9).decode(errors="replace")[:120]))
        return out


def prefixed_match(body, want):
    """A retrieved message (CRLF form) is the injected one (want) with
    only header lines in front of it."""
    if not body.endswith(want):
        return False
    head = body[:len(body) - len(want)]
    if not head:
        return True
    if not head.endswith(b"\r\n"):
        return False
    return all(HEADER_LINE_RE.match(ln) for ln in head[:-2].split(b"\r\n"))


def expected_chunks(data, msgs, split_spool, token_of):
    """token -> the chunk that holds it, for chunks shaped as local(8)
    writes them: From_ line, header lines, the injected message, one blank
    line. Chunks of another shape are left out (the audit reports them as
    damaged)."""
    _, chunks = split_spool(data)
    out = {}
    for c in chunks:
        t = token_of(c)
        if t is None or t not in msgs:
            continue
        msg = msgs[t]
        if not c.endswith(msg + b"\n"):
            continue
        head = c[:len(c) - len(msg) - 1]
        lines = head.split(b"\n")
        if not (lines[0].startswith(b"From ") and lines[-1] == b""
                and all(HEADER_LINE_RE.match(ln) for ln in lines[1:-1])):
            continue
        out[t] = c
    return out


class DotlockWatch:
    """Who holds each spool's dotlock, how often and for how long: polled
    every POLL s. pop3d's liblockfile writes its PID into the lock (a
    process named pop3d); local(8) leaves it empty and procmail writes
    its own. A hold shorter than the poll may be missed; the counts of
    pop3d's holds are checked against its UPDATEs in the figures."""

    POLL = 0.002

    def __init__(self, spools):
        import threading
        self.locks = [f"{p}.lock" for p in spools]
        self.holds = {"pop3d": [], "MDA": []}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _holder(lock):
        try:
            with open(lock, "rb") as f:
                pid = int(f.read(32).split()[0])
            with open(f"/proc/{pid}/comm", "rb") as f:
                return "pop3d" if f.read().strip() == b"pop3d" else "MDA"
        except (OSError, ValueError, IndexError):
            return "MDA"

    def _run(self):
        held = {}
        while not self.stop.is_set():
            now = time.monotonic()
            for lock in self.locks:
                try:
                    st = os.stat(lock)
                    key = (st.st_ino, st.st_ctime_ns)
                except FileNotFoundError:
                    key = None
                cur = held.get(lock)
                if cur is not None and cur[0] != key:
                    self.holds[cur[2]].append(now - cur[1])
                    cur = held[lock] = None
                if key is not None and cur is None:
                    held[lock] = (key, now, self._holder(lock))
            time.sleep(self.POLL)

    def start(self):
        self.thread.start()

    def finish(self):
        self.stop.set()
        self.thread.join(5)
        return self.holds
