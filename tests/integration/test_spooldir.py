"""A spool directory others may write to (issue 14, point 5; design.md
section 4.1): Debian's /var/mail is 2775 root:mail, but some systems ship
1777. There another user can plant <victim>.lock (PID 1, an old mtime:
never stale for liblockfile) that the victim cannot remove (sticky bit).
pop3d must not wait on it at every QUIT and fail in silence: it refuses
the UPDATE at once with [SYS/PERM], and the log names the lock and its
owner. At start-up, a fixed --mailbox directory writable by all is
warned about.
"""

import os
import re
import time

from harness import Sessions, TestSkipped, check, fixture

UPDATE_REFUSED = "-ERR [SYS/PERM] messages not deleted, contact the administrator"


def sticky_dir(env, name):
    d = env.tempdir(name)
    os.chmod(d, 0o1777)
    return d


def plant_lock(env, d, owner):
    """<alice>.lock as another user leaves it: PID 1, an hour old."""
    lock = d / "alice.lock"
    lock.write_bytes(b"1\n")
    os.chmod(lock, 0o644)
    env.chown_to(lock, owner)
    old = time.time() - 3600
    os.utime(lock, (old, old))
    return lock


def test_foreign_dotlock_refused_at_once(env):
    """Another user's dotlock in a 1777 spool directory: DELE + QUIT gets
    [SYS/PERM] at once (it waited 15 s for [SYS/TEMP] before, for good),
    nothing is deleted, the lock is left for the admin, and the log names
    it and its owner."""
    if not env.really_root:
        raise TestSkipped("needs real root to plant a lock as another uid")
    d = sticky_dir(env, "foreign-lock")
    data = fixture("M2.mbox")
    spool = env.install_spool(d / "alice", data)
    lock = plant_lock(env, d, "bob")
    bob_uid = env.users["bob"][0]
    with Sessions(env, d) as s:
        a = s.start()
        a.login()
        check(a.cmd("DELE 1").startswith("+OK"), "DELE 1")
        t0 = time.monotonic()
        reply = a.cmd("QUIT", timeout=40)
        took = time.monotonic() - t0
        check(reply == UPDATE_REFUSED, f"QUIT: {reply!r}, expected {UPDATE_REFUSED!r}")
        check(took < 3.0, f"QUIT took {took:.1f} s: waited on a foreign dotlock")
        a.close()
        log = a.stderr.decode(errors="replace")
        pat = (rf"<3>{re.escape(str(lock))}: refused: a foreign dotlock, owned by "
               rf"uid {bob_uid} \(bob\), not by the spool's owner \(uid \d+\) or root; "
               r"nothing is deleted until it is removed; the spool directory is "
               r"writable by all users, who can do this: the supported layout is "
               r"2775 root:mail")
        check(any(re.fullmatch(pat, line) for line in log.splitlines()),
              f"no log line names the foreign lock and its owner; log:\n{log}")
    check(spool.read_bytes() == data, "the spool changed")
    check(lock.exists(), "the foreign lock was removed")


def test_planted_spool_names_the_directory(env):
    """A spool pre-created by another user in a 1777 directory: the login
    is refused ([SYS/PERM], as before), and the log line names the owner
    and the world-writable directory that allowed it."""
    if not env.really_root:
        raise TestSkipped("needs real root to plant a spool as another uid")
    d = sticky_dir(env, "planted-spool")
    env.install_spool(d / "alice", fixture("M2.mbox"), user="bob")
    bob_uid = env.users["bob"][0]
    with Sessions(env, d) as s:
        a = s.start()
        a.cmd("USER alice")
        reply = a.cmd("PASS secret")
        check(reply.startswith("-ERR [SYS/PERM]"), f"PASS: {reply!r}")
        a.close()
    pat = (rf"<3>{re.escape(str(d))}/alice: refused: owned by uid {bob_uid}, not \d+; "
           r"the spool directory is writable by all users, who can do this: the "
           r"supported layout is 2775 root:mail")
    log = a.stderr.decode(errors="replace")
    check(any(re.fullmatch(pat, line) for line in log.splitlines()),
          f"no log line names the planted spool's owner and the directory; log:\n{log}")


def test_own_stale_dotlock_still_broken(env):
    """A dotlock of the user's own (a killed session's, naming a dead
    PID) in the same directory is stale, not foreign: UPDATE breaks it
    and deletes."""
    d = sticky_dir(env, "own-lock")
    data = fixture("M2.mbox")
    env.install_spool(d / "alice", data)
    lock = plant_lock(env, d, "alice")
    lock.write_bytes(b"999999999\n")
    with Sessions(env, d) as s:
        a = s.start()
        a.login()
        check(a.cmd("DELE 1").startswith("+OK"), "DELE 1")
        reply = a.cmd("QUIT", timeout=40)
        check(reply.startswith("+OK"), f"QUIT: {reply!r}")
        a.close()
    check(not lock.exists(), "the stale dotlock was left")


def test_world_writable_dir_warned_at_startup(env):
    """A fixed --mailbox directory of mode 1777 is warned about at
    start-up, with the supported layout; 0777 (every login refused) is
    logged as an error. A safe directory gives no such line."""
    cases = ((0o1777, r"<4>spool directory {}: writable by all users \(mode 1777\): "
              r"any of them can plant another's spool or dotlock and stop that "
              r"user's logins or deletions; the supported layout is 2775 root:mail"),
             (0o777, r"<3>spool directory {}: writable by all users and not sticky "
              r"\(mode 0777\): every login will be refused; the supported layout "
              r"is 2775 root:mail"),
             (0o2775, None))
    for mode, pat in cases:
        d = env.tempdir(f"startup-{mode:o}")
        os.chmod(d, mode)
        with Sessions(env, d) as s:
            a = s.start()
            check(a.cmd("QUIT").startswith("+OK"), "QUIT")
            a.close()
        log = a.stderr.decode(errors="replace").splitlines()
        hits = [l for l in log if "spool directory" in l]
        if pat is None:
            check(hits == [], f"mode {mode:o}: unexpected {hits}")
        else:
            want = pat.format(re.escape(str(d)))
            check(any(re.fullmatch(want, l) for l in hits),
                  f"mode {mode:o}: no start-up line matches {want!r}; log:\n" + "\n".join(log))
