"""Sessions against other sessions, mail deliveries and MUAs (design.md
section 4, R1939-16/17/22/23/53/54, R2449-06, R3206-04).

Writers lock the way Postfix local(8) does: a dotlock created with
O_CREAT|O_EXCL plus an fcntl write lock on the whole spool (MtaLock).
"""

import os
import re
import signal
import threading
import time

from harness import MtaLock, Sessions, check, fixture

SYS_TEMP = "-ERR [SYS/TEMP] temporary failure, try again later"
# The spec leaves the text of a failed UPDATE free: "-ERR [SYS/TEMP] ...".
UPDATE_FAILED = re.compile(r"-ERR \[SYS/TEMP\]( .*)?")
IN_USE = "-ERR [IN-USE] maildrop is locked by another session"

NEW_MAIL = (b"From zoe@example.org Wed Jan 10 08:00:00 2024\n"
            b"Received: by mx.example.net; Wed, 10 Jan 2024 08:00:00 +0000\n"
            b"Subject: delivered during the session\n"
            b"\n"
            b"fresh\n"
            b"\n")
NEW_MAIL_SIZE = 110    # CRLF octets of NEW_MAIL's message


def check_log_lines(stderr, *patterns):
    """Each regex must match a whole log line, in this order."""
    lines = stderr.decode(errors="replace").splitlines()
    pos = 0
    for pat in patterns:
        while pos < len(lines) and not re.fullmatch(pat, lines[pos]):
            pos += 1
        check(pos < len(lines), f"no log line (in order) matches {pat!r}; log:\n      "
              + "\n      ".join(lines))
        pos += 1


def chunks(mbox):
    """Split an mbox into per-message byte ranges, each with its From_ line
    and trailing separator, as UPDATE moves them."""
    starts = [0] + [m.start() + 2 for m in re.finditer(rb"\n\nFrom ", mbox)]
    return [mbox[a:b] for a, b in zip(starts, starts[1:] + [len(mbox)])]


def setup(env, name, fixture_name="M2.mbox"):
    d = env.tempdir(name)
    data = fixture(fixture_name)
    spool = env.install_spool(d / "alice", data)
    return d, spool, data


def test_second_session_in_use(env):
    """R1939-17, R2449-06, R3206-04: a second login gets [IN-USE] at once
    (not [AUTH], no failed-login delay) and is closed; the first session
    is unaffected; after it quits, a login works again."""
    d, spool, data = setup(env, "in-use")
    with Sessions(env, d) as s:
        a = s.start()
        a.login()
        b = s.start()
        check(b.cmd("USER alice") == "+OK send PASS", "USER")
        t0 = time.monotonic()
        reply = b.cmd("PASS secret")
        took = time.monotonic() - t0
        check(reply == IN_USE, f"second session got {reply!r}, expected {IN_USE!r}")
        check(took < 1.9, f"[IN-USE] took {took:.1f}s: not 'at once'")
        check(b.wait_eof() == b"", "bytes after the [IN-USE] reply")
        b.close()
        # Issue 10: the log says the maildrop was busy, not that the
        # login failed.
        check_log_lines(b.stderr, r"<6>login: user=alice peer=\S+ method=USER tls=no",
                        r"<5>/\S+/alice: in use by another session",
                        r"<6>logout: user=alice reason=maildrop in use")
        check(a.cmd("STAT") == "+OK 2 320", "first session disturbed")
        check(a.cmd("QUIT") == "+OK pop3d signing off (2 messages left)", "QUIT")
        a.close()
        c = s.start()
        reply = c.login()
        check(reply == "+OK maildrop has 2 messages (320 octets)", f"relogin: {reply}")
        c.cmd("QUIT")
        c.close()
    check(spool.read_bytes() == data, "spool changed")


def test_other_user_not_blocked(env):
    """The session lock is per maildrop: bob logs in while alice is in."""
    d, spool, data = setup(env, "other-user")
    env.install_spool(d / "bob", fixture("M.mbox"), "bob")
    with Sessions(env, d) as s:
        a = s.start()
        a.login()
        b = s.start()
        reply = b.login("bob", "hunter2")
        check(reply == "+OK maildrop has 4 messages (487 octets)", f"bob: {reply}")
        b.cmd("QUIT")
        a.cmd("QUIT")
        a.close()
        b.close()


