"""Shared pieces of the pop3d integration tests: the cwrap environment,
spool fixtures, an interactive client over pipes, and the reply checks every
test applies (CRLF framing, R1939-05 status lines, log hygiene).

Standard library only: the suite runs on Debian's /usr/bin/python3.
"""

import errno
import fcntl
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
SCRIPTS = TESTS / "scripts"
FIXTURES = TESTS / "fixtures"
ENV_SH = TESTS / "cwrap" / "env.sh"

# Every status line: R1939-05, at most 512 octets with CRLF (R1939-06).
STATUS_RE = re.compile(rb"^(\+OK|-ERR)( [^\r\n]*)?$")
STATUS_MAX = 512
# R1939-48: a unique-id is 1-70 characters 0x21-0x7E.
UID_RE = re.compile(rb"^[!-~]{1,70}$")
# stderr lines under --log=stderr: an sd-daemon priority prefix.
LOG_LINE_RE = re.compile(rb"^<[0-7]>")
SANITIZER_RE = re.compile(
    rb"AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:")
# pam_wrapper picks its private config dir as /tmp/pam.<letter> with an
# lstat-then-mkdir race: two pop3d started at the same moment may pick the
# same letter (the loser goes on with the shared dir), or one may look at
# the other's dir before its pid file is written (and leaves it alone).
# Both print an error; it is cwrap's noise, not pop3d's, so the log check
# skips exactly these two messages.
PWRAP_RACE_RE = re.compile(
    rb"^PWRAP_ERROR\[[^]]*\] - (pwrap_init: Failed to create pam_wrapper config dir: "
    rb"/tmp/pam\.. - File exists|pwrap_clean_stale_dirs: Failed to parse pid, buf=)$")


class TestFailure(Exception):
    """A failed expectation; the message is what the report prints."""


class TestSkipped(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def is_asan_binary(path):
    # An ASan build carries __asan_init in its dynamic symbols; a plain
    # build never does. Cheaper and more robust than parsing ldd output.
    with open(path, "rb") as f:
        return b"__asan_init" in f.read()


class Environment:
    """The cwrap environment of one test run, made by tests/cwrap/env.sh so
    that shell users (tests/demo.sh) and these tests share one definition."""

    def __init__(self, binary, workdir):
        self.binary = str(Path(binary).resolve())
        self.workdir = Path(workdir)
        self.asan = is_asan_binary(self.binary)
        envdir = self.workdir / "env"
        envdir.mkdir()
        base = dict(os.environ)
        base["POP3D_TEST_ENV_DIR"] = str(envdir)
        base["POP3D_TEST_ASAN"] = "1" if self.asan else "0"
        base.pop("LD_PRELOAD", None)
        res = subprocess.run(
            ["/bin/sh", "-c", '. "$0" && env -0', str(ENV_SH)],
            env=base, capture_output=True, check=False)
        if res.returncode != 0:
            raise RuntimeError("tests/cwrap/env.sh failed: "
                               + res.stderr.decode(errors="replace"))
        env = {}
        for item in res.stdout.split(b"\0"):
            if b"=" in item:
                k, v = item.split(b"=", 1)
                env[k.decode()] = v.decode()
        self.child_env = env
        # pam_wrapper keeps its copy of the PAM config in /tmp/pam.<letter>,
        # picked with a race between processes (see PWRAP_RACE_RE); when
        # we are root each pop3d gets a /tmp of its own (command() below),
        # and the wrappers are preloaded into pop3d only, not the launcher.
        self.private_tmp = (os.getuid() == 0 and shutil.which("unshare") is not None
                            and not str(self.workdir).startswith("/tmp/"))
        if not self.private_tmp:
            self.child_env["LD_PRELOAD"] = env["POP3D_CWRAP_PRELOAD"]
        # make check-valgrind: tests/valgrind.sh in front of pop3d.
        self.wrapper = os.environ.get("POP3D_TEST_WRAPPER")
        if self.private_tmp:
            # The private /tmp would hide a binary or wrapper under /tmp
            # (a CI clone there, say): run copies from the work dir.
            bindir = self.workdir / "bin"
            bindir.mkdir()
            if self.binary.startswith("/tmp/"):
                # The test build beside it too (test_hostile_preauth.py).
                hooked = Path(self.binary).with_name("pop3d-test")
                if hooked.exists():
                    shutil.copy2(hooked, bindir / "pop3d-test")
                shutil.copy2(self.binary, bindir / "pop3d")
                self.binary = str(bindir / "pop3d")
            if self.wrapper and self.wrapper.startswith("/tmp/"):
                shutil.copy2(self.wrapper, bindir / "wrapper")
                self.wrapper = str(bindir / "wrapper")
        self.really_root = env["POP3D_TEST_ROOT"] == "1"
        self.default_args = env["POP3D_TEST_ARGS"].split()
        self.users = {}
        for line in Path(env["NSS_WRAPPER_PASSWD"]).read_text().splitlines():
            f = line.split(":")
            self.users[f[0]] = (int(f[2]), int(f[3]), f[5])
        self._tmp_lock = threading.Lock()
        self._tmp_count = 0

    def tempdir(self, name):
        """A fresh directory for one test's spools (the --mailbox dir)."""
        with self._tmp_lock:
            self._tmp_count += 1
            n = self._tmp_count
        d = self.workdir / f"t{n:03d}-{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}"
        d.mkdir()
        return d

    def command(self, maildir, args=()):
        argv = ([self.binary, "--log=stderr", f"--mailbox={maildir}/%u"]
                + self.default_args + list(args))
        if self.wrapper:
            argv = [self.wrapper] + argv
        if self.private_tmp:
            # Same pid as pop3d: unshare and sh exec.
            argv = ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
                    "mount -t tmpfs -o size=8m,mode=1777 pop3d-tmp /tmp && "
                    'LD_PRELOAD="$POP3D_CWRAP_PRELOAD" && export LD_PRELOAD && '
                    'exec "$0" "$@"'] + argv
        return argv

    def spawn(self, maildir, args=(), **kw):
        return subprocess.Popen(self.command(maildir, args), env=self.child_env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, **kw)

    # Spools ---------------------------------------------------------------

    def chown_to(self, path, user):
        """Give path to user: pop3d requires the spool to be the user's.
        Only possible (and only needed) when we are really root; otherwise
        all test users already have our uid."""
        if self.really_root:
            uid, gid, _ = self.users[user]
            os.chown(path, uid, gid, follow_symlinks=False)

    def install_spool(self, path, data, user="alice"):
        path = Path(path)
        path.write_bytes(data)
        os.chmod(path, 0o600)
        self.chown_to(path, user)
        return path


