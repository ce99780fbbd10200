"""--proxy-from (issue 15, design.md §13, PROXY-xx in docs/rfc-checklist.md)
with headers crafted here, as HAProxy's send-proxy and send-proxy-v2 send
them, over TCP to 127.0.0.1: the address in the header is the client's
for the log, the failed-login lines and the cleartext rule; a health
check stays the balancer's connection but is not local; a listed peer
without a valid header is refused with a log line before the greeting,
and a header from an unlisted peer with a log line before any reply.
HAProxy itself in front is tests/proxy/ (make check-proxy)."""

import json
import re
import socket
import subprocess
import time

from harness import TestFailure, check
from proxyhdr import tlv, v1, v2, v2_local
from listener import Listener
from tcp import (CAPA_PLAIN_LOCAL, CAPA_PLAIN_REMOTE, CAPA_TLS, Conn, MAILDROP_OK, Server, tls_args)

REFUSED = b"-ERR cleartext login not allowed on this connection"
FROM = "--proxy-from=10.9.0.0/16,127.0.0.1,2001:db8:ffff::/48"


def proxied(port, header):
    c = Conn(port)
    c.send(header)
    check(c.line() == b"+OK pop3d ready", "greeting after the header")
    return c


def test_proxy_v1_client_is_not_local(env):
    """PROXY-02 PROXY-03 DEC-24: behind a balancer on 127.0.0.1, a v1
    header naming 192.0.2.7 makes the connection 192.0.2.7's: CAPA offers
    no cleartext login and USER is refused, as for any remote client (the
    balancer's own loopback address would have allowed it); STLS then a
    login works, and every log line after the header names 192.0.2.7."""
    with Server(env, "proxy-v1", tls_args(env) + [FROM]) as srv:
        c = proxied(srv.port, v1("192.0.2.7"))
        check(c.capa() == CAPA_PLAIN_REMOTE, "CAPA of a proxied remote client")
        check(c.cmd("USER alice") == REFUSED, "USER in cleartext")
        check(c.cmd("STLS") == b"+OK begin TLS negotiation", "STLS")
        c.starttls(env)
        check(c.capa() == CAPA_TLS, "CAPA after STLS")
        check(c.cmd("USER alice") == b"+OK send PASS", "USER under TLS")
        check(c.cmd("PASS secret") == MAILDROP_OK, "PASS under TLS")
        check(c.cmd("QUIT").startswith(b"+OK pop3d signing off"), "QUIT")
        c.close()
    srv.check_log(r"connect from 127\.0\.0\.1$",
                  r"proxy: client 192\.0\.2\.7 via 127\.0\.0\.1$",
                  r"STLS: peer=192\.0\.2\.7 ",
                  r"login: user=alice peer=192\.0\.2\.7 method=USER tls=yes")
    srv.check_no_log(r"peer=127\.0\.0\.1")


def test_proxy_v2_names_client_in_failed_login(env):
    """PROXY-06 PROXY-07 PROXY-08: a v2 header for TCP over IPv6 with TLVs
    (ALPN, a NOOP) after the addresses: skipped; the failed-login line
    that fail2ban reads names 2001:db8::7. A loopback client behind the
    same balancer (v2, 127.0.0.9) is local, as it would be without one."""
    with Server(env, "proxy-v2", tls_args(env) + [FROM]) as srv:
        c = proxied(srv.port, v2("2001:db8::7", dport=110,
                                 tlvs=tlv(0x01, b"pop3") + tlv(0x04, b"\0" * 9)))
        check(c.capa() == CAPA_PLAIN_REMOTE, "CAPA of a proxied IPv6 client")
        check(c.cmd("STLS") == b"+OK begin TLS negotiation", "STLS")
        c.starttls(env)
        check(c.cmd("USER alice") == b"+OK send PASS", "USER under TLS")
        check(c.cmd("PASS wrong") == b"-ERR [AUTH] authentication failed", "bad PASS")
        check(c.cmd("QUIT").startswith(b"+OK"), "QUIT")
        c.close()
        c = proxied(srv.port, v2("127.0.0.9"))
        check(c.capa() == CAPA_PLAIN_LOCAL, "CAPA of a proxied loopback client")
        check(c.cmd("QUIT").startswith(b"+OK"), "QUIT")
        c.close()
    srv.check_log(r"proxy: client 2001:db8::7 via 127\.0\.0\.1$",
                  r"login failed: user=alice peer=2001:db8::7 method=USER tls=yes",
                  r"proxy: client 127\.0\.0\.9 via 127\.0\.0\.1$")


