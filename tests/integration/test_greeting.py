"""The greeting, once, in every mode (issue 12; design.md §2, §13;
R2449-02, R8314-02, PROXY-01).

Where nothing has to come before it, the monitor writes the greeting
itself, before it forks the pre-auth process, and that process must not
send it again; with --tls-implicit the TLS handshake comes first and with
--proxy-from the balancer's PROXY header, so there the pre-auth process
greets, as before. Each test reads everything the client gets: a
greeting sent twice, or by the wrong process (a cleartext one before an
implicit-TLS handshake, one before the PROXY header), or not at all,
fails it.
"""

import subprocess

from harness import check
from proxyhdr import v1, v2
from tcp import Conn, Server, tls_args

GREETING = b"+OK pop3d ready\r\n"
CAPA = b"+OK capability list follows\r\n"
BYE = b"+OK pop3d signing off\r\n"
COMMANDS = b"CAPA\r\nQUIT\r\n"


def _once_then_capa(got, what):
    """got is one greeting, then the reply to CAPA, ..., then QUIT's."""
    check(got.startswith(GREETING + CAPA), f"{what}: greeting, then CAPA: {got[:100]!r}")
    check(got.count(b"pop3d ready") == 1, f"{what}: {got.count(b'pop3d ready')} greetings")
    check(got.endswith(b"\r\n.\r\n" + BYE), f"{what}: QUIT's reply last: {got[-80:]!r}")


def _run(env, name, args):
    """pop3d on a pipe with COMMANDS on its input: (process, out, err)."""
    proc = env.spawn(env.tempdir(name), args)
    try:
        out, err = proc.communicate(COMMANDS, timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return proc, out, err


def _pipe(env, args, what):
    proc, out, err = _run(env, "greeting-pipe", args)
    check(proc.returncode == 0, f"{what}: exit status {proc.returncode}: {err[-300:]!r}")
    _once_then_capa(out, what)


def test_greeting_once_on_a_pipe(env):
    """A pipe, as in every script: the monitor greets (the commands were
    written before the greeting could be read), in English whatever
    --language says (DEC-30)."""
    _pipe(env, [], "pipe")
    _pipe(env, ["--language=de"], "pipe, --language=de")


def test_greeting_once_over_tcp(env):
    """TCP from inetd: plain, and with STLS offered. After STLS nothing is
    said until the client speaks (RFC 2595 §4): no second greeting inside
    TLS, and none left unread in cleartext (Conn.starttls)."""
    with Server(env, "greeting-plain") as srv:
        c = Conn(srv.port)
        c.send(COMMANDS)
        _once_then_capa(c.read_to_eof("plain"), "plain TCP")
        c.close()
    with Server(env, "greeting-stls", tls_args(env)) as srv:
        c = Conn(srv.port)
        c.send(COMMANDS)
        _once_then_capa(c.read_to_eof("STLS offered"), "TCP, STLS offered")
        c.close()
        c = Conn(srv.port)
        check(c.line() + b"\r\n" == GREETING, "greeting before STLS")
        check(c.cmd("STLS") == b"+OK begin TLS negotiation", "STLS")
        c.starttls(env)
        c.send(COMMANDS)
        got = c.read_to_eof("after STLS")
        check(got.startswith(CAPA) and b"pop3d ready" not in got,
              f"after STLS, CAPA's reply and no greeting: {got[:100]!r}")
        c.close()


def test_greeting_once_inside_implicit_tls(env):
    """R8314-02: with --tls-implicit not one octet before the handshake
    (Conn.starttls waits 0.2 s for one), then the greeting, once, as the
    first octets inside TLS."""
    with Server(env, "greeting-tls", tls_args(env, implicit=True)) as srv:
        c = Conn(srv.port)
        c.starttls(env)
        c.send(COMMANDS)
        _once_then_capa(c.read_to_eof("implicit TLS"), "implicit TLS")
        c.close()


def test_greeting_once_after_the_proxy_header(env):
    """PROXY-01: from a --proxy-from balancer, not one octet before its
    header (v1 and v2), then the greeting, once; with --tls-implicit too,
    the header first, then the handshake, then the greeting."""
    frm = ["--proxy-from=127.0.0.1"]
    with Server(env, "greeting-proxy", frm) as srv:
        for name, header in (("v1", v1("192.0.2.7")), ("v2", v2("192.0.2.7"))):
            c = Conn(srv.port)
            c.quiet(0.3)
            c.send(header + COMMANDS)
            _once_then_capa(c.read_to_eof(name), f"PROXY {name}")
            c.close()
    with Server(env, "greeting-proxy-tls", frm + tls_args(env, implicit=True)) as srv:
        c = Conn(srv.port)
        c.quiet(0.3)
        c.send(v2("192.0.2.7", dport=995))
        c.starttls(env)
        c.send(COMMANDS)
        _once_then_capa(c.read_to_eof("PROXY v2, implicit TLS"), "PROXY v2, implicit TLS")
        c.close()
    srv.check_log(r"proxy: client 192\.0\.2\.7 via 127\.0\.0\.1$")


def test_preauth_failure_after_the_greeting(env):
    """What the early greeting costs (design.md §2): a pre-auth process
    that cannot confine itself, here because neither --preauth-user nor
    "nobody" exists (the test's user database has no nobody), ends the
    connection right after the monitor's greeting; the client gets that
    one line and EOF, and the log says why."""
    _, out, err = _run(env, "greeting-no-user", ["--preauth-user=nosuchuser"])
    check(out == GREETING, f"the greeting, then EOF: {out[:100]!r}")
    for line in (b"<4>preauth: no user nosuchuser; pre-auth runs as nobody",
                 b"<2>preauth: no unprivileged user for the pre-auth process"):
        check(line in err.splitlines(), f"log line {line!r} in {err[-400:]!r}")
