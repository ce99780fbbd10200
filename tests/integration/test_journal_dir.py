"""The journal directory is trusted only when nobody else can write it
(issue 14, point 2; docs/design.md §4.8). A journal is written back into
the spool at the next login, so a journal another user could plant is a
way to write the victim's mail. Each test has a --journal-dir of its own.

These need real root: the attack is another user's directory, and only
root can give the test one.
"""

import os
import re
import struct

from harness import Pop3d, TestSkipped, check
from journalname import content_hash, journal_name

SPOOL = (b"From alice@example.org Mon Jan  1 00:00:00 2024\n"
         b"Subject: first\n\nthe first message\n\n"
         b"From alice@example.org Mon Jan  1 00:00:01 2024\n"
         b"Subject: second\n\nthe second message\n\n")
FORGED = (b"From mallory@example.org Mon Jan  1 00:00:00 2024\n"
          b"Subject: planted by mallory\n\nforged\n\n")
UPDATE_PERM = "-ERR [SYS/PERM] messages not deleted, contact the administrator"
MD_PERM = "-ERR [SYS/PERM] maildrop cannot be opened, contact the administrator"

def forged_undo(spool, data):
    """(name, bytes) of a journal for spool, named as pop3d names it, that
    would write data at 0: what mallory can write without reading
    alice's spool. Its content does not matter to these tests: a journal
    in a directory that is not alice's own is never read."""
    st = os.stat(spool)
    head = struct.pack("<16sIIQQQQQQ32s", b"pop3d journal 2\0", 1, 0,
                       st.st_ino, 0, 0, 0, len(data),
                       content_hash(data), b"\0" * 32)
    rec = head + struct.pack("<Q", content_hash(head)) + data
    return journal_name(spool), rec


def _setup(env, name, root_mode=0o711):
    d = env.tempdir(name)
    jroot = d / "journal"
    jroot.mkdir()
    os.chmod(jroot, root_mode)
    spool = env.install_spool(d / "alice", SPOOL)
    return d, jroot, spool, jroot / str(env.users["alice"][0])


def _plant(env, jroot, spool, user="bob"):
    """A per-user directory for alice made by user, holding a record."""
    udir = jroot / str(env.users["alice"][0])
    udir.mkdir()
    os.chmod(udir, 0o700)
    name, rec = forged_undo(spool, FORGED)
    (udir / name).write_bytes(rec)
    for p in (udir / name, udir):
        env.chown_to(p, user)
    return udir


def test_forged_journal_in_open_dir(env):
    """Issue 14: --journal-dir mode 1777, bob pre-creates <dir>/<alice's
    uid> with a forged UNDO record named after alice's spool. pop3d must
    refuse to run with that directory; alice's spool stays byte for byte
    (before the fix her login wrote bob's bytes into it)."""
    if not env.really_root:
        raise TestSkipped("needs real root")
    d, jroot, spool, _ = _setup(env, "jdir-attack", 0o1777)
    _plant(env, jroot, spool)
    p = Pop3d(env, d, [f"--journal-dir={jroot}"], expect_greeting=False)
    greeting = p.readline()
    if greeting is not None:
        p.send("USER alice")
        p.readline()
        p.send("PASS secret")
        p.readline()
        p.send("TOP 1 0")
        p.read_available(1.0)
    p.close()
    check(spool.read_bytes() == SPOOL,
          f"the forged journal reached the spool: {spool.read_bytes()[:120]!r}")
    want = (rf"<2>--journal-dir {re.escape(str(jroot))}: writable by group "
            rf"or others \(mode 1777\)")
    check(greeting is None and re.search(want.encode(), p.stderr),
          f"not refused at start-up: greeting {greeting!r}, log {p.stderr[-300:]!r}")


