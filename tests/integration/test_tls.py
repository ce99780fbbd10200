"""TLS: STLS (RFC 2595) and implicit TLS (RFC 8314), with real clients
(openssl s_client, Python's poplib and ssl, curl, fetchmail), and the
cleartext-password policy seen from a peer that is not local.

pop3d runs as inetd would run it: a Python listener on 127.0.0.1 (a free
port) accepts each connection and starts one pop3d with the connected
socket as stdin and stdout, in the cwrap environment. The certificate is
made at test time by `openssl req` in the run's work directory; no key is
in the tree. The non-local tests build two network namespaces joined by a
veth pair (192.0.2.1 for pop3d, 192.0.2.2 for the client) and remove them
afterwards; nothing listens outside 127.0.0.1 and those namespaces.
Each test names the checklist IDs it covers in its docstring.
"""

import base64
import ctypes
import itertools
import os
import poplib
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import traceback
import unicodedata
from pathlib import Path

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
CAPA_TAIL = [b"IMPLEMENTATION pop3d-0.1"]
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


# Tests -------------------------------------------------------------------------------

def test_stls_openssl_s_client(env):
    """R2595-07 R2595-09 R2595-12 R5034-02: `openssl s_client -starttls
    pop3` (certificate verified): after the handshake the session is still
    in AUTHORIZATION (STAT -ERR, even with a client certificate, R8314-03),
    CAPA lists USER and SASL but no STLS, and USER/PASS and RETR work."""
    c = certs(env)
    sent = b"STAT\r\nCAPA\r\nUSER alice\r\nPASS secret\r\nRETR 1\r\nQUIT\r\n"
    want = (b"-ERR command not valid in this state\r\n"
            + b"+OK capability list follows\r\n"
            + b"".join(x + b"\r\n" for x in CAPA_TLS) + b".\r\n"
            + b"+OK send PASS\r\n" + MAILDROP_OK + b"\r\n"
            + b"+OK %d octets\r\n" % SIZES[0] + stuffed(EXPECTED[0]) + b".\r\n"
            + b"+OK pop3d signing off (2 messages left)\r\n")
    with Server(env, "stls-s-client", tls_args(env)) as srv:
        res = run_tool(["openssl", "s_client", "-connect", f"{HOST}:{srv.port}",
                        "-starttls", "pop3", "-CAfile", str(c.cert), "-verify_return_error",
                        "-verify_ip", HOST, "-cert", str(c.cert), "-key", str(c.key),
                        "-quiet"], input=sent)
    check(res.returncode == 0, f"s_client failed ({res.returncode}): {tool_output(res)}")
    out = res.stdout
    check(out.endswith(want), f"s_client transcript differs:\n{out[-3000:]!r}")
    # s_client itself prints the pre-TLS greeting, padded with NULs to the
    # length of the STLS reply; pop3d sent nothing else.
    check(re.fullmatch(rb"(\+OK pop3d ready\r\n\0*)?", out[:-len(want)]),
          f"unexpected output before the replies: {out[:-len(want)][:200]!r}")
    srv.check_log(r"^<6>connect from 127\.0\.0\.1$",
                  r"^<6>STLS: peer=127\.0\.0\.1 TLSv1\.[23]$",
                  r"^<6>login: user=alice peer=127\.0\.0\.1 method=USER tls=yes$")


def test_implicit_openssl_s_client(env):
    """R8314-01 R8314-03 R2595-05 R2595-08 R2595-09: `openssl s_client` on
    the implicit-TLS port: the greeting is the first data inside TLS; a
    client certificate does not log in (STAT -ERR); CAPA has no STLS, and
    STLS gets -ERR; then a login and RETR of a 1.2 MB message."""
    c = certs(env)
    sent = b"STAT\r\nCAPA\r\nSTLS\r\nUSER alice\r\nPASS secret\r\nRETR 2\r\nQUIT\r\n"
    want = (b"+OK pop3d ready\r\n"
            + b"-ERR command not valid in this state\r\n"
            + b"+OK capability list follows\r\n"
            + b"".join(x + b"\r\n" for x in CAPA_TLS) + b".\r\n"
            + b"-ERR TLS is already active\r\n"
            + b"+OK send PASS\r\n" + MAILDROP_OK + b"\r\n"
            + b"+OK %d octets\r\n" % SIZES[1] + stuffed(EXPECTED[1]) + b".\r\n"
            + b"+OK pop3d signing off (2 messages left)\r\n")
    with Server(env, "implicit-s-client", tls_args(env, implicit=True)) as srv:
        res = run_tool(["openssl", "s_client", "-connect", f"{HOST}:{srv.port}",
                        "-CAfile", str(c.cert), "-verify_return_error", "-verify_ip", HOST,
                        "-cert", str(c.cert), "-key", str(c.key), "-quiet"], input=sent)
    check(res.returncode == 0, f"s_client failed ({res.returncode}): {tool_output(res)}")
    check(res.stdout == want, "s_client transcript differs: first difference at "
          + str(next((i for i, (a, b) in enumerate(zip(res.stdout, want)) if a != b),
                     min(len(want), len(res.stdout))))
          + f"\n    got: {res.stdout[:300]!r}...")
    srv.check_log(r"^<6>login: user=alice peer=127\.0\.0\.1 method=USER tls=yes$")
    srv.check_no_log(r"STLS:")


