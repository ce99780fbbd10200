"""pop3d behind Debian's HAProxy (mode tcp), as issue 15 asks: send-proxy
(v1) and send-proxy-v2, health checks with check-send-proxy, clients on
other loopback addresses (127.0.0.2 ...) and, for the cleartext rule, a
client in another network namespace (192.0.2.2) whose balancer is on the
server's own loopback. pop3d runs as its Accept=no listener
(tests/integration/listener.py) with --proxy-from=127.0.0.1; HAProxy and
pop3d listen on 127.0.0.1 only (in the namespace test: 192.0.2.1, inside a
private namespace). Every process is stopped by its pid."""

import os
import re
import signal
import socket
import subprocess
import time

from harness import TestFailure, check
from listener import Listener, free_port
from tcp import (CAPA_PLAIN_LOCAL, CAPA_PLAIN_REMOTE, CAPA_TLS, Conn, MAILDROP_OK,
                 client_context, tls_args)

from test_transport import NetnsPair

REFUSED = b"-ERR cleartext login not allowed on this connection"
CHECK_INTER_MS = 200


def haproxy_version():
    out = subprocess.run(["haproxy", "-v"], capture_output=True, timeout=10,
                         check=False).stdout.decode(errors="replace")
    return out.splitlines()[0] if out else "haproxy (version unknown)"


