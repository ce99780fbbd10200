"""Hang-ups and signals around UPDATE, and a client that stops reading
(issue 5, "Faults"):

- the client hangs up (close: EPIPE on the reply, SIGPIPE ignored) or
  resets (RST: ECONNRESET) while UPDATE runs: UPDATE completes;
- SIGTERM or SIGHUP while UPDATE runs: UPDATE completes, then the process
  exits; in TRANSACTION: the process exits and nothing is deleted;
- a client stops reading in the middle of a large RETR: the process exits
  after the write timeout (--timeout=2), deliveries are not held up
  meanwhile, and the lock is released (a new session works);
- a unit stop (SIGTERM to every process of the session, the dotlock
  keeper too) while UPDATE holds the dotlock: the keeper outlives it and
  removes the lock once UPDATE is done.

UPDATE is held open for the signal or hang-up by the shim: its first
write to the spool pauses for 800 ms.
"""

import fcntl
import os
import signal
import socket
import struct
import time
from pathlib import Path

from faultlib import (TestSkipped, check, check_log_clean, descendants, harness, kill_tree,
                      log_text, mboxcheck)
from journalname import journal_name

PAUSE_MS = 800
DELETE = (0, 3, 4, 9)


def data():
    rng = mboxcheck.rng_for(99)
    return mboxcheck.build_spool(12, rng, prefix="g", big_every=5, big_size=200_000)


def compacted(spool, tokens, expected):
    return b"".join(expected[t] for i, t in enumerate(tokens) if i not in DELETE)


def _update_with(ctx, name, disturb, tcp=True):
    """Login, DELE, QUIT; disturb(session) while UPDATE is paused.
    Returns (session, spool bytes after, expected bytes, journal left)."""
    env = ctx.env
    spool_bytes, tokens, expected, _ = data()
    d = env.tempdir(name)
    spool = env.install_spool(d / "alice", spool_bytes)
    log = d.parent / (d.name + ".shim")
    mk = env.tcp_session if tcp else env.socket_session
    s = mk(d, rules=f"pwrite@1=pause:{PAUSE_MS}", paths=[spool], log=log)
    try:
        s.login()
        for i in DELETE:
            check(s.cmd(f"DELE {i + 1}").startswith("+OK"), "DELE")
        s.send("QUIT")
        time.sleep(PAUSE_MS / 4000)
        disturb(s)
        rc = s.wait(15)
        check(rc is not None, f"{name}: pop3d still running 15 s after the disturbance")
    finally:
        s.close()
    from faultlib import fired
    check(fired(log), f"{name}: UPDATE never reached its first write (no pause)")
    left = [f for f in env.journal_files() if f.startswith(journal_name(spool))]
    ctx.count("signal and hang-up cases")
    return s, rc, spool.read_bytes(), compacted(spool, tokens, expected), left, d


def _judge(name, s, rc, got, want, left, d, clean_exit):
    problems = []
    if got != want:
        problems.append(f"{name}: UPDATE did not complete (spool {len(got)} octets, "
                        f"expected {len(want)})")
    if left:
        problems.append(f"{name}: journal left: {left}")
    if (d / "alice.lock").exists():
        problems.append(f"{name}: dotlock left")
    if clean_exit and rc != 0:
        problems.append(f"{name}: pop3d exit status {rc}")
    text = log_text(s.stderr)
    if clean_exit and "reason=QUIT" not in text:
        problems.append(f"{name}: no logout line with reason=QUIT:\n{text}")
    try:
        check_log_clean(s.stderr)
    except Exception as e:
        problems.append(f"{name}: {e}")
    check(not problems, "\n".join(problems))


def test_hangup_during_update(ctx):
    """The client closes its end: the +OK cannot be sent (EPIPE)."""
    def hang_up(s):
        s.sock.shutdown(socket.SHUT_RDWR)
        s.sock.close()
    r = _update_with(ctx, "hangup-update", hang_up)
    _judge("hang-up during UPDATE", *r, clean_exit=True)


def test_reset_during_update(ctx):
    """The client resets the connection (RST): ECONNRESET."""
    def reset(s):
        s.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.sock.close()
    r = _update_with(ctx, "reset-update", reset)
    _judge("reset during UPDATE", *r, clean_exit=True)