def test_poplib_stls(env):
    """R2595-05 R2595-07 R2595-12 R5034-02: poplib's stls(): CAPA before
    (STLS listed) and after (STLS gone, USER and SASL kept), then
    user/pass_, RETR of both messages byte for byte, QUIT."""
    with Server(env, "poplib-stls", tls_args(env)) as srv:
        p = poplib.POP3(HOST, srv.port, timeout=TIMEOUT)
        try:
            check(p.getwelcome() == b"+OK pop3d ready", "greeting")
            before = p.capa()
            check("STLS" in before and "USER" in before
                  and before.get("SASL") == ["PLAIN", "LOGIN"], f"CAPA before STLS: {before}")
            check(p.stls(client_context(env)) == b"+OK begin TLS negotiation", "stls()")
            after = p.capa()
            check("STLS" not in after, f"STLS still listed under TLS (R2595-05): {after}")
            check("USER" in after and after.get("SASL") == ["PLAIN", "LOGIN"],
                  f"CAPA under TLS: {after}")
            p.user("alice")
            check(p.pass_("secret") == MAILDROP_OK, "login")
            check(p.stat() == (2, TOTAL), "STAT")
            for n in (1, 2):
                resp, lines, octets = p.retr(n)
                check(resp == b"+OK %d octets" % SIZES[n - 1], f"RETR {n}: {resp!r}")
                check(b"".join(x + b"\r\n" for x in lines) == EXPECTED[n - 1],
                      f"RETR {n}: message differs")
            check(p.quit() == b"+OK pop3d signing off (2 messages left)", "QUIT")
        finally:
            p.close()
    srv.check_log(r"^<6>STLS: peer=127\.0\.0\.1 TLSv1\.[23]$",
                  r"^<6>login: user=alice peer=127\.0\.0\.1 method=USER tls=yes$",
                  r"^<6>logout: user=alice reason=QUIT retrieved=2/")


def test_poplib_implicit(env):
    """R8314-01 R2595-05 R2595-08 R5034-19 R5034-03: poplib.POP3_SSL on the
    implicit port: CAPA without STLS, STLS -ERR, AUTH PLAIN over TLS (with
    the key read from the certificate file: --tls-cert only), RETR."""
    c = certs(env)
    with Server(env, "poplib-implicit", [f"--tls-cert={c.combined}", "--tls-implicit"]) as srv:
        p = poplib.POP3_SSL(HOST, srv.port, context=client_context(env), timeout=TIMEOUT)
        try:
            check(p.getwelcome() == b"+OK pop3d ready", "greeting")
            caps = p.capa()
            check("STLS" not in caps, f"STLS listed on the implicit port: {caps}")
            check("USER" in caps and caps.get("SASL") == ["PLAIN", "LOGIN"], f"CAPA: {caps}")
            try:
                p._shortcmd("STLS")
                raise TestFailure("STLS accepted under implicit TLS (R2595-08)")
            except poplib.error_proto as e:
                check(e.args[0] == b"-ERR TLS is already active", f"STLS: {e}")
            check(p._shortcmd("AUTH PLAIN " + PLAIN_IR) == MAILDROP_OK, "AUTH PLAIN")
            resp, lines, _ = p.retr(1)
            check(b"".join(x + b"\r\n" for x in lines) == EXPECTED[0], "RETR 1 differs")
            p.quit()
        finally:
            p.close()
    srv.check_log(r"^<6>login: user=alice peer=127\.0\.0\.1 method=PLAIN tls=yes$")


def test_curl_stls_and_pop3s(env):
    """R2595-07 R8314-01 R5034-19: curl --ssl-reqd pop3:// (STLS, AUTH
    PLAIN) and pop3s:// (implicit, AUTH LOGIN) fetch each message byte for
    byte, and list them."""
    cafile = str(certs(env).cert)

    def curl(url, *opts):
        res = run_tool(["curl", "-sS", "--cacert", cafile, "-u", "alice:secret",
                        "--max-time", "30", *opts, url])
        check(res.returncode == 0, f"curl {url} failed ({res.returncode}): {tool_output(res)}")
        return res.stdout

    with Server(env, "curl-stls", tls_args(env)) as stls, \
            Server(env, "curl-pop3s", tls_args(env, implicit=True)) as imp:
        for n in (1, 2):
            check(curl(f"pop3://{HOST}:{stls.port}/{n}", "--ssl-reqd") == EXPECTED[n - 1],
                  f"curl --ssl-reqd pop3:// message {n} differs")
            check(curl(f"pop3s://{HOST}:{imp.port}/{n}", "--login-options", "AUTH=LOGIN")
                  == EXPECTED[n - 1], f"curl pop3s:// message {n} differs")
        listing = b"".join(b"%d %d\r\n" % (i + 1, s) for i, s in enumerate(SIZES))
        check(curl(f"pop3s://{HOST}:{imp.port}/") == listing, "curl pop3s:// listing")
    stls.check_log(*[r"^<6>login: user=alice peer=127\.0\.0\.1 method=PLAIN tls=yes$"] * 2)
    imp.check_log(*[r"^<6>login: user=alice peer=127\.0\.0\.1 method=LOGIN tls=yes$"] * 2,
                  r"^<6>login: user=alice peer=127\.0\.0\.1 method=PLAIN tls=yes$")
    check(stls.spool() == MBOX and imp.spool() == MBOX, "spool changed")