def fixture(name):
    """Bytes of a fixture: tests/scripts/NAME first, then tests/fixtures/."""
    for d in (SCRIPTS, FIXTURES):
        p = d / name
        if p.exists():
            return p.read_bytes()
    raise FileNotFoundError(name)


def dir_snapshot(d):
    """Names in d with (inode, mode, uid, gid) of each: pop3d must leave no
    stray files (dotlocks, temp copies) and keep the spool's inode, owner
    and mode (design.md section 4)."""
    out = {}
    for p in sorted(Path(d).iterdir()):
        st = os.lstat(p)
        out[p.name] = (st.st_ino, st.st_mode, st.st_uid, st.st_gid)
    return out


def compare_snapshots(before, after):
    problems = []
    for name in sorted(set(before) | set(after)):
        if name not in after:
            problems.append(f"{name} disappeared")
        elif name not in before:
            problems.append(f"{name} appeared")
        elif before[name] != after[name]:
            b, a = before[name], after[name]
            problems.append(f"{name}: inode/mode/uid/gid {b} -> {a}")
    return problems


# Locks as an MTA takes them (Postfix local(8), procmail): a dotlock made
# with O_CREAT|O_EXCL, and an fcntl write lock on the whole spool.

class MtaLock:
    def __init__(self, spool, timeout=20.0):
        self.spool = str(spool)
        self.lockname = self.spool + ".lock"
        self.timeout = timeout
        self.fd = None

    def __enter__(self):
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fd = os.open(self.lockname, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                os.close(fd)
                break
            except FileExistsError:
                if time.monotonic() > deadline:
                    raise TestFailure(f"dotlock {self.lockname} still held after {self.timeout}s")
                time.sleep(0.02)
        try:
            self.fd = os.open(self.spool, os.O_RDWR)
            # F_SETLKW would block forever if pop3d never let go; poll so a
            # stuck lock fails the test instead of hanging it.
            while True:
                try:
                    fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as e:
                    if e.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    if time.monotonic() > deadline:
                        raise TestFailure("fcntl write lock on the spool not granted")
                    time.sleep(0.02)
        except BaseException:
            if self.fd is not None:
                os.close(self.fd)
            os.unlink(self.lockname)
            raise
        return self

    def append(self, data):
        os.lseek(self.fd, 0, os.SEEK_END)
        os.write(self.fd, data)
        os.fsync(self.fd)

    def rewrite(self, data):
        """Replace the contents in place (same inode), as an MUA expunge does."""
        os.lseek(self.fd, 0, os.SEEK_SET)
        os.write(self.fd, data)
        os.ftruncate(self.fd, len(data))
        os.fsync(self.fd)

    def __exit__(self, *exc):
        fcntl.lockf(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        os.unlink(self.lockname)


# Output checks --------------------------------------------------------------

def split_crlf_lines(data, what="output"):
    """Split server output into lines, asserting CRLF framing: every LF has
    a CR before it and nothing follows the last CRLF."""
    if not data:
        return []
    lines = data.split(b"\r\n")
    check(lines[-1] == b"",
          f"{what} does not end in CRLF: ...{data[-40:]!r}")
    lines.pop()
    for i, line in enumerate(lines):
        check(b"\n" not in line, f"{what} line {i + 1} has a bare LF: {line[:80]!r}")
    return lines


def multiline_command(cmdline):
    """Does a +OK reply to this client line start a multi-line response?
    Follows RFC 1939/2449: CAPA, RETR, TOP, and LIST/UIDL without argument;
    DEC-14: AUTH without argument lists the mechanisms; R6856-16: LANG
    without argument lists the languages."""
    # DEC-01: a bare LF ends a line too; DEC-02: trailing SP/TAB ignored.
    words = cmdline.rstrip(b" \t\r").split(b" ")
    kw = words[0].upper()
    if kw in (b"CAPA", b"RETR", b"TOP"):
        return True
    return kw in (b"LIST", b"UIDL", b"AUTH", b"LANG") and len(words) == 1


# R5034-06: a SASL challenge is "+", SP, base64 (possibly empty), nothing else.
CHALLENGE_RE = re.compile(rb"^\+ ([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$")


def is_sasl_command(cmdline):
    words = cmdline.rstrip(b" \t\r").split(b" ")
    return words[0].upper() == b"AUTH" and len(words) > 1


def check_transcript(lines, client_lines):
    """Walk the server lines as replies to client_lines (greeting first):
    each status line must match R1939-05 and fit in 512 octets; multi-line
    bodies must end with '.'; UIDL listings must hold valid, unique ids
    (R1939-48, R1939-50); an AUTH exchange may hold challenges (R5034-06),
    each answered by the next client line. Returns the number of replies
    seen."""
    pos = 0

    def status(what):
        nonlocal pos
        line = lines[pos]
        pos += 1
        check(STATUS_RE.match(line),
              f"reply line {pos} to {what!r} is not +OK/-ERR (R1939-05): {line[:100]!r}")
        check(len(line) + 2 <= STATUS_MAX,
              f"reply line {pos} is {len(line) + 2} octets, over 512 (R1939-06)")
        return line

    if not lines:
        return 0
    status("greeting")
    replies = 0
    client = iter(client_lines)
    for cmd in client:
        if pos >= len(lines):
            break
        if is_sasl_command(cmd):
            # Challenges until the final +OK/-ERR; each consumes one
            # client line (DEC-20: the exchange's lines belong to AUTH).
            while pos < len(lines) and (lines[pos].startswith(b"+ ") or lines[pos] == b"+"):
                check(CHALLENGE_RE.match(lines[pos]),
                      f"reply line {pos + 1} to {cmd[:40]!r} is not a SASL challenge "
                      f"'+ base64' (R5034-06): {lines[pos][:100]!r}")
                pos += 1
                if next(client, None) is None or pos >= len(lines):
                    break
            if pos >= len(lines):
                break
        st = status(cmd[:40])
        replies += 1
        if st.startswith(b"+OK") and multiline_command(cmd):
            body = []
            while True:
                check(pos < len(lines),
                      f"multi-line reply to {cmd[:40]!r} not terminated by '.'")
                line = lines[pos]
                pos += 1
                if line == b".":
                    break
                body.append(line)
            if cmd.upper().startswith(b"UIDL"):
                seen = set()
                for entry in body:
                    parts = entry.split(b" ")
                    check(len(parts) == 2 and parts[0].isdigit()
                          and UID_RE.match(parts[1]),
                          f"bad UIDL line {entry!r} (R1939-48)")
                    check(parts[1] not in seen, f"duplicate uid {parts[1]!r} (R1939-50)")
                    seen.add(parts[1])
            if cmd.upper().startswith(b"CAPA"):
                for entry in body:
                    check(len(entry) + 2 <= STATUS_MAX, "CAPA line over 512 octets")
                    check(not entry.startswith(b"."), "CAPA tag starts with '.'")
    if pos != len(lines):
        raise TestFailure(f"{len(lines) - pos} server lines after the replies to "
                          f"all commands: {lines[pos][:80]!r}")
    return replies


def check_stderr(stderr, secrets):
    """Log hygiene: only <N>-prefixed lines (anything else, e.g. a sanitizer
    report, is a failure) and no password anywhere."""
    check(not SANITIZER_RE.search(stderr),
          "sanitizer report on stderr:\n" + stderr.decode(errors="replace")[-3000:])
    for line in stderr.splitlines():
        if PWRAP_RACE_RE.match(line):
            continue
        check(LOG_LINE_RE.match(line), f"stderr line without <N> prefix: {line[:200]!r}")
    for s in secrets:
        check(s not in stderr, f"password {s!r} appears in the log")


# Interactive client ---------------------------------------------------------

class Pop3d:
    """One pop3d process driven line by line over pipes, for the tests that
    interleave sessions and other programs. Always stop it with close()."""

    def __init__(self, env, maildir, args=(), expect_greeting=True, **spawn_kw):
        self.env = env
        self.proc = env.spawn(maildir, args, **spawn_kw)
        self.pid = self.proc.pid
        self.buf = b""
        self.raw = b""
        self.eof = False
        self.stderr = b""
        self.signalled = None
        self._err_thread = threading.Thread(target=self._drain_stderr, daemon=True)
        self._err_thread.start()
        if expect_greeting:
            g = self.readline()
            check(g == b"+OK pop3d ready", f"greeting {g!r}")

    def _drain_stderr(self):
        for chunk in iter(lambda: self.proc.stderr.read1(65536), b""):
            self.stderr += chunk

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        if not data.endswith(b"\n"):
            data += b"\r\n"
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def _fill(self, timeout):
        fd = self.proc.stdout.fileno()
        r, _, _ = select.select([fd], [], [], timeout)
        if not r:
            return False
        chunk = os.read(fd, 65536)
        if not chunk:
            self.eof = True
        self.buf += chunk
        self.raw += chunk
        return True

    def readline(self, timeout=15.0):
        """The next line without its CRLF; None at EOF. Fails on a bare LF
        or when nothing arrives in time."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            if self.eof:
                check(self.buf == b"", f"output ends without CRLF: {self.buf[-60:]!r}")
                return None
            left = deadline - time.monotonic()
            check(left > 0 and self._fill(left) is not False,
                  f"no reply from pop3d within {timeout}s")
        line, self.buf = self.buf.split(b"\n", 1)
        check(line.endswith(b"\r"), f"line without CR: {line[:80]!r}")
        return line[:-1]

    def read_available(self, wait=0.5):
        """Whatever arrives within wait seconds (for 'no reply' checks)."""
        deadline = time.monotonic() + wait
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0 or not self._fill(left):
                break
        out, self.buf = self.buf, b""
        return out

    def cmd(self, line, timeout=15.0):
        self.send(line)
        reply = self.readline(timeout)
        check(reply is not None, f"EOF instead of a reply to {line!r}")
        return reply.decode("latin-1")

    def multiline(self, timeout=15.0):
        """The body of a multi-line reply, dot-unstuffed, as byte lines."""
        out = []
        while True:
            line = self.readline(timeout)
            check(line is not None, "EOF inside a multi-line reply")
            if line == b".":
                return out
            out.append(line[1:] if line.startswith(b".") else line)

    def login(self, user="alice", password="secret"):
        check(self.cmd(f"USER {user}") == "+OK send PASS", "USER refused")
        reply = self.cmd(f"PASS {password}")
        check(reply.startswith("+OK maildrop has "), f"login failed: {reply}")
        return reply

    def wait_eof(self, timeout=15.0):
        """Read until EOF; returns the bytes that came before it."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            left = deadline - time.monotonic()
            check(left > 0, f"pop3d did not close the connection within {timeout}s")
            self._fill(left)
        out, self.buf = self.buf, b""
        return out

    def close(self, timeout=15.0):
        """Stop this pop3d: close its stdin (a client disconnect), then wait;
        SIGKILL by pid if it does not exit. Returns the exit status."""
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            rc = self.proc.wait()
            raise TestFailure(f"pop3d pid {self.pid} did not exit after EOF")
        finally:
            self._err_thread.join(5)
            self.proc.stdout.close()
        return rc

    def signal(self, sig):
        """Send sig; dying by it is then not a test failure."""
        self.signalled = sig
        os.kill(self.pid, sig)

    def kill(self):
        self.signal(signal.SIGKILL)
        self.proc.wait()
        self._err_thread.join(5)
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        self.proc.stdout.close()


class Sessions:
    """Context manager that stops every Pop3d it made, by pid, even when the
    test fails half-way, and checks their logs at the end."""

    def __init__(self, env, maildir):
        self.env = env
        self.maildir = maildir
        self.procs = []

    def start(self, args=(), **kw):
        p = Pop3d(self.env, self.maildir, args, **kw)
        self.procs.append(p)
        return p

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        for p in self.procs:
            if p.proc.poll() is None:
                try:
                    p.kill()
                except ProcessLookupError:
                    pass
        if exc_type is None:
            for p in self.procs:
                rc = p.proc.returncode
                if rc is not None and rc < 0 and -rc != p.signalled:
                    raise TestFailure(f"pop3d died by signal {-rc}")
                check_stderr(p.stderr, [b"secret"])
        return False


def make_workdir():
    return Path(tempfile.mkdtemp(prefix="pop3d-it-", dir="/var/tmp" if os.getuid() == 0 else None))


def remove_workdir(d):
    shutil.rmtree(d, ignore_errors=True)