def test_proxy_health_checks(env):
    """PROXY-04 PROXY-09: v2 LOCAL (with an address block, which is
    skipped) and v1 UNKNOWN are the balancer's own connections: served
    (a check may expect the greeting), logged as health checks, and never
    local, so no cleartext login although the balancer is on 127.0.0.1.
    A layer-4 check that closes right after the header leaves no error."""
    with Server(env, "proxy-check", [FROM]) as srv:
        for header in (v2_local(), v2_local(b"\x01" * 12), b"PROXY UNKNOWN\r\n",
                       b"PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n"):
            c = proxied(srv.port, header)
            check(c.capa() == [x for x in CAPA_PLAIN_REMOTE if x != b"STLS"],
                  f"CAPA on a health check {header[:16]!r}")
            check(c.cmd("USER alice") == REFUSED, "USER on a health check")
            check(c.cmd("QUIT") == b"+OK pop3d signing off", "QUIT")
            c.close()
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.sendall(v2_local())
        s.close()
        time.sleep(0.3)
    srv.check_log(*[r"proxy: health check from 127\.0\.0\.1$"] * 5)
    srv.check_no_log(r"proxy: client|refused|error|fatal")


def refused(port, data, wait_eof=10):
    """Send data (maybe nothing) and expect the connection closed with no
    greeting."""
    s = socket.create_connection(("127.0.0.1", port), timeout=wait_eof)
    if data:
        s.sendall(data)
    got = b""
    try:
        while chunk := s.recv(4096):
            got += chunk
    except ConnectionResetError:
        pass  # closed with our octets unread: the kernel resets
    s.close()
    check(got == b"", f"a reply to a refused header {data[:20]!r}: {got[:80]!r}")


def test_proxy_refusals(env):
    """PROXY-01 PROXY-05 PROXY-10 PROXY-11: from a listed balancer, no
    header within the deadline, a POP3 command, a malformed v1 line, a v2
    header beyond pop3d's bound, a v2 PROXY for UDP, and a connection
    closed inside the header are each refused before the greeting, with a
    log line naming the balancer and the reason. A header sent in pieces
    is waited for. From an address not in --proxy-from (and from a pop3d
    without it) a header is refused too, after the monitor's greeting but
    before any reply: its clients must not pass for the balancer's."""
    cases = [
        (b"", "no whole header in time"),
        (b"CAPA\r\nUSER alice\r\n", "not a PROXY header"),
        (b"PROXY TCP4 192.0.2.07 127.0.0.1 1 2\r\n", "v1: malformed address"),
        (b"PROXY TCP4 192.0.2.7 127.0.0.1 1 2\n", "v1: LF without CR"),
        (b"PROXY UNKNOWN " + b"x" * 100, "v1: no CRLF in 107 octets"),
        (v2_local()[:14] + b"\xff\xff", "v2: header longer than pop3d accepts"),
        (v2("192.0.2.7")[:13] + b"\x12" + v2("192.0.2.7")[14:], "other than TCP"),
    ]
    with Server(env, "proxy-refused", [FROM]) as srv:
        for data, _ in cases:
            refused(srv.port, data)
        c = Conn(srv.port)
        c.send(b"PROXY TCP4 192.0.2.7")
        c.close()
        # Tolerated: a header in two pieces (PROXY-01's recommendation).
        c = Conn(srv.port)
        h = v2("192.0.2.8")
        c.send(h[:10])
        time.sleep(0.3)
        c.send(h[10:])
        check(c.line() == b"+OK pop3d ready", "greeting after a split header")
        check(c.cmd("QUIT").startswith(b"+OK"), "QUIT")
        c.close()
    for _, why in cases:
        srv.check_log(r"PROXY header from 127\.0\.0\.1 refused: .*" + why)
    srv.check_log(r"PROXY header from 127\.0\.0\.1 refused: closed inside the header",
                  r"proxy: client 192\.0\.2\.8 via 127\.0\.0\.1$")
    srv.check_no_log(r"proxy: client 192\.0\.2\.7")

    with Server(env, "proxy-unlisted", ["--proxy-from=10.9.0.0/16"]) as other, \
            Server(env, "proxy-none", []) as none:
        caught = {other: 0, none: 0}
        for s in (other, none):
            caught[s] += unlisted(s.port, v1("192.0.2.7"))
            caught[s] += unlisted(s.port, v2("192.0.2.7"))
    for s in (other, none):
        s.check_log(*[r"PROXY header from 127\.0\.0\.1 refused: not in --proxy-from"]
                    * caught[s])
        s.check_no_log(r"192\.0\.2\.7")


