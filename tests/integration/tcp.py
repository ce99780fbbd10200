"""pop3d on TCP as inetd would run it, and a line-oriented client, for
the integration tests that need a real connection (test_tls.py,
test_privsep.py, test_auth.py, test_transport.py).

A Python listener on 127.0.0.1 (a free port), or on a socket it is given,
accepts each connection and starts one pop3d with the connected socket as
stdin and stdout, in the cwrap environment. The certificate is made at
test time by `openssl req` in the run's work directory; no key is in the
tree.
"""

import base64
import os
import re
import select
import signal
import socket
import ssl
import subprocess
import threading
import time
import traceback

from harness import TestFailure, TestSkipped, check, check_stderr

HOST = "127.0.0.1"
# pam_wrapper's private config dir is /tmp/pam.<letter>, picked with an
# lstat-then-mkdir race: two processes started together may share one,
# and the first to exit removes it under the other, whose next pam_start
# then fails ([SYS/TEMP]). That is the test environment, not pop3d.
PWRAP_RACE = re.compile(rb"pwrap_init: Failed to create pam_wrapper config dir|"
                        rb"_pam_init_handlers: no default config")
TIMEOUT = 15.0

CAPA_HEAD = [b"TOP", b"UIDL", b"RESP-CODES", b"AUTH-RESP-CODE", b"PIPELINING"]
# Nothing after them unless an option asks: IMPLEMENTATION only with
# --capa-implementation (R2449-19), LOGIN-DELAY and EXPIRE with theirs.
CAPA_TAIL = []
CLEARTEXT = [b"USER", b"SASL PLAIN LOGIN"]
# A plain connection from a local peer: STLS, and cleartext logins allowed.
CAPA_PLAIN_LOCAL = CAPA_HEAD + [b"STLS"] + CLEARTEXT + CAPA_TAIL
# Under TLS (after STLS, or implicit): no STLS; USER and SASL.
CAPA_TLS = CAPA_HEAD + CLEARTEXT + CAPA_TAIL
# A plain connection from a peer that is not local: STLS only.
CAPA_PLAIN_REMOTE = CAPA_HEAD + [b"STLS"] + CAPA_TAIL

PLAIN_IR = base64.b64encode(b"\0alice\0secret").decode()


# The maildrop -----------------------------------------------------------------

def _messages():
    one = [b"Received: by mx.example.net; Mon, 1 Jan 2024 10:00:00 +0000",
           b"Subject: one", b"", b"First line.", b".hidden", b"..two", b".",
           b"after the lone dot", b">From the mbox", b"8-bit: \xe9\xe8 and \xc3\xa9 ",
           b"trailing tab\t"]
    big = [b"Received: by mx.example.net; Tue, 2 Jan 2024 11:30:00 +0000",
           b"Subject: big", b""]
    # About 1.2 MB: many TLS records and relay buffers.
    for i in range(20000):
        big.append(b"%s%05d %s" % (b"." if i % 997 == 0 else b"", i, b"x" * (i % 97)))
    return [one, big]


MESSAGES = _messages()
MBOX = b"\n".join(
    b"From alice@example.org Mon Jan  1 10:00:00 2024\n" + b"\n".join(m) + b"\n"
    for m in MESSAGES)
# What RETR sends, before dot-stuffing (CRLF form).
EXPECTED = [b"\r\n".join(m) + b"\r\n" for m in MESSAGES]
SIZES = [len(e) for e in EXPECTED]
TOTAL = sum(SIZES)
MAILDROP_OK = f"+OK maildrop has 2 messages ({TOTAL} octets)".encode()


def stuffed(crlf):
    return b"".join((b"." + ln if ln.startswith(b".") else ln) + b"\r\n"
                    for ln in crlf.split(b"\r\n")[:-1])


# Certificates -------------------------------------------------------------------

