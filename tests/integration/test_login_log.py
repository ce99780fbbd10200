"""The typed name in failed-login lines (issue 14, point 7; design.md §3,
§7): whatever the verdict, the "login failed" line shows either UNKNOWN
USER (no account has the name: it may be a password typed into the wrong
field) or the name as one bounded word, never the client's text as it
came. fail2ban reads these lines (units/fail2ban/), so a name must not be
able to make up the fields after it."""

import base64
import copy
import re

from harness import Pop3d, check, check_stderr
from test_auth import private_pam

FAILED_RE = rb"^<5>login failed: user=(.*) peer=pipe method=PLAIN tls=no$"
SPACED = "evil peer=192.0.2.99"        # a name PAM and NSS know, with a space
LONG = "b" * 100                        # a name they know, over USER_NAME_MAX
TYPED = "evil\x01 peer=192.0.2.99 method=USER tls=no " + "A" * 150   # nobody's


def _plain(p, authcid, password, authzid=""):
    msg = (authzid + "\0" + authcid + "\0" + password).encode()
    return p.cmd("AUTH PLAIN " + base64.b64encode(msg).decode())


def _failed_names(stderr):
    return [m.decode(errors="replace") for m in re.findall(FAILED_RE, stderr, re.M)]


def _session(env, d, child, logins):
    e = copy.copy(env)
    e.child_env = child
    p = Pop3d(e, d)
    try:
        replies = [_plain(p, *login) for login in logins]
        p.cmd("QUIT")
    finally:
        p.close()
    check_stderr(p.stderr, [b"secret", b"pw-of-evil"])
    return replies, p.stderr


def test_tempfail_names_bounded(env):
    """PAM cannot reach its user database (pam_matrix without its passdb:
    PAM_AUTHINFO_UNAVAIL, [SYS/TEMP]): a typed name no account has, with
    a control character, spaces and 190 octets, is logged as UNKNOWN
    USER; a 100-octet name an account has is cut to 64 octets and "..."."""
    d = env.tempdir("log-tempfail")
    child = private_pam(env, d, [(LONG, b"pw-of-evil")], passdb_file=d / "missing")
    replies, err = _session(env, d, child, [(TYPED, "x"), (LONG, "pw-of-evil")])
    check(all(r.startswith("-ERR [SYS/TEMP]") for r in replies), f"replies {replies}")
    names = _failed_names(err)
    check(names == ["UNKNOWN USER", "b" * 64 + "..."],
          f"names logged {names!r}, log {err[-600:]!r}")
    check(b"192.0.2.99" not in err, f"the typed text reached the log: {err[-600:]!r}")


def test_permfail_and_refused_names_one_word(env):
    """PAM accepts a name with a space, which is no usable user name
    ([SYS/PERM]): logged as one word, the space replaced. An authzid
    alice may not use ([AUTH]): her name in the failed line, the authzid
    as one bounded word in the refusal's line."""
    d = env.tempdir("log-permfail")
    child = private_pam(env, d, [(SPACED, b"pw-of-evil")])
    authzid = "x y\x01z" + "q" * 100
    replies, err = _session(env, d, child, [(SPACED, "pw-of-evil"),
                                            ("alice", "secret", authzid)])
    check(replies[0].startswith("-ERR [SYS/PERM]") and replies[1].startswith("-ERR [AUTH]"),
          f"replies {replies}")
    names = _failed_names(err)
    check(names == ["evil?peer=192.0.2.99", "alice"],
          f"names logged {names!r}, log {err[-600:]!r}")
    want = "<5>user alice may not log in as x?y?z" + "q" * 59 + "..."
    check(want.encode() in err.splitlines(), f"no line {want!r}: {err[-600:]!r}")
