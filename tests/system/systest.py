"""pop3d on the real system: the checks behind tests/system/run.sh.

run.sh (as root) has made the throwaway users (among them the pre-auth
process's --preauth-user), their supplementary group, the PAM files, the
empty chroot, the journal directory and a throwaway certificate, and
passes them in P3ST_* variables. This script writes the spools, runs the
binary under systemd-socket-activate on 127.0.0.1 in each socket mode,
plain, with STLS and with implicit TLS, drives real clients against it,
checks the processes of a connection in /proc (the root monitor, the
confined pre-auth process or TLS relay, the session as the user), and
prints one line per check. It stops every server it started (and records
their pids in $P3ST_WORK/pids for run.sh's trap); run.sh removes the
users, files and spools.

Standard library only: runs on Debian's /usr/bin/python3.
"""

import concurrent.futures
import contextlib
import fcntl
import grp
import os
import poplib
import pwd
import random
import re
import signal
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

BINARY = os.environ["P3ST_BINARY"]
WORK = Path(os.environ["P3ST_WORK"])
PAM = os.environ["P3ST_PAM"]
TAG = os.environ["P3ST_TAG"]
MAIN_USER = os.environ["P3ST_MAIN_USER"]
MAIN_PW = os.environ["P3ST_MAIN_PW"]
LOCK_USER = os.environ["P3ST_LOCK_USER"]
LOCK_PW = os.environ["P3ST_LOCK_PW"]
EXP_USER = os.environ["P3ST_EXP_USER"]
EXP_PW = os.environ["P3ST_EXP_PW"]
SYS_USER = os.environ["P3ST_SYS_USER"]
SYS_PW = os.environ["P3ST_SYS_PW"]
EXTRA_GROUP = os.environ["P3ST_EXTRA_GROUP"]
B_USER = os.environ["P3ST_B_USER"]
B_PW = os.environ["P3ST_B_PW"]
RHOST_PAM = os.environ["P3ST_RHOST_PAM"]
PERMIT_PAM = os.environ["P3ST_PERMIT_PAM"]
PREAUTH_USER = os.environ["P3ST_PREAUTH_USER"]
PREAUTH_DIR = os.environ["P3ST_PREAUTH_DIR"]
JOURNAL_DIR = os.environ["P3ST_JOURNAL_DIR"]
TLS_CERT = os.environ["P3ST_TLS_CERT"]
TLS_KEY = os.environ["P3ST_TLS_KEY"]
PASSWORDS = [MAIN_PW, B_PW, LOCK_PW, EXP_PW, SYS_PW]

HOST = "127.0.0.1"
SPOOL_DIR = Path("/var/mail")
MAIL_GID = grp.getgrnam("mail").gr_gid
CLIENT_TIMEOUT = 60
# The three ways systemd (or inetd) hands pop3d its connection.
MODES = {
    "inetd": ["--inetd", "--accept"],  # connection on fd 0/1
    "fd3": ["--accept"],               # connected socket on fd 3
    "listen": [],                      # Accept=no: listening socket on fd 3
}

# --- results ------------------------------------------------------------------

_lock = threading.Lock()
_counts = {"passed": 0, "failed": 0}
# Checks run in a thread pool collect their lines here and print them
# together, so that parallel tests do not interleave their output.
_local = threading.local()


def report(ok, name, detail=""):
    if ok:
        line = f"ok   - {name}"
    else:
        detail = detail.replace("\n", "\\n")
        if len(detail) > 600:
            detail = detail[:600] + "..."
        line = f"FAIL - {name}: {detail}"
    with _lock:
        _counts["passed" if ok else "failed"] += 1
        buf = getattr(_local, "buf", None)
        if buf is None:
            print(line, flush=True)
        else:
            buf.append(line)
    return ok


def buffered(fn):
    """fn run with its report lines kept back; returns them."""
    def run():
        _local.buf = []
        try:
            fn()
        except Exception as e:  # noqa: BLE001
            report(False, "parallel job: no exception",
                   f"{type(e).__name__}: {e} {traceback.format_exc()}")
        finally:
            lines, _local.buf = _local.buf, None
        return lines
    return run


def check(cond, name, detail=""):
    return report(bool(cond), name, detail)


def check_eq(actual, expected, name):
    if actual == expected:
        return report(True, name)
    return report(False, name, f"expected {short(expected)}, got {short(actual)}")


def short(v, n=200):
    r = repr(v)
    return r if len(r) <= n else r[:n] + f"...({len(r)} chars)"


def guarded(name):
    """Run a test function; an exception is one failed check, not the end."""
    def deco(fn):
        def run(*a, **kw):
            try:
                return fn(*a, **kw)
            except Exception as e:  # noqa: BLE001 - every error is a failure
                report(False, f"{name}: no exception",
                       f"{type(e).__name__}: {e} at "
                       + traceback.format_exc().strip().splitlines()[-3].strip())
                return None
        return run
    return deco


# --- messages -----------------------------------------------------------------

def wire(stored):
    """The octets RETR sends (before dot-stuffing) for a stored message:
    bare LF -> CRLF, a missing final line end added."""
    w = re.sub(rb"(?<!\r)\n", b"\r\n", stored)
    if not w.endswith(b"\r\n"):
        w += b"\r\n"
    return w


def lf(stored):
    """What a client that delivers with LF line ends (fetchmail, mpop)
    hands its MDA."""
    return wire(stored).replace(b"\r\n", b"\n")


def header_part(w):
    """TOP n 0: the header and the blank line after it."""
    i = w.find(b"\r\n\r\n")
    return w if i < 0 else w[:i + 4]


def big_body(seed, size):
    rnd = random.Random(seed)
    lines = []
    n = 0
    # A long line at the RFC 5322 limit, then base64-like lines.
    line = bytes(rnd.choice(b"abcdefghijklmnopqrstuvwxyz ") for _ in range(998))
    lines.append(line)
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    while n < size:
        line = bytes(rnd.choice(alphabet) for _ in range(76))
        lines.append(line)
        n += 77
    return b"\n".join(lines) + b"\n"


class Msg:
    def __init__(self, from_line, stored, final_newline=True):
        self.from_line = from_line  # "From sender date" line, no LF
        self.stored = stored        # the message as the MTA stored it
        self.final_newline = final_newline

    @property
    def entry(self):
        """The message's bytes in the spool: From_ line, message, and the
        empty separator line (none after a last message lacking its LF)."""
        if self.final_newline:
            assert self.stored.endswith(b"\n")
            return self.from_line + b"\n" + self.stored + b"\n"
        assert not self.stored.endswith(b"\n")
        return self.from_line + b"\n" + self.stored

    @property
    def wire(self):
        return wire(self.stored)

    @property
    def lf(self):
        return lf(self.stored)


def postfix_headers(n, sender, subject, extra=b""):
    return (
        b"Return-Path: <" + sender + b">\n"
        b"X-Original-To: " + MAIN_USER.encode() + b"@localhost\n"
        b"Delivered-To: " + MAIN_USER.encode() + b"@localhost\n"
        b"Received: from mx.example.org (mx.example.org [192.0.2.25])\n"
        b"\tby mailhost.example.net (Postfix) with ESMTPS id 4Z6h1Q2x3Kz" + str(n).encode() + b"\n"
        b"\tfor <" + MAIN_USER.encode() + b"@localhost>; Mon,  3 Mar 2025 09:14:0" + str(n % 10).encode() + b" +0000 (UTC)\n"
        b"Date: Mon, 3 Mar 2025 10:14:0" + str(n % 10).encode() + b" +0100\n"
        b"From: <" + sender + b">\n"
        b"To: " + MAIN_USER.encode() + b"@localhost\n"
        b"Subject: " + subject + b"\n"
        b"Message-ID: <systest-" + str(n).encode() + b"@example.org>\n"
        + extra +
        b"MIME-Version: 1.0\n")


def messages():
    """M1..M7 of the main spool; M7 is the last one and has no final LF."""
    m = []
    m.append(Msg(b"From alice@example.org  Mon Mar  3 09:14:01 2025",
                 postfix_headers(1, b"alice@example.org", b"plain text")
                 + b"Content-Type: text/plain; charset=us-ascii\n\n"
                 b"Hello,\n\nthis is a plain message.\n\nAlice\n"))
    m.append(Msg(b"From bob@example.net  Mon Mar  3 09:14:02 2025",
                 postfix_headers(2, b"bob@example.net", b"dots and From lines")
                 + b"Content-Type: text/plain; charset=us-ascii\n\n"
                 b".\n..\n.hidden line\n...three dots\n .space dot\n"
                 b">From the quoted line, as the MDA stored it\n"
                 b">>From a twice quoted line\nFrom: a header-like body line\n"
                 b"trailing spaces   \n\ttab first\n.\n\nlast line\n"))
    m.append(Msg(b"From carol@example.com  Mon Mar  3 09:14:03 2025",
                 postfix_headers(3, b"carol@example.com", b"=?utf-8?q?8bit?=",
                                 b"X-UIDL: qpopper.4711-systest\n")
                 + b"Content-Type: text/plain; charset=utf-8\n"
                 b"Content-Transfer-Encoding: 8bit\n\n"
                 + "Grüße aus Köln, ½ € — ✓\n".encode()
                 + bytes(range(0x80, 0x100)) + b"\n"
                 + b"controls: \x01\x07\x0b\x0c\x1b[0m end\n"))
    m.append(Msg(b"From dave@example.org  Mon Mar  3 09:14:04 2025",
                 (postfix_headers(4, b"dave@example.org", b"stored with CRLF")
                  + b"Content-Type: text/plain\n").replace(b"\n", b"\r\n")
                 + b"\r\nline one\r\n.dotted\r\n\r\nline after empty\r\n"))
    m.append(Msg(b"From erin@example.net  Mon Mar  3 09:14:05 2025",
                 postfix_headers(5, b"erin@example.net", b"report attached")
                 + b"Content-Type: text/plain; charset=us-ascii\n\n"
                 + big_body(5, 1_500_000)))
    m.append(Msg(b"From frank@example.com  Mon Mar  3 09:14:06 2025",
                 postfix_headers(6, b"frank@example.com", b"empty body")
                 + b"\n"))
    m.append(Msg(b"From grace@example.org  Mon Mar  3 09:14:07 2025",
                 postfix_headers(7, b"grace@example.org", b"no final newline")
                 + b"\nthe last line of the spool has no line end",
                 final_newline=False))
    return m


def new_message(n):
    """A message delivered while clients keep mail on the server."""
    return Msg(b"From late@example.org  Tue Mar  4 10:00:0" + str(n % 10).encode() + b" 2025",
               postfix_headers(100 + n, b"late@example.org",
                               b"delivered later " + str(n).encode())
               + b"Content-Type: text/plain\n\nnew mail number "
               + str(n).encode() + b"\n.\n")


MSGS = messages()
KEEP_MSGS = MSGS[:6]  # spool for leave-on-server runs: ends with a separator


# --- spools -------------------------------------------------------------------

def spool_path(user):
    return SPOOL_DIR / user


