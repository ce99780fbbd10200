"""Two pop3d "hosts" over one spool directory (issue 15, point 2;
docs/multihost.md, design.md §9).

A host here is a pop3d with its own pre-login directory and
--shared-spool, as on a machine that mounts the spools and the journal
directory over NFS: the spool directory and --journal-dir are the same
for both, nothing else is. NFS itself cannot be mounted on these
machines, so what NFS changes is forced with --shared-spool (which the
file system type turns on by itself on NFS and SMB). What each test
catches, measured by mutating pop3d, is said in its docstring.
"""

import os
import sys
import threading
import time
from pathlib import Path

from harness import MtaLock, Sessions, TestSkipped, check
from journalname import journal_name

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stress"))
import mboxcheck  # noqa: E402

IN_USE = "-ERR [IN-USE] maildrop is locked by another session"
NEW_MAIL = (b"From zoe@example.org Wed Jan 10 08:00:00 2024\n"
            b"Subject: delivered during the session\n\nfresh\n\n")


class Hosts:
    """Two hosts' flags over one spool directory d: each its own
    --preauth-dir (root's, 0555, as pop3d requires), one --journal-dir
    for both."""

    def __init__(self, env, name):
        self.env = env
        self.d = env.tempdir(name)
        self.spools = self.d / "mail"
        self.spools.mkdir()
        self.journal = self.d / "journal"
        self.args = {}
        for host in ("a", "b"):
            empty = self.d / f"{host}-empty"
            empty.mkdir()
            os.chmod(empty, 0o555)
            self.args[host] = [f"--preauth-dir={empty}",
                               f"--journal-dir={self.journal}", "--shared-spool"]

    def jdir(self, user="alice"):
        return self.journal / str(self.env.users[user][0])

    def pending(self, user="alice"):
        """Journal names (not the session locks, which stay)."""
        d = self.jdir(user)
        if not d.exists():
            return []
        return sorted(n for n in os.listdir(d) if not n.endswith(".session"))


def _other_pid():
    """A PID no process has here: what another host's PID looks like."""
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1


