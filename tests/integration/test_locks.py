"""MTAs and MUAs that take only one kind of lock (issue 13, point 5;
design.md §4.2). UPDATE takes the dotlock, then the fcntl write lock, then
flock; each read step an fcntl read lock and a shared flock. The session
lock is beside the journal, on no lock a writer takes. Each test holds
exactly one of them across QUIT, as a program that knows only that one
would, and shows that pop3d respects it on its own:

- an fcntl write lock alone (Postfix with mailbox_delivery_lock = fcntl,
  Exim's appendfile with use_fcntl_lock only): no reply to QUIT until it
  is released, and the mail written under it is kept;
- an fcntl read lock alone (an MUA or biff reading the spool): UPDATE
  rewrites what it reads, so it waits for that too; a read lock of its
  own would not exclude it;
- a dotlock alone (procmail with LOCKFILE only, mail(1), movemail): the
  same, after liblockfile's retry;
- flock alone (Postfix with mailbox_delivery_lock = flock, Dovecot's
  mbox_write_locks = flock): the same; and it is held off only by a step,
  never by an idle session (until round 15 of issue 13 it waited for the
  whole session), and a login waits for the message it is writing.

Each test fails against the pop3d that lacks the corresponding lock (the
mutations are listed in tests/README.md).
"""

import fcntl
import os
import time

from harness import Sessions, TestSkipped, check
from test_concurrency import NEW_MAIL, NEW_MAIL_SIZE, chunks, setup


def _append(fd, data):
    os.lseek(fd, 0, os.SEEK_END)
    os.write(fd, data)
    os.fsync(fd)


def _quit_held(env, name, take, release, hold=1.0, wait=30, args=()):
    """Log in, DELE 2, then take() a lock; QUIT must get no reply while
    it is held (hold seconds, NEW_MAIL appended meanwhile), then +OK once
    release() let it go. Returns the time from release to the reply."""
    d, spool, data = setup(env, name)
    with Sessions(env, d) as s:
        a = s.start(args)
        a.login()
        check(a.cmd("DELE 2").startswith("+OK"), "DELE 2")
        fd = os.open(spool, os.O_RDWR)
        try:
            take(fd, spool)
            a.send("QUIT")
            time.sleep(hold)
            _append(fd, NEW_MAIL)
            early = a.read_available(0.1)
            check(early == b"", f"QUIT answered while the lock was held: {early!r}")
            release(fd, spool)
            t0 = time.monotonic()
        finally:
            os.close(fd)
        reply = a.readline(wait)
        took = time.monotonic() - t0
        check(reply is not None and reply.startswith(b"+OK pop3d signing off"),
              f"QUIT: {reply!r}")
        a.close()
    want = chunks(data)[0] + NEW_MAIL
    got = spool.read_bytes()
    check(got == want, f"spool after QUIT:\n{got!r}\nexpected\n{want!r}")
    check(sorted(os.listdir(d)) == ["alice"], f"files left behind: {os.listdir(d)}")
    return took


def test_fcntl_write_lock_only(env):
    """A writer holding only lockf(F_LOCK) (fcntl F_WRLCK) across QUIT:
    no reply until it releases; its mail is kept."""
    _quit_held(env, "fcntl-write-only",
               lambda fd, p: fcntl.lockf(fd, fcntl.LOCK_EX),
               lambda fd, p: fcntl.lockf(fd, fcntl.LOCK_UN))