def test_fetchmail_sslproto(env):
    """R2595-07 R8314-01: fetchmail --sslproto tls1.2+ (with the
    certificate checked) fetches both messages through STLS, and with
    --ssl on the implicit port. fetchmail warns when run as root but
    works; its MDA appends to a file."""
    if shutil.which("fetchmail") is None:
        raise TestSkipped("fetchmail not installed (Debian: apt-get install fetchmail)")
    cafile = str(certs(env).cert)
    with Server(env, "fetchmail-stls", tls_args(env)) as stls, \
            Server(env, "fetchmail-ssl", tls_args(env, implicit=True)) as imp:
        for srv, extra in ((stls, []), (imp, ["--ssl"])):
            home = srv.dir / "fetchmail"
            home.mkdir()
            rc = home / "fetchmailrc"
            rc.write_text(f'poll {HOST} protocol pop3 port {srv.port}\n'
                          f'  user "alice" there with password "secret"\n')
            os.chmod(rc, 0o600)
            out = home / "delivered"
            res = run_tool(
                ["fetchmail", "-f", str(rc), "--nosyslog", "--nodetach", "-v", "--keep",
                 "--idfile", str(home / "ids"), "--sslproto", "tls1.2+", "--sslcertck",
                 "--sslcertfile", cafile, "--sslcommonname", "localhost",
                 "--mda", f"/bin/sh -c 'cat >> {out}'", *extra],
                env={**os.environ, "HOME": str(home), "FETCHMAILHOME": str(home)})
            check(res.returncode == 0,
                  f"fetchmail {' '.join(extra)} failed ({res.returncode}): {tool_output(res)}")
            got = out.read_bytes()
            # The MDA gets LF line ends and a Received: line on top.
            for m in EXPECTED:
                check(m.replace(b"\r\n", b"\n") in got,
                      f"fetchmail {' '.join(extra)}: a message is missing or altered")
    stls.check_log(r"^<6>STLS: peer=", r"^<6>login: user=alice peer=127\.0\.0\.1 "
                   r"method=USER tls=yes$", r"^<6>logout: user=alice reason=QUIT retrieved=2/")
    imp.check_log(r"^<6>login: user=alice peer=127\.0\.0\.1 method=USER tls=yes$",
                  r"^<6>logout: user=alice reason=QUIT retrieved=2/")


def test_stls_injection(env):
    """R2595-10 R2595-11: octets pipelined after STLS are discarded, never
    run. One write of STLS and CAPA gets the STLS +OK only, and no CAPA
    reply ever comes, in cleartext or inside TLS; one write of STLS, USER
    and PASS leaves the client logged out after the handshake. Commands
    pipelined before STLS are answered, in order, in cleartext (R2449-15)."""
    with Server(env, "stls-injection", tls_args(env)) as srv:
        c = Conn(srv.port)
        check(c.line() == b"+OK pop3d ready", "greeting")
        c.send(b"STLS\r\nCAPA\r\n")
        check(c.line() == b"+OK begin TLS negotiation", "STLS")
        c.starttls(env)  # fails if any cleartext follows the +OK
        c.send(b"QUIT\r\n")
        rest = c.read_to_eof()
        check(rest == b"+OK pop3d signing off\r\n",
              f"after STLS+CAPA and QUIT, pop3d sent {rest[:300]!r} (R2595-10)")
        c.close()

        c = Conn(srv.port)
        check(c.line() == b"+OK pop3d ready", "greeting")
        c.send(b"STLS\r\nUSER alice\r\nPASS secret\r\nSTAT\r\n")
        check(c.line() == b"+OK begin TLS negotiation", "STLS")
        c.starttls(env)
        check(c.cmd("STAT") == b"-ERR command not valid in this state",
              "injected USER/PASS logged in (R2595-10)")
        check(c.cmd("PASS secret") == b"-ERR USER first", "injected USER kept")
        check(c.cmd("QUIT") == b"+OK pop3d signing off", "QUIT")
        c.close()

        c = Conn(srv.port)
        check(c.line() == b"+OK pop3d ready", "greeting")
        c.send(b"CAPA\r\nSTLS\r\n")
        check(c.line() == b"+OK capability list follows", "CAPA before STLS")
        check(c.multiline() == CAPA_PLAIN_LOCAL, "CAPA before STLS")
        check(c.line() == b"+OK begin TLS negotiation", "STLS after CAPA")
        c.starttls(env)
        check(c.capa() == CAPA_TLS, "CAPA after STLS")
        check(c.cmd("QUIT") == b"+OK pop3d signing off", "QUIT")
        c.close()
    srv.check_no_log(r"login")


def test_capa_and_stls_states(env):
    """R2595-05 R2595-06 R2595-08 R2595-12 R5034-02 R5034-01: CAPA before
    STLS lists STLS; STLS with an argument is -ERR and starts nothing;
    after STLS, CAPA drops STLS and keeps USER/SASL, and a second STLS gets
    -ERR; after login CAPA is the same (SASL kept) and STLS is -ERR."""
    with Server(env, "capa-stls", tls_args(env)) as srv:
        c = Conn(srv.port)
        check(c.line() == b"+OK pop3d ready", "greeting")
        check(c.capa() == CAPA_PLAIN_LOCAL, "plain CAPA on a local peer with a certificate")
        check(c.cmd("STLS now") == b"-ERR too many arguments", "STLS with an argument")
        c.quiet(0.2)
        check(c.cmd("NOOP") == b"-ERR command not valid in this state",
              "still in cleartext AUTHORIZATION after a bad STLS")
        check(c.cmd("STLS") == b"+OK begin TLS negotiation", "STLS")
        c.starttls(env)
        check(c.capa() == CAPA_TLS, "CAPA after STLS")
        check(c.cmd("STLS") == b"-ERR TLS is already active", "STLS twice (R2595-08)")
        check(c.cmd("AUTH") == b"+OK SASL mechanisms follow", "AUTH list")
        check(c.multiline() == [b"PLAIN", b"LOGIN"], "mechanisms under TLS")
        check(c.cmd("AUTH PLAIN " + PLAIN_IR) == MAILDROP_OK, "AUTH PLAIN under TLS")
        check(c.capa() == CAPA_TLS, "CAPA in TRANSACTION under TLS (R5034-01)")
        check(c.cmd("STLS") == b"-ERR command not valid in this state", "STLS in TRANSACTION")
        check(c.cmd("QUIT") == b"+OK pop3d signing off (2 messages left)", "QUIT")
        c.close()
    with Server(env, "capa-implicit", tls_args(env, implicit=True)) as imp:
        c = tls_conn(env, imp.port)
        check(c.capa() == CAPA_TLS, "CAPA on the implicit port (R2595-05)")
        check(c.cmd("STLS") == b"-ERR TLS is already active", "STLS on the implicit port")
        check(c.cmd("QUIT") == b"+OK pop3d signing off", "QUIT")
        c.close()