def test_in_use_across_hosts(env):
    """A session on host A makes a login on host B get [IN-USE] at once,
    from the session lock in the shared journal directory; meanwhile the
    spool itself carries no lock of pop3d's: an MTA delivers, and an
    flock(2) on it is free (on NFS an flock is an fcntl lock of another
    owner, which would refuse the session's own read lock and hold off
    every delivery). After A quits, B logs in and sees the new mail.
    Catches: no session lock on a shared spool (B logged in), and the
    spool flock kept on a shared spool (the flock probe failed)."""
    import fcntl
    h = Hosts(env, "mh-in-use")
    data = mboxcheck.build_spool(4, mboxcheck.rng_for(15), prefix="u")[0]
    spool = env.install_spool(h.spools / "alice", data)
    with Sessions(env, h.spools) as s:
        a = s.start(h.args["a"])
        check(a.login().startswith("+OK maildrop has 4 messages"), "login on A")
        b = s.start(h.args["b"])
        check(b.cmd("USER alice") == "+OK send PASS", "USER on B")
        t0 = time.monotonic()
        reply = b.cmd("PASS secret")
        check(reply == IN_USE, f"host B during A's session: {reply!r}")
        check(time.monotonic() - t0 < 1.9, "[IN-USE] not at once")
        b.wait_eof()
        b.close()
        check(b"perhaps on another host" in b.stderr,
              f"B's log does not say why: {b.stderr[-300:]!r}")
        fd = os.open(spool, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AssertionError("pop3d holds an flock on a shared spool") from None
        finally:
            os.close(fd)
        t0 = time.monotonic()
        with MtaLock(spool, timeout=5) as m:
            m.append(NEW_MAIL)
        check(time.monotonic() - t0 < 1.0, "the delivery waited for the session")
        check(a.cmd("DELE 1").startswith("+OK"), "DELE on A")
        check(a.cmd("QUIT") == "+OK pop3d signing off (3 messages left)", "QUIT on A")
        a.close()
        b = s.start(h.args["b"])
        reply = b.login()
        check(reply.startswith("+OK maildrop has 4 messages"), f"B after A: {reply}")
        check(b.cmd("QUIT").startswith("+OK"), "QUIT on B")
        b.close()
    check(spool.read_bytes().endswith(NEW_MAIL), "the delivery is not at the end")
    check(not h.pending(), f"journal names left: {h.pending()}")


def _quit_against_dotlock(env, h, age, release_after):
    """Host B deletes message 1 while a dotlock naming another host's PID
    is present (made age seconds ago, removed after release_after seconds
    if not None). Returns (QUIT's reply, seconds QUIT took, removal time
    or None, the spool after, the data before)."""
    data = mboxcheck.build_spool(3, mboxcheck.rng_for(16), prefix="d")[0]
    spool = env.install_spool(h.spools / "alice", data)
    lock = h.spools / "alice.lock"
    lock.write_bytes(b"%d\n" % _other_pid())
    env.chown_to(lock, "alice")
    if age:
        t = time.time() - age
        os.utime(lock, (t, t))
    removed = []

    def remove():
        time.sleep(release_after)
        lock.unlink()
        removed.append(time.monotonic())

    with Sessions(env, h.spools) as s:
        b = s.start(h.args["b"])
        b.login()
        check(b.cmd("DELE 1").startswith("+OK"), "DELE")
        t = None
        if release_after is not None:
            t = threading.Thread(target=remove)
            t.start()
        t0 = time.monotonic()
        reply = b.cmd("QUIT", timeout=60)
        took = time.monotonic() - t0
        if t is not None:
            t.join()
        b.wait_eof(30)
        b.close()
    return reply, took, (removed[0] - t0) if removed else None, spool.read_bytes(), data


def test_other_hosts_dotlock_not_broken_by_pid(env):
    """A fresh dotlock that names a PID which does not exist here (a live
    UPDATE or delivery on another host) is waited for, not broken: QUIT
    answers only after its owner removed it, then deletes. Catches the
    dotlock judged by PID on a shared spool (liblockfile's L_PID): QUIT
    answered at once, the other host's lock broken."""
    h = Hosts(env, "mh-dotlock-live")
    reply, took, removed, after, data = _quit_against_dotlock(env, h, 0, 2.0)
    check(removed is not None and took >= removed,
          f"QUIT answered after {took:.1f}s, the other host's lock was removed "
          f"at {removed}: it was broken")
    check(reply == "+OK pop3d signing off (2 messages left)", f"QUIT: {reply!r}")
    check(mboxcheck.split_spool(after)[1] == mboxcheck.split_spool(data)[1][1:],
          "message 1 not deleted once the lock was free")


def test_dead_hosts_dotlock_stale_by_age(env):
    """A dotlock left by a host that died (another host's PID, ten
    minutes old, past liblockfile's five) is stale by its age: QUIT
    breaks it and deletes. Catches a dotlock never taken as stale (QUIT
    failed with [SYS/TEMP] after the whole wait)."""
    h = Hosts(env, "mh-dotlock-dead")
    reply, took, _, after, data = _quit_against_dotlock(env, h, 600, None)
    check(reply == "+OK pop3d signing off (2 messages left)",
          f"QUIT with a dead host's dotlock: {reply!r} after {took:.1f}s")
    check(mboxcheck.split_spool(after)[1] == mboxcheck.split_spool(data)[1][1:],
          "message 1 not deleted")
    check(not (h.spools / "alice.lock").exists(), "the dotlock is left")


N_CRASH = 3000


def _kill_a_inside_update(env, h, tries=4):
    """Host A deletes every other message of a large spool and is
    SIGKILLed as soon as its journal appears in the shared directory:
    inside UPDATE. Its dotlock is then made ten minutes old, as a dead
    host's is by the time it is stale. Returns (tokens kept, tokens
    deleted, expected), with a journal pending."""
    for attempt in range(tries):
        rng = mboxcheck.rng_for(1500 + attempt)
        data, tokens, expected, _ = mboxcheck.build_spool(
            N_CRASH, rng, prefix="k", big_every=100, big_size=400_000)
        spool = env.install_spool(h.spools / "alice", data)
        jname = journal_name(spool)
        with Sessions(env, h.spools) as s:
            a = s.start(h.args["a"])
            a.login()
            a.send(b"".join(b"DELE %d\r\n" % (i + 1) for i in range(0, N_CRASH, 2)))
            for _ in range(0, N_CRASH, 2):
                check(a.readline(60).startswith(b"+OK"), "DELE on A")
            a.send("QUIT")
            jpath = h.jdir() / jname
            deadline = time.monotonic() + 60
            while not jpath.exists() and a.proc.poll() is None:
                check(time.monotonic() < deadline, "no journal within 60 s")
                time.sleep(0.0005)
            if a.proc.poll() is None:
                a.kill()
            else:
                a.close()
        if h.pending():
            # A's dotlock holds no PID (a PID means nothing to B): only
            # its age makes it stale, five minutes on. Those minutes pass.
            lock = h.spools / "alice.lock"
            check(lock.exists() and lock.read_bytes() == b"0\n",
                  f"A's dotlock: {lock.read_bytes() if lock.exists() else 'none'}")
            t = time.time() - 600
            os.utime(lock, (t, t))
            kept = [t for i, t in enumerate(tokens) if i % 2]
            deleted = [t for i, t in enumerate(tokens) if not i % 2]
            return kept, deleted, expected
        env_note = f"attempt {attempt}: UPDATE finished before the kill"
        print(f"    {env_note}", flush=True)
    raise TestSkipped("UPDATE always finished before the kill landed")


def _check_rolled_forward(h, spool, kept, deleted, expected, what):
    a = mboxcheck.Audit(spool.read_bytes(), expected).check(kept, deleted)
    check(a["ok"] and a["reappeared"] == 0 and a["messages"] == len(kept),
          f"{what}: {a}")
    check(not h.pending(), f"{what}: journal names left: {h.pending()}")
    return a


def test_crash_on_a_recovered_by_login_on_b(env):
    """Host A is killed inside UPDATE; the next login, on host B (its own
    pre-login directory, the same journal directory), finishes A's
    UPDATE before it reads the spool: every kept message once and
    byte-exact, no deleted one back, nothing left in the journal
    directory but the session lock. Catches a journal kept where only
    the host that wrote it looks (the login on B served the half-moved
    spool: damaged and duplicated messages)."""
    h = Hosts(env, "mh-crash-login")
    kept, deleted, expected = _kill_a_inside_update(env, h)
    spool = h.spools / "alice"
    with Sessions(env, h.spools) as s:
        b = s.start(h.args["b"])
        reply = b.login()
        check(reply.startswith(f"+OK maildrop has {len(kept)} messages"),
              f"login on B after A's crash: {reply}")
        check(b.cmd("QUIT").startswith("+OK"), "QUIT on B")
        b.close()
    _check_rolled_forward(h, spool, kept, deleted, expected, "after B's login")


def test_crash_on_a_recovered_by_recover_on_b(env):
    """The same crash, finished by `pop3d --recover` run on host B (its
    flags), with no client: the spool read as a file is rolled forward,
    exit 0; a second run does nothing."""
    import subprocess
    h = Hosts(env, "mh-crash-recover")
    kept, deleted, expected = _kill_a_inside_update(env, h)
    spool = h.spools / "alice"
    for run in (1, 2):
        proc = subprocess.run(env.command(h.spools, h.args["b"] + ["--recover"]),
                              env=env.child_env, stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=120)
        check(proc.returncode == 0, f"--recover on B (run {run}): exit "
              f"{proc.returncode}\n{proc.stderr.decode(errors='replace')[-800:]}")
        check((b"recovered" in proc.stderr) == (run == 1),
              f"run {run}: {proc.stderr.decode(errors='replace')[-400:]}")
        _check_rolled_forward(h, spool, kept, deleted, expected, f"--recover run {run}")
