"""TLS: STLS (RFC 2595) and implicit TLS (RFC 8314), with real clients
(openssl s_client, Python's poplib and ssl, curl, fetchmail): handshakes,
CAPA and state around STLS, STLS command injection, protocol versions,
close_notify, failed and slow handshakes, the TLS relay after login,
certificate set-up errors.

pop3d runs as inetd would run it (tcp.py): a Python listener on 127.0.0.1
accepts each connection and starts one pop3d on it. Each test names the
checklist IDs it covers in its docstring.
"""

import fcntl
import os
import poplib
import re
import select
import shutil
import ssl
import subprocess
import threading
import time

from harness import TestFailure, TestSkipped, check
from tcp import (CAPA_PLAIN_LOCAL, CAPA_TLS, Conn, EXPECTED, HOST, MAILDROP_OK,
                 MBOX, PLAIN_IR, SIZES, Server, TIMEOUT, TOTAL, certs,
                 client_context, pipelined_cases, run_pipelined, run_tool,
                 stls_conn, stuffed, tls_args, tls_conn, tool_output)


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
                  r"^<6>preauth: STLS: peer=127\.0\.0\.1 TLSv1\.[23]$",
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
    srv.check_log(r"^<6>preauth: STLS: peer=127\.0\.0\.1 TLSv1\.[23]$",
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
                # --pidfile: as root fetchmail locks /var/run/fetchmail.pid
                # whatever FETCHMAILHOME says, and test_logindelay's may
                # run at the same time.
                ["fetchmail", "-f", str(rc), "--nosyslog", "--nodetach", "-v", "--keep",
                 "--pidfile", str(home / "fetchmail.pid"),
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
    stls.check_log(r"^<6>preauth: STLS: peer=", r"^<6>login: user=alice peer=127\.0\.0\.1 "
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
    # --capa-implementation: an IMPLEMENTATION line would show a CAPA
    # answered, as it did before it became optional.
    impl = ["--capa-implementation"]
    with Server(env, "tls11-implicit", tls_args(env, implicit=True) + impl) as imp, \
            Server(env, "tls11-stls", tls_args(env) + impl) as stls:
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
        srv.check_log(r"^<5>preauth: TLS handshake: .*unsupported protocol$",
                      r"^<6>preauth: logout: user=- peer=127\.0\.0\.1 reason=TLS handshake failed$")
    stls.check_log(*[r"^<5>preauth: TLS handshake: .*unsupported protocol$"] * 2)
    stls.check_log(r"^<6>preauth: STLS: peer=127\.0\.0\.1 TLSv1\.2$")


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
    srv.check_log(r"^<6>preauth: logout: user=- peer=127\.0\.0\.1 reason=disconnect$",
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


def test_pipelined_after_pass_tls(env):
    """R2449-15: commands pipelined after PASS reach the session intact,
    one write each, after STLS and under implicit TLS (the pre-login
    process stays as the relay): USER/PASS, an AUTH PLAIN exchange, and a
    burst larger than the 16 KiB input buffer (3000 NOOPs). Without TLS:
    test_privsep.test_pipelined_after_pass."""
    with Server(env, "pipeline-stls", tls_args(env)) as stls, \
            Server(env, "pipeline-implicit", tls_args(env, implicit=True)) as imp:
        for data, expect, tag in pipelined_cases():
            run_pipelined(stls_conn(env, stls.port), data, expect, f"{tag} after STLS")
            run_pipelined(tls_conn(env, imp.port), data, expect, f"{tag} under implicit TLS")
    stls.check_log(*[r"^<6>logout: user=alice reason=QUIT"] * 3)
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


def test_relay_waits_for_busy_session(env):
    """Under TLS the relay must not give up on a session that is busy
    rather than idle: here the login waits 7 s for a spool lock another
    program holds, longer than --timeout=1 plus RELAY_GRACE_MS (6 s), with
    nothing moving. Until round 13 the relay closed the connection at 6 s
    and the client never got the reply (nor, in UPDATE, the +OK to
    QUIT)."""
    with Server(env, "relay-busy", tls_args(env, implicit=True) + ["--timeout=1"]) as srv:
        c = tls_conn(env, srv.port)
        check(c.cmd("USER alice") == b"+OK send PASS", "USER")
        fd = os.open(srv.dir / "alice", os.O_RDWR)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX)
            release = threading.Timer(7.0, lambda: fcntl.lockf(fd, fcntl.LOCK_UN))
            release.start()
            start = time.monotonic()
            reply = c.cmd("PASS secret")
            took = time.monotonic() - start
            release.join()
        finally:
            os.close(fd)
        check(reply == MAILDROP_OK, f"PASS after {took:.1f}s: {reply!r}")
        check(took >= 6.5, f"the lock was not waited for ({took:.1f}s)")
        check(c.cmd("QUIT").startswith(b"+OK pop3d signing off"), "QUIT")
        c.close()
    srv.check_log(r"^<6>logout: user=alice reason=QUIT")


def test_no_session_tickets(env):
    """Each connection is a process of its own, so a TLS session ticket
    could never be used: none is sent (TLS 1.3 sent two despite
    SSL_OP_NO_TICKET until round 13)."""
    with Server(env, "no-tickets", tls_args(env, implicit=True)) as srv:
        c = tls_conn(env, srv.port)
        check(c.sock.version() == "TLSv1.3", f"negotiated {c.sock.version()}")
        # Tickets come after the handshake, ahead of the first reply.
        check(c.cmd("USER alice") == b"+OK send PASS", "USER")
        check(not c.sock.session.has_ticket, "the server sent a session ticket")
        check(c.cmd("QUIT").startswith(b"+OK"), "QUIT")
        c.close()


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
    # The right key, encrypted: refused with a reason, never a prompt on
    # a terminal (OpenSSL's default passphrase callback).
    enc_key = d / "encrypted-key.pem"
    res = subprocess.run(["openssl", "pkey", "-in", str(c.key), "-aes256", "-passout",
                          "pass:secret", "-out", str(enc_key)],
                         capture_output=True, timeout=60, check=False)
    check(res.returncode == 0, "openssl pkey: " + res.stderr.decode(errors="replace"))
    cases = [([f"--tls-cert={d / 'missing.pem'}"], str(d / "missing.pem")),
             ([f"--tls-cert={c.cert}", f"--tls-key={other_key}"], str(other_key)),
             ([f"--tls-cert={c.cert}"], str(c.cert)),
             ([f"--tls-cert={c.cert}", f"--tls-key={enc_key}"], "the key is encrypted"),
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
