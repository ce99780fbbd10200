"""UTF8 and LANG (RFC 6856) through real connections: Python's poplib,
which has utf8() (curl and fetchmail send neither UTF8 nor LANG), and
UTF-8 names and passwords through PAM (pam_matrix) and NSS (nss_wrapper):
SASLprep makes a decomposed password match the composed one PAM holds; a
UTF-8 account name PAM knows is refused as unusable and logged as one
word; the language and UTF-8 mode chosen before the login hold after it,
in the session process."""

import base64
import poplib
import unicodedata

from harness import check
from tcp import HOST, TIMEOUT, Conn, Server, tls_args
from test_auth import private_pam

# RFC 6532: UTF-8 in the header fields, 8bit in the body; then a legacy
# message with raw Latin-1 in a header. pop3d sends both as stored.
UTF8_MBOX = ("From j\u00f6rg@example.org Mon Jan  1 10:00:00 2024\n"
             "From: J\u00f6rg <j\u00f6rg@b\u00fccher.example>\n"
             "Subject: Gr\u00fc\u00dfe \u65e5\u672c\n"
             "Content-Transfer-Encoding: 8bit\n"
             "\n"
             "Stra\u00dfe \u20ac\n").encode() + \
            b"\nFrom old@example.org Tue Jan  2 10:00:00 2024\n" \
            b"Subject: caf\xe9\n\nLatin-1 \xe0 la carte\n"
UTF8_MSGS = [m.split(b"\n", 1)[1] for m in UTF8_MBOX.split(b"\n\nFrom ")]
UTF8_WIRE = [m.rstrip(b"\n").replace(b"\n", b"\r\n") + b"\r\n" for m in UTF8_MSGS]


def _put_spool(srv, data):
    with open(srv.dir / "alice", "r+b") as f:
        f.write(data)
        f.truncate()


def test_poplib_utf8_and_lang(env):
    """R6856-01 R6856-02 R6856-04 R6856-12 R6856-13 R6856-16 DEC-21 DEC-23 DEC-30: poplib's
    capa() sees UTF8 USER and LANG; utf8() is accepted; LANG de (a raw
    command: poplib has none) turns every later text German, USER's and
    the session's alike, but not the status, numbers or listings; the
    UTF-8 and the Latin-1 message come out byte for byte as stored."""
    with Server(env, "poplib-utf8") as srv:
        _put_spool(srv, UTF8_MBOX)
        p = poplib.POP3(HOST, srv.port, timeout=TIMEOUT)
        try:
            caps = p.capa()
            check(caps.get("UTF8") == ["USER"] and caps.get("LANG") == [],
                  f"CAPA: {caps}")
            check(p.utf8() == b"+OK UTF-8 mode on", "utf8()")
            resp, langs, _ = p._longcmd("LANG")
            check(resp == b"+OK language listing follows"
                  and langs == [b"en English", b"de Deutsch"], f"LANG: {resp} {langs}")
            check(p._shortcmd("LANG de") == "+OK de Sprache ge\u00e4ndert".encode(),
                  "LANG de")
            check(p.user("alice") == b"+OK bitte PASS senden", "USER in German")
            check(p.pass_("secret") ==
                  "+OK Postfach enth\u00e4lt 2 Nachrichten (".encode()
                  + str(sum(map(len, UTF8_WIRE))).encode() + b" Bytes)",
                  "PASS reply in German, from the session process")
            check(p.stat() == (2, sum(map(len, UTF8_WIRE))), "STAT")
            for n in (1, 2):
                resp, lines, _ = p.retr(n)
                check(resp == b"+OK %d Bytes" % len(UTF8_WIRE[n - 1]), f"RETR {n}: {resp!r}")
                got = b"".join(x + b"\r\n" for x in lines)
                check(got == UTF8_WIRE[n - 1], f"RETR {n}: {got!r}")
            try:
                p.utf8()
                check(False, "UTF8 accepted in TRANSACTION (R6856-01)")
            except poplib.error_proto as e:
                check(e.args[0] == "-ERR Befehl in diesem Zustand nicht "
                      "zul\u00e4ssig".encode(), f"UTF8 in TRANSACTION: {e}")
            check(p.quit() == b"+OK pop3d meldet sich ab (2 Nachrichten verbleiben)",
                  "QUIT in German")
        finally:
            p.close()
    check(srv.spool() == UTF8_MBOX, "spool changed")