def test_sigterm_during_update(ctx):
    r = _update_with(ctx, "sigterm-update", lambda s: os.kill(s.pid, signal.SIGTERM))
    _judge("SIGTERM during UPDATE", *r, clean_exit=False)


def test_sighup_during_update(ctx):
    r = _update_with(ctx, "sighup-update", lambda s: os.kill(s.pid, signal.SIGHUP))
    _judge("SIGHUP during UPDATE", *r, clean_exit=False)


def test_sigterm_in_transaction(ctx):
    """SIGTERM or SIGHUP after DELE, before QUIT: the process exits and
    nothing is deleted (no UPDATE without QUIT)."""
    env = ctx.env
    spool_bytes, _t, _e, _m = data()
    for sig in (signal.SIGTERM, signal.SIGHUP):
        d = env.tempdir(f"sig{sig}-trans")
        spool = env.install_spool(d / "alice", spool_bytes)
        s = env.socket_session(d)
        try:
            s.login()
            s.cmd("DELE 1")
            os.kill(s.pid, sig)
            rc = s.wait(10)
        finally:
            s.close()
        ctx.count("signal and hang-up cases")
        check(rc is not None, f"signal {sig}: pop3d did not exit")
        check(spool.read_bytes() == spool_bytes, f"signal {sig}: the spool changed")
        check(not (d / "alice.lock").exists(), f"signal {sig}: dotlock left")


def test_client_stops_reading(ctx):
    """RETR of a 16 MB message, and the client reads nothing: with
    --timeout=2 the process exits within a few seconds, a delivery made
    meanwhile is not held up, and a new session works at once."""
    env = ctx.env
    rng = mboxcheck.rng_for(3)
    big = mboxcheck.make_message("huge", rng, size=16_000_000)
    first = mboxcheck.stored_form(big, mboxcheck.from_line(rng))
    d = env.tempdir("slow-reader")
    spool = env.install_spool(d / "alice", first)
    s = env.socket_session(d, args=["--timeout=2"], rcvbuf=16384)
    try:
        s.login()
        s.send("RETR 1")
        t0 = time.monotonic()
        time.sleep(0.5)
        extra = (b"From mta@example.org Mon Mar  3 09:00:00 2025\n"
                 b"Message-ID: <late@x>\n\nlate\n\n")
        t1 = time.monotonic()
        with harness.MtaLock(spool, timeout=10) as lk:
            lk.append(extra)
        waited = time.monotonic() - t1
        rc = s.wait(20)
        took = time.monotonic() - t0
    finally:
        s.close()
    ctx.count("signal and hang-up cases")
    ctx.note(f"client that stops reading: pop3d gone {took:.1f}s after RETR "
             f"(--timeout=2); a delivery meanwhile waited {waited * 1000:.0f} ms")
    check(rc is not None, "pop3d still running 20 s after the client stopped reading")
    check(took < 8, f"pop3d took {took:.1f}s to give up on a client that stopped reading")
    check(waited < 1.0, f"a delivery waited {waited:.1f}s while a client stalled a RETR")
    text = log_text(s.stderr)
    check("reason=timeout" in text, f"no logout with reason=timeout (exit status {rc}):\n{text}")
    check(spool.read_bytes() == first + extra, "the spool changed")
    p = env.session(d)
    try:
        t2 = time.monotonic()
        reply = p.login()
        check(time.monotonic() - t2 < 2, "the next login waited")
        check(reply.startswith("+OK maildrop has 2 messages"), f"next login: {reply}")
        p.cmd("QUIT")
    finally:
        p.close()


MAIL_GID = 8  # "mail" in tests/cwrap/env.sh's group file; bob is not in it


def keeper_spool(env, name, data):
    """bob's spool in a 2775 root:mail directory, where bob may not create
    names: his session's dotlock is made and removed by its keeper
    (design.md §2). Needs real root. Returns (directory, spool, lock)."""
    if not env.really_root:
        raise TestSkipped("needs real root to give the spool directory to group mail")
    d = env.tempdir(name)
    spool = env.install_spool(d / "bob", data, "bob")
    os.chown(d, 0, MAIL_GID)
    os.chmod(d, 0o2775)
    return d, spool, d / "bob.lock"