def write_spool(user, data):
    """As a Debian MTA leaves it: owned user:mail, mode 0660."""
    pw = pwd.getpwnam(user)
    path = spool_path(user)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o660)
    try:
        os.fchown(fd, pw.pw_uid, MAIL_GID)
        os.fchmod(fd, 0o660)
        os.write(fd, data)
    finally:
        os.close(fd)
    return path


def read_spool(user):
    return spool_path(user).read_bytes()


def spool_of(msgs):
    return b"".join(m.entry for m in msgs)


def mta_append(user, msg):
    """Append like an MTA: dotlock <spool>.lock, then an fcntl write lock on
    the whole file (as Postfix local and liblockfile do)."""
    path = spool_path(user)
    lock = Path(str(path) + ".lock")
    deadline = time.monotonic() + 20
    while True:
        try:
            lfd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.close(lfd)
            break
        except FileExistsError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX)
            os.write(fd, msg.entry)
            fcntl.lockf(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
    finally:
        lock.unlink()


def spool_identity(user):
    st = os.lstat(spool_path(user))
    return (st.st_ino, st.st_uid, st.st_gid, st.st_mode & 0o7777, st.st_nlink)


# --- /proc --------------------------------------------------------------------

def tcp_table():
    """(local_port, remote_port, state, inode) of every IPv4 TCP socket."""
    rows = []
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            p = line.split()
            lport = int(p[1].split(":")[1], 16)
            rport = int(p[2].split(":")[1], 16)
            rows.append((p[1], p[2], lport, rport, p[3], int(p[9])))
    return rows


def listening(port):
    return any(r[2] == port and r[4] == "0A" for r in tcp_table())


def socket_holders(inode):
    want = f"socket:[{inode}]"
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            for fd in os.listdir(f"/proc/{d}/fd"):
                try:
                    if os.readlink(f"/proc/{d}/fd/{fd}") == want:
                        pids.append(int(d))
                        break
                except OSError:
                    pass
        except OSError:
            pass
    return pids


def server_side_inode(server_port, client_port):
    """The inode of the server's end of our connection."""
    for _l, _r, lport, rport, state, inode in tcp_table():
        if lport == server_port and rport == client_port and state == "01":
            return inode
    return None


def proc_status(pid):
    st = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            st[k] = v.strip()
    return st


SUID_DUMPABLE = Path("/proc/sys/fs/suid_dumpable")


@contextlib.contextmanager
def suid_dumpable_one():
    """fs.suid_dumpable at 1 while a connection logs in, put back after.
    The kernel resets a process's dumpable flag to that sysctl at every
    change of uid or gid, so each of pop3d's processes must set it to 0
    again after its drop (sys_undumpable; at 1 they were all left
    dumpable, so traceable by each other, until round 12 of issue 13).
    Yields whether the sysctl could be set."""
    try:
        old = SUID_DUMPABLE.read_text()
        SUID_DUMPABLE.write_text("1\n")
    except OSError:
        yield False
        return
    try:
        yield True
    finally:
        SUID_DUMPABLE.write_text(old)


def check_undumpable(pid, name):
    """A process that is not dumpable has the files in its /proc directory
    owned by root (proc(5); the directory itself keeps the process's
    uid): no ptrace, /proc/PID/mem or core file for its own uid."""
    uid = os.stat(f"/proc/{pid}/environ").st_uid
    check(uid == 0, f"{name}: not dumpable (its /proc entries are root's)", f"owner uid {uid}")


def comm_of(pid):
    return Path(f"/proc/{pid}/comm").read_text().strip()


def wait_children(srv, n, timeout=5):
    """Wait until the listener has n children left; return them."""
    deadline = time.monotonic() + timeout
    while True:
        kids = children_of(srv.proc.pid)
        if len(kids) <= n or time.monotonic() > deadline:
            return kids
        time.sleep(0.05)


def children_of(pid):
    kids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                st = proc_status(int(d))
            except OSError:
                continue
            if st.get("PPid") == str(pid):
                kids.append((int(d), st.get("State", "")))
    return kids


def fd_targets(pid):
    out = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            pass
    return out


# --- servers ------------------------------------------------------------------

def _help_text():
    r = subprocess.run([BINARY, "--help"], capture_output=True, timeout=10,
                       stdin=subprocess.DEVNULL)
    return r.stdout.decode(errors="replace")


# The throwaway pre-auth user and chroot run.sh made, and the journal
# directory (--journal-dir: only where the binary has the option).
HAS_JOURNAL = "--journal-dir=" in _help_text()
PRIVSEP_ARGS = [f"--preauth-user={PREAUTH_USER}", f"--preauth-dir={PREAUTH_DIR}"]
if HAS_JOURNAL:
    PRIVSEP_ARGS.append(f"--journal-dir={JOURNAL_DIR}")
TLS_ARGS = [f"--tls-cert={TLS_CERT}", f"--tls-key={TLS_KEY}"]


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Server:
    """BINARY under systemd-socket-activate on 127.0.0.1, in one mode."""

    all = []

    def __init__(self, name, mode, extra=(), pam=PAM, tls=None):
        """tls: None, "stls" (a certificate: STLS offered) or "implicit"."""
        self.name = name
        self.mode = mode
        self.tls = tls
        if tls:
            extra = [*TLS_ARGS, *(["--tls-implicit"] if tls == "implicit" else []), *extra]
        self.port = free_port()
        self.log_path = WORK / f"{name}.log"
        self.out_path = WORK / f"{name}.stdout"
        self.args = [BINARY, "--log=stderr", f"--pam-service={pam}",
                     *PRIVSEP_ARGS, *extra]
        cmd = ["systemd-socket-activate", f"--listen={HOST}:{self.port}",
               *MODES[mode], *self.args]
        with open(self.log_path, "wb") as log, open(self.out_path, "wb") as out:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=log,
                                         start_new_session=True, cwd="/")
        with open(WORK / "pids", "a") as f:
            f.write(f"{self.proc.pid}\n")
        Server.all.append(self)
        deadline = time.monotonic() + 10
        while not listening(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name}: not listening on {self.port}: "
                                   + self.log_path.read_text(errors="replace"))
            time.sleep(0.02)
        if mode == "listen":
            # Connections queue in the backlog meanwhile, but the readiness
            # line is worth waiting for.
            self.wait_log(rb"accepting connections", 0, 10)

    def log(self):
        return self.log_path.read_bytes()

    def mark(self):
        return len(self.log())

    def since(self, mark):
        return self.log()[mark:]

    def wait_log(self, pattern, mark=0, timeout=5.0):
        """Wait until the log (from mark on) has a line matching pattern."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern, re.M)
        while True:
            text = self.since(mark)
            if rx.search(text):
                return text
            if time.monotonic() > deadline:
                return text
            time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        # Sessions still in the group (there should be none).
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return self.proc.returncode


# --- a raw POP3 client --------------------------------------------------------

def tls_context():
    """A client context that takes the throwaway certificate."""
    return ssl._create_unverified_context()  # noqa: S323 - a test certificate


class Conn:
    """tls: None, "stls" (STLS after the greeting; the greeting kept is
    the first one) or "implicit" (TLS from the first octet)."""

    def __init__(self, port, timeout=20, greet=True, tls=None):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.cport = self.sock.getsockname()[1]
        self.buf = b""
        if tls == "implicit":
            self.sock = tls_context().wrap_socket(self.sock, server_hostname="localhost")
        self.greeting = self.line() if greet or tls == "stls" else None
        if tls == "stls":
            r = self.cmd("STLS")
            if not (r or b"").startswith(b"+OK"):
                raise RuntimeError(f"STLS answered {r!r}")
            self.sock = tls_context().wrap_socket(self.sock, server_hostname="localhost")

    def line(self):
        while b"\r\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                rest, self.buf = self.buf, b""
                return rest if rest else None
            self.buf += d
        ln, self.buf = self.buf.split(b"\r\n", 1)
        return ln

    def cmd(self, text):
        self.sock.sendall(text.encode() + b"\r\n")
        return self.line()

    def eof(self, timeout=5):
        self.sock.settimeout(timeout)
        try:
            return self.buf == b"" and self.sock.recv(1) == b""
        except (socket.timeout, ConnectionResetError):
            return False
        except ssl.SSLEOFError:
            # A TLS connection closed without close_notify still ends.
            return self.buf == b""

    def close(self):
        self.sock.close()


def run(cmd, env=None, timeout=CLIENT_TIMEOUT, **kw):
    return subprocess.run(cmd, env=env, capture_output=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, **kw)


def login_line(user, tls=False, method="USER"):
    return (f"<6>login: user={user} peer=127.0.0.1 method={method} "
            f"tls={'yes' if tls else 'no'}").encode()


def failed_line(user, tls=False):
    return (f"<5>login failed: user={user} peer=127.0.0.1 method=USER "
            f"tls={'yes' if tls else 'no'}").encode()


def has_line(text, line):
    return line in text.split(b"\n")


# --- the processes of a connection ------------------------------------------------

def proc_stat(pid):
    """(state, ppid, pgrp) from /proc/PID/stat."""
    data = Path(f"/proc/{pid}/stat").read_text()
    rest = data[data.rindex(")") + 2:].split()
    return rest[0], int(rest[1]), int(rest[2])


def group_procs(srv):
    """{pid: (state, ppid)} of the processes in srv's process group but the
    one systest.py started (systemd-socket-activate, or the Accept=no
    listener itself): with one connection open, that connection's."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == srv.proc.pid:
            continue
        try:
            state, ppid, pgrp = proc_stat(int(d))
        except (OSError, ValueError):
            continue
        if pgrp == srv.proc.pid:
            out[int(d)] = (state, ppid)
    return out


def live(procs):
    """Without zombies (exited, not yet reaped)."""
    return {p: v for p, v in procs.items() if v[0] != "Z"}


def settle(fn, ok, timeout=3.0):
    """fn() until ok(its result) or the timeout; the last result. For
    states a process reaches a moment after the client saw the reply."""
    deadline = time.monotonic() + timeout
    while True:
        r = fn()
        if ok(r) or time.monotonic() > deadline:
            return r
        time.sleep(0.02)


def socket_fds(pid):
    """{fd: inode} of pid's sockets."""
    return {fd: int(t[8:-1]) for fd, t in fd_targets(pid).items()
            if t.startswith("socket:[")}


def tcp_inodes():
    out = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                out.update(int(line.split()[9]) for line in f)
        except FileNotFoundError:
            pass
    return out


def unix_types():
    """{inode: type} of every Unix socket (1 stream, 5 seqpacket)."""
    out = {}
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            p = line.split()
            out[int(p[6])] = int(p[4], 16)
    return out


def unix_peers():
    """{inode: the peer's inode} of every Unix socket, from ss -x (the
    kernel shows the peer through sock_diag only)."""
    r = run(["ss", "-xaH"], timeout=10)
    peers = {}
    for ln in r.stdout.decode(errors="replace").splitlines():
        p = ln.split()
        if len(p) >= 6 and p[-3].isdigit() and p[-1].isdigit():
            peers[int(p[-3])] = int(p[-1])
    return peers


def ids(st, key):
    return st[key].split()


def check_no_caps(st, name):
    # CapBnd may stay: with no uid 0 and no_new_privs it grants nothing.
    for cap in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
        check_eq(int(st[cap], 16), 0, f"{name}: {cap} is empty")