def test_stls_forgets_user(env):
    """R2595-11: USER before STLS is forgotten: PASS after the handshake
    gets -ERR; USER and PASS inside TLS then log in."""
    with Server(env, "stls-user", tls_args(env)) as srv:
        c = Conn(srv.port)
        check(c.line() == b"+OK pop3d ready", "greeting")
        check(c.cmd("USER alice") == b"+OK send PASS", "USER")
        check(c.cmd("STLS") == b"+OK begin TLS negotiation", "STLS")
        c.starttls(env)
        check(c.cmd("PASS secret") == b"-ERR USER first", "USER survived STLS (R2595-11)")
        check(c.cmd("USER alice") == b"+OK send PASS", "USER under TLS")
        check(c.cmd("PASS secret") == MAILDROP_OK, "PASS under TLS")
        check(c.cmd("QUIT") == b"+OK pop3d signing off (2 messages left)", "QUIT")
        c.close()
    srv.check_log(r"^<6>login: user=alice peer=127\.0\.0\.1 method=USER tls=yes$")


def test_tls11_refused(env):
    """R8314-05 R2595-03 R2595-13: a client limited to TLS 1.1 or 1.0 (its
    own security level lowered so that it really offers it; libc-client
    2007, PHP's imap, offers only 1.0 on STLS) is refused on the implicit
    port and after STLS; the log says why; TLS 1.2 works."""
    cafile = str(certs(env).cert)
    with Server(env, "tls11-implicit", tls_args(env, implicit=True)) as imp, \
            Server(env, "tls11-stls", tls_args(env)) as stls:
        for srv, starttls, version in ((imp, [], "-tls1_1"),
                                       (stls, ["-starttls", "pop3"], "-tls1_1"),
                                       (stls, ["-starttls", "pop3"], "-tls1")):
            old = [version, "-cipher", "DEFAULT@SECLEVEL=0"]
            res = run_tool(["openssl", "s_client", "-connect", f"{HOST}:{srv.port}",
                            "-CAfile", cafile, *starttls, *old], input=b"CAPA\r\nQUIT\r\n")
            check(res.returncode != 0, f"{version} handshake succeeded: {tool_output(res)}")
            check(b"+OK capability" not in res.stdout and b"IMPLEMENTATION" not in res.stdout,
                  f"pop3d answered a {version} client")
        res = run_tool(["openssl", "s_client", "-connect", f"{HOST}:{stls.port}",
                        "-CAfile", cafile, "-starttls", "pop3", "-tls1_2", "-quiet"],
                       input=b"QUIT\r\n")
        check(res.returncode == 0 and res.stdout.endswith(b"+OK pop3d signing off\r\n"),
              f"TLS 1.2 refused: {tool_output(res)}")
    for srv in (imp, stls):
        srv.check_log(r"^<5>TLS handshake: .*unsupported protocol$",
                      r"^<6>logout: user=- peer=127\.0\.0\.1 reason=TLS handshake failed$")
    stls.check_log(*[r"^<5>TLS handshake: .*unsupported protocol$"] * 2)
    stls.check_log(r"^<6>STLS: peer=127\.0\.0\.1 TLSv1\.2$")


def test_failed_handshake_closes(env):
    """R2595-13 R8314-02: a handshake that fails (the client sends
    cleartext commands instead of a ClientHello) closes the connection:
    no POP3 reply in cleartext, no fallback, on the STLS and the implicit
    port alike. At most a TLS alert record comes back."""
    def no_plaintext(c, what):
        try:
            c.sock.settimeout(TIMEOUT)
            data = c.buf
            while True:
                chunk = c.sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass
        check(data == b"" or data[:1] == b"\x15",
              f"{what}: pop3d sent something other than a TLS alert: {data[:200]!r}")

    with Server(env, "bad-handshake-stls", tls_args(env)) as stls, \
            Server(env, "bad-handshake-implicit", tls_args(env, implicit=True)) as imp:
        c = Conn(stls.port)
        check(c.line() == b"+OK pop3d ready", "greeting")
        check(c.cmd("STLS") == b"+OK begin TLS negotiation", "STLS")
        c.send(b"\x16\x03\x01\x00\x05hello\r\nCAPA\r\nUSER alice\r\nPASS secret\r\n")
        no_plaintext(c, "bad ClientHello after STLS")
        c.close()
        c = Conn(imp.port)
        c.send(b"CAPA\r\nUSER alice\r\nPASS secret\r\n")
        no_plaintext(c, "cleartext on the implicit port")
        c.close()
    for srv in (stls, imp):
        srv.check_log(r"TLS handshake", r"reason=TLS handshake failed$")
        srv.check_no_log(r"login")


def test_tls_gone_no_cleartext(env):
    """R2595-02 R2595-13: when the client ends TLS (close_notify) and goes
    on in cleartext, pop3d runs none of it: before login the connection
    closes; after login the session ends without UPDATE (a cleartext
    DELE and QUIT leave the spool as it was)."""
    with Server(env, "tls-gone", tls_args(env)) as srv:
        for login in (False, True):
            c = stls_conn(env, srv.port)
            if login:
                check(c.cmd("USER alice") == b"+OK send PASS", "USER")
                check(c.cmd("PASS secret") == MAILDROP_OK, "PASS")
            raw = c.sock.unwrap()
            c.sock, c.buf = raw, b""
            got = b""
            try:
                raw.sendall(b"DELE 1\r\nQUIT\r\n" if login else b"USER alice\r\nCAPA\r\n")
                raw.settimeout(TIMEOUT)
                while chunk := raw.recv(65536):
                    got += chunk
            except (ConnectionResetError, BrokenPipeError):
                pass
            check(got == b"", f"pop3d answered cleartext after TLS ended: {got[:200]!r}")
            c.close()
        check(srv.spool() == MBOX, "cleartext DELE/QUIT after TLS ended changed the spool")
    srv.check_log(r"^<6>logout: user=- peer=127\.0\.0\.1 reason=disconnect$",
                  r"^<6>login: user=alice",
                  r"^<6>logout: user=alice reason=disconnect retrieved=0/0 deleted=0/0 left=2/")


