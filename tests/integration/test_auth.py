"""Authentication against PAM seen from a client: the password octets
reach PAM as sent (no normalisation), and a PAM that cannot reach its
user database gives [SYS/TEMP], not [AUTH]. Logins run over implicit TLS
(tcp.py) because SASL PLAIN is a cleartext mechanism; the TLS itself is
tested in test_tls.py.
"""

import base64
import re
import unicodedata
from pathlib import Path

from harness import check
from tcp import PLAIN_IR, Server, tls_args, tls_conn


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