def unlisted(port, data):
    """A header from a sender not in --proxy-from. The monitor greets
    such a connection before the pre-auth process starts (it reads
    nothing, so it cannot tell; design.md §2), and the pre-auth process
    peeks before it reads a command: when the header is already there it
    closes without a reply to anything, the greeting all the client got
    (returns 1). A header that arrives after the peek (a client slowed
    down between connect and send) is read as POP3 lines, never as a
    header: the greeting, an -ERR for each line, and the v2 signature's
    own QUIT or ours close it (returns 0). Either way nobody passes for
    the client the header names (checked by the caller's logs)."""
    greeting = b"+OK pop3d ready\r\n"
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(data)
    got = b""
    try:
        while len(got) <= len(greeting) and (chunk := s.recv(4096)):
            got += chunk
    except ConnectionResetError:
        pass
    check(got.startswith(greeting), f"the greeting, once, first: {got[:80]!r}")
    if got == greeting:
        s.close()  # closed (or reset) with nothing but the greeting
        return 1
    try:
        s.sendall(b"QUIT\r\n")
        while chunk := s.recv(4096):
            got += chunk
    except (ConnectionResetError, BrokenPipeError):
        pass
    s.close()
    check(b"+OK pop3d signing off" in got or got.rstrip().endswith(b"+OK pop3d signing off"),
          f"a late header is read as POP3 and the session ends: {got[:200]!r}")
    check(b"maildrop" not in got, "no login from a late header")
    check(got.count(greeting) == 1, f"one greeting: {got[:200]!r}")
    return 0


def test_proxy_implicit_tls(env):
    """PROXY-01: with --tls-implicit the header comes first, then the TLS
    handshake (HAProxy in mode tcp passing TLS through): the login under
    TLS is logged with the client's address."""
    with Server(env, "proxy-tls", tls_args(env, implicit=True) + [FROM]) as srv:
        c = Conn(srv.port)
        c.send(v2("10.9.8.7", dport=995))
        c.starttls(env)
        check(c.line() == b"+OK pop3d ready", "greeting under implicit TLS")
        check(c.cmd("USER alice") == b"+OK send PASS", "USER")
        check(c.cmd("PASS secret") == MAILDROP_OK, "PASS")
        check(c.cmd("QUIT").startswith(b"+OK pop3d signing off"), "QUIT")
        c.close()
    srv.check_log(r"proxy: client 10\.9\.8\.7 via 127\.0\.0\.1$",
                  r"login: user=alice peer=10\.9\.8\.7 method=USER tls=yes")


def test_proxy_from_refused_at_startup(env):
    """--proxy-from is checked whole at start-up: a typo stops pop3d with
    the reason instead of refusing every client behind the balancer."""
    for value, why in (("10.0.0.1/8", "address has bits set beyond the prefix"),
                       ("10.0.0.0/33", "prefix length too long for the address"),
                       ("lb.example.org", "not an IPv4 or IPv6 address"),
                       ("127.0.0.1,", "empty or overlong entry"),
                       (",".join(f"10.0.0.{i}" for i in range(17)), "too many networks")):
        r = subprocess.run(env.command(env.tempdir("pf"), [f"--proxy-from={value}"]),
                           env=env.child_env, stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=30, check=False)
        want = (f"pop3d: --proxy-from={value}: {why} (at most 16 networks, each an "
                f"address or address/bits)\n").encode()
        check(r.returncode == 2 and r.stderr.startswith(want),
              f"--proxy-from={value}: exit {r.returncode}, {r.stderr[:200]!r}")