def test_close_notify_after_quit(env):
    """R8314-04: after QUIT pop3d sends close_notify before closing TCP,
    on the implicit port before and after login, and after STLS and
    login (the relay path). The client treats a bare TCP close as an
    error, so a clean EOF proves the alert came."""
    with Server(env, "close-notify-implicit", tls_args(env, implicit=True)) as imp, \
            Server(env, "close-notify-stls", tls_args(env)) as stls:
        c = tls_conn(env, imp.port)
        c.send(b"QUIT\r\n")
        check(c.read_to_eof() == b"+OK pop3d signing off\r\n", "QUIT before login")
        c.close()
        c = tls_conn(env, imp.port)
        check(c.cmd("USER alice") == b"+OK send PASS", "USER")
        check(c.cmd("PASS secret") == MAILDROP_OK, "PASS")
        c.send(b"QUIT\r\n")
        check(c.read_to_eof() == b"+OK pop3d signing off (2 messages left)\r\n", "QUIT")
        c.close()
        c = stls_conn(env, stls.port)
        check(c.cmd("AUTH PLAIN " + PLAIN_IR) == MAILDROP_OK, "AUTH PLAIN")
        c.send(b"QUIT\r\n")
        check(c.read_to_eof() == b"+OK pop3d signing off (2 messages left)\r\n", "QUIT")
        c.close()


def test_implicit_silent_before_handshake(env):
    """R8314-02: on the implicit-TLS port pop3d sends nothing before the
    ClientHello: a raw TCP connection gets no octet in 2 s and stays open;
    a handshake on it then brings the greeting as the first data."""
    with Server(env, "implicit-silent", tls_args(env, implicit=True)) as srv:
        c = Conn(srv.port)
        c.quiet(2.0)
        c.starttls(env)
        check(c.line() == b"+OK pop3d ready", "greeting after the handshake")
        check(c.cmd("QUIT") == b"+OK pop3d signing off", "QUIT")
        c.close()


def test_pipelined_after_pass(env):
    """R2449-15 R1939-01: commands pipelined after PASS reach the session
    intact over TCP (pop3d serves whatever port inetd or the unit gives it),
    one write each: without TLS (the descriptor and the read-ahead
    input are handed over), after STLS and under implicit TLS (the relay);
    and a burst larger than the 16 KiB input buffer (3000 NOOPs); the
    same after an AUTH PLAIN exchange."""
    burst_n = 3000
    lines = [b"+OK send PASS", MAILDROP_OK, b"+OK 2 %d" % TOTAL,
             b"+OK 2 messages (%d octets)" % TOTAL,
             b"1 %d" % SIZES[0], b"2 %d" % SIZES[1], b".",
             b"+OK pop3d signing off (2 messages left)"]
    want = b"".join(x + b"\r\n" for x in lines)
    script = b"USER alice\r\nPASS secret\r\nSTAT\r\nLIST\r\nQUIT\r\n"
    auth = b"AUTH PLAIN\r\n" + PLAIN_IR.encode() + b"\r\nSTAT\r\nLIST\r\nQUIT\r\n"
    auth_want = b"+ \r\n" + want.split(b"\r\n", 1)[1]
    burst = b"USER alice\r\nPASS secret\r\n" + b"NOOP\r\n" * burst_n + b"QUIT\r\n"
    burst_want = (b"+OK send PASS\r\n" + MAILDROP_OK + b"\r\n" + b"+OK\r\n" * burst_n
                  + b"+OK pop3d signing off (2 messages left)\r\n")

    def run(c, data, expect, what):
        # One sendall, then read: the replies (15 KB at most) fit in the
        # socket buffers. (No writer thread: an SSL object must not be
        # read and written from two threads at once.)
        c.send(data)
        got = c.read_to_eof(what)
        check(got == expect, f"{what}: transcript differs ({len(got)} octets, expected "
              f"{len(expect)}): ...{got[-200:]!r}")
        c.close()

    with Server(env, "pipeline-plain", tls_args(env)) as plain, \
            Server(env, "pipeline-implicit", tls_args(env, implicit=True)) as imp:
        for data, expect, tag in ((script, want, "USER/PASS"), (auth, auth_want, "AUTH PLAIN"),
                                  (burst, burst_want, "burst")):
            c = Conn(plain.port)
            check(c.line() == b"+OK pop3d ready", "greeting")
            run(c, data, expect, f"{tag} without TLS")
            run(stls_conn(env, plain.port), data, expect, f"{tag} after STLS")
            run(tls_conn(env, imp.port), data, expect, f"{tag} under implicit TLS")
    plain.check_log(*[r"^<6>logout: user=alice reason=QUIT"] * 6)
    imp.check_log(*[r"^<6>logout: user=alice reason=QUIT"] * 3)