class Certs:
    def __init__(self, d):
        self.dir = d
        self.cert = d / "cert.pem"
        self.key = d / "key.pem"
        self.combined = d / "combined.pem"


_certs = {}
_certs_lock = threading.Lock()


def certs(env):
    """A self-signed EC certificate for localhost, 127.0.0.1 and 192.0.2.1,
    made once per run; the key is root-only (pop3d reads it before it
    drops privileges)."""
    with _certs_lock:
        if env.workdir not in _certs:
            d = env.workdir / "tls"
            d.mkdir()
            c = Certs(d)
            res = subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(c.key),
                 "-out", str(c.cert), "-days", "2", "-subj", "/CN=localhost",
                 "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:192.0.2.1"],
                capture_output=True, timeout=60, check=False)
            if res.returncode != 0:
                raise TestFailure("openssl req failed: " + res.stderr.decode(errors="replace"))
            os.chmod(c.key, 0o600)
            c.combined.write_bytes(c.cert.read_bytes() + c.key.read_bytes())
            os.chmod(c.combined, 0o600)
            _certs[env.workdir] = c
        return _certs[env.workdir]


def tls_args(env, implicit=False):
    c = certs(env)
    args = [f"--tls-cert={c.cert}", f"--tls-key={c.key}"]
    return args + ["--tls-implicit"] if implicit else args


def client_context(env):
    """Verifies pop3d's certificate; unlike Python's default it reports a
    TCP close without close_notify as an error (R8314-04 checks rely on
    that)."""
    ctx = ssl.create_default_context(cafile=str(certs(env).cert))
    ctx.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF
    return ctx


# The server ------------------------------------------------------------------------

class Server:
    """Accepts connections on a listening socket (127.0.0.1 unless one is
    given) and serves each with one pop3d on stdin/stdout. Use as a context
    manager: on exit it stops listening, waits for every pop3d it started
    and the processes they forked (SIGKILL to the process group, whose id
    is pop3d's pid, after a timeout, which fails the test) and checks their
    logs; the joined log is then in .log."""

    def __init__(self, env, name, args=(), listener=None, child_env=None,
                 secrets=(b"secret",)):
        self.env = env
        self.dir = env.tempdir(name)
        env.install_spool(self.dir / "alice", MBOX)
        self.args = list(args)
        self.child_env = child_env or env.child_env
        self.secrets = list(secrets)
        if listener is None:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.bind((HOST, 0))
        listener.listen(16)
        self.lst = listener
        self.addr, self.port = listener.getsockname()[:2]
        self.procs = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.log = b""
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    def _accept_loop(self):
        while not self.stopping.is_set():
            r, _, _ = select.select([self.lst], [], [], 0.05)
            if not r:
                continue
            try:
                conn, _ = self.lst.accept()
            except OSError:
                continue
            with conn:
                # A process group of its own, so that the processes pop3d
                # forks (pre-login, session) can be stopped with it.
                proc = subprocess.Popen(self.env.command(self.dir, self.args),
                                        env=self.child_env, stdin=conn, stdout=conn,
                                        stderr=subprocess.PIPE, start_new_session=True)
            err = []
            t = threading.Thread(target=lambda p=proc, e=err: e.append(p.stderr.read()),
                                 daemon=True)
            t.start()
            with self.lock:
                self.procs.append((proc, err, t))

    def spool(self):
        return (self.dir / "alice").read_bytes()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.stopping.set()
        self.thread.join(5)
        self.lst.close()
        stuck = []
        deadline = time.monotonic() + (20 if exc_type is None else 2)
        with self.lock:
            procs = list(self.procs)
        for proc, err, t in procs:
            # Done when pop3d has exited and its stderr reached EOF, i.e.
            # every process of the connection is gone.
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            t.join(max(0.1, deadline - time.monotonic()))
            if proc.poll() is None or t.is_alive():
                stuck.append(proc.pid)
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
                t.join(5)
            if not t.is_alive():
                proc.stderr.close()
        self.log = b"".join(e[0] for _, e, _ in procs if e)
        if exc_type is not None and PWRAP_RACE.search(self.log):
            self.log += (b"(test environment: pam_wrapper's /tmp/pam.X race between "
                         b"concurrent cwrap processes, see PWRAP_RACE)\n")
        if exc_type is not None and issubclass(exc_type, Exception) \
                and exc_type is not TestSkipped:
            # With pop3d's side of the story.
            msg = str(exc) if exc_type is TestFailure else "".join(
                traceback.format_exception(exc_type, exc, tb))
            raise TestFailure(f"{msg}\n    pop3d log:\n      "
                              + self.log.decode(errors="replace").replace("\n", "\n      ")
                              ) from None
        if exc_type is not None:
            return False
        check(not stuck, f"pop3d {stuck} (or a process it forked) still running after "
              f"its client was done:\n"
              + self.log.decode(errors="replace")[-2000:])
        for proc, _, _ in procs:
            check(proc.returncode >= 0, f"pop3d {proc.pid} killed by signal {-proc.returncode}")
            check(proc.returncode != 99, f"pop3d {proc.pid}: sanitizer exit status")
        check_stderr(self.log, self.secrets)
        return False

    def check_log(self, *patterns):
        """Each regex must match a log line, in this order."""
        lines = self.log.splitlines()
        pos = 0
        for pat in patterns:
            rx = re.compile(pat.encode() if isinstance(pat, str) else pat)
            while pos < len(lines) and not rx.search(lines[pos]):
                pos += 1
            check(pos < len(lines), f"no log line (in order) matches {pat!r}; log:\n      "
                  + b"\n      ".join(lines).decode(errors="replace"))
            pos += 1

    def check_no_log(self, pat):
        rx = re.compile(pat.encode())
        bad = [x for x in self.log.splitlines() if rx.search(x)]
        check(not bad, f"log line must not match {pat!r}: {bad[:1]!r}")