def test_forged_journal_in_planted_user_dir(env):
    """A planted <uid> directory of another user's under a sound
    --journal-dir (left from before the check, or made by an admin's
    mistake): no recovery from it; with a journal pending there the login
    gets [SYS/PERM], the log names the owner, the spool stays as it was."""
    if not env.really_root:
        raise TestSkipped("needs real root")
    d, jroot, spool, _ = _setup(env, "jdir-planted")
    _plant(env, jroot, spool)
    p = Pop3d(env, d, [f"--journal-dir={jroot}"])
    check(p.cmd("USER alice") == "+OK send PASS", "USER")
    reply = p.cmd("PASS secret")
    p.close()
    check(reply == MD_PERM, f"login with a planted journal: {reply!r}")
    check(spool.read_bytes() == SPOOL,
          f"the forged journal reached the spool: {spool.read_bytes()[:120]!r}")
    bob, alice = env.users["bob"][0], env.users["alice"][0]
    check(re.search(rf"journal directory refused: \S+/{alice}: owned by uid "
                    rf"{bob}, not {alice}; a journal is pending there".encode(),
                    p.stderr), f"log: {p.stderr[-400:]!r}")


def _bad_other_owner(env, udir):
    udir.mkdir(mode=0o700)
    env.chown_to(udir, "bob")
    return rf"owned by uid {env.users['bob'][0]}, not {env.users['alice'][0]}"


def _bad_mode(env, udir):
    udir.mkdir()
    os.chmod(udir, 0o750)
    env.chown_to(udir, "alice")
    return r"mode 0750, not 0700"


def _bad_symlink(env, udir):
    real = udir.parent.parent / "elsewhere"
    real.mkdir(mode=0o700)
    env.chown_to(real, "alice")
    os.symlink(real, udir)
    return r"a symlink"


def _bad_file(env, udir):
    udir.write_bytes(b"")
    env.chown_to(udir, "alice")
    return r"not a directory"


def test_bad_user_dir_refuses_update(env):
    """Each wrong per-user directory (another owner, mode not 0700, a
    symlink, not a directory): the login works, a QUIT that must move mail
    gets -ERR [SYS/PERM], the spool is unchanged and the log names the one
    check that failed."""
    if not env.really_root:
        raise TestSkipped("needs real root")
    problems = []
    for make in (_bad_other_owner, _bad_mode, _bad_symlink, _bad_file):
        d, jroot, spool, udir = _setup(env, f"jdir-{make.__name__}")
        why = make(env, udir)
        p = Pop3d(env, d, [f"--journal-dir={jroot}"])
        p.login()
        p.cmd("DELE 1")
        reply = p.cmd("QUIT")
        p.close()
        if reply != UPDATE_PERM:
            problems.append(f"{make.__name__}: QUIT answered {reply!r}")
        if spool.read_bytes() != SPOOL:
            problems.append(f"{make.__name__}: the spool changed")
        if not re.search(rf"UPDATE refused: journal directory \S+: {why}".encode(),
                         p.stderr):
            problems.append(f"{make.__name__}: log {p.stderr[-300:]!r}")
    check(not problems, "\n    ".join(problems))


def test_user_dir_handed_over(env):
    """The per-user directory pop3d makes is the user's, mode 0700, and
    UPDATE works through it."""
    if not env.really_root:
        raise TestSkipped("needs real root")
    d, jroot, spool, udir = _setup(env, "jdir-made")
    p = Pop3d(env, d, [f"--journal-dir={jroot}"])
    p.login()
    p.cmd("DELE 1")
    reply = p.cmd("QUIT")
    p.close()
    check(reply.startswith("+OK pop3d signing off"), f"QUIT: {reply!r}")
    st = os.lstat(udir)
    check(st.st_uid == env.users["alice"][0] and (st.st_mode & 0o7777) == 0o700,
          f"{udir}: uid {st.st_uid} mode {st.st_mode & 0o7777:o}")
    check(not spool.read_bytes().startswith(b"From alice@example.org Mon Jan  1 00:00:00"),
          "message 1 not deleted")
