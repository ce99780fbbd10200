"""Shared pieces of the fault, kill, signal and spool-problem tests: the
cwrap environment (tests/integration/harness.py) with the fault shim
(faultshim.c) preloaded after the wrappers, sessions over pipes or
sockets, process trees, and spool snapshots.

The shim acts only on the files named in FAULTSHIM_PATHS (the spool, or
the journal directory when a test says so), never on the sockets, pipes
or log. pop3d runs as two processes; the one started (the monitor) is the
one that becomes the session and does the spool I/O.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
sys.path.insert(0, str(TESTS / "integration"))
sys.path.insert(0, str(TESTS / "stress"))

import harness  # noqa: E402
from harness import TestFailure, TestSkipped, check  # noqa: E402,F401
import mboxcheck  # noqa: E402,F401

SYS_TEMP = "-ERR [SYS/TEMP] temporary failure, try again later"
SYS_PERM = "-ERR [SYS/PERM] maildrop cannot be opened, contact the administrator"
IN_USE = "-ERR [IN-USE] maildrop is locked by another session"
# A spool's session lock file beside its journal (journal.h,
# JOURNAL_SESSION_SUFFIX): every login makes one and it stays; no journal,
# nothing pending.
SESSION_SUFFIX = ".session"
UPDATE_FAILED_RE = re.compile(r"^-ERR \[SYS/TEMP\]( .*)?$")
QUIT_OK_RE = re.compile(r"^\+OK pop3d signing off \((\d+) messages? left\)$")


class Env:
    """The cwrap environment plus the shim. Works with a binary that has
    no --journal-dir (the build before the journal): the flag is dropped."""

    def __init__(self, binary, workdir, shim):
        # ld.so only warns about a preload it cannot find, and the session
        # then runs with no fault injected and nothing recorded.
        if shim and not Path(shim).is_file():
            raise SystemExit(f"{shim}: no such fault shim (make {shim} builds it)")
        self.base = harness.Environment(binary, workdir)
        self.binary = self.base.binary
        self.asan = self.base.asan
        self.workdir = Path(workdir)
        out = subprocess.run([self.binary, "--help"], capture_output=True)
        self.has_journal = b"--journal-dir" in out.stdout + out.stderr
        args = list(self.base.default_args)
        if not self.has_journal:
            args = [a for a in args if not a.startswith("--journal-dir")]
        self.default_args = args
        self.journal_root = None
        for a in args:
            if a.startswith("--journal-dir="):
                self.journal_root = Path(a.split("=", 1)[1])
        self.shim = str(Path(shim).resolve()) if shim else None
        self.users = self.base.users
        self.really_root = self.base.really_root

    def tempdir(self, name):
        return self.base.tempdir(name)

    def install_spool(self, path, data, user="alice"):
        return self.base.install_spool(path, data, user)

    def chown_to(self, path, user):
        self.base.chown_to(path, user)

    def uid(self, user):
        return self.users[user][0]

    def journal_dir(self, user="alice"):
        if self.journal_root is None:
            return None
        return self.journal_root / str(self.uid(user))

    def journal_files(self, user="alice"):
        """The journals in user's journal directory, by name: every file
        but the spools' session locks (spool-<hash>.session), which stay
        for good and are nothing pending (as pop3d --recover counts)."""
        d = self.journal_dir(user)
        if d is None or not d.exists():
            return []
        return sorted(p.name for p in d.iterdir() if not p.name.endswith(SESSION_SUFFIX))

    def command(self, maildir, args=()):
        return ([self.binary, "--log=stderr", f"--mailbox={maildir}/%u"]
                + self.default_args + list(args))

    def child_env(self, rules=None, paths=(), log=None, trace=False, record=None,
                  drop_sync=None, main_only=False):
        """record: the shim's FAULTSHIM_RECORD file (crash_explore.py);
        drop_sync: FAULTSHIM_DROP_SYNC, the Nth sync made a no-op;
        main_only: FAULTSHIM_MAIN_ONLY, the rules fire in pop3d's first
        process (the session) only, not in the dotlock keeper."""
        env = dict(self.base.child_env)
        # command() above runs pop3d directly, not through the harness's
        # private-/tmp wrapper (these tests run one at a time), so the
        # wrappers are preloaded here.
        env["LD_PRELOAD"] = env["POP3D_CWRAP_PRELOAD"]
        if rules is not None or trace or record is not None:
            check(self.shim is not None, "no fault shim given")
            env["LD_PRELOAD"] = env["LD_PRELOAD"] + ":" + self.shim
            env["FAULTSHIM_PATHS"] = ":".join(str(p) for p in paths)
            env["FAULTSHIM"] = rules or ""
            if log is not None:
                env["FAULTSHIM_LOG"] = str(log)
            if trace:
                env["FAULTSHIM_TRACE"] = "1"
            if record is not None:
                env["FAULTSHIM_RECORD"] = str(record)
            if drop_sync:
                env["FAULTSHIM_DROP_SYNC"] = str(drop_sync)
            if main_only:
                env["FAULTSHIM_MAIN_ONLY"] = "1"
        return env

    def spawner(self, **shim):
        return _Spawner(self, self.child_env(**shim))

    def session(self, maildir, args=(), expect_greeting=True, **shim):
        """A harness.Pop3d (pipes) under the shim settings given."""
        return harness.Pop3d(self.spawner(**shim), maildir, args,
                             expect_greeting=expect_greeting)

    def socket_session(self, maildir, args=(), rcvbuf=None, **shim):
        """pop3d on one end of a Unix socketpair, as inetd would start it;
        returns a SocketSession."""
        client, server = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        if rcvbuf is not None:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, rcvbuf)
        proc = subprocess.Popen(self.command(maildir, args), env=self.child_env(**shim),
                                stdin=server, stdout=server, stderr=subprocess.PIPE)
        server.close()
        return SocketSession(proc, client)

    def tcp_session(self, maildir, args=(), **shim):
        """pop3d on an accepted loopback TCP connection (for RST)."""
        lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            lst.bind(("127.0.0.1", 0))
            lst.listen(1)
            client = socket.create_connection(lst.getsockname(), timeout=15)
            server, _ = lst.accept()
        finally:
            lst.close()
        proc = subprocess.Popen(self.command(maildir, args), env=self.child_env(**shim),
                                stdin=server, stdout=server, stderr=subprocess.PIPE)
        server.close()
        return SocketSession(proc, client)


class _Spawner:
    """What harness.Pop3d needs of an environment: spawn()."""

    def __init__(self, env, child_env):
        self.env = env
        self.child_env = child_env

    def spawn(self, maildir, args=(), **kw):
        return subprocess.Popen(self.env.command(maildir, args), env=self.child_env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, **kw)


class SocketSession:
    """A client on a socket, pop3d's stderr drained by a thread."""

    def __init__(self, proc, sock):
        self.proc = proc
        self.pid = proc.pid
        self.sock = sock
        self.buf = b""
        self.eof = False
        self.stderr = b""
        self._t = threading.Thread(target=self._drain, daemon=True)
        self._t.start()

    def _drain(self):
        for chunk in iter(lambda: self.proc.stderr.read1(65536), b""):
            self.stderr += chunk

    def send(self, text):
        if isinstance(text, str):
            text = text.encode()
        self.sock.sendall(text + b"\r\n")

    def readline(self, timeout=15.0):
        deadline = time.monotonic() + timeout
        while b"\r\n" not in self.buf:
            if self.eof:
                return None
            left = deadline - time.monotonic()
            check(left > 0, f"no line from pop3d within {timeout}s")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                self.eof = True
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def cmd(self, text, timeout=15.0):
        self.send(text)
        line = self.readline(timeout)
        check(line is not None, f"EOF instead of a reply to {text!r}")
        return line.decode("latin-1")

    def login(self, user="alice", password="secret"):
        g = self.readline()
        check(g == b"+OK pop3d ready", f"greeting {g!r}")
        check(self.cmd(f"USER {user}") == "+OK send PASS", "USER")
        r = self.cmd(f"PASS {password}")
        check(r.startswith("+OK maildrop has"), f"login: {r}")
        return r

    def wait(self, timeout=15.0):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
        if self.proc.poll() is None:
            kill_tree(self.proc.pid)
            self.proc.wait()
        self._t.join(5)