@guarded("proc-confined")
def check_confined(pid, name):
    """The pre-auth process (and, under TLS, the relay it becomes): the
    --preauth-user, no capabilities, no_new_privs, in the empty chroot."""
    pw = pwd.getpwnam(PREAUTH_USER)
    st = proc_status(pid)
    check_eq(ids(st, "Uid"), [str(pw.pw_uid)] * 4,
             f"{name}: Uid real/effective/saved/fs are the --preauth-user's")
    check_eq(ids(st, "Gid"), [str(pw.pw_gid)] * 4,
             f"{name}: Gid real/effective/saved/fs are the --preauth-user's")
    check(ids(st, "Groups") in ([], [str(pw.pw_gid)]),
          f"{name}: Groups empty or only its own group", f"Groups: {st['Groups']!r}")
    check_no_caps(st, name)
    check_eq(st.get("NoNewPrivs"), "1", f"{name}: NoNewPrivs is set")
    check_eq(os.readlink(f"/proc/{pid}/root"), PREAUTH_DIR,
             f"{name}: its root is the --preauth-dir chroot")
    check_eq(os.readlink(f"/proc/{pid}/cwd"), PREAUTH_DIR,
             f"{name}: its working directory is the chroot's /")
    dirs = {}
    for fd, t in fd_targets(pid).items():
        try:
            if stat.S_ISDIR(os.stat(f"/proc/{pid}/fd/{fd}").st_mode):
                dirs[fd] = t
        except OSError:
            pass
    check(not dirs, f"{name}: holds no directory descriptor (no way out of the chroot)",
          f"{dirs}")
    check_eq(os.readlink(f"/proc/{pid}/exe"), BINARY, f"{name}: runs the binary under test")
    check_undumpable(pid, name)


@guarded("proc-user")
def check_user_process(pid, user, name):
    """A session: all uids and gids the user's, the user's groups, no
    capabilities."""
    pw = pwd.getpwnam(user)
    st = proc_status(pid)
    check_eq(ids(st, "Uid"), [str(pw.pw_uid)] * 4,
             f"{name}: Uid real/effective/saved/fs are the user's")
    check_eq(ids(st, "Gid"), [str(pw.pw_gid)] * 4,
             f"{name}: Gid real/effective/saved/fs are the user's")
    want_groups = sorted(set(os.getgrouplist(user, pw.pw_gid)))
    got_groups = sorted({int(g) for g in ids(st, "Groups")})
    check_eq(got_groups, want_groups, f"{name}: Groups are exactly the user's (getgrouplist)")
    extra_gid = grp.getgrnam(EXTRA_GROUP).gr_gid
    check(extra_gid in got_groups and 0 not in got_groups and MAIL_GID not in got_groups,
          f"{name}: Groups hold the extra group {EXTRA_GROUP}, not root's or mail",
          f"Groups: {st['Groups']}")
    check_no_caps(st, name)
    check_eq(os.readlink(f"/proc/{pid}/exe"), BINARY, f"{name}: runs the binary under test")
    check_undumpable(pid, name)
    # What ps -C, pgrep -x, top and journald's _COMM show.
    check_eq(comm_of(pid), os.path.basename(BINARY),
             f"{name}: process name (comm) is the binary's name")


def check_no_root(procs, name):
    root = {p: (proc_status(p)["Uid"], proc_status(p)["Gid"]) for p in procs
            if "0" in ids(proc_status(p), "Uid") or "0" in ids(proc_status(p), "Gid")}
    check(procs and not root,
          f"{name}: no process of the connection has uid or gid 0 in any field",
          f"root processes {root} of {sorted(procs)}")


@guarded("proc-prelogin")
def check_prelogin(srv, client_port, label):
    """After the greeting, before USER: the pre-auth process alone holds the
    connection, confined; its parent, the monitor, is root and has the
    client's descriptors pointed at /dev/null."""
    pfx = f"{label}: before login"
    inode = server_side_inode(srv.port, client_port)
    if not check(inode, f"{pfx}: server end of the connection found in /proc/net/tcp"):
        return
    # The monitor drops its copy right after the fork, maybe just after
    # the pre-auth process answered CAPA (the callers' sync point: the
    # greeting is the monitor's, design.md §2).
    holders = settle(lambda: socket_holders(inode), lambda h: len(h) == 1)
    check(len(holders) == 1, f"{pfx}: exactly one process holds the connection",
          f"holders {holders}")
    if not holders:
        return
    pre = holders[0]
    _state, mon, _pgrp = proc_stat(pre)
    check_confined(pre, f"{pfx}: pre-auth process")
    mst = proc_status(mon)
    name = f"{pfx}: monitor"
    check_eq(ids(mst, "Uid"), ["0"] * 4, f"{name} (the pre-auth process's parent) is root")
    check_eq(int(mst["PPid"]), srv.proc.pid, f"{name} is a child of the server")
    fds = fd_targets(mon)
    msocks = socket_fds(mon)
    tcp = tcp_inodes()
    check(not [i for i in msocks.values() if i in tcp],
          f"{name}: holds no TCP socket (not the client's, not the listener)", f"fds {fds}")
    null_fds = (0, 1) if srv.mode in ("inetd", "listen") else (3,)
    check(all(fds.get(fd) == "/dev/null" for fd in null_fds),
          f"{name}: its client descriptors {'/'.join(map(str, null_fds))} point to /dev/null",
          f"fds {fds}")
    peers = unix_peers()
    pre_socks = set(socket_fds(pre).values())
    check(msocks and all(peers.get(i) in pre_socks for i in msocks.values()),
          f"{name}: its only socket leads to the pre-auth process",
          f"monitor sockets {msocks} peers {[peers.get(i) for i in msocks.values()]} "
          f"pre-auth sockets {pre_socks}")
    other = pre_socks - {inode} - {peers.get(i) for i in msocks.values()}
    check(not other, f"{pfx}: pre-auth process: holds no socket but the connection "
          "and its one to the monitor (no listener)", f"fds {fd_targets(pre)}")
    procs = live(group_procs(srv))
    check_eq(sorted(procs), sorted([mon, pre]),
             f"{pfx}: the connection has two processes, monitor and pre-auth")
    check_eq(sorted(p for p in procs if ids(proc_status(p), "Uid") != ["0"] * 4), [pre],
             f"{pfx}: only the monitor runs as root")


@guarded("proc")
def check_session_process(srv, client_port, user, label):
    """After PASS without TLS: the monitor has become the session and holds
    the connection, alone (the pre-auth process handed it over and
    exited): the user's ids, no capabilities, and no other socket (in
    particular not the listening one) but the socketpair to its dotlock
    keeper (the user cannot write /var/mail)."""
    pfx = f"{label}: session process"
    inode = server_side_inode(srv.port, client_port)
    if not check(inode, f"{pfx}: server end of the connection found in /proc/net/tcp"):
        return
    procs = settle(lambda: live(group_procs(srv)), lambda p: len(p) == 2)
    holders = socket_holders(inode)
    comms = {p: comm_of(p) for p in holders}
    check(len(holders) == 1, f"{pfx}: exactly one process holds the connection",
          f"holders {comms}")
    if not holders:
        return
    pid = holders[0]
    keepers = [p for p, v in procs.items() if v[1] == pid]
    check_eq(sorted(procs), sorted([pid] + keepers[:1]),
             f"{pfx}: the session and its dotlock keeper are the connection's only processes "
             "(the pre-auth process has exited)")
    check_no_root(procs, pfx)
    name = f"{pfx} {pid} ({comms[pid]})"
    check_user_process(pid, user, name)
    kept = check_keeper(keepers[0], pid, user, f"{label}: dotlock keeper") if keepers else set()
    st = proc_status(pid)
    # Other sockets: the session must not hold the listener (Accept=no)
    # or anything else but its own connection and the keeper's socketpair.
    listeners = {r[5] for r in tcp_table() if r[4] == "0A"}
    socks = socket_fds(pid)
    peers = unix_peers()
    bad = {fd: i for fd, i in socks.items() if i != inode and peers.get(i) not in kept}
    held_listeners = {fd: i for fd, i in socks.items() if i in listeners}
    check(not held_listeners, f"{name}: holds no listening socket",
          f"listening socket fds {held_listeners}")
    check(not bad, f"{name}: holds no socket but its connection and the keeper's socketpair",
          f"fds {fd_targets(pid)}")
    check_eq(int(st["PPid"]), srv.proc.pid,
             f"{name}: a child of the server (it was the monitor)")


@guarded("proc-keeper")
def check_keeper(pid, sess, user, name):
    """The dotlock keeper (keeper.c, design.md §4.2): a child of the
    session with the user's uid and group mail alone (what the setgid
    dotlockfile has), no capabilities, no_new_privs, and no descriptor
    but its end of a SOCK_SEQPACKET pair whose other end the session
    holds (0-2 aside): it can make and remove the user's dotlock and
    reach nothing else. Returns the inodes of its sockets."""
    pw = pwd.getpwnam(user)
    st = proc_status(pid)
    check_eq(int(st["PPid"]), sess, f"{name}: a child of the session")
    check_eq(ids(st, "Uid"), [str(pw.pw_uid)] * 4,
             f"{name}: Uid real/effective/saved/fs are the user's")
    check_eq(ids(st, "Gid"), [str(MAIL_GID)] * 4,
             f"{name}: Gid real/effective/saved/fs are group mail's")
    check_eq(ids(st, "Groups"), [str(MAIL_GID)], f"{name}: Groups: mail alone")
    check_no_caps(st, name)
    check_eq(st.get("NoNewPrivs"), "1", f"{name}: NoNewPrivs is set")
    check_eq(os.readlink(f"/proc/{pid}/exe"), BINARY, f"{name}: runs the binary under test")
    socks = socket_fds(pid)
    utypes, peers = unix_types(), unix_peers()
    sess_socks = set(socket_fds(sess).values())
    check(len(socks) == 1 and all(utypes.get(i) == 5 and peers.get(i) in sess_socks
                                  for i in socks.values()),
          f"{name}: holds one socket, a seqpacket whose other end is the session's",
          f"sockets {socks} types {[utypes.get(i) for i in socks.values()]}")
    extra = {fd: t for fd, t in fd_targets(pid).items() if int(fd) > 2 and fd not in socks}
    check(not extra, f"{name}: holds no descriptor but that socket above 0-2", f"{extra}")
    return set(socks.values())


def memory_holds(pid, secret):
    """Read every readable mapping of pid through /proc/PID/mem (as root,
    what a core dump would hold) and say whether secret occurs."""
    return bool(memory_finds(pid, {"secret": secret}))


def memory_finds(pid, secrets):
    """The names in secrets ({name: octets}) whose octets occur anywhere
    in pid's readable memory."""
    found = set()
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            addr, perms = line.split()[:2]
            if "r" not in perms or line.rstrip().endswith("[vvar]"):
                continue
            lo, hi = (int(x, 16) for x in addr.split("-"))
            try:
                mem.seek(lo)
                data = mem.read(hi - lo)
            except (OSError, ValueError, OverflowError):
                continue
            found |= {name for name, s in secrets.items() if s in data}
    return found