def test_delivery_during_session_survives_quit(env):
    """R1939-19, R1939-23: mail appended by a locking writer while a
    session is idle goes through without waiting, is not listed in that
    session, and is kept by its UPDATE."""
    d, spool, data = setup(env, "deliver")
    with Sessions(env, d) as s:
        a = s.start()
        a.login()
        check(a.cmd("DELE 1") == "+OK message 1 deleted", "DELE 1")
        t0 = time.monotonic()
        with MtaLock(spool) as lk:
            took = time.monotonic() - t0
            lk.append(NEW_MAIL)
        check(took < 1.0, f"an idle session held up delivery for {took:.1f}s")
        check(a.cmd("STAT") == "+OK 1 200", "STAT counts the new mail")
        check(a.cmd("LIST 3") == "-ERR no such message", "new mail listed as 3")
        check(a.cmd("LIST") == "+OK 1 message (200 octets)", "LIST")
        check(a.multiline() == [b"2 200"], "LIST lines")
        check(a.cmd("UIDL") == "+OK unique-id listing follows", "UIDL")
        check(len(a.multiline()) == 1, "UIDL lists the new mail")
        reply = a.cmd("QUIT")
        check(re.fullmatch(r"\+OK pop3d signing off \(\d+ messages? left\)", reply),
              f"QUIT: {reply}")
        check(a.wait_eof() == b"", "bytes after QUIT")
        a.close()
    want = chunks(data)[1] + NEW_MAIL
    got = spool.read_bytes()
    check(got == want, f"spool after QUIT:\n{got!r}\nexpected\n{want!r}")
    with Sessions(env, d) as s:
        b = s.start()
        reply = b.login()
        check(reply == f"+OK maildrop has 2 messages ({200 + NEW_MAIL_SIZE} octets)",
              f"next session: {reply}")
        b.cmd("QUIT")
        b.close()


def test_login_waits_for_writer(env):
    """design.md section 4: lock waits are bounded, not failures. A writer
    holds its locks for 1 s while the user logs in: PASS waits for it and
    then counts the message it delivered."""
    d, spool, data = setup(env, "login-waits")
    locked = threading.Event()
    release = threading.Event()

    def writer():
        with MtaLock(spool) as lk:
            lk.append(NEW_MAIL)
            locked.set()
            release.wait(10)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    check(locked.wait(10), "writer could not lock")
    try:
        with Sessions(env, d) as s:
            a = s.start()
            a.cmd("USER alice")
            threading.Timer(1.0, release.set).start()
            t0 = time.monotonic()
            reply = a.cmd("PASS secret", timeout=20)
            took = time.monotonic() - t0
            want = f"+OK maildrop has 3 messages ({320 + NEW_MAIL_SIZE} octets)"
            check(reply == want, f"PASS during a delivery: {reply!r}, expected {want!r}")
            check(took >= 0.9, f"PASS did not wait for the writer's lock ({took:.1f}s)")
            a.cmd("QUIT")
            a.close()
    finally:
        release.set()
        t.join(10)


def test_lock_wait_timeout_is_in_use(env):
    """design.md §4: lock waits are bounded, then [IN-USE] (R2449-06: the
    credentials were fine, the maildrop is busy): a writer holds the
    spool's fcntl lock for longer than pop3d waits (FCNTL_LOCK_WAIT_MS,
    10 s)."""
    d, spool, data = setup(env, "lock-timeout")
    release = threading.Event()
    locked = threading.Event()

    def writer():
        with MtaLock(spool):
            locked.set()
            release.wait(40)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    check(locked.wait(10), "writer could not lock")
    try:
        with Sessions(env, d) as s:
            a = s.start()
            a.cmd("USER alice")
            reply = a.cmd("PASS secret", timeout=40)
            check(reply == IN_USE, f"PASS with the spool locked for good: {reply!r}, "
                  f"expected {IN_USE!r}")
            check(a.wait_eof() == b"", "bytes after [IN-USE]")
            a.close()
            check_log_lines(a.stderr, r"<4>/\S+/alice: still locked after 10000 ms",
                            r"<6>logout: user=alice reason=maildrop in use")
    finally:
        release.set()
        t.join(10)
    check(spool.read_bytes() == data, "spool changed")


def test_update_waits_for_writer(env):
    """R1939-23: QUIT while a writer holds both locks: UPDATE waits for them
    and keeps what the writer appended meanwhile."""
    d, spool, data = setup(env, "update-waits")
    with Sessions(env, d) as s:
        a = s.start()
        a.login()
        a.cmd("DELE 2")
        with MtaLock(spool) as lk:
            a.send("QUIT")
            time.sleep(1.0)
            lk.append(NEW_MAIL)
            early = a.read_available(0.1)
        check(early == b"", f"QUIT answered while the writer held the locks: {early!r}")
        reply = a.readline(30)
        check(reply is not None and reply.startswith(b"+OK pop3d signing off"),
              f"QUIT: {reply!r}")
        a.close()
    want = chunks(data)[0] + NEW_MAIL
    got = spool.read_bytes()
    check(got == want, f"spool after QUIT:\n{got!r}\nexpected\n{want!r}")