# --- processes ------------------------------------------------------------

def children(pid):
    out = []
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{t}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in children(p):
            out.append(c)
            todo.append(c)
    return out


def kill_tree(pid, sig=signal.SIGKILL):
    """Signal pid and everything below it, each by its own pid (the tree
    is read first: the children of a killed process are reparented)."""
    pids = [pid] + descendants(pid)
    for p in pids:
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass


def holder_of(path, pids):
    """The pid among pids that has path open, or None."""
    path = str(path)
    for p in pids:
        try:
            for fd in os.listdir(f"/proc/{p}/fd"):
                try:
                    if os.readlink(f"/proc/{p}/fd/{fd}") == path:
                        return p
                except OSError:
                    pass
        except OSError:
            pass
    return None


# --- shim log -----------------------------------------------------------------

def shim_log(path):
    """Lines of the shim's log as (kind, pid, op, n, rule, path) tuples."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        f = line.split(" ", 5)
        if len(f) == 6:
            out.append((f[0], int(f[1]), f[2], int(f[3]), f[4], f[5]))
    return out


def fired(path):
    return [e for e in shim_log(path) if e[0] == "FIRE"]


# --- files ----------------------------------------------------------------------

def file_state(path):
    """(bytes, inode, mode, uid, gid) of a file, or None if it is missing."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    data = Path(path).read_bytes() if os.path.isfile(path) and not os.path.islink(path) else b""
    return (data, st.st_ino, st.st_mode, st.st_uid, st.st_gid)


def require_loop_fs(kind, mkfs):
    """Skip unless a file system of kind can be made (mkfs found) and
    mounted on a loop device here: root, /dev/loop-control, and the
    kernel's kind, loaded if it is a module."""
    if os.geteuid() != 0:
        raise TestSkipped("needs root (loop devices, mounts)")
    if not Path("/dev/loop-control").exists():
        raise TestSkipped("no /dev/loop-control")
    if shutil.which(mkfs) is None:
        raise TestSkipped(f"{mkfs} not found (tests/deps.sh installs it)")
    if kind in Path("/proc/filesystems").read_text().split():
        return
    modprobe = shutil.which("modprobe") or shutil.which("/usr/sbin/modprobe") \
        or shutil.which("/sbin/modprobe")
    if modprobe is None or subprocess.run([modprobe, kind],
                                          capture_output=True).returncode:
        raise TestSkipped(f"the kernel has no {kind}")


def dir_names(d):
    return sorted(p.name for p in Path(d).iterdir())


def log_text(stderr):
    return stderr.decode("latin-1", errors="replace")


def check_log_clean(stderr):
    """Only <N>-prefixed lines, no sanitizer report, no password."""
    harness.check_stderr(stderr, [b"secret"])