def test_relay_keeps_flowing(env):
    """R2449-15 R2449-16: under TLS (the pre-login process relays between
    the TLS connection and the session) a client that writes and reads at
    its own pace gets every reply: 200000 pipelined NOOPs (1.2 MB in), and
    100 RETRs of the 1.2 MB message (110 MB out)."""
    with Server(env, "relay-flow", tls_args(env, implicit=True)) as srv:
        for cmd, n, each in ((b"NOOP\r\n", 200000, None), (b"RETR 2\r\n", 100, 2)):
            c = tls_conn(env, srv.port)
            check(c.cmd("USER alice") == b"+OK send PASS", "USER")
            check(c.cmd("PASS secret") == MAILDROP_OK, "PASS")
            out = cmd * n + b"QUIT\r\n"
            got = bytearray()
            sock = c.sock
            sock.setblocking(False)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                # Decrypted data may wait inside the SSL object, unseen by select.
                pending = sock.pending()
                r, w, _ = select.select([sock], [sock] if out else [], [],
                                        0 if pending else TIMEOUT)
                check(r or w or pending, f"{cmd!r}: no progress for {TIMEOUT}s ({len(out)} "
                      f"octets unsent, {len(got)} received)")
                if w and out:
                    try:
                        out = out[sock.send(out[:65536]):]
                    except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                        pass
                if r or pending:
                    try:
                        data = sock.recv(1 << 20)
                    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                        continue
                    if not data:
                        break
                    got += data
            else:
                raise TestFailure(f"{cmd!r}: not done in 60 s")
            c.close()
            if each is None:
                want = b"+OK\r\n" * n
            else:
                want = (b"+OK %d octets\r\n" % SIZES[each - 1] + stuffed(EXPECTED[each - 1])
                        + b".\r\n") * n
            want += b"+OK pop3d signing off (2 messages left)\r\n"
            check(bytes(got) == want, f"{cmd!r} x {n}: {len(got)} octets back, expected "
                  f"{len(want)}; ends ...{bytes(got[-80:])!r}")


def test_handshake_timeout(env):
    """R2595-13: a client that never sends a ClientHello (on the implicit
    port, or after STLS) is dropped after --timeout, and the log says
    so."""
    short = ["--timeout=1"]
    with Server(env, "hs-timeout-implicit", tls_args(env, implicit=True) + short) as imp, \
            Server(env, "hs-timeout-stls", tls_args(env) + short) as stls:
        for srv in (imp, stls):
            c = Conn(srv.port)
            if srv is stls:
                check(c.line() == b"+OK pop3d ready", "greeting")
                check(c.cmd("STLS") == b"+OK begin TLS negotiation", "STLS")
            start = time.monotonic()
            data = c.sock.recv(100)
            took = time.monotonic() - start
            check(data == b"", f"data instead of a close: {data!r}")
            check(0.5 < took < 10, f"closed after {took:.1f}s with --timeout=1")
            c.close()
    for srv in (imp, stls):
        srv.check_log(r"TLS handshake timed out", r"reason=TLS handshake failed$")