# A line-oriented client over a plain or TLS socket ---------------------------

class Conn:
    def __init__(self, port=None, sock=None, host=HOST):
        if sock is None:
            sock = socket.create_connection((host, port), timeout=TIMEOUT)
        else:
            sock.settimeout(TIMEOUT)
            sock.connect((host, port))
        self.sock = sock
        self.host = host
        self.buf = b""
        self.eof = False

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            self.eof = True
        self.buf += chunk

    def line(self):
        while b"\r\n" not in self.buf:
            check(not self.eof, f"EOF; expected a line (have {self.buf[:80]!r})")
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        check(b"\n" not in line, f"bare LF in {line[:80]!r}")
        return line

    def cmd(self, text):
        self.send(text + "\r\n")
        return self.line()

    def multiline(self):
        out = []
        while (ln := self.line()) != b".":
            out.append(ln[1:] if ln.startswith(b".") else ln)
        return out

    def capa(self):
        check(self.cmd("CAPA") == b"+OK capability list follows", "CAPA refused")
        return self.multiline()

    def retr(self, n):
        reply = self.cmd(f"RETR {n}")
        check(reply == f"+OK {SIZES[n - 1]} octets".encode(), f"RETR {n}: {reply!r}")
        return b"".join(ln + b"\r\n" for ln in self.multiline())

    def quiet(self, wait):
        """Nothing arrives within wait seconds (and the connection stays
        open)."""
        r, _, _ = select.select([self.sock], [], [], wait)
        if r:
            data = self.sock.recv(65536, socket.MSG_PEEK)
            raise TestFailure(f"unexpected data from pop3d: {data[:200]!r}"
                              if data else "pop3d closed the connection")

    def starttls(self, env, **kw):
        """Handshake on this connection. Nothing the server sent may be
        waiting unread in cleartext."""
        check(self.buf == b"", f"cleartext data before the handshake: {self.buf[:100]!r}")
        self.quiet(0.2)
        self.sock = client_context(env).wrap_socket(
            self.sock, server_hostname="localhost", suppress_ragged_eofs=False, **kw)
        return self.sock

    def read_to_eof(self, what=""):
        """Everything up to EOF; under TLS the EOF must be a close_notify
        (an abrupt TCP close raises SSLEOFError, R8314-04)."""
        try:
            while not self.eof:
                self._fill()
        except (ssl.SSLError, ConnectionResetError) as e:
            raise TestFailure(f"{what + ': ' if what else ''}connection reset, or TLS ended "
                              f"without close_notify, after {len(self.buf)} octets "
                              f"(...{self.buf[-60:]!r}): {e}") from None
        out, self.buf = self.buf, b""
        return out

    def close(self):
        self.sock.close()