def alive(pid):
    """pid exists and is not a zombie (a dead keeper stays one until its
    session reaps it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_for_lock(lock, session, timeout=8):
    """The PID in lock once a process of session (itself or its keeper)
    made it; None if none did within timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid = int(lock.read_bytes().split()[0])
        except (FileNotFoundError, IndexError, ValueError):
            pid = None
        if pid is not None and (pid == session or pid in descendants(session)):
            return pid
        time.sleep(0.01)
    return None


def test_unit_stop_during_update_with_keeper(ctx):
    """systemctl stop with KillMode=control-group (units/pop3d.service)
    sends SIGTERM to every process of the session's cgroup: the session,
    which holds it inside UPDATE, and its dotlock keeper. A keeper that
    died of it left the session to liblockfile's setgid dotlockfile,
    which under NoNewPrivileges= has no group mail and cannot remove a
    lock in a 2775 root:mail directory (it exits 1, which was taken as
    success): a stale bob.lock that procmail honours for 1024 s. Here the
    session's own removal is made to fail as it fails there (the shim
    refuses every unlink of the lock in the session, FAULTSHIM_MAIN_ONLY,
    not in the keeper, which has group mail). UPDATE waits for the write
    lock with the dotlock taken; every process of the session gets
    SIGTERM; the write lock is released. UPDATE must be complete (or its
    journal pending), the keeper must have outlived the SIGTERM and be
    gone with its session, and no dotlock may be left."""
    env = ctx.env
    spool_bytes, tokens, expected, _ = data()
    d, spool, lock = keeper_spool(env, "unitstop-keeper", spool_bytes)
    want = compacted(spool, tokens, expected)
    log = d.parent / (d.name + ".shim")
    p = env.session(d, rules="unlink@1-=EPERM", paths=[lock], log=log, main_only=True)
    keeper = None
    survived = None
    try:
        p.login("bob", "hunter2")
        for i in DELETE:
            check(p.cmd(f"DELE {i + 1}").startswith("+OK"), "DELE")
        fd = os.open(spool, os.O_RDWR)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX)
            p.send("QUIT")
            keeper = wait_for_lock(lock, p.pid)
            check(keeper is not None and keeper != p.pid,
                  f"no dotlock made by a keeper of the session {p.pid} while UPDATE "
                  f"waited for the write lock (test premise): "
                  f"{lock.read_bytes() if lock.exists() else 'no lock'}")
            kill_tree(p.pid, signal.SIGTERM)  # the unit's stop, pid by pid
            time.sleep(0.5)
            survived = alive(keeper)
        finally:
            os.close(fd)  # releases the write lock
        rc = p.proc.wait(30)
    finally:
        if p.proc.poll() is None:
            kill_tree(p.pid)
        p.close()
    ctx.count("signal and hang-up cases")
    got = spool.read_bytes()
    left = env.journal_files("bob")
    text = log_text(p.stderr)
    problems = []
    if lock.exists():
        problems.append(f"a stale dotlock is left: {lock.read_bytes()!r}")
    if got != want and not left:
        problems.append(f"UPDATE neither complete (spool {len(got)} octets, expected "
                        f"{len(want)}) nor pending (no journal)")
    if not survived:
        problems.append(f"the keeper {keeper} died of the SIGTERM")
    if rc != -signal.SIGTERM:
        problems.append(f"the session ended with {rc}, not by the SIGTERM after UPDATE")
    deadline = time.monotonic() + 5
    while alive(keeper) and time.monotonic() < deadline:
        time.sleep(0.05)
    if alive(keeper):
        problems.append(f"the keeper {keeper} outlived its session")
    for bad in ("keeper is gone", "cannot remove"):
        if bad in text:
            problems.append(f"the log says {bad!r}")
    check(not problems, "unit stop during UPDATE, with a keeper: " + "; ".join(problems)
          + f"\n{text}")
    # The next login agrees.
    q = env.session(d)
    try:
        r = q.login("bob", "hunter2")
        n = len(tokens) - len(DELETE)
        check(r.startswith(f"+OK maildrop has {n} messages"), f"next login: {r}")
        check(q.cmd("QUIT").startswith("+OK"), "QUIT")
    finally:
        q.close()
    check(spool.read_bytes() == want and not env.journal_files("bob"),
          "after the next login: UPDATE not complete or a journal left")