def test_fcntl_read_lock_only(env):
    """A reader holding only an fcntl read lock across QUIT: UPDATE must
    not rewrite the spool under it (a read lock of UPDATE's own would be
    granted beside it). Its 'mail' here is appended as if by a writer
    that had the lock before it, to keep one shape of check."""
    d, spool, data = setup(env, "fcntl-read-only")
    with Sessions(env, d) as s:
        a = s.start()
        a.login()
        check(a.cmd("DELE 2").startswith("+OK"), "DELE 2")
        fd = os.open(spool, os.O_RDONLY)
        try:
            fcntl.lockf(fd, fcntl.LOCK_SH)
            a.send("QUIT")
            time.sleep(1.0)
            early = a.read_available(0.1)
            check(spool.read_bytes() == data, "the spool changed under a read lock")
            check(early == b"", f"QUIT answered while a reader held a read lock: {early!r}")
            fcntl.lockf(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
        reply = a.readline(30)
        check(reply is not None and reply.startswith(b"+OK pop3d signing off"),
              f"QUIT: {reply!r}")
        a.close()
    check(spool.read_bytes() == chunks(data)[0], "spool after QUIT")


def _dotlock_take(fd, spool):
    # As procmail and liblockfile make it: O_EXCL, our live PID inside,
    # so pop3d's liblockfile does not think it stale.
    lfd = os.open(f"{spool}.lock", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(lfd, b"%d\n" % os.getpid())
    os.close(lfd)


def test_dotlock_only(env):
    """A writer holding only <spool>.lock across QUIT: no reply until it
    is removed (pop3d retries within 20-320 ms); its mail kept."""
    took = _quit_held(env, "dotlock-only", _dotlock_take,
                      lambda fd, p: os.unlink(f"{p}.lock"), hold=1.5)
    check(took < 12, f"QUIT answered {took:.1f}s after the dotlock went")


def test_dotlock_writer_caught_mid_message(env):
    """A writer holding only the dotlock is halfway through appending a
    message when the session logs in (reading takes no dotlock, §4.2), so
    the session lists that message as it stood. Deleting it at QUIT, once
    the writer has finished, must not keep the rest of it glued to the
    message before (nor, with every message deleted, leave a spool that no
    longer starts with From_): nothing is deleted, -ERR [SYS/TEMP], the
    whole message kept; the next session lists it whole and deletes it."""
    head = NEW_MAIL[:NEW_MAIL.index(b"\n\n") + 2]
    rest = NEW_MAIL[len(head):]
    for name, dele in (("mid-message-last", "3"), ("mid-message-all", "1 2 3")):
        d, spool, data = setup(env, name)
        check(len(chunks(data)) == 2, "the fixture has two messages")
        with Sessions(env, d) as s:
            fd = os.open(spool, os.O_RDWR)
            try:
                _dotlock_take(fd, spool)
                _append(fd, head)
                a = s.start()
                check(a.login().startswith("+OK maildrop has 3 messages"),
                      "the message being written is listed")
                for n in dele.split():
                    check(a.cmd(f"DELE {n}").startswith("+OK"), f"DELE {n}")
                a.send("QUIT")
                time.sleep(0.5)
                _append(fd, rest)
                os.unlink(f"{spool}.lock")
            finally:
                os.close(fd)
            reply = a.readline(30)
            check(reply == b"-ERR [SYS/TEMP] messages not deleted, try again later",
                  f"{name}: QUIT: {reply!r}")
            a.close()
            check(b"was still being written at login" in a.stderr,
                  f"{name}: no log line says why nothing was deleted")
            got = spool.read_bytes()
            check(got == data + NEW_MAIL, f"{name}: spool after QUIT:\n{got!r}")
            b = s.start()
            check(b.login().startswith("+OK maildrop has 3 messages"), "next login")
            check(b.cmd("DELE 3").startswith("+OK"), "DELE 3 again")
            check(b.cmd("QUIT").startswith("+OK pop3d signing off"), "QUIT again")
            b.close()
        check(spool.read_bytes() == data, f"{name}: spool after the second QUIT")


def _flock_take(fd, spool):
    # Not a blocking flock: a pop3d that held flock for the whole session
    # would hang the test instead of failing it.
    deadline = time.monotonic() + 5
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            check(time.monotonic() < deadline, "flock held by an idle session for 5 s")
            time.sleep(0.02)


def _flock_release(fd, spool):
    fcntl.flock(fd, fcntl.LOCK_UN)


def test_flock_only(env):
    """A writer holding only flock(LOCK_EX) across QUIT: no reply until it
    releases; its mail kept."""
    _quit_held(env, "flock-only", _flock_take, _flock_release)


def test_flock_writer_not_held_by_session(env):
    """A writer that takes only flock, during an idle session: it gets the
    spool at once, not at the session's end (design.md §4.2, guarantee 2:
    a session holds up delivery for one step at most). What it delivers
    is not listed, and is kept by UPDATE."""
    d, spool, data = setup(env, "flock-idle")
    with Sessions(env, d) as s:
        a = s.start()
        check(a.login().startswith("+OK maildrop has 2 messages"), "login")
        fd = os.open(spool, os.O_RDWR)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise AssertionError("an idle session holds off a flock writer") from None
            _append(fd, NEW_MAIL)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
        check(a.cmd("STAT").startswith("+OK 2 "), "the new mail is listed")
        check(a.cmd("DELE 2").startswith("+OK"), "DELE 2")
        reply = a.cmd("QUIT")
        check(reply.startswith("+OK pop3d signing off"), f"QUIT: {reply!r}")
        a.close()
    want = chunks(data)[0] + NEW_MAIL
    got = spool.read_bytes()
    check(got == want, f"spool after QUIT:\n{got!r}\nexpected\n{want!r}")


def test_flock_writer_mid_message_at_login(env):
    """A writer that takes only flock is halfway through a message when
    the user logs in: the parse waits for it (a shared flock beside the
    read lock), so the message is listed whole, not as it stood."""
    head = NEW_MAIL[:NEW_MAIL.index(b"\n\n") + 2]
    rest = NEW_MAIL[len(head):]
    d, spool, data = setup(env, "flock-mid-message")
    with Sessions(env, d) as s:
        fd = os.open(spool, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            _append(fd, head)
            a = s.start()
            a.cmd("USER alice")
            a.send("PASS secret")
            early = a.read_available(1.0)
            _append(fd, rest)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
        check(early == b"", f"PASS answered while a flock writer was mid-message: {early!r}")
        reply = a.readline(20)
        want = f"+OK maildrop has 3 messages ({320 + NEW_MAIL_SIZE} octets)".encode()
        check(reply is not None and reply.rstrip(b"\r\n") == want,
              f"PASS after the writer let go: {reply!r}, expected {want!r}")
        a.cmd("QUIT")
        a.close()
    check(spool.read_bytes() == data + NEW_MAIL, "the spool after a QUIT that deleted nothing")


def test_flock_only_shared_spool(env):
    """With --shared-spool the session lock is beside the journal, not a
    flock on the spool, so until round 13 nothing held off a writer that
    takes only flock (Postfix's mailbox_delivery_lock = flock) and UPDATE
    rewrote the spool under it. Where flock is the file system's own (a
    local or cluster file system, as here), UPDATE takes it: no reply to
    QUIT until the writer releases it; its mail kept."""
    _quit_held(env, "flock-only-shared", _flock_take, _flock_release,
               args=["--shared-spool"])


def test_quit_without_deletions_takes_no_lock(env):
    """QUIT with nothing to delete (nothing DELEted, or all of it RSET)
    moves no byte, so it takes neither the dotlock nor the write lock: an
    MDA that retries a held dotlock only every 8 s (procmail's LOCKSLEEP)
    is never made to wait by it. Here the dotlock and the fcntl write lock
    are held by a writer, and QUIT must still answer at once."""
    d, spool, data = setup(env, "quit-no-lock")
    for script in (["RETR 1"], ["DELE 1", "RSET"]):
        with Sessions(env, d) as s:
            a = s.start()
            a.login()
            fd = os.open(spool, os.O_RDWR)
            try:
                for line in script:
                    a.send(line)
                    reply = a.readline()
                    check(reply.startswith(b"+OK"), f"{line}: {reply!r}")
                    if line.startswith("RETR"):
                        a.multiline()
                _dotlock_take(fd, spool)
                fcntl.lockf(fd, fcntl.LOCK_EX)
                t0 = time.monotonic()
                reply = a.cmd("QUIT", timeout=30)
                took = time.monotonic() - t0
                fcntl.lockf(fd, fcntl.LOCK_UN)
                os.unlink(f"{spool}.lock")
            finally:
                os.close(fd)
            a.close()
        check(reply.startswith("+OK pop3d signing off") and took < 1.0,
              f"{script} + QUIT with the locks held elsewhere: {reply!r} after {took:.1f}s")
        check(spool.read_bytes() == data, f"{script}: the spool changed")


def test_change_while_update_waits_for_dotlock(env):
    """design.md §4.7: with mail appended since login, UPDATE reads the
    messages again before it takes the dotlock (check_ahead), so that an
    MDA's dotlock retries do not wait on that read. A message changed
    after that check, while UPDATE waits for a dotlock-only writer, must
    still be caught under the locks: nothing deleted, the change and the
    new mail kept. Fails if the check ahead is trusted without the
    snapshot taken with it (or that snapshot without the fstat under the
    locks)."""
    d, spool, data = setup(env, "change-after-check-ahead")
    msgs = chunks(data)
    # Message 2 is kept and moved down over message 1: the check covers
    # it (messages before the first deleted one are neither moved nor
    # checked).
    at = len(msgs[0]) + msgs[1].index(b"exactly")
    with Sessions(env, d) as s:
        a = s.start()
        a.login()
        check(a.cmd("DELE 1").startswith("+OK"), "DELE 1")
        fd = os.open(spool, os.O_RDWR)
        try:
            _append(fd, NEW_MAIL)  # the login snapshot no longer holds
            _dotlock_take(fd, spool)
            a.send("QUIT")
            # The check ahead runs now (a few messages: milliseconds),
            # then UPDATE polls the dotlock. Were the edit to land before
            # the check, that check would catch it: the outcome wanted is
            # the same either way.
            time.sleep(1.0)
            os.pwrite(fd, b"EXACTLY", at)
            os.fsync(fd)
            os.unlink(f"{spool}.lock")
        finally:
            os.close(fd)
        reply = a.readline(30)
        check(reply == b"-ERR [SYS/TEMP] messages not deleted, try again later",
              f"QUIT: {reply!r}")
        a.close()
    want = (data[:at] + b"EXACTLY" + data[at + 7:]) + NEW_MAIL
    got = spool.read_bytes()
    check(got == want, f"spool after QUIT:\n{got!r}\nexpected\n{want!r}")


def test_reading_leaves_atime_alone(env):
    """procmail, before it appends, sleeps a whole second with the
    dotlock and its fcntl write lock held if the mailbox was read in the
    current second (so that its write leaves mtime after atime: "new
    mail"). A session's reads must therefore not touch the spool's atime
    (O_NOATIME), or every delivery after a RETR holds its locks for 1 s."""
    d, spool, data = setup(env, "noatime")
    # Control: this file system updates atime on a read (relatime, with
    # atime before mtime); on a noatime mount the test proves nothing.
    probe = d / "probe"
    probe.write_bytes(b"x")
    pst = os.stat(probe)
    os.utime(probe, ns=(pst.st_mtime_ns - 10**10, pst.st_mtime_ns))
    probe.read_bytes()
    if os.stat(probe).st_atime_ns == pst.st_mtime_ns - 10**10:
        raise TestSkipped("this file system does not update atime on reads")
    probe.unlink()
    st = os.stat(spool)
    old = st.st_mtime_ns - 10**10
    os.utime(spool, ns=(old, st.st_mtime_ns))
    with Sessions(env, d) as s:
        a = s.start()
        a.login()
        for n in (1, 2):
            check(a.cmd(f"RETR {n}").startswith("+OK"), f"RETR {n}")
            a.multiline()
        check(a.cmd("QUIT").startswith("+OK"), "QUIT")
        a.close()
    atime = os.stat(spool).st_atime_ns  # before our own read below
    check(atime == old, f"the session's reads moved the spool's atime: {atime} != {old}")
    check(spool.read_bytes() == data, "the spool changed")