def test_utf8_password_prepared(env):
    """R6856-07 R6856-10: a password PAM holds composed (NFC) logs in when
    the client sends it decomposed (NFD, as macOS may) with USER/PASS:
    SASLprep prepared it. AUTH PLAIN is RFC 4616's business, and pop3d
    hands PAM its octets (R4616-04): there the same NFD password fails.
    A wrong UTF-8 password is [AUTH]; malformed UTF-8 is refused before
    any login attempt (no "login failed" line for it, no delay)."""
    d = env.tempdir("utf8-pass")
    pw = "p\u00e4sswort\u20ac"
    child = private_pam(env, d, [("utfpw", unicodedata.normalize("NFC", pw).encode())])
    nfd = unicodedata.normalize("NFD", pw)
    check(nfd.encode() != pw.encode(), "test bug: NFD equals NFC")
    with Server(env, "utf8-pass", child_env=child,
                secrets=[pw.encode(), nfd.encode()]) as srv:
        p = poplib.POP3(HOST, srv.port, timeout=TIMEOUT)
        try:
            p.user("utfpw")
            try:
                p.pass_("p\u00e4sswort")
                check(False, "wrong password accepted")
            except poplib.error_proto as e:
                check(e.args[0] == b"-ERR [AUTH] authentication failed", f"{e}")
            p.user("utfpw")
            # poplib encodes every command in UTF-8: raw octets by hand.
            p.sock.sendall(b"PASS p\xe4sswort\r\n")
            try:
                p._getresp()
                check(False, "a Latin-1 password was accepted")
            except poplib.error_proto as e:
                check(e.args[0] == b"-ERR invalid UTF-8", f"Latin-1 password: {e}")
            plain = base64.b64encode(b"\0utfpw\0" + nfd.encode()).decode()
            try:
                p._shortcmd("AUTH PLAIN " + plain)
                check(False, "AUTH PLAIN prepared the password")
            except poplib.error_proto as e:
                check(e.args[0] == b"-ERR [AUTH] authentication failed", f"{e}")
            p.user("utfpw")
            check(p.pass_(nfd).startswith(b"+OK maildrop has 0 messages"),
                  "the decomposed password did not log in")
            p.quit()
        finally:
            p.close()
    srv.check_log(r"^<5>login failed: user=utfpw peer=127\.0\.0\.1 method=USER tls=no$",
                  r"^<5>login failed: user=utfpw peer=127\.0\.0\.1 method=PLAIN tls=no$",
                  r"^<6>login: user=utfpw peer=127\.0\.0\.1 method=USER tls=no$")
    fails = srv.log.count(b"login failed")
    check(fails == 2, f"{fails} failed logins logged, want 2 (malformed is no attempt)")


def test_utf8_account_name(env):
    """R6856-07 DEC-28: a UTF-8 user name, sent decomposed, is prepared to
    the composed name PAM and NSS know, and PAM accepts the password; but
    an account name becomes part of a path and is logged, so pop3d serves
    plain ASCII account names only: [SYS/PERM], and the failed-login line
    shows the name as one word, "?" for each 8-bit octet. A UTF-8 name no
    account has is [AUTH] and UNKNOWN USER, as any unknown name."""
    d = env.tempdir("utf8-name")
    child = private_pam(env, d, [("j\u00f6rg", b"pw-of-jorg")])
    with Server(env, "utf8-name", child_env=child, secrets=[b"pw-of-jorg"]) as srv:
        p = poplib.POP3(HOST, srv.port, timeout=TIMEOUT)
        try:
            check(p.user("jo\u0308rg") == b"+OK send PASS", "USER")
            try:
                p.pass_("pw-of-jorg")
                check(False, "a UTF-8 account name logged in")
            except poplib.error_proto as e:
                check(e.args[0].startswith(b"-ERR [SYS/PERM]"), f"{e}")
            p.user("m\u00fcller")
            try:
                p.pass_("pw-of-jorg")
                check(False, "an unknown UTF-8 name logged in")
            except poplib.error_proto as e:
                check(e.args[0] == b"-ERR [AUTH] authentication failed", f"{e}")
            p.quit()
        finally:
            p.close()
    srv.check_log(r"^<3>PAM gave no usable user name$",
                  r"^<5>login failed: user=j\?\?rg peer=127\.0\.0\.1 method=USER tls=no$",
                  r"^<5>login failed: user=UNKNOWN USER peer=127\.0\.0\.1 "
                  r"method=USER tls=no$")
    check("m\u00fcller".encode() not in srv.log and "j\u00f6rg".encode() not in srv.log,
          f"a UTF-8 name reached the log: {srv.log[-600:]!r}")


def test_stls_after_utf8_and_lang(env):
    """R6856-06 R2595-11 DEC-29 DEC-30: STLS after UTF8 is refused, with no response
    code; a LANG sent before STLS (an attacker on the path may have
    injected it, RFC 6856 §7) is dropped by the handshake: replies are
    English again, and LANG works under TLS."""
    with Server(env, "utf8-stls", tls_args(env)) as srv:
        c = Conn(srv.port)
        try:
            check(c.line() == b"+OK pop3d ready", "greeting")
            check(c.cmd("UTF8") == b"+OK UTF-8 mode on", "UTF8")
            check(c.cmd("STLS") == b"-ERR STLS not allowed after UTF8",
                  "STLS after UTF8 (R6856-06)")
            check(c.cmd("QUIT") == b"+OK pop3d signing off", "QUIT")
        finally:
            c.close()
        c = Conn(srv.port)
        try:
            check(c.line() == b"+OK pop3d ready", "greeting")
            check(c.cmd("LANG de") == "+OK de Sprache ge\u00e4ndert".encode(), "LANG de")
            check(c.cmd("STLS") == "+OK TLS-Aushandlung beginnt".encode(), "STLS in German")
            c.starttls(env)
            check(c.cmd("NOOP") == b"-ERR command not valid in this state",
                  "LANG survived STLS (R2595-11)")
            check(c.cmd("LANG de-DE") == "+OK de Sprache ge\u00e4ndert".encode(),
                  "LANG under TLS")
            check(c.cmd("QUIT") == b"+OK pop3d meldet sich ab", "QUIT")
        finally:
            c.close()