def test_tls_setup_errors(env):
    """A certificate that cannot be used is fatal before any POP3 octet:
    a missing file, a key that does not match, a --tls-cert file without a
    key (the key defaults to it), --tls-implicit without a certificate. The
    error names the file; nothing is served without the configured TLS."""
    c = certs(env)
    d = env.tempdir("tls-setup")
    other_key = d / "other-key.pem"
    res = subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                          "ec_paramgen_curve:prime256v1", "-out", str(other_key)],
                         capture_output=True, timeout=60, check=False)
    check(res.returncode == 0, "openssl genpkey: " + res.stderr.decode(errors="replace"))
    cases = [([f"--tls-cert={d / 'missing.pem'}"], str(d / "missing.pem")),
             ([f"--tls-cert={c.cert}", f"--tls-key={other_key}"], str(other_key)),
             ([f"--tls-cert={c.cert}"], str(c.cert)),
             (["--tls-implicit"], "--tls-cert")]
    for args, named in cases:
        proc = env.spawn(d, args)
        try:
            out, err = proc.communicate(b"CAPA\r\nQUIT\r\n", timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise TestFailure(f"pop3d {args} did not exit")
        check(proc.returncode not in (0, 99) and proc.returncode > 0,
              f"pop3d {args}: exit status {proc.returncode}")
        check(out == b"", f"pop3d {args} spoke POP3: {out[:100]!r}")
        check(named.encode() in err, f"pop3d {args}: the error does not name {named}: {err!r}")


# A private PAM database: users the shared cwrap environment does not have.

def private_pam(env, d, users, passdb_file=None):
    """A copy of the cwrap environment with extra users: users is a list of
    (name, password bytes). They get alice's uid and gid plus 5 when we are
    really root (a distinct user), else ours. passdb_file: make the pop3 service
    read this file instead (e.g. a missing one)."""
    child = dict(env.child_env)
    uid, gid, _ = env.users["alice"]
    if env.really_root:
        uid += 5
    passwd = Path(child["NSS_WRAPPER_PASSWD"]).read_text()
    passdb = Path(child["PAM_WRAPPER_SERVICE_DIR"]).parent.joinpath("passdb").read_bytes()
    for name, pw in users:
        home = d / "home" / name
        home.mkdir(parents=True)
        passwd += f"{name}:x:{uid}:{gid}:{name}:{home}:/bin/sh\n"
        passdb += name.encode() + b":" + pw + b":pop3\n"
    (d / "passwd").write_text(passwd)
    (d / "passdb").write_bytes(passdb)
    pamd = d / "pam.d"
    pamd.mkdir()
    for svc in ("pop3", "other"):
        text = (Path(child["PAM_WRAPPER_SERVICE_DIR"]) / svc).read_text()
        if svc == "pop3":
            db = passdb_file or d / "passdb"
            text = re.sub(r"passdb=\S+", lambda _: f"passdb={db}", text)
        (pamd / svc).write_text(text)
    child["NSS_WRAPPER_PASSWD"] = str(d / "passwd")
    child["PAM_WRAPPER_SERVICE_DIR"] = str(pamd)
    return child


def test_plain_over_tls_utf8_password(env):
    """R5034-19 R4616-02 R4616-04: AUTH PLAIN over implicit TLS with a
    255-octet UTF-8 password (ligatures and 4-octet characters): a 255-octet
    authcid and authzid are well-formed (an [AUTH] failure, not
    "malformed"); the NFKC form of the password (what SASLprep would make
    of it) is refused, the octets as sent log in: pop3d hands PAM the
    octets."""
    unit = "\ufb01\U0001f600\u00e9"          # 3 + 4 + 2 octets
    pw = (unit * 28 + "abc").encode()
    check(len(pw) == 255, "test bug: password length")
    nfkc = unicodedata.normalize("NFKC", pw.decode()).encode()
    d = env.tempdir("pam-utf8")
    child = private_pam(env, d, [("uni", pw)])
    b64 = lambda x: base64.b64encode(x).decode()
    long_id = b"u" * 255
    with Server(env, "plain-utf8", tls_args(env, implicit=True), child_env=child,
                secrets=[b"secret", pw, nfkc]) as srv:
        c = tls_conn(env, srv.port)
        r = c.cmd("AUTH PLAIN " + b64(long_id + b"\0" + long_id + b"\0" + pw))
        check(r == b"-ERR [AUTH] authentication failed",
              f"255-octet authzid/authcid and password: {r!r} (R4616-02)")
        r = c.cmd("AUTH PLAIN " + b64(b"\0uni\0" + nfkc))
        check(r == b"-ERR [AUTH] authentication failed", f"NFKC password: {r!r}")
        r = c.cmd("AUTH PLAIN " + b64(b"uni\0uni\0" + pw))
        check(r == b"+OK maildrop has 0 messages (0 octets)", f"UTF-8 password: {r!r}")
        check(c.cmd("QUIT") == b"+OK pop3d signing off (0 messages left)", "QUIT")
        c.close()
    srv.check_log(r"^<5>login failed: .*method=PLAIN tls=yes$",
                  r"^<5>login failed: user=uni .*method=PLAIN tls=yes$",
                  r"^<6>login: user=uni peer=127\.0\.0\.1 method=PLAIN tls=yes$")


def test_auth_pam_unavailable_sys_temp(env):
    """R3206-01 R5034-14 R4616-06: when PAM cannot reach its user database
    (here pam_matrix's passdb is missing: PAM_AUTHINFO_UNAVAIL), AUTH PLAIN
    and USER/PASS get -ERR [SYS/TEMP], not [AUTH], and the session stays
    in AUTHORIZATION."""
    d = env.tempdir("pam-unavail")
    child = private_pam(env, d, [], passdb_file=d / "missing-passdb")
    with Server(env, "pam-unavail", tls_args(env, implicit=True), child_env=child) as srv:
        c = tls_conn(env, srv.port)
        r = c.cmd("AUTH PLAIN " + PLAIN_IR)
        check(r == b"-ERR [SYS/TEMP] temporary failure, try again later",
              f"AUTH PLAIN with PAM unavailable: {r!r}")
        check(c.cmd("USER alice") == b"+OK send PASS", "USER")
        r = c.cmd("PASS secret")
        check(r == b"-ERR [SYS/TEMP] temporary failure, try again later",
              f"PASS with PAM unavailable: {r!r}")
        check(c.cmd("QUIT") == b"+OK pop3d signing off", "QUIT")
        c.close()
    srv.check_log(r"^<3>pam_authenticate: ",
                  r"^<5>login failed: user=alice .*method=PLAIN tls=yes$",
                  r"^<3>pam_authenticate: ",
                  r"^<5>login failed: user=alice .*method=USER tls=yes$")


# A peer that is not local: two network namespaces ------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_CLONE_NEWNET = 0x40000000
_ns_counter = itertools.count(1)


def _ip(*args):
    return subprocess.run(["ip", *args], capture_output=True, timeout=30, check=False)


class NetnsPair:
    """Two fresh network namespaces joined by a veth pair: pop3d's side
    192.0.2.1, the client's 192.0.2.2 (TEST-NET-1). Removed on exit, which
    also removes the veth pair. Skips the test if namespaces cannot be
    made here."""
    SERVER, CLIENT = "192.0.2.1", "192.0.2.2"

    def __init__(self):
        tag = f"{os.getpid() % 100000}x{next(_ns_counter)}"
        self.srv, self.cli = f"pop3d-s{tag}", f"pop3d-c{tag}"
        self.made = []

    def __enter__(self):
        if shutil.which("ip") is None:
            raise TestSkipped("no ip(8) here (Debian: iproute2)")
        res = _ip("netns", "add", self.srv)
        if res.returncode != 0:
            raise TestSkipped("cannot create a network namespace here: "
                              + res.stderr.decode(errors="replace").strip())
        self.made.append(self.srv)
        try:
            for cmd in (["netns", "add", self.cli],
                        ["link", "add", "p3d0", "netns", self.srv, "type", "veth",
                         "peer", "name", "p3d1", "netns", self.cli],
                        ["-n", self.srv, "addr", "add", f"{self.SERVER}/24", "dev", "p3d0"],
                        ["-n", self.cli, "addr", "add", f"{self.CLIENT}/24", "dev", "p3d1"],
                        ["-n", self.srv, "link", "set", "p3d0", "up"],
                        ["-n", self.cli, "link", "set", "p3d1", "up"],
                        ["-n", self.srv, "link", "set", "lo", "up"],
                        ["-n", self.cli, "link", "set", "lo", "up"]):
                res = _ip(*cmd)
                check(res.returncode == 0, f"ip {' '.join(cmd)}: "
                      + res.stderr.decode(errors="replace"))
                if cmd[:2] == ["netns", "add"]:
                    self.made.append(cmd[2])
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        for ns in reversed(self.made):
            _ip("netns", "del", ns)
        self.made = []
        return False

    def socket(self, ns):
        """A TCP socket that lives in namespace ns: made by a short-lived
        thread that has entered ns (setns affects only the calling
        thread; a socket keeps the namespace it was made in)."""
        out = {}

        def work():
            try:
                fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
                try:
                    if _libc.setns(fd, _CLONE_NEWNET) != 0:
                        e = ctypes.get_errno()
                        raise OSError(e, f"setns {ns}: {os.strerror(e)}")
                finally:
                    os.close(fd)
                out["sock"] = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            except BaseException as e:  # handed to the caller
                out["err"] = e

        t = threading.Thread(target=work)
        t.start()
        t.join()
        if "err" in out:
            raise out["err"]
        return out["sock"]

    def listener(self):
        s = self.socket(self.srv)
        s.bind((self.SERVER, 0))
        return s

    def connect(self, port):
        return Conn(port, sock=self.socket(self.cli), host=self.SERVER)


def test_nonlocal_peer_cleartext_policy(env):
    """R5034-20 R4616-07 R2595-01 R2595-12 R2595-14 R5034-02 DEC-24: from a
    peer that is not local (192.0.2.2, another network namespace) a plain
    connection offers STLS but neither USER nor SASL; USER, AUTH PLAIN and
    AUTH LOGIN are refused, with no challenge and no password read; AUTH
    lists no mechanism. After STLS both are listed and work. curl run in
    the client's namespace with `ip netns exec` fetches a message over
    STLS and gets nowhere without TLS. With --allow-plaintext cleartext
    logins are offered and accepted there (the policy is configurable)."""
    refused = b"-ERR cleartext login not allowed on this connection"
    cafile = str(certs(env).cert)
    with NetnsPair() as ns:
        with Server(env, "nonlocal", tls_args(env), listener=ns.listener()) as srv, \
                Server(env, "nonlocal-allow", tls_args(env) + ["--allow-plaintext"],
                       listener=ns.listener()) as allow:
            c = ns.connect(srv.port)
            check(c.line() == b"+OK pop3d ready", "greeting")
            check(c.capa() == CAPA_PLAIN_REMOTE, "plain CAPA from a non-local peer")
            check(c.cmd("AUTH") == b"+OK SASL mechanisms follow", "AUTH list")
            check(c.multiline() == [], "mechanisms offered in cleartext to a non-local peer")
            check(c.cmd("USER alice") == refused, "USER in cleartext")
            check(c.cmd("PASS secret") == b"-ERR USER first", "PASS after a refused USER")
            check(c.cmd("AUTH PLAIN " + PLAIN_IR) == refused, "AUTH PLAIN in cleartext")
            check(c.cmd("AUTH PLAIN") == refused, "AUTH PLAIN (no challenge) in cleartext")
            check(c.cmd("AUTH LOGIN") == refused, "AUTH LOGIN in cleartext")
            check(c.cmd("STLS") == b"+OK begin TLS negotiation", "STLS")
            c.starttls(env)
            check(c.capa() == CAPA_TLS, "CAPA after STLS from a non-local peer")
            check(c.cmd("AUTH") == b"+OK SASL mechanisms follow", "AUTH list")
            check(c.multiline() == [b"PLAIN", b"LOGIN"], "mechanisms after STLS")
            check(c.cmd("AUTH PLAIN") == b"+ ", "AUTH PLAIN challenge under TLS")
            check(c.cmd(PLAIN_IR) == MAILDROP_OK, "AUTH PLAIN under TLS")
            check(c.retr(1) == EXPECTED[0], "RETR 1 under TLS")
            c.send(b"QUIT\r\n")
            check(c.read_to_eof() == b"+OK pop3d signing off (2 messages left)\r\n", "QUIT")
            c.close()

            c = ns.connect(srv.port)
            check(c.line() == b"+OK pop3d ready", "greeting")
            check(c.cmd("STLS") == b"+OK begin TLS negotiation", "STLS")
            c.starttls(env)
            check(c.cmd("USER alice") == b"+OK send PASS", "USER after STLS")
            check(c.cmd("PASS secret") == MAILDROP_OK, "PASS after STLS")
            check(c.cmd("QUIT") == b"+OK pop3d signing off (2 messages left)", "QUIT")
            c.close()

            base = ["ip", "netns", "exec", ns.cli, "curl", "-sS", "--max-time", "30",
                    "-u", "alice:secret", "--cacert", cafile]
            url = f"pop3://{ns.SERVER}:{srv.port}/1"
            res = run_tool(base + ["--ssl-reqd", url])
            check(res.returncode == 0 and res.stdout == EXPECTED[0],
                  f"curl --ssl-reqd from the client namespace ({res.returncode}): "
                  + tool_output(res))
            res = run_tool(base + [url])
            check(res.returncode != 0 and res.stdout == b"",
                  f"curl without TLS from a non-local peer fetched mail: {tool_output(res)}")

            c = ns.connect(allow.port)
            check(c.line() == b"+OK pop3d ready", "greeting")
            check(c.capa() == CAPA_PLAIN_LOCAL, "plain CAPA with --allow-plaintext")
            check(c.cmd("USER alice") == b"+OK send PASS", "USER with --allow-plaintext")
            check(c.cmd("PASS secret") == MAILDROP_OK, "PASS with --allow-plaintext")
            check(c.cmd("QUIT") == b"+OK pop3d signing off (2 messages left)", "QUIT")
            c.close()
    srv.check_log(r"^<6>connect from 192\.0\.2\.2$",
                  r"^<6>STLS: peer=192\.0\.2\.2 TLSv1\.[23]$",
                  r"^<6>login: user=alice peer=192\.0\.2\.2 method=PLAIN tls=yes$",
                  r"^<6>login: user=alice peer=192\.0\.2\.2 method=USER tls=yes$",
                  r"^<6>login: user=alice peer=192\.0\.2\.2 method=(PLAIN|LOGIN) tls=yes$")
    srv.check_no_log(r"tls=no")
    allow.check_log(r"^<6>login: user=alice peer=192\.0\.2\.2 method=USER tls=no$")