def key_secrets(key_file):
    """What of the TLS private key must not outlive its use: 32-octet
    chunks from the middle of the private exponent and of each prime, in
    big-endian (DER) and little-endian (a BIGNUM's limbs on x86-64)
    order; the modulus little-endian (a live RSA key or its Montgomery
    context: big-endian it is also in the public certificate); and a
    line of the PEM file (the file's read buffer)."""
    text = subprocess.run(["openssl", "pkey", "-in", key_file, "-noout", "-text"],
                          check=True, capture_output=True, text=True).stdout
    fields, name = {}, None
    for line in text.splitlines():
        m = re.match(r"^(\w+):\s*$", line)
        if m:
            name = m.group(1)
            fields[name] = ""
        elif name and re.match(r"^\s+[0-9a-f:]+$", line):
            fields[name] += line.strip()
        else:
            name = None
    out = {}
    for f in ("privateExponent", "prime1", "prime2", "modulus"):
        b = bytes.fromhex(fields[f].replace(":", "")).lstrip(b"\0")
        mid = b[len(b) // 2 - 16:len(b) // 2 + 16]
        if f != "modulus":
            out[f"{f} (big-endian)"] = mid
        out[f"{f} (little-endian)"] = b[::-1][len(b) // 2 - 16:len(b) // 2 + 16]
    pem = [ln for ln in Path(key_file).read_text().splitlines() if not ln.startswith("-")]
    out["a line of the key's PEM file"] = pem[len(pem) // 2].encode()
    return out


@guarded("tls-memory")
def check_tls_secrets_in_memory(srv, client_port, pw, label):
    """Issue 14 point 4: after a login under TLS, no process of the
    connection (the relay, the session) holds the password or anything
    of the TLS private key: the monitor freed the context right after
    forking the pre-auth process, before the drop to the user, and the
    relay dropped the key after the handshake."""
    inode = server_side_inode(srv.port, client_port)
    holders = socket_holders(inode) if inode else []
    if not check(len(holders) == 1, f"{label}: relay found for the memory scan"):
        return
    relay = holders[0]
    sess = proc_stat(relay)[1]
    key = key_secrets(TLS_KEY)
    secrets = {"the password": pw.encode(), **key}
    for pid, who in ((relay, "relay"), (sess, "session")):
        found = memory_finds(pid, secrets)
        check("the password" not in found,
              f"{label}: the password is nowhere in the {who}'s memory (/proc/PID/mem)")
        # The relay keeps the certificate's public key: the modulus.
        private = {k for k in key if who == "session" or not k.startswith("modulus")}
        check(not (found & private),
              f"{label}: nothing of the TLS private key in the {who}'s memory",
              f"found {sorted(found & private)}")


def check_no_password_in_memory(srv, client_port, pw, label):
    """Issue 7: the logged-in session process holds no copy of the
    password anywhere in its memory (PAM's, the read buffer, the
    record from the pre-auth process: all wiped)."""
    inode = server_side_inode(srv.port, client_port)
    holders = socket_holders(inode) if inode else []
    if not check(len(holders) == 1, f"{label}: session process found for the memory scan"):
        return
    secret = pw.encode() if isinstance(pw, str) else pw
    check(not memory_holds(holders[0], secret),
          f"{label}: the password is nowhere in the session's memory (/proc/PID/mem)")


@guarded("proc-tls")
def check_tls_session(srv, client_port, user, label):
    """After login under TLS: the relay (the pre-auth process, confined)
    holds the TCP connection and one end of a Unix socketpair; the session
    (the monitor, now the user) holds the other end and, besides, only the
    socketpair to its dotlock keeper; no process of the connection is
    root."""
    pfx = f"{label}: logged in"
    inode = server_side_inode(srv.port, client_port)
    if not check(inode, f"{pfx}: server end of the connection found in /proc/net/tcp"):
        return
    holders = socket_holders(inode)
    check(len(holders) == 1, f"{pfx}: exactly one process holds the TCP connection (the relay)",
          f"holders {holders}")
    if not holders:
        return
    relay = holders[0]
    sess = proc_stat(relay)[1]
    check_confined(relay, f"{pfx}: relay")
    check_user_process(sess, user, f"{pfx}: session (the relay's parent)")
    check_eq(proc_stat(sess)[1], srv.proc.pid,
             f"{pfx}: session: a child of the server (it was the monitor)")
    procs = settle(lambda: live(group_procs(srv)), lambda p: len(p) == 3)
    keepers = [p for p, v in procs.items() if v[1] == sess and p != relay]
    kept = check_keeper(keepers[0], sess, user, f"{pfx}: dotlock keeper") if keepers else set()
    tcp, utypes, peers = tcp_inodes(), unix_types(), unix_peers()
    rsocks = socket_fds(relay)
    ssocks = {fd: i for fd, i in socket_fds(sess).items() if peers.get(i) not in kept}
    check(ssocks and all(utypes.get(i) == 1 for i in ssocks.values()),
          f"{pfx}: session: holds only a Unix stream socket besides the keeper's "
          "(no TCP socket, no listener)",
          f"fds {fd_targets(sess)} tcp {[i for i in ssocks.values() if i in tcp]}")
    check(ssocks and all(peers.get(i) in set(rsocks.values()) for i in ssocks.values()),
          f"{pfx}: session: the other end of its socket is the relay's",
          f"session {ssocks} peers {[peers.get(i) for i in ssocks.values()]} relay {rsocks}")
    other = set(rsocks.values()) - {inode} - {peers.get(i) for i in ssocks.values()}
    check(not other, f"{pfx}: relay: holds no socket but the connection and the socketpair",
          f"fds {fd_targets(relay)}")
    check_eq(sorted(procs), sorted([relay, sess] + keepers[:1]),
             f"{pfx}: the connection has three processes, session, relay and dotlock keeper")
    check_no_root(procs, pfx)


@guarded("journal")
def check_journal_dir(user, label):
    """--journal-dir: the monitor made <dir>/<uid> for the user, 0700."""
    pw = pwd.getpwnam(user)
    top = os.lstat(JOURNAL_DIR)
    check((top.st_uid, stat.S_IMODE(top.st_mode)) == (0, 0o711),
          f"{label}: --journal-dir stays root's, mode 0711",
          f"uid {top.st_uid} mode {stat.S_IMODE(top.st_mode):o}")
    try:
        st = os.lstat(os.path.join(JOURNAL_DIR, str(pw.pw_uid)))
        got = (stat.S_ISDIR(st.st_mode), st.st_uid, stat.S_IMODE(st.st_mode))
    except FileNotFoundError:
        got = None
    check_eq(got, (True, pw.pw_uid, 0o700),
             f"{label}: --journal-dir/<uid> is the user's directory, mode 0700")


# --- curl -----------------------------------------------------------------------

@guarded("curl")
def test_curl(srv):
    label = f"{srv.mode}: curl"
    user, pw = MAIN_USER, MAIN_PW
    write_spool(user, spool_of(MSGS))
    ident = spool_identity(user)
    url = f"pop3://{HOST}:{srv.port}/"
    auth = ["-u", f"{user}:{pw}"]
    base = ["curl", "-sS", "--max-time", "30"]

    r = run(base + auth + [url])
    want = b"".join(b"%d %d\r\n" % (i, len(m.wire)) for i, m in enumerate(MSGS, 1))
    check(r.returncode == 0 and r.stdout == want,
          f"{label}: LIST gives every message's CRLF size",
          f"rc {r.returncode} {r.stderr!r} out {short(r.stdout)} want {short(want)}")

    r = run(base + auth + ["--request", "UIDL", url])
    uidls = parse_uidl_lines(r.stdout)
    UIDLS_BY_MODE[srv.mode] = uidls
    check(r.returncode == 0 and check_uidls(uidls, MSGS),
          f"{label}: UIDL lists a valid unique id per message",
          f"rc {r.returncode} {r.stderr!r} out {short(r.stdout)}")

    outdir = WORK / f"curl-{srv.mode}"
    outdir.mkdir()
    r = run(base + auth + [f"pop3://{HOST}:{srv.port}/[1-{len(MSGS)}]",
                           "-o", str(outdir / "m#1")])
    check(r.returncode == 0, f"{label}: RETR 1..{len(MSGS)} in one run",
          f"rc {r.returncode} {r.stderr!r}")
    for i, m in enumerate(MSGS, 1):
        f = outdir / f"m{i}"
        got = f.read_bytes() if f.exists() else None
        check(got == m.wire, f"{label}: message {i} byte for byte ({len(m.wire)} octets)",
              f"got {short(got)} want {short(m.wire)}")

    r = run(base + auth + ["--request", "TOP 2 0", url])
    check(r.returncode == 0 and r.stdout == header_part(MSGS[1].wire),
          f"{label}: TOP 2 0 is the header and the blank line",
          f"rc {r.returncode} {r.stderr!r} out {short(r.stdout)}")

    check_eq(read_spool(user), spool_of(MSGS), f"{label}: retrieval leaves the spool as it was")

    mark = srv.mark()
    r = run(base + auth + ["-X", "DELE 1", "-I", url])
    check(r.returncode == 0, f"{label}: -X 'DELE 1'", f"rc {r.returncode} {r.stderr!r}")
    check_eq(read_spool(user), spool_of(MSGS[1:]),
             f"{label}: after DELE 1 and QUIT the spool is exactly messages 2..{len(MSGS)}")
    check_eq(spool_identity(user), ident,
             f"{label}: spool inode, owner user:mail, mode 0660 and link count kept")
    total = sum(len(m.wire) for m in MSGS)
    want_logout = (f"<6>logout: user={user} reason=QUIT retrieved=0/0 "
                   f"deleted=1/{len(MSGS[0].wire)} left={len(MSGS) - 1}/"
                   f"{total - len(MSGS[0].wire)}").encode()
    # The session logs its logout after curl has its QUIT reply, so the
    # previous run's logout line may come after the mark too: wait for
    # this one's.
    log = srv.wait_log(rb"^<6>logout: .* deleted=1/", mark)
    check(has_line(log, want_logout), f"{label}: logout line counts the deletion",
          f"log {short(log, 600)}")

    r = run(base + auth + ["--request", "UIDL", url])
    after = parse_uidl_lines(r.stdout)
    check_eq([u for _i, u in after], [u for _i, u in uidls[1:]],
             f"{label}: the other messages keep their UIDLs after a deletion")


UIDLS_BY_MODE = {}


def parse_uidl_lines(text):
    out = []
    for ln in text.split(b"\r\n"):
        if ln:
            i, _, u = ln.partition(b" ")
            out.append((int(i), u))
    return out


def check_uidls(uidls, msgs):
    if [i for i, _ in uidls] != list(range(1, len(msgs) + 1)):
        return False
    ids = [u for _i, u in uidls]
    if len(set(ids)) != len(ids):
        return False
    for m, u in zip(msgs, ids):
        x = re.search(rb"^X-UIDL: (\S+)$", m.stored.split(b"\n\n")[0], re.M)
        if x:
            if u != x.group(1):
                return False
        elif not re.fullmatch(rb"[0-9a-f]{32}", u):
            return False
    return True


# --- poplib ---------------------------------------------------------------------

poplib._MAXLINE = 1 << 20  # our messages have lines up to 998 octets anyway


def pop(srv):
    return poplib.POP3(HOST, srv.port, timeout=30)


def poplib_join(lines):
    return b"".join(ln + b"\r\n" for ln in lines)


@guarded("poplib")
def test_poplib(srv):
    label = f"{srv.mode}: poplib"
    user, pw = MAIN_USER, MAIN_PW
    write_spool(user, spool_of(MSGS))
    ident = spool_identity(user)
    sizes = [len(m.wire) for m in MSGS]
    total = sum(sizes)
    mark = srv.mark()

    # The pre-auth process and the session both change uid under it.
    with suid_dumpable_one() as raised:
        check(raised, f"{label}: fs.suid_dumpable set to 1 for this connection")
        p = pop(srv)
        check_eq(p.getwelcome(), b"+OK pop3d ready", f"{label}: greeting")
        caps = p.capa()
        check(all(c in caps for c in ("USER", "UIDL", "TOP", "RESP-CODES",
                                      "AUTH-RESP-CODE", "PIPELINING")),
              f"{label}: CAPA lists USER UIDL TOP RESP-CODES AUTH-RESP-CODE PIPELINING",
              f"{caps}")
        # A loopback peer may send cleartext passwords; no certificate, no STLS.
        check(caps.get("SASL") == ["PLAIN", "LOGIN"] and "STLS" not in caps,
              f"{label}: CAPA lists SASL PLAIN LOGIN (local peer) and no STLS (no certificate)",
              f"{caps}")
        check_prelogin(srv, p.sock.getsockname()[1], label)
        check_eq(p.user(user), b"+OK send PASS", f"{label}: USER")
        check_eq(p.pass_(pw), b"+OK maildrop has %d messages (%d octets)" % (len(MSGS), total),
                 f"{label}: PASS with the real password")

        check_session_process(srv, p.sock.getsockname()[1], user, label)
        check_no_password_in_memory(srv, p.sock.getsockname()[1], pw, label)
    if HAS_JOURNAL:
        check_journal_dir(user, label)

    # A second session for the same maildrop is refused while this one lives.
    q = pop(srv)
    q.user(user)
    try:
        resp = q.pass_(pw)
    except poplib.error_proto as e:
        resp = e.args[0]
    check_eq(resp, b"-ERR [IN-USE] maildrop is locked by another session",
             f"{label}: a second session gets [IN-USE]")
    try:
        closed = q.sock.recv(1) == b""
    except OSError:
        closed = True
    check(closed, f"{label}: ... and its connection is closed")
    q.sock.close()

    check_eq(p.stat(), (len(MSGS), total), f"{label}: STAT")
    resp, lst, _ = p.list()
    check_eq(lst, [b"%d %d" % (i, s) for i, s in enumerate(sizes, 1)], f"{label}: LIST")
    resp, ul, _ = p.uidl()
    uidls = [(int(x.split()[0]), x.split()[1]) for x in ul]
    check(check_uidls(uidls, MSGS), f"{label}: UIDL ids valid, unique, X-UIDL kept",
          short(ul, 600))
    for i, m in enumerate(MSGS, 1):
        resp, lines, _octets = p.retr(i)
        check(resp == b"+OK %d octets" % len(m.wire) and poplib_join(lines) == m.wire,
              f"{label}: RETR {i} byte for byte, size in the reply",
              f"resp {resp!r} got {short(poplib_join(lines))} want {short(m.wire)}")
    for i, m in enumerate(MSGS, 1):
        resp, lines, _ = p.top(i, 0)
        check(poplib_join(lines) == header_part(m.wire),
              f"{label}: TOP {i} 0 is the header and blank line",
              f"got {short(poplib_join(lines))}")
    resp, lines, _ = p.top(2, 3)
    body = MSGS[1].wire[len(header_part(MSGS[1].wire)):]
    want_top = header_part(MSGS[1].wire) + b"".join(
        ln + b"\r\n" for ln in body.split(b"\r\n")[:3])
    check_eq(poplib_join(lines), want_top, f"{label}: TOP 2 3 adds three body lines")

    check_eq(p.dele(2), b"+OK message 2 deleted", f"{label}: DELE 2")
    check_eq(p.dele(5), b"+OK message 5 deleted", f"{label}: DELE 5")
    check_eq(p.rset(), b"+OK maildrop has %d messages (%d octets)" % (len(MSGS), total),
             f"{label}: RSET undeletes")
    p.dele(2)
    p.dele(5)
    try:
        p.retr(2)
        got = b"+OK"
    except poplib.error_proto as e:
        got = e.args[0]
    check_eq(got, b"-ERR no such message", f"{label}: RETR of a deleted message")
    check_eq(p.quit(), b"+OK pop3d signing off (%d messages left)" % (len(MSGS) - 2),
             f"{label}: QUIT")
    p.close()
    kept = [m for i, m in enumerate(MSGS, 1) if i not in (2, 5)]
    check_eq(read_spool(user), spool_of(kept),
             f"{label}: spool after UPDATE is exactly the kept messages")
    check_eq(spool_identity(user), ident,
             f"{label}: spool inode, owner, mode and link count kept")

    deleted = sizes[1] + sizes[4]
    want = [
        b"<6>connect from 127.0.0.1",
        login_line(user),
        f"<6>maildrop: user={user} messages={len(MSGS)} bytes={total}".encode(),
        f"<6>logout: user={user} reason=QUIT retrieved={len(MSGS)}/{total} "
        f"deleted=2/{deleted} left={len(MSGS) - 2}/{total - deleted}".encode(),
    ]
    # (The [IN-USE] session logs lines of its own meanwhile.)
    log = srv.wait_log(b"^" + re.escape(want[-1]) + b"$", mark)
    for w in want:
        check(has_line(log, w), f"{label}: log line {w.decode()!r}",
              f"log {short(log, 800)}")


@guarded("poplib-append")
def test_append_during_session(srv):
    """Mail an MTA appends (dotlock + fcntl lock) during a session is not
    listed in it and survives its UPDATE."""
    label = f"{srv.mode}: poplib+MTA"
    user, pw = MAIN_USER, MAIN_PW
    first = KEEP_MSGS[:2]
    write_spool(user, spool_of(first))
    p = pop(srv)
    p.user(user)
    p.pass_(pw)
    late = new_message(50)
    t0 = time.monotonic()
    mta_append(user, late)
    check(time.monotonic() - t0 < 5, f"{label}: the MTA's append is not held up by the session")
    check_eq(p.stat()[0], 2, f"{label}: mail delivered during the session is not listed")
    p.dele(1)
    check_eq(p.quit(), b"+OK pop3d signing off (1 message left)", f"{label}: QUIT")
    check_eq(read_spool(user), spool_of([first[1], late]),
             f"{label}: the appended message survives UPDATE byte for byte")
    check(not Path(str(spool_path(user)) + ".lock").exists(),
          f"{label}: no dotlock left behind")


# --- fetchmail ------------------------------------------------------------------

def mda_script():
    path = WORK / "mda.sh"
    if not path.exists():
        path.write_text('#!/bin/sh\n# one file per message, numbered\n'
                        'd=$1\nn=$(ls "$d" | wc -l)\n'
                        'exec cat >"$d/$(printf %03d $((n + 1)))"\n')
        path.chmod(0o755)
    return path


def delivered(d):
    return [f.read_bytes() for f in sorted(Path(d).iterdir())]


@guarded("fetchmail")
def test_fetchmail(srv):
    label = f"{srv.mode}: fetchmail"
    user, pw = MAIN_USER, MAIN_PW
    write_spool(user, spool_of(KEEP_MSGS))
    home = WORK / f"fetchmail-{srv.mode}"
    home.mkdir()
    rc = home / "fetchmailrc"
    # These servers have no certificate, so no STLS: sslproto "" keeps
    # fetchmail 6.4 from insisting on it.
    rc.write_text(f'poll {HOST} protocol POP3 port {srv.port}\n'
                  f'  user "{user}" password "{pw}" sslproto ""\n')
    rc.chmod(0o600)
    env = dict(os.environ, HOME=str(home), FETCHMAILHOME=str(home))
    mda = mda_script()

    def fetch(n, keep=True, mda_cmd=None):
        out = home / f"run{n}"
        out.mkdir()
        cmd = ["fetchmail", "-N", "-f", str(rc), "-i", str(home / "ids"),
               "--pidfile", str(home / "pid"), "--uidl", "--norewrite",
               "--invisible", "--nobounce",
               "--mda", mda_cmd or f"{mda} {out}"]
        cmd += ["--keep"] if keep else ["--nokeep", "--all"]
        r = run(cmd, env=env)
        return r, out

    r, out = fetch(1)
    got = delivered(out)
    check(r.returncode == 0, f"{label}: keep run 1 succeeds", f"rc {r.returncode} {r.stderr[-500:]!r}")
    check_eq(len(got), len(KEEP_MSGS), f"{label}: keep run 1 fetches every message")
    for i, (g, m) in enumerate(zip(got, KEEP_MSGS), 1):
        check(g == m.lf, f"{label}: message {i} delivered byte for byte",
              f"got {short(g)} want {short(m.lf)}")
    check_eq(read_spool(user), spool_of(KEEP_MSGS), f"{label}: --keep leaves the spool as it was")

    r, out = fetch(2)
    check(r.returncode == 1 and delivered(out) == [],
          f"{label}: keep run 2 fetches nothing (stable UIDLs)",
          f"rc {r.returncode} delivered {len(delivered(out))}")

    late = new_message(1)
    mta_append(user, late)
    r, out = fetch(3)
    got = delivered(out)
    check(r.returncode == 0 and got == [late.lf],
          f"{label}: after a delivery, keep run 3 fetches exactly the new message",
          f"rc {r.returncode} got {len(got)} messages {short(got)}")

    mark = srv.mark()
    mbox = home / "mbox"
    r, _ = fetch(4, keep=False, mda_cmd=f"sh -c 'cat >> {mbox}'")
    want = b"".join(m.lf for m in KEEP_MSGS + [late])
    got = mbox.read_bytes() if mbox.exists() else b""
    check(r.returncode == 0 and got == want,
          f"{label}: a deleting run (--all --nokeep) delivers all {len(KEEP_MSGS) + 1} messages byte for byte",
          f"rc {r.returncode} {r.stderr[-300:]!r} got {len(got)} octets want {len(want)}")
    check_eq(read_spool(user), b"", f"{label}: ... and leaves the spool empty")
    # (Not just any logout line: run 3's may come after the mark.)
    log = srv.wait_log(rb"^<6>logout: .* deleted=7/", mark)
    check(re.search(rb"^<6>logout: user=" + user.encode() + rb" reason=QUIT retrieved=7/\d+ "
                    rb"deleted=7/\d+ left=0/0$", log, re.M),
          f"{label}: logout line of the deleting run", short(log, 500))


# --- mpop -----------------------------------------------------------------------

def parse_mbox(data):
    """Split an mbox written by mpop: From_ line, message, separator; undo
    mboxrd quoting (>From -> From, >>From -> >From)."""
    msgs = []
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    cur = None
    prev_empty = True
    for ln in lines:
        if ln.startswith(b"From ") and prev_empty:
            if cur is not None:
                msgs.append(cur[:-1])  # the separator line
            cur = []
        else:
            cur.append(ln)
        prev_empty = ln == b""
    if cur is not None:
        msgs.append(cur[:-1] if cur and cur[-1] == b"" else cur)
    out = []
    for m in msgs:
        body = [re.sub(rb"^>(>*From )", rb"\1", ln) for ln in m]
        out.append(b"".join(ln + b"\n" for ln in body))
    return out


@guarded("mpop")
def test_mpop(srv):
    label = f"{srv.mode}: mpop"
    user, pw = MAIN_USER, MAIN_PW
    write_spool(user, spool_of(KEEP_MSGS))
    home = WORK / f"mpop-{srv.mode}"
    home.mkdir()
    mda = mda_script()
    mbox = home / "mbox"

    def conf(name, out, keep=True):
        path = home / f"{name}.conf"
        delivery = (f'delivery mda "{mda} {out}"' if out else f"delivery mbox {mbox}")
        path.write_text(
            "defaults\ntls off\nreceived_header off\n"
            f"account {name}\nhost {HOST}\nport {srv.port}\n"
            f"user {user}\nauth user\npassword {pw}\n"
            f"uidls_file {home / 'uidls'}\n{delivery}\n"
            + ("keep on\nonly_new on\n" if keep else "keep off\nonly_new off\n"))
        path.chmod(0o600)
        return path

    def fetch(n, keep=True, to_mbox=False):
        out = None if to_mbox else home / f"run{n}"
        if out:
            out.mkdir()
        c = conf(f"run{n}", out, keep)
        r = run(["mpop", "-C", str(c), "-q", f"run{n}"], env=dict(os.environ, HOME=str(home)))
        return r, out

    r, out = fetch(1)
    got = delivered(out)
    check(r.returncode == 0, f"{label}: keep run 1 succeeds", f"rc {r.returncode} {r.stderr[-500:]!r}")
    check_eq(len(got), len(KEEP_MSGS), f"{label}: keep run 1 fetches every message")
    for i, (g, m) in enumerate(zip(got, KEEP_MSGS), 1):
        check(g == m.lf, f"{label}: message {i} delivered byte for byte",
              f"got {short(g)} want {short(m.lf)}")
    check_eq(read_spool(user), spool_of(KEEP_MSGS), f"{label}: keep on leaves the spool as it was")

    r, out = fetch(2)
    check(r.returncode == 0 and delivered(out) == [],
          f"{label}: keep run 2 fetches nothing (stable UIDLs)",
          f"rc {r.returncode} delivered {len(delivered(out))}")

    late = new_message(2)
    mta_append(user, late)
    r, out = fetch(3)
    got = delivered(out)
    check(r.returncode == 0 and got == [late.lf],
          f"{label}: after a delivery, keep run 3 fetches exactly the new message",
          f"rc {r.returncode} got {len(got)} messages {short(got)}")

    r, _ = fetch(4, keep=False, to_mbox=True)
    want = [m.lf for m in KEEP_MSGS + [late]]
    got = parse_mbox(mbox.read_bytes()) if mbox.exists() else []
    check(r.returncode == 0 and got == want,
          f"{label}: a deleting run into an mbox delivers all {len(want)} messages byte for byte",
          f"rc {r.returncode} {r.stderr[-300:]!r} got {len(got)} messages; "
          + next((f"first difference at {i + 1}: {short(g)} vs {short(w)}"
                  for i, (g, w) in enumerate(zip(got, want)) if g != w), ""))
    check_eq(read_spool(user), b"", f"{label}: ... and leaves the spool empty")


# --- PAM items ------------------------------------------------------------------

@guarded("pam-rhost")
def test_pam_items(mode):
    """pam_exec (in the account stack of a second PAM service) records the
    PAM_RHOST and PAM_USER pop3d gave PAM: the peer from getpeername."""
    label = f"{mode}: PAM items"
    srv = Server(f"rhost-{mode}", mode, pam=RHOST_PAM)
    log = WORK / "pam-env.log"
    try:
        before = log.read_text().splitlines() if log.exists() else []
        c = Conn(srv.port)
        c.cmd(f"USER {B_USER}")
        r = c.cmd(f"PASS {B_PW}")
        check(r.startswith(b"+OK maildrop has "), f"{label}: login through {RHOST_PAM}", f"{r!r}")
        c.cmd("QUIT")
        c.close()
        after = log.read_text().splitlines() if log.exists() else []
        new_lines = after[len(before):]
        want = f"account service={RHOST_PAM} user={B_USER} rhost=127.0.0.1"
        check_eq(new_lines, [want], f"{label}: PAM_RHOST is 127.0.0.1, PAM_USER the login name")
    finally:
        srv.stop()


# --- session edges on the real system ---------------------------------------------

def login(srv, user, pw, tls=None):
    c = Conn(srv.port, tls=tls)
    c.cmd(f"USER {user}")
    return c, c.cmd(f"PASS {pw}")


def b_spool(msgs):
    write_spool(B_USER, spool_of(msgs))
    return spool_of(msgs)


def edge_tests(srv, timeout_srv, tls_timeout_srv):
    """One after another on B_USER's spool (parallel to the refusals)."""
    user, pw = B_USER, B_PW
    msgs = KEEP_MSGS[:3]
    data = b_spool(msgs)

    # Idle timeout: no reply, no UPDATE, logged as timeout; under TLS the
    # relay goes with the session.
    for tsrv, label in ((timeout_srv, "inetd --timeout=2"),
                        (tls_timeout_srv, "inetd STLS --timeout=2")):
        mark = tsrv.mark()
        c, r = login(tsrv, user, pw, tls=tsrv.tls)
        check(r.startswith(b"+OK"), f"{label}: login", f"{r!r}")
        check_eq(c.cmd("DELE 1"), b"+OK message 1 deleted", f"{label}: DELE 1")
        t0 = time.monotonic()
        closed = c.eof(10)
        dt = time.monotonic() - t0
        check(closed and 1.5 <= dt <= 6, f"{label}: idle connection closed without a reply",
              f"closed {closed} after {dt:.1f} s")
        c.close()
        check_eq(read_spool(user), data, f"{label}: no UPDATE after the timeout")
        log = tsrv.wait_log(rb"^<6>logout: ", mark)
        # (Under TLS the relay must not end the connection first: the
        # session would log reason=disconnect.)
        check(re.search(rb"^<6>logout: user=" + user.encode() + rb" reason=timeout ", log, re.M),
              f"{label}: logout line says reason=timeout", short(log[-400:], 400))
        left = settle(lambda: live(group_procs(tsrv)), lambda x: not x, 5)
        check(not left, f"{label}: no process of the connection is left", f"{left}")

    # Dropped connection: no UPDATE; under TLS the session learns it from
    # the relay.
    for dsrv, label in ((srv, "inetd: dropped connection"),
                        (tls_timeout_srv, "inetd STLS: dropped connection")):
        mark = dsrv.mark()
        c, r = login(dsrv, user, pw, tls=dsrv.tls)
        c.cmd("DELE 1")
        # Under TLS the bare TCP socket: gone without close_notify.
        sock = socket.socket(fileno=c.sock.detach()) if dsrv.tls else c.sock
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()
        log = dsrv.wait_log(rb"^<6>logout: user=" + user.encode(), mark)
        check(re.search(rb"^<6>logout: user=" + user.encode() + rb" reason=disconnect ", log, re.M),
              f"{label}: logout line says reason=disconnect", short(log, 400))
        check_eq(read_spool(user), data, f"{label}: no UPDATE")
        if dsrv.tls:
            left = settle(lambda: live(group_procs(dsrv)), lambda x: not x, 5)
            check(not left, f"{label}: no process of the connection is left", f"{left}")

    # UPDATE waits for an MTA's dotlock (taken through the setgid
    # dotlockfile helper: the user cannot write in /var/mail).
    label = "inetd: UPDATE and the MTA's dotlock"
    c, r = login(srv, user, pw)
    c.cmd("DELE 1")
    lock = Path(str(spool_path(user)) + ".lock")
    fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.close(fd)
    held = time.monotonic()
    result = {}

    def quit_():
        result["reply"] = c.cmd("QUIT")
        result["t"] = time.monotonic()
    t = threading.Thread(target=quit_)
    t.start()
    time.sleep(1.0)
    spool_while_locked = read_spool(user)
    lock.unlink()
    t.join(30)
    c.close()
    check_eq(spool_while_locked, data, f"{label}: the spool is not rewritten while the dotlock is held")
    check(result.get("reply") == b"+OK pop3d signing off (2 messages left)"
          and result["t"] - held >= 1.0,
          f"{label}: QUIT answered +OK only after the dotlock is gone",
          f"{result.get('reply')!r} after {result.get('t', held) - held:.1f} s")
    check_eq(read_spool(user), spool_of(msgs[1:]), f"{label}: UPDATE done after it")
    check(not lock.exists(), f"{label}: pop3d removed its own dotlock")

    # The keeper makes UPDATE's dotlock (keeper.c), not two execs of the
    # setgid dotlockfile: the lock carries the PID of the process that
    # linked it, seen here while UPDATE waits for our fcntl write lock.
    label = "inetd: the dotlock keeper makes UPDATE's dotlock"
    write_spool(user, data)
    c, r = login(srv, user, pw)
    c.cmd("DELE 1")
    fd = os.open(spool_path(user), os.O_RDWR)
    maker = None
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX)
        c.sock.sendall(b"QUIT\r\n")
        made = settle(lambda: lock.exists(), bool, 8)
        if check(made, f"{label}: UPDATE takes the dotlock while the write lock is held"):
            maker = int(lock.read_bytes().split()[0])
            kst = proc_status(maker)
            sst = proc_status(int(kst["PPid"]))
            check_eq(ids(kst, "Gid"), [str(MAIL_GID)] * 4,
                     f"{label}: the PID in the dotlock is a process with group mail")
            check_eq(ids(sst, "Uid"), [str(pwd.getpwnam(user).pw_uid)] * 4,
                     f"{label}: whose parent is the user's session")
            lst = os.lstat(lock)
            check_eq((lst.st_uid, lst.st_gid), (pwd.getpwnam(user).pw_uid, MAIL_GID),
                     f"{label}: the dotlock is the user's, group mail")
    finally:
        os.close(fd)
    reply = c.line()
    c.close()
    check((reply or b"").startswith(b"+OK pop3d signing off"), f"{label}: QUIT answered +OK",
          f"{reply!r}")
    check_eq(settle(lambda: read_spool(user), lambda d: d == spool_of(msgs[1:]), 10),
             spool_of(msgs[1:]), f"{label}: UPDATE done after the write lock is released")
    check(not lock.exists(), f"{label}: the keeper removed the dotlock")
    check(maker is None or not settle(lambda: os.path.exists(f"/proc/{maker}"),
                                      lambda x: not x, 5),
          f"{label}: the keeper is gone with its session")

    # Spools an admin must fix: [SYS/PERM], and nothing is served.
    path = spool_path(user)
    perm = b"-ERR [SYS/PERM] maildrop cannot be opened, contact the administrator"
    for what, make in (
            ("symlink to /etc/shadow", lambda: os.symlink("/etc/shadow", path)),
            # Owned by root but open to the user through the group (the
            # user's own): pop3d can open it, and must refuse it.
            ("owned by root, group-writable for the user",
             lambda: (write_spool(user, data),
                      os.chown(path, 0, pwd.getpwnam(user).pw_gid))),
            ("writable by others", lambda: (write_spool(user, data), os.chmod(path, 0o666))),
            ("hard link (2 links)", lambda: (write_spool(user, data),
                                             os.link(path, str(path) + ".p3st-link")))):
        label = f"inetd: spool {what}"
        path.unlink(missing_ok=True)
        make()
        before = os.lstat(path)
        c, r = login(srv, user, pw)
        check_eq(r, perm, f"{label}: -ERR [SYS/PERM]")
        check(c.eof(), f"{label}: ... and the connection closes")
        c.close()
        after = os.lstat(path)
        check((before.st_mode, before.st_uid, before.st_size, before.st_mtime_ns)
              == (after.st_mode, after.st_uid, after.st_size, after.st_mtime_ns),
              f"{label}: left untouched")
        path.unlink()
        Path(str(path) + ".p3st-link").unlink(missing_ok=True)

    # root:mail 0660, as "touch" by root leaves it after a chgrp: the user
    # cannot open it at all. The spec maps EACCES to [SYS/TEMP].
    label = "inetd: spool root:mail 0660 (EACCES for the user)"
    write_spool(user, data)
    os.chown(path, 0, MAIL_GID)
    c, r = login(srv, user, pw)
    check_eq(r, b"-ERR [SYS/TEMP] temporary failure, try again later",
             f"{label}: -ERR [SYS/TEMP] as the spec says for EACCES")
    check(c.eof(), f"{label}: ... and the connection closes")
    c.close()
    check_eq(read_spool(user), data, f"{label}: left untouched")
    path.unlink()

    # A missing spool is an empty maildrop, and is not created.
    label = "inetd: missing spool"
    c, r = login(srv, user, pw)
    check_eq(r, b"+OK maildrop has 0 messages (0 octets)", f"{label}: an empty maildrop")
    c.cmd("QUIT")
    c.close()
    check(not path.exists(), f"{label}: not created")


# --- refusals ---------------------------------------------------------------------

def refused_login(srv, user, password, label, extra_lines=(), log_user=None, tries=1,
                  tls=None):
    """USER/PASS that must fail: -ERR [AUTH] after >= 2 s, the connection
    still usable (QUIT), the failed-login log line, and no login. tls as
    for Conn."""
    mark = srv.mark()
    c = Conn(srv.port, tls=tls)
    check_eq(c.greeting, b"+OK pop3d ready", f"{label}: greeting")
    for n in range(1, tries + 1):
        r1 = c.cmd(f"USER {user}")
        t0 = time.monotonic()
        r2 = c.cmd(f"PASS {password}")
        dt = time.monotonic() - t0
        check(r1 == b"+OK send PASS" and r2 == b"-ERR [AUTH] authentication failed",
              f"{label}: attempt {n}: -ERR [AUTH]", f"USER {r1!r} PASS {r2!r}")
        check(dt >= 1.95, f"{label}: attempt {n}: answered after >= 2 s", f"{dt:.2f} s")
    if tries >= 3:
        check(c.eof(), f"{label}: the connection closes after the third failure")
    else:
        check_eq(c.cmd("QUIT"), b"+OK pop3d signing off", f"{label}: QUIT still answered")
    c.close()
    want = failed_line(log_user or user, tls=tls is not None)
    log = srv.wait_log(re.escape(want), mark, 5)
    check(has_line(log, want), f"{label}: log {want.decode()!r}", short(log, 400))
    for rx in extra_lines:
        check(re.search(rx, log, re.M), f"{label}: log matches {rx.decode()!r}")
    check(not re.search(rb"^<6>login: user=" + re.escape(user.encode()) + rb" ", log, re.M) and
          not re.search(rb"^<6>maildrop: user=" + re.escape(user.encode()) + rb" ", log, re.M),
          f"{label}: no login and no maildrop opened for {user}")


def root_refusal(srv):
    """Root is refused by its uid even where PAM lets everyone in
    (pam_permit) and --min-uid=0: the man page's "and of root"."""
    label = f"inetd {PERMIT_PAM} --min-uid=0"
    # The stack really is permissive: a wrong password gets in. (MAIN_USER:
    # B_USER's spool is busy in edge_tests meanwhile.)
    c, r = login(srv, MAIN_USER, "not-" + MAIN_PW)
    check(r.startswith(b"+OK maildrop has "),
          f"{label}: pam_permit lets {MAIN_USER} in with a wrong password", f"{r!r}")
    c.cmd("QUIT")
    c.close()
    refused_login(srv, "root", "anything-" + TAG, f"{label}: root, PAM says yes",
                  extra_lines=[rb"^<5>user root: uid 0 is never served$"])


def positive_control(srv, user, pw, label):
    c = Conn(srv.port)
    c.cmd(f"USER {user}")
    r = c.cmd(f"PASS {pw}")
    check_eq(r, b"+OK maildrop has 0 messages (0 octets)",
             f"{label}: {user} logs in with the right password before the change")
    c.cmd("QUIT")
    c.close()


def refusal_jobs(srv, mode):
    """(callable) list of independent refusal checks against srv."""
    return [
        lambda: refused_login(srv, MAIN_USER, MAIN_PW + "x",
                              f"{mode}: wrong password"),
        lambda: refused_login(srv, f"{TAG}nobody", "whatever-Pw1",
                              f"{mode}: unknown user", log_user="UNKNOWN USER"),
        lambda: refused_login(srv, LOCK_USER, LOCK_PW,
                              f"{mode}: locked account (usermod -L), right password"),
        lambda: refused_login(srv, EXP_USER, EXP_PW,
                              f"{mode}: expired account (chage -E 0), right password",
                              extra_lines=[rb"^<5>pam_acct_mgmt: "]),
        lambda: refused_login(srv, SYS_USER, SYS_PW,
                              f"{mode}: system user uid {pwd.getpwnam(SYS_USER).pw_uid} < 1000, right password",
                              extra_lines=[rb"^<5>user " + SYS_USER.encode()
                                           + rb": uid \d+ is below --min-uid=1000$"]),
        lambda: refused_login(srv, "root", "not-root's-password-" + TAG,
                              f"{mode}: root with a wrong password"),
    ]


# --- Accept=no limits ------------------------------------------------------------------

@guarded("listen-limits")
def test_listen_limits():
    label = "listen"
    # --max-per-source: the third connection from 127.0.0.1 is closed at once.
    srv = Server("listen-per-source", "listen", ["--max-per-source=2"])
    try:
        a, b = Conn(srv.port), Conn(srv.port)
        check(a.greeting == b.greeting == b"+OK pop3d ready",
              f"{label}: --max-per-source=2: two sessions from 127.0.0.1 served")
        c = Conn(srv.port, greet=False)
        check(c.eof(5), f"{label}: --max-per-source=2: the third is closed without a greeting")
        c.close()
        log = srv.wait_log(rb"refused: ", 0)
        check(re.search(rb"^<4>connection from 127\.0\.0\.1 refused: 2 sessions already "
                        rb"\(--max-per-source\)$", log, re.M),
              f"{label}: --max-per-source: log line for the refused connection", short(log, 400))
        a.cmd("QUIT")
        a.close()
        wait_children(srv, 1)
        d = Conn(srv.port)
        check_eq(d.greeting, b"+OK pop3d ready",
                 f"{label}: --max-per-source: a slot freed by QUIT is used again")
        for x in (b, d):
            x.cmd("QUIT")
            x.close()
        kids = wait_children(srv, 0)
        check(kids == [], f"{label}: ended sessions are reaped (no zombies)", f"{kids}")
    finally:
        srv.stop()

    # --max-children: further connections wait in the listen queue.
    srv = Server("listen-children", "listen", ["--max-children=2"])
    try:
        a, b = Conn(srv.port), Conn(srv.port)
        c = Conn(srv.port, greet=False)
        c.sock.settimeout(1.0)
        try:
            early = c.sock.recv(100)
        except socket.timeout:
            early = None
        check(early is None, f"{label}: --max-children=2: a third connection waits",
              f"got {early!r}")
        a.cmd("QUIT")
        a.close()
        c.sock.settimeout(10)
        check_eq(c.line(), b"+OK pop3d ready",
                 f"{label}: --max-children=2: ... and is served when a session ends")
        for x in (b, c):
            x.cmd("QUIT")
            x.close()
        wait_children(srv, 0)
    finally:
        rc = srv.stop()
    check_eq(rc, 0, f"{label}: the listener exits 0 on SIGTERM")
    check(has_line(srv.log(), b"<6>stopping; 0 sessions still running"),
          f"{label}: the listener logs its stop", short(srv.log()[-300:]))


# --- fail2ban -------------------------------------------------------------------------

@guarded("fail2ban")
def test_fail2ban(servers):
    label = "fail2ban"
    repo = Path(__file__).resolve().parents[2]
    fdir = WORK / "fail2ban" / "filter.d"
    fdir.mkdir(parents=True)
    (fdir / "common.conf").write_bytes(Path("/etc/fail2ban/filter.d/common.conf").read_bytes())
    (fdir / "pop3d.conf").write_bytes((repo / "units/fail2ban/filter.d/pop3d.conf").read_bytes())
    failed, good, other = [], [], []
    for s in servers:
        for ln in s.log().split(b"\n"):
            m = re.match(rb"^<\d>(.*)$", ln)
            if not m:
                continue
            text = m.group(1)
            if text.startswith(b"login failed: "):
                failed.append(text)
            elif text.startswith(b"login: "):
                good.append(text)
            else:
                other.append(text)
    check(len(failed) >= 18 and any(b"user=UNKNOWN USER" in f for f in failed),
          f"{label}: the runs produced failed-login lines of every kind", f"{len(failed)} lines")

    def regex(lines, name):
        path = WORK / "fail2ban" / name
        path.write_bytes(b"".join(b"Nov 26 08:00:%02d mailhost pop3d[%d]: %s\n"
                                  % (i % 60, 1000 + i, t) for i, t in enumerate(lines)))
        r = run(["fail2ban-regex", "--out", "ip", str(path), str(fdir / "pop3d.conf")])
        return r, [ln for ln in r.stdout.decode().split("\n") if ln.strip()]

    r, ips = regex(failed, "failed.log")
    check(r.returncode == 0 and len(ips) == len(failed) and set(ips) == {"127.0.0.1"},
          f"{label}: the filter matches all {len(failed)} failed-login lines, host 127.0.0.1",
          f"rc {r.returncode} ips {ips[:5]} ... {len(ips)} {r.stderr[-300:]!r}")
    r, ips = regex(good + other, "other.log")
    check(r.returncode == 0 and ips == [],
          f"{label}: the filter matches none of {len(good)} login and {len(other)} other lines",
          f"rc {r.returncode} matched {ips} {r.stderr[-300:]!r}")


# --- TLS ----------------------------------------------------------------------------

def tls_label(srv):
    return f"{srv.mode} {'implicit TLS' if srv.tls == 'implicit' else 'STLS'}"


@guarded("tls")
def test_tls(srv):
    """poplib through STLS or implicit TLS with a real pam_unix user: CAPA,
    the processes before and after login, RETR byte for byte, QUIT; then
    curl through the same server."""
    label = tls_label(srv)
    user, pw = MAIN_USER, MAIN_PW
    write_spool(user, spool_of(MSGS))
    total = sum(len(m.wire) for m in MSGS)
    mark = srv.mark()
    ctx = tls_context()
    if srv.tls == "implicit":
        p = poplib.POP3_SSL(HOST, srv.port, context=ctx, timeout=30)
    else:
        p = pop(srv)
        caps = p.capa()
        check("STLS" in caps, f"{label}: CAPA lists STLS before TLS", f"{caps}")
        check_eq(p.stls(ctx), b"+OK begin TLS negotiation", f"{label}: STLS")
    check_eq(p.getwelcome(), b"+OK pop3d ready", f"{label}: greeting")
    check(isinstance(p.sock, ssl.SSLSocket) and p.sock.version() in ("TLSv1.2", "TLSv1.3"),
          f"{label}: TLS 1.2 or newer", f"{getattr(p.sock, 'version', lambda: None)()}")
    caps = p.capa()
    check("STLS" not in caps and "USER" in caps and caps.get("SASL") == ["PLAIN", "LOGIN"],
          f"{label}: CAPA under TLS lists USER and SASL PLAIN LOGIN, not STLS", f"{caps}")
    cport = p.sock.getsockname()[1]
    check_prelogin(srv, cport, label)
    check_eq(p.user(user), b"+OK send PASS", f"{label}: USER")
    check_eq(p.pass_(pw), b"+OK maildrop has %d messages (%d octets)" % (len(MSGS), total),
             f"{label}: PASS with the real password")
    check_tls_session(srv, cport, user, label)
    check_tls_secrets_in_memory(srv, cport, pw, label)
    for i in (2, 3, 5, 7):
        m = MSGS[i - 1]
        resp, lines, _ = p.retr(i)
        check(resp == b"+OK %d octets" % len(m.wire) and poplib_join(lines) == m.wire,
              f"{label}: RETR {i} through the relay byte for byte ({len(m.wire)} octets)",
              f"resp {resp!r} got {short(poplib_join(lines))}")
    check_eq(p.quit(), b"+OK pop3d signing off (%d messages left)" % len(MSGS), f"{label}: QUIT")
    p.close()
    left = settle(lambda: live(group_procs(srv)), lambda x: not x, 5)
    check(not left, f"{label}: after QUIT no process of the connection is left", f"{left}")
    log = srv.wait_log(rb"^<6>logout: ", mark)
    for w in (login_line(user, tls=True),
              f"<6>logout: user={user} reason=QUIT retrieved=4/".encode()):
        check(any(ln.startswith(w) for ln in log.split(b"\n")),
              f"{label}: log line {w.decode()!r}", short(log, 600))

    # curl: --ssl-reqd on pop3:// (STLS) or pop3s://; every message.
    mark = srv.mark()
    outdir = WORK / f"curl-{srv.name}"
    outdir.mkdir()
    scheme = "pop3s" if srv.tls == "implicit" else "pop3"
    cmd = ["curl", "-sS", "--max-time", "30", "-k", "-u", f"{user}:{pw}"]
    if srv.tls != "implicit":
        cmd.append("--ssl-reqd")
    r = run(cmd + [f"{scheme}://{HOST}:{srv.port}/[1-{len(MSGS)}]", "-o", str(outdir / "m#1")])
    name = f"{label}: curl {'-k pop3s://' if scheme == 'pop3s' else '--ssl-reqd -k pop3://'}"
    check(r.returncode == 0, f"{name}: RETR 1..{len(MSGS)}", f"rc {r.returncode} {r.stderr!r}")
    for i, m in enumerate(MSGS, 1):
        f = outdir / f"m{i}"
        got = f.read_bytes() if f.exists() else None
        check(got == m.wire, f"{name}: message {i} byte for byte ({len(m.wire)} octets)",
              f"got {short(got)} want {short(m.wire)}")
    log = srv.wait_log(rb"^<6>logout: ", mark)
    logins = re.findall(rb"^<6>login: user=" + re.escape(user.encode())
                        + rb" peer=127\.0\.0\.1 method=(\S+) tls=(\S+)$", log, re.M)
    check(logins and all(t == b"yes" for _m, t in logins),
          f"{name}: the log shows its logins with tls=yes", short(log, 600))
    check(logins and all(m in (b"PLAIN", b"LOGIN") for m, _t in logins),
          f"{name}: curl logs in with SASL (AUTH PLAIN or LOGIN) through pam_unix",
          f"{logins}")
    check_eq(read_spool(user), spool_of(MSGS), f"{label}: retrieval leaves the spool as it was")


@guarded("preauth-fallback")
def test_preauth_fallback():
    """--preauth-user naming no user: a warning, and the pre-auth process
    runs as nobody (the real NSS entry), still chrooted."""
    label = "inetd --preauth-user=<no such user>"
    missing = f"{TAG}none"
    srv = Server("preauth-fallback", "inetd", [f"--preauth-user={missing}"])
    try:
        c = Conn(srv.port)
        check_eq(c.greeting, b"+OK pop3d ready", f"{label}: greeting")
        # The greeting is the monitor's, written before the fork
        # (design.md §2): the pre-auth process is there, confined, once
        # it has answered CAPA.
        check_eq(c.cmd("CAPA"), b"+OK capability list follows", f"{label}: CAPA")
        while c.line() not in (b".", None):
            pass
        inode = server_side_inode(srv.port, c.cport)
        holders = settle(lambda: socket_holders(inode), lambda h: len(h) == 1)
        nobody = pwd.getpwnam("nobody")
        st = proc_status(holders[0]) if len(holders) == 1 else {"Uid": "", "Gid": ""}
        want = ([str(nobody.pw_uid)] * 4, [str(nobody.pw_gid)] * 4)
        check((ids(st, "Uid"), ids(st, "Gid")) == want,
              f"{label}: the pre-auth process runs as nobody",
              f"holders {holders} Uid {st.get('Uid')!r} Gid {st.get('Gid')!r}")
        if len(holders) == 1:
            check_eq(os.readlink(f"/proc/{holders[0]}/root"), PREAUTH_DIR,
                     f"{label}: ... in the chroot")
        c.cmd("QUIT")
        c.close()
        want = f"<4>preauth: no user {missing}; pre-auth runs as nobody".encode()
        log = srv.wait_log(re.escape(want), 0)
        check(has_line(log, want), f"{label}: log {want.decode()!r}", short(log, 400))
    finally:
        srv.stop()


def tls_refusal_jobs(srv):
    label = tls_label(srv)
    return [lambda: refused_login(srv, MAIN_USER, MAIN_PW + "t",
                                  f"{label}: wrong password", tls=srv.tls)]


# --- main -----------------------------------------------------------------------------

def main():
    main_pw = pwd.getpwnam(MAIN_USER)
    check(main_pw.pw_uid >= 1000 and pwd.getpwnam(SYS_USER).pw_uid < 1000,
          "setup: main user uid >= 1000, system user uid < 1000")
    servers = {mode: Server(f"srv-{mode}", mode) for mode in MODES}

    # Before the accounts are locked/expired: they work.
    positive_control(servers["inetd"], LOCK_USER, LOCK_PW, "setup")
    positive_control(servers["inetd"], EXP_USER, EXP_PW, "setup")
    subprocess.run(["usermod", "-L", LOCK_USER], check=True)
    subprocess.run(["chage", "-E", "0", EXP_USER], check=True)

    # The refusals cost >= 2 s each: all at once, in every mode, before the
    # client tests (no successful login meanwhile, see refused_login).
    minuid = Server("srv-minuid", "inetd", [f"--min-uid={main_pw.pw_uid + 1}"])
    tmo = Server("srv-timeout", "inetd", ["--timeout=2"])
    permit = Server("srv-permit", "inetd", ["--min-uid=0"], pam=PERMIT_PAM)
    tls_servers = [Server(f"tls-{kind}-{mode}", mode, tls=kind)
                   for mode in MODES for kind in ("stls", "implicit")]
    tls_tmo = Server("tls-timeout", "inetd", ["--timeout=2"], tls="stls")
    jobs = [lambda: edge_tests(servers["inetd"], tmo, tls_tmo)]
    for mode, srv in servers.items():
        jobs += refusal_jobs(srv, mode)
    for srv in tls_servers:
        jobs += tls_refusal_jobs(srv)
    jobs.append(lambda: refused_login(
        servers["inetd"], MAIN_USER, MAIN_PW + "y", "inetd: three failures", tries=3))
    jobs.append(lambda: root_refusal(permit))
    jobs.append(lambda: refused_login(
        minuid, MAIN_USER, MAIN_PW,
        f"inetd --min-uid={main_pw.pw_uid + 1}: uid {main_pw.pw_uid}, right password",
        extra_lines=[(f"^<5>user {MAIN_USER}: uid {main_pw.pw_uid} is below "
                      f"--min-uid={main_pw.pw_uid + 1}$").encode()]))
    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        futs = [pool.submit(buffered(j)) for j in jobs]
        for f in futs:
            for line in f.result():
                print(line, flush=True)

    for mode, srv in servers.items():
        test_curl(srv)
        test_poplib(srv)
        test_append_during_session(srv)
        test_fetchmail(srv)
        test_mpop(srv)
        test_pam_items(mode)
    for srv in tls_servers:
        test_tls(srv)
        srv.stop()
    test_listen_limits()
    test_preauth_fallback()
    check(len(UIDLS_BY_MODE) == len(MODES) and
          all(u == UIDLS_BY_MODE["inetd"] for u in UIDLS_BY_MODE.values()),
          "UIDL: the same spool gets the same ids in every mode", short(UIDLS_BY_MODE, 600))

    # Stop the servers, then the checks on everything they logged.
    for srv in Server.all:
        if srv.proc.poll() is None:
            srv.stop()
    for srv in Server.all:
        out = srv.out_path.read_bytes()
        check(out == b"", f"{srv.name}: nothing written to the server's stdout", short(out))
    leaked = [(s.name, p) for s in Server.all for p in PASSWORDS if p.encode() in s.log()]
    check(not leaked, "logs: no password in any log line", f"{leaked}")
    test_fail2ban(Server.all)


def _terminate(signum, _frame):
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    # A signal ends the run through the finally below: servers stopped.
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    try:
        main()
    except Exception as e:  # noqa: BLE001
        report(False, "systest.py", f"{type(e).__name__}: {e}\n{traceback.format_exc()}")
    finally:
        for s in Server.all:
            try:
                if s.proc.poll() is None:
                    s.stop()
            except Exception:  # noqa: BLE001
                pass
        (WORK / "counts").write_text(f"{_counts['passed']} {_counts['failed']}\n")
    sys.exit(1 if _counts["failed"] else 0)