def tls_conn(env, port):
    """A connection to an implicit-TLS pop3d, greeting read."""
    c = Conn(port)
    c.starttls(env)
    check(c.line() == b"+OK pop3d ready", "greeting under implicit TLS")
    return c


def stls_conn(env, port):
    """A plain connection upgraded with STLS, greeting read."""
    c = Conn(port)
    check(c.line() == b"+OK pop3d ready", "greeting")
    check(c.cmd("STLS") == b"+OK begin TLS negotiation", "STLS refused")
    c.starttls(env)
    return c


def run_tool(argv, timeout=60, **kw):
    """Run a client program; subprocess.run kills it by pid on timeout."""
    try:
        return subprocess.run(argv, capture_output=True, timeout=timeout, check=False, **kw)
    except subprocess.TimeoutExpired:
        raise TestFailure(f"{argv[0]} did not finish in {timeout}s") from None


def tool_output(res):
    return (res.stdout + res.stderr).decode(errors="replace")[-1500:]


# Pipelined commands after a login ----------------------------------------------

PIPELINE_BURST = 3000


def pipelined_cases():
    """(data, expected transcript, tag) for commands pipelined after a
    login, each sent in one write: USER/PASS then STAT, LIST, QUIT; the
    same after an AUTH PLAIN exchange; and a burst larger than the 16 KiB
    input buffer (3000 NOOPs)."""
    lines = [b"+OK send PASS", MAILDROP_OK, b"+OK 2 %d" % TOTAL,
             b"+OK 2 messages (%d octets)" % TOTAL,
             b"1 %d" % SIZES[0], b"2 %d" % SIZES[1], b".",
             b"+OK pop3d signing off (2 messages left)"]
    want = b"".join(x + b"\r\n" for x in lines)
    script = b"USER alice\r\nPASS secret\r\nSTAT\r\nLIST\r\nQUIT\r\n"
    auth = b"AUTH PLAIN\r\n" + PLAIN_IR.encode() + b"\r\nSTAT\r\nLIST\r\nQUIT\r\n"
    auth_want = b"+ \r\n" + want.split(b"\r\n", 1)[1]
    burst = (b"USER alice\r\nPASS secret\r\n" + b"NOOP\r\n" * PIPELINE_BURST
             + b"QUIT\r\n")
    burst_want = (b"+OK send PASS\r\n" + MAILDROP_OK + b"\r\n" + b"+OK\r\n" * PIPELINE_BURST
                  + b"+OK pop3d signing off (2 messages left)\r\n")
    return ((script, want, "USER/PASS"), (auth, auth_want, "AUTH PLAIN"),
            (burst, burst_want, "burst"))


def run_pipelined(c, data, expect, what):
    """One sendall, then read to EOF: the replies (15 KB at most) fit in
    the socket buffers. (No writer thread: an SSL object must not be read
    and written from two threads at once.)"""
    c.send(data)
    got = c.read_to_eof(what)
    check(got == expect, f"{what}: transcript differs ({len(got)} octets, expected "
          f"{len(expect)}): ...{got[-200:]!r}")
    c.close()