class HAProxy:
    """haproxy -db (foreground) with the given frontend/backend sections;
    the admin socket answers "show stat". Stopped by its pid."""

    def __init__(self, env, name, sections, prefix=()):
        self.dir = env.tempdir(name)
        self.sock = self.dir / "admin.sock"
        cfg = self.dir / "haproxy.cfg"
        cfg.write_text(f"""global
    stats socket {self.sock} mode 600 level admin
    maxconn 200
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout check 2s
{sections}
""")
        check(subprocess.run(["haproxy", "-c", "-q", "-f", str(cfg)], capture_output=True,
                             timeout=30, check=False).returncode == 0,
              "haproxy -c refuses the configuration:\n" + cfg.read_text())
        self.out = open(self.dir / "haproxy.out", "wb")
        self.proc = subprocess.Popen([*prefix, "haproxy", "-db", "-f", str(cfg)],
                                     stdin=subprocess.DEVNULL, stdout=self.out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 10
        while not self.sock.exists():
            check(self.proc.poll() is None and time.monotonic() < deadline,
                  "haproxy did not start: " + (self.dir / "haproxy.out").read_text())
            time.sleep(0.05)

    def stat(self):
        """{(backend, server): status} from "show stat"."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(self.sock))
            s.sendall(b"show stat\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        out = {}
        for line in data.decode().splitlines():
            f = line.split(",")
            if len(f) > 17 and not line.startswith("#") and f[1] not in ("FRONTEND",
                                                                          "BACKEND"):
                out[(f[0], f[1])] = f[17]
        return out

    def wait_up(self, servers, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            st = self.stat()
            if all(st.get(s, "").startswith("UP") for s in servers):
                return st
            if time.monotonic() > deadline:
                raise TestFailure(f"HAProxy's servers not UP: {st}")
            time.sleep(0.1)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            os.kill(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.out.close()
        return False


def frontend(name, port, server_line, extra="", bind="127.0.0.1"):
    return f"""
frontend fe_{name}
    bind {bind}:{port}
    default_backend be_{name}
backend be_{name}
{extra}    server pop {server_line}
"""


def conn_from(addr, port):
    s = socket.socket()
    s.bind((addr, 0))
    return Conn(port, sock=s)


def greeted_from(addr, port):
    c = conn_from(addr, port)
    check(c.line() == b"+OK pop3d ready", f"greeting for {addr}")
    return c


def closed_without_greeting(addr, port):
    c = conn_from(addr, port)
    c.sock.settimeout(10)
    got = b""
    try:
        while chunk := c.sock.recv(4096):
            got += chunk
    except ConnectionResetError:
        pass
    c.close()
    check(got == b"", f"{addr}: a reply where a refusal was due: {got[:80]!r}")


def login(addr, attempt, raced):
    """attempt() connects as addr, says USER alice and PASS secret, and
    returns the connection and the PASS reply. A [SYS/TEMP] is tried once
    more on a new connection and noted in raced (the address, whose
    failed-login lines then number one more); the test requires the
    listener's stderr to show pam_wrapper's race for it (check_raced):
    with a pop3d exec'd per connection and health checks five times a
    second, two may start together, and that race is the one [SYS/TEMP]
    a login may get here."""
    c, r = attempt()
    if r.startswith(b"-ERR [SYS/TEMP]"):
        c.close()
        raced.append(addr)
        c, r = attempt()
    check(r == MAILDROP_OK, f"PASS from {addr}: {r}")
    return c


def check_raced(pop, raced):
    check(not raced or pop.pwrap_raced(),
          f"[SYS/TEMP] for a login from {', '.join(raced)} without pam_wrapper's "
          "race in the log:\n" + pop.log.decode(errors="replace"))


def test_send_proxy_v1_and_v2(env):
    """PROXY-02 PROXY-06: HAProxy 2.6 with send-proxy and send-proxy-v2 in
    front of one pop3d listener (--max-per-source=2): clients bound to
    127.0.0.2 and 127.0.0.3 log in (a loopback client is local, so USER in
    cleartext) and fail a login; every login line names the client, none
    the balancer. Per source, not per balancer: two sessions from
    127.0.0.4 through each frontend are the limit, the third is refused
    before the greeting and the refusal is logged with 127.0.0.4, while
    127.0.0.5 is served at the same time. The health checks
    (check-send-proxy) keep both servers UP."""
    raced = []
    with Listener(env, "hap-pop3d", ["--proxy-from=127.0.0.1", "--max-per-source=2"]) as pop:
        p1, p2 = free_port(), free_port()
        check_line = f"127.0.0.1:{pop.port} check check-send-proxy inter {CHECK_INTER_MS}"
        with HAProxy(env, "hap", frontend("v1", p1, f"{check_line} send-proxy")
                     + frontend("v2", p2, f"{check_line} send-proxy-v2")) as hap:
            hap.wait_up([("be_v1", "pop"), ("be_v2", "pop")])
            for port, ok_addr, bad_addr in ((p1, "127.0.0.2", "127.0.0.3"),
                                            (p2, "127.0.0.3", "127.0.0.2")):
                def attempt():
                    c = greeted_from(ok_addr, port)
                    capa = c.capa()
                    check(b"USER" in capa, f"CAPA of a loopback client: {capa}")
                    check(c.cmd("USER alice") == b"+OK send PASS", "USER")
                    return c, c.cmd("PASS secret")
                c = login(ok_addr, attempt, raced)
                check(c.cmd("QUIT").startswith(b"+OK pop3d signing off"), "QUIT")
                c.close()
                c = greeted_from(bad_addr, port)
                check(c.cmd("USER alice") == b"+OK send PASS", "USER")
                check(c.cmd("PASS wrong") == b"-ERR [AUTH] authentication failed",
                      "wrong PASS")
                c.close()
            for port in (p1, p2):
                held = [greeted_from("127.0.0.4", port) for _ in range(2)]
                closed_without_greeting("127.0.0.4", port)
                other = greeted_from("127.0.0.5", port)
                for c in held + [other]:
                    check(c.cmd("QUIT").startswith(b"+OK"), "QUIT")
                    c.close()
                time.sleep(0.5)  # the listener reaps them
            hap.wait_up([("be_v1", "pop"), ("be_v2", "pop")])
    check_raced(pop, raced)
    log = pop.log.decode(errors="replace")
    for addr in ("127.0.0.2", "127.0.0.3"):
        check(len(re.findall(rf"login: user=alice peer={re.escape(addr)} ", log)) == 1,
              f"one login line for {addr}:\n{log}")
        check(len(re.findall(rf"login failed: user=alice peer={re.escape(addr)} ",
                             log)) == 1 + raced.count(addr),
              f"one failed login line for {addr}:\n{log}")
    check(log.count("connection from 127.0.0.4 refused: 2 sessions already "
                    "(--max-per-source)") == 2, "two refusals of 127.0.0.4:\n" + log)
    check(not re.search(r"login.*peer=127\.0\.0\.1 |127\.0\.0\.1 refused", log),
          "the balancer's address used as a client's:\n" + log)


def test_health_checks(env):
    """PROXY-04 PROXY-09: HAProxy's checks with check-send-proxy, v1 and v2,
    both the plain layer-4 check (connect, header, close) and a tcp-check
    that expects the greeting, sends QUIT and expects +OK: every server
    goes UP and stays UP; pop3d logs them as the balancer's own
    connections and refuses none of them."""
    with Listener(env, "hc-pop3d", ["--proxy-from=127.0.0.1"]) as pop:
        base = f"127.0.0.1:{pop.port} check check-send-proxy inter {CHECK_INTER_MS}"
        tcp_check = ("    option tcp-check\n"
                     "    tcp-check expect string +OK\n"
                     "    tcp-check send QUIT\\r\\n\n    tcp-check expect string +OK\n")
        sections = (frontend("l4v1", free_port(), base + " send-proxy")
                    + frontend("l4v2", free_port(), base + " send-proxy-v2")
                    + frontend("tcv1", free_port(), base + " send-proxy", tcp_check)
                    + frontend("tcv2", free_port(), base + " send-proxy-v2", tcp_check))
        servers = [(f"be_{n}", "pop") for n in ("l4v1", "l4v2", "tcv1", "tcv2")]
        with HAProxy(env, "hc", sections) as hap:
            hap.wait_up(servers)
            time.sleep(1.5)  # several more rounds of checks
            st = hap.wait_up(servers, timeout=0.5)
    log = pop.log.decode(errors="replace")
    # The tcp-checks stay to read the greeting; a layer-4 check is mostly
    # gone (reset) by the time pop3d asks for its peer's address. HAProxy
    # 2.6 sends a v2 check as LOCAL, a v1 check as a TCP4 line with its
    # own addresses (the spec's advice, not UNKNOWN).
    local = log.count("proxy: health check from 127.0.0.1")
    own = log.count("proxy: client 127.0.0.1 via 127.0.0.1")
    check(local >= 4 and own >= 4,
          f"{local} LOCAL and {own} v1 checks logged; servers {st}:\n{log[-3000:]}")
    check("refused" not in log, "a health check refused:\n" + log[-3000:])
    check(not re.search(r"login", log), "a health check logged in:\n" + log[-3000:])


def test_implicit_tls_passthrough(env):
    """PROXY-01: HAProxy passes TLS through in mode tcp; the v2 header
    comes before the ClientHello and pop3d --tls-implicit reads it before
    the handshake: a client on 127.0.0.6 logs in under TLS and is logged
    as 127.0.0.6; the v1 frontend the same for 127.0.0.7."""
    raced = []
    with Listener(env, "tls-pop3d", tls_args(env, implicit=True)
                  + ["--proxy-from=127.0.0.1"]) as pop:
        p1, p2 = free_port(), free_port()
        base = f"127.0.0.1:{pop.port} check check-send-proxy inter {CHECK_INTER_MS}"
        with HAProxy(env, "tls", frontend("s1", p1, base + " send-proxy")
                     + frontend("s2", p2, base + " send-proxy-v2")) as hap:
            hap.wait_up([("be_s1", "pop"), ("be_s2", "pop")])
            for port, addr in ((p2, "127.0.0.6"), (p1, "127.0.0.7")):
                def attempt():
                    c = conn_from(addr, port)
                    c.starttls(env)
                    check(c.line() == b"+OK pop3d ready", "greeting under TLS")
                    check(c.capa() == CAPA_TLS, "CAPA under TLS")
                    check(c.cmd("USER alice") == b"+OK send PASS", "USER")
                    return c, c.cmd("PASS secret")
                c = login(addr, attempt, raced)
                check(c.cmd("QUIT").startswith(b"+OK pop3d signing off"), "QUIT")
                c.close()
    check_raced(pop, raced)
    log = pop.log.decode(errors="replace")
    for addr in ("127.0.0.6", "127.0.0.7"):
        check(f"login: user=alice peer={addr} method=USER tls=yes" in log,
              f"no TLS login line for {addr}:\n{log}")


def test_remote_client_through_local_balancer(env):
    """DEC-24, the point of it all: HAProxy and pop3d on one host (the
    server's network namespace), the balancer talking to pop3d over
    127.0.0.1, the client elsewhere (192.0.2.2, another namespace). With
    send-proxy-v2 and --proxy-from=127.0.0.1 the client is 192.0.2.2: no
    cleartext login offered or accepted, STLS and a login work, the log
    names 192.0.2.2. The same client through a frontend without
    send-proxy to a pop3d without --proxy-from looks local (127.0.0.1)
    and is offered cleartext logins: what --proxy-from prevents."""
    raced = []
    with NetnsPair() as ns:
        inside = ["ip", "netns", "exec", ns.srv]
        with Listener(env, "ns-proxied", tls_args(env) + ["--proxy-from=127.0.0.1"],
                      prefix=inside) as pop, \
                Listener(env, "ns-plain", tls_args(env), prefix=inside) as plain:
            p1, p2 = free_port(), free_port()
            sections = (frontend("pp", p1, f"127.0.0.1:{pop.port} send-proxy-v2 check "
                                 f"check-send-proxy inter {CHECK_INTER_MS}",
                                 bind=ns.SERVER)
                        + frontend("np", p2, f"127.0.0.1:{plain.port}", bind=ns.SERVER))
            with HAProxy(env, "ns", sections, prefix=inside) as hap:
                hap.wait_up([("be_pp", "pop")])
                def attempt():
                    c = ns.connect(p1)
                    check(c.line() == b"+OK pop3d ready", "greeting through HAProxy")
                    check(c.capa() == CAPA_PLAIN_REMOTE, "CAPA of the remote client")
                    check(c.cmd("USER alice") == REFUSED, "USER in cleartext")
                    check(c.cmd("AUTH PLAIN") == REFUSED, "AUTH PLAIN in cleartext")
                    check(c.cmd("STLS") == b"+OK begin TLS negotiation", "STLS")
                    c.starttls(env)
                    check(c.cmd("USER alice") == b"+OK send PASS", "USER under TLS")
                    return c, c.cmd("PASS secret")
                c = login("192.0.2.2", attempt, raced)
                check(c.cmd("QUIT").startswith(b"+OK pop3d signing off"), "QUIT")
                c.close()
                c = ns.connect(p2)
                check(c.line() == b"+OK pop3d ready", "greeting without PROXY")
                check(c.capa() == CAPA_PLAIN_LOCAL,
                      "without send-proxy the remote client looks local")
                check(c.cmd("QUIT").startswith(b"+OK"), "QUIT")
                c.close()
    check_raced(pop, raced)
    log = pop.log.decode(errors="replace")
    check("proxy: client 192.0.2.2 via 127.0.0.1" in log, "no proxy line:\n" + log)
    check("login: user=alice peer=192.0.2.2 method=USER tls=yes" in log,
          "login not logged with 192.0.2.2:\n" + log)
    check("peer=127.0.0.1" in plain.log.decode(errors="replace"),
          "the unproxied pop3d saw another peer")