def _killed_session(env, name, sig, **spawn_kw):
    d, spool, data = setup(env, name, "M.mbox")
    with Sessions(env, d) as s:
        a = s.start(**spawn_kw)
        a.login()
        a.cmd("DELE 1")
        a.cmd("DELE 3")
        a.send("RETR 2")
        a.readline()
        a.signal(sig)
        a.proc.wait(15)
        a.close()
        check(spool.read_bytes() == data, f"spool changed after {sig.name} following DELE")
        check(sorted(os.listdir(d)) == ["alice"], f"files left behind: {os.listdir(d)}")
        b = s.start()
        reply = b.login()
        check(reply == "+OK maildrop has 4 messages (487 octets)", f"next login: {reply}")
        b.cmd("QUIT")
        b.close()


def test_sigkill_after_dele_keeps_spool(env):
    """R1939-22: a session killed after DELE leaves the spool byte-identical
    and no lock behind."""
    _killed_session(env, "sigkill", signal.SIGKILL)


def test_sigterm_after_dele_keeps_spool(env):
    """R1939-22: server shutdown (SIGTERM) is not a QUIT: no UPDATE."""
    _killed_session(env, "sigterm", signal.SIGTERM)


def test_sighup_after_dele_keeps_spool(env):
    """R1939-22: a hangup is not a QUIT either."""
    _killed_session(env, "sighup", signal.SIGHUP)


def _ignore_hangups():
    """What nohup leaves to the programs it starts; it survives exec."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


def test_sighup_when_started_under_nohup(env):
    """R1939-22: pop3d started with SIGHUP ignored still ends on a hangup,
    without UPDATE."""
    _killed_session(env, "sighup-nohup", signal.SIGHUP,
                    preexec_fn=_ignore_hangups)


def _rewritten(env, name, change, retr=None):
    """Log in on M, DELE 1, let another program rewrite the spool under the
    MTA locks, optionally RETR a message, then QUIT: UPDATE must delete
    nothing and say [SYS/TEMP]; the spool stays as the other program wrote
    it; the lock is released (R1939-54). All problems are reported."""
    d, spool, data = setup(env, name, "M.mbox")
    new = change(data)
    problems = []
    with Sessions(env, d) as s:
        a = s.start()
        a.login()
        check(a.cmd("DELE 1") == "+OK message 1 deleted", "DELE 1")
        with MtaLock(spool) as lk:
            lk.rewrite(new)
        if retr is not None:
            a.send(f"RETR {retr}")
            first = a.readline()
            if first is not None and first.startswith(b"+OK"):
                # Whatever comes, it must not be a complete reply.
                rest = a.read_available(3.0)
                if b"\r\n.\r\n" in rest or rest == b".\r\n":
                    problems.append(f"RETR {retr} of a changed message completed with "
                                    f"'.': {first!r} {rest[-200:]!r}")
            elif first is not None and not first.startswith(b"-ERR"):
                problems.append(f"RETR {retr}: {first!r}")
        if not a.eof:
            a.send("QUIT")
            reply = a.readline()
            if reply is not None and not UPDATE_FAILED.fullmatch(reply.decode()):
                problems.append(f"QUIT after the spool changed: {reply!r}, "
                                "expected -ERR [SYS/TEMP] ...")
        a.close()
        got = spool.read_bytes()
        if got != new:
            problems.append("UPDATE touched a spool another program had changed:\n"
                            f"{got!r}\nexpected\n{new!r}")
        b = s.start()
        reply = b.login()
        check(reply.startswith("+OK maildrop has "), f"login after: {reply}")
        b.cmd("QUIT")
        b.close()
    check(not problems, "\n".join(problems))


def test_mua_expunge_mid_session_no_update(env):
    """design.md section 4 item 4, R1939-53: another program removed
    message 2 (an MUA expunge): QUIT deletes nothing, -ERR [SYS/TEMP]."""
    _rewritten(env, "expunged", lambda data: b"".join(
        c for i, c in enumerate(chunks(data)) if i != 1))


def test_mua_status_rewrite_retr_incomplete(env):
    """An MUA added a Status: header to message 1, shifting every later
    message: RETR 3 must not complete with '.', QUIT must not expunge."""
    _rewritten(env, "status-rewrite",
               lambda data: data.replace(b"Subject: one\n", b"Subject: one\nStatus: RO\n", 1),
               retr=3)


def test_message_removed_retr_incomplete(env):
    """Message 2 removed by another program, then RETR 2 (which now names
    other bytes): never a complete reply; QUIT deletes nothing."""
    _rewritten(env, "removed-retr", lambda data: b"".join(
        c for i, c in enumerate(chunks(data)) if i != 1), retr=2)


def test_same_size_change_retr_incomplete(env):
    """Message 3's body changed in place with the same length (no offset
    moves): RETR 3 must still not send the changed message as complete."""
    _rewritten(env, "same-size",
               lambda data: data.replace(b"Second body line.", b"Changed body line", 1),
               retr=3)


def test_spool_emptied_mid_session(env):
    """Another program truncated the spool to 0 bytes: QUIT with deletions
    pending must not recreate or rewrite anything."""
    _rewritten(env, "emptied", lambda data: b"")
