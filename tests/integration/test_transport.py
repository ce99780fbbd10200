"""pop3d on sockets instead of pipes (inetd/systemd Accept=yes hand it a
connected socket as fd 0/1): the peer names in the log and DEC-24, R2595-14,
R2449-13 (a Unix socket or a loopback peer is local, so USER is offered and
accepted).
Only 127.0.0.1 is ever listened on."""

import re
import socket
import subprocess
import threading

from harness import TestSkipped, check, check_stderr, fixture

CAPA_LOCAL = [b"TOP", b"UIDL", b"RESP-CODES", b"AUTH-RESP-CODE", b"PIPELINING",
              b"USER", b"SASL PLAIN LOGIN", b"IMPLEMENTATION pop3d-0.1"]


class SocketClient:
    def __init__(self, sock):
        self.sock = sock
        self.f = sock.makefile("rb")

    def line(self):
        data = self.f.readline()
        check(data.endswith(b"\r\n"), f"line without CRLF: {data!r}")
        return data[:-2]

    def cmd(self, text):
        self.sock.sendall(text.encode() + b"\r\n")
        return self.line()

    def multiline(self):
        out = []
        while (line := self.line()) != b".":
            out.append(line)
        return out


def serve_on(env, server_sock, maildir):
    """Run pop3d with server_sock as stdin and stdout; stderr captured."""
    proc = subprocess.Popen(env.command(maildir), env=env.child_env, stdin=server_sock,
                            stdout=server_sock, stderr=subprocess.PIPE)
    server_sock.close()
    err = []
    t = threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True)
    t.start()
    return proc, t, err


def session(env, name, client, server, peer_re):
    d = env.tempdir(name)
    env.install_spool(d / "alice", fixture("M2.mbox"))
    proc, t, err = serve_on(env, server, d)
    try:
        c = SocketClient(client)
        check(c.line() == b"+OK pop3d ready", "greeting")
        check(c.cmd("CAPA") == b"+OK capability list follows", "CAPA")
        check(c.multiline() == CAPA_LOCAL, "CAPA on a local socket must offer USER (DEC-24)")
        check(c.cmd("USER alice") == b"+OK send PASS", "USER on a local socket")
        check(c.cmd("PASS secret") == b"+OK maildrop has 2 messages (320 octets)", "PASS")
        check(c.cmd("QUIT") == b"+OK pop3d signing off (2 messages left)", "QUIT")
        check(c.f.read() == b"", "data after QUIT")
        proc.wait(15)
    finally:
        client.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        t.join(5)
    log = err[0] if err else b""
    check_stderr(log, [b"secret"])
    check(re.search(rb"^<6>connect from " + peer_re + rb"$", log, re.M),
          f"no 'connect from' line for the peer: {log!r}")
    check(re.search(rb"^<6>login: user=alice peer=" + peer_re + rb" method=USER tls=no$",
                    log, re.M), f"login line: {log!r}")


def test_unix_socket_peer(env):
    client, server = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    session(env, "unix-peer", client, server, rb"unix")


def _tcp_pair(family, addr):
    lst = socket.socket(family, socket.SOCK_STREAM)
    try:
        lst.bind((addr, 0))
        lst.listen(1)
        client = socket.create_connection(lst.getsockname()[:2], timeout=15)
        server, _ = lst.accept()
        return client, server
    finally:
        lst.close()


def test_loopback_tcp_peer(env):
    client, server = _tcp_pair(socket.AF_INET, "127.0.0.1")
    session(env, "tcp-peer", client, server, rb"127\.0\.0\.1")


def test_v4_mapped_loopback_peer(env):
    """A dual-stack socket sees 127.0.0.1 as ::ffff:127.0.0.1: still local,
    and logged in its IPv4 form."""
    try:
        client, server = _tcp_pair(socket.AF_INET6, "::ffff:127.0.0.1")
    except OSError as e:
        raise TestSkipped(f"no IPv6 sockets here: {e}")
    session(env, "mapped-peer", client, server, rb"127\.0\.0\.1")