def test_proxy_max_per_source_counts_the_client(env):
    """--max-per-source behind a balancer (design.md §13): the Accept=no
    listener counts a proxied session by the client its header names,
    once the pre-auth process has read it, not by the balancer's address.
    With --max-per-source=2, five clients through one balancer are all
    served; a third session of 192.0.2.7 is refused before the greeting
    (logged with 192.0.2.7); an IPv6 client's /64 is one source; when one
    of 192.0.2.7's sessions ends, it may open another."""
    with Listener(env, "proxy-limits", [FROM, "--max-per-source=2"]) as lst:
        open_ = [proxied(lst.port, v1(a)) for a in
                 ("192.0.2.7", "192.0.2.7", "192.0.2.8", "192.0.2.9",
                  "2001:db8::1", "2001:db8::2")]
        refused(lst.port, v2("192.0.2.7"))
        refused(lst.port, v2("2001:db8::ffff"))
        extra = proxied(lst.port, v2("2001:db8:0:1::1"))
        check(extra.cmd("QUIT").startswith(b"+OK"), "QUIT")
        check(open_[0].cmd("QUIT").startswith(b"+OK"), "QUIT")
        open_[0].close()
        deadline = time.monotonic() + 10
        while True:  # the listener counts it gone once it has reaped it
            c = Conn(lst.port)
            c.send(v1("192.0.2.7"))
            try:
                if c.line() == b"+OK pop3d ready":
                    break
            except (OSError, AssertionError, Exception):
                pass
            c.close()
            check(time.monotonic() < deadline, "192.0.2.7 still refused")
            time.sleep(0.2)
        check(c.cmd("QUIT").startswith(b"+OK"), "QUIT")
        for x in open_[1:] + [c, extra]:
            x.close()
    log = lst.log.decode(errors="replace")
    check(log.count("connection from 192.0.2.7 refused: 2 sessions already "
                    "(--max-per-source)") >= 1, "no refusal of 192.0.2.7:\n" + log)
    check("connection from 2001:db8:: refused: 2 sessions already" in log,
          "no refusal of 2001:db8::/64:\n" + log)
    check("refused: 2 sessions already (--max-per-source)\n" not in log.replace(
        "192.0.2.7 refused", "").replace("2001:db8:: refused", ""),
        "another source refused:\n" + log)
    check("127.0.0.1 refused" not in log, "the balancer counted as a source:\n" + log)


def test_proxy_monitor_judges_peer_records(env):
    """design.md §13: the monitor treats the pre-auth process's MSG_PEER
    as hostile (build/pop3d-test, tests/integration/hostile_preauth.py
    playing a compromised pre-login process). On a --proxy-from
    connection the peer record must come first and once: a login before
    it, or a second one, ends the connection; the client it names is the
    one the monitor logs (from its own reading of the octets). On any
    other connection a peer record is refused."""
    from test_hostile_preauth import RECV, hook_env, hostile_program, login

    def run(args, steps, n):
        henv = hook_env(env, POP3D_TEST_PREAUTH=hostile_program(env),
                        HOSTILE_STEPS=json.dumps(steps))
        # A name of its own: henv is a copy, with a copy of the counter.
        with Server(henv, f"proxy-hostile-{n}", args) as srv:
            c = Conn(srv.port)
            c.send(v1("192.0.2.99"))  # ignored: the hook reads nothing
            c.sock.settimeout(30)
            try:
                out = c.read_to_eof()
            except TestFailure:
                out = c.buf
            c.close()
        report = [ln for ln in out.decode(errors="replace").splitlines()
                  if re.match(r"^(sent|verdict|record|eof|error) ", ln)]
        return report, srv.log.decode(errors="replace")

    refused = "monitor: refused a malformed or unexpected record"
    cases = [
        ("login before the peer", [FROM], [login(password="secret"), RECV], [], True),
        ("peer twice", [FROM], [{"peer": "192.0.2.7"}, RECV, {"peer": "192.0.2.8"}, RECV],
         ["0"], True),
        ("peer where none is due", [], [{"peer": "192.0.2.7"}, RECV], [], True),
        ("peer then a login", [FROM], [{"peer": "2001:db8::5"}, RECV, login(), RECV],
         ["0", "1"], False),
        ("health check then a login", [FROM], [{"peer": ""}, RECV, login(), RECV],
         ["0", "1"], False),
    ]
    problems = []
    for n, (name, args, steps, verdicts, is_refused) in enumerate(cases):
        report, log = run(args, steps, n)
        got = [ln.split()[1] for ln in report if ln.startswith("verdict")]
        if got != verdicts:
            problems.append(f"{name}: verdicts {got}, expected {verdicts}: {report}")
        if (refused in log) != is_refused:
            problems.append(f"{name}: refusal logged {refused in log}:\n{log}")
        if name == "peer then a login" and \
                "login failed: user=alice peer=2001:db8::5 " not in log:
            problems.append(f"{name}: the login not logged with the client:\n{log}")
        if name == "health check then a login" and \
                "login failed: user=alice peer=127.0.0.1 " not in log:
            problems.append(f"{name}: the login not logged with the balancer:\n{log}")
    check(not problems, "\n    ".join(problems))
