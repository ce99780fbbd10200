"""pop3d --recover (issue 13, point 3; design.md §4.9): the journal of an
UPDATE that a SIGKILL interrupted is completed without a login, so that
other mail programs reading the spool never see it half rewritten.

Each run kills a session inside UPDATE with the shim (the Nth write,
sync, rename or unlink on the spool or its journal), checks that the
spool is really left in between (the premise), runs `pop3d --recover`
(every user, or `--recover=alice`) with no client at all, and checks the
file directly: every kept message present once and byte-exact, in order,
nothing unknown, no journal left. A second run must change nothing.
"""

import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import time

from faultlib import check, kill_tree, log_text, mboxcheck
from journalname import journal_name
from test_signals import alive, keeper_spool, wait_for_lock

N = 400
# (rule, the files the shim counts on): the first write into the spool
# (its window saved in the journal), a later write, the first sync of the
# spool, and the second progress slot made durable in the journal.
KILLS = [
    ("pwrite@1=killafter", "spool"),
    ("pwrite@3=killafter", "spool"),
    ("fdatasync@1=killafter", "spool"),
    ("fdatasync@2=killafter", "journal"),
]


def _spool(env, name):
    rng = mboxcheck.rng_for(4242)
    data, tokens, expected, _ = mboxcheck.build_spool(N, rng, prefix="r", big_every=40,
                                                      big_size=200_000)
    d = env.tempdir(name)
    spool = env.install_spool(d / "alice", data)
    return d, spool, data, tokens, expected


def _kill_in_update(env, d, spool, rule, on, dele, args=(), jdir=None,
                    user=("alice", "secret")):
    jdir = jdir or env.journal_dir(user[0])
    paths = [spool] if on == "spool" else [f"{jdir}/*"]
    log = d.parent / (d.name + ".shim")
    p = env.session(d, args, rules=rule, paths=paths, log=log)
    try:
        p.login(*user)
        p.send(b"".join(b"DELE %d\r\n" % (i + 1) for i in dele))
        for _ in dele:
            line = p.readline(60)
            check(line is not None and line.startswith(b"+OK"), f"DELE: {line!r}")
        p.send("QUIT")
        rc = p.proc.wait(60)
    finally:
        if p.proc.poll() is None:
            kill_tree(p.pid)
        p.close()
    check(rc == -signal.SIGKILL, f"{rule}: the session was not killed (exit {rc})")


def run_recover(env, d, args=(), timeout=60):
    """pop3d --recover with no client: (exit status, log)."""
    proc = subprocess.run(env.command(d, args), env=env.child_env(), stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=timeout)
    check(proc.stdout == b"", f"--recover wrote to stdout: {proc.stdout[:200]!r}")
    return proc.returncode, proc.stderr


def _dele1_killed(env, name):
    """A spool whose UPDATE of DELE 1 was killed at its first write:
    (d, spool, tokens, expected, the journal's names)."""
    d, spool, _, tokens, expected = _spool(env, name)
    _kill_in_update(env, d, spool, "pwrite@1=killafter", "spool", [0])
    pending = env.journal_files()
    check(pending, "no journal pending after the kill (test premise)")
    return d, spool, tokens, expected, pending


def _recover_finishes(env, d, spool, tokens, expected, what):
    """--recover, as the sessions run it, now finishes DELE 1."""
    rc, log = run_recover(env, d, ["--recover"])
    a = mboxcheck.Audit(spool.read_bytes(), expected).check(tokens[1:], tokens[:1])
    check(rc == 0 and a["ok"] and not env.journal_files(),
          f"{what}: exit {rc}, {a}\n{log_text(log)}")


def test_recover_after_kill_in_update(ctx):
    env = ctx.env
    check(env.has_journal, "no --journal-dir in this build")
    for k, (rule, on) in enumerate(KILLS):
        for how in (["--recover"], ["--recover=alice"]):
            d, spool, data, tokens, expected = _spool(env, f"recover{k}{how[0][-5:]}")
            dele = list(range(0, N, 2))
            kept = [t for i, t in enumerate(tokens) if i % 2]
            deleted = [t for i, t in enumerate(tokens) if not i % 2]
            _kill_in_update(env, d, spool, rule, on, dele)
            raw = spool.read_bytes()
            pending = env.journal_files()
            check(pending, f"{rule}: no journal pending after the kill (test premise)")
            rc, log = run_recover(env, d, how)
            what = f"{rule}, {how[0]}"
            check(rc == 0, f"{what}: exit {rc}\n{log_text(log)}")
            after = spool.read_bytes()
            a = mboxcheck.Audit(after, expected).check(kept, deleted)
            check(a["ok"], f"{what}: after --recover: {a}")
            # Every kill point is after UPDATE began (the spool is
            # written only then): recovery rolls forward (design.md §4.8).
            check(a["reappeared"] == 0 and a["messages"] == len(kept),
                  f"{what}: UPDATE had begun, yet {a['reappeared']} deleted messages "
                  f"are back ({a['messages']} messages, {len(kept)} kept)")
            check(not env.journal_files(), f"{what}: journal left: {env.journal_files()}")
            check(b"recovered" in log, f"{what}: no log line says so\n{log_text(log)}")
            ctx.count("recover: kills inside UPDATE recovered without a login")
            ctx.count("recover: raw spool in between before --recover",
                      1 if raw != after else 0)
            ctx.count("recover: deleted messages back after --recover", a["reappeared"])
            ctx.count("recover: kept messages checked", a["kept_checked"])
            # Idempotent: nothing pending, nothing done, the same bytes.
            rc, log2 = run_recover(env, d, how)
            check(rc == 0 and spool.read_bytes() == after and b"recovered" not in log2,
                  f"{what}: a second --recover: exit {rc}, spool "
                  f"{'same' if spool.read_bytes() == after else 'CHANGED'}\n{log_text(log2)}")
            check(not (d / "alice.lock").exists(),
                  f"{what}: a dotlock is left after --recover")
            # The next login agrees with the file.
            p = env.session(d)
            try:
                r = p.login()
                check(r.startswith(f"+OK maildrop has {a['messages']} message"),
                      f"{what}: login after --recover: {r}")
                check(p.cmd("QUIT").startswith("+OK"), "QUIT")
            finally:
                p.close()
            for f in list(d.iterdir()):
                f.unlink()


def test_recover_nothing_pending(ctx):
    """No journal directory at all, and an empty one: exit 0, spool
    untouched, the dotlock never taken (no file appears)."""
    env = ctx.env
    d, spool, data, _, _ = _spool(env, "recover-none")
    before = sorted(os.listdir(d))
    rc, log = run_recover(env, d, ["--recover"])
    check(rc == 0, f"exit {rc}\n{log_text(log)}")
    check(spool.read_bytes() == data and sorted(os.listdir(d)) == before,
          "the spool directory changed")
    rc, log = run_recover(env, d, ["--recover", f"--journal-dir={d}/nojournal"])
    check(rc == 0, f"missing --journal-dir: exit {rc}\n{log_text(log)}")
    rc, log = run_recover(env, d, ["--recover=nosuchuser"])
    check(rc == 1 and b"nosuchuser" in log, f"unknown user: exit {rc}\n{log_text(log)}")


def test_recover_with_live_session(ctx):
    """Another session holds the maildrop's session lock (an fcntl lock on
    the file beside the journal, made by the killed session's login) while
    a journal is pending: --recover, as the ExecStopPost of some other
    connection runs it, leaves that spool alone at once (exit 0, the
    journal kept for that session); once it is gone, --recover finishes."""
    env = ctx.env
    d, spool, tokens, expected, pending = _dele1_killed(env, "recover-live")
    raw = spool.read_bytes()
    session = env.journal_dir() / (journal_name(spool) + ".session")
    check(session.exists(), f"no session lock file {session} (test premise)")
    fd = os.open(session, os.O_RDWR)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX)
        rc, log = run_recover(env, d, ["--recover"], timeout=30)
        check(rc == 0 and b"in use" in log, f"exit {rc}\n{log_text(log)}")
        check(spool.read_bytes() == raw and env.journal_files() == pending,
              "--recover acted on a spool another session holds")
    finally:
        os.close(fd)
    _recover_finishes(env, d, spool, tokens, expected, "once free")


def test_recover_spool_replaced(ctx):
    """The spool was replaced after a kill inside UPDATE (an MUA that
    removes empty mailboxes, an admin): --recover sets the journal aside
    as stale, logs it once and serves the new spool untouched. That is
    not a failure, then or at any later run (until round 13 every later
    --recover, and with it the boot unit, exited 1 for good)."""
    env = ctx.env
    d, spool, _, _, _ = _dele1_killed(env, "recover-replaced")
    new = b"From x@example.org Thu Dec  3 10:00:00 2026\nSubject: new\n\nnew spool\n\n"
    tmp = d / "alice.new"
    tmp.write_bytes(new)
    os.chown(tmp, spool.stat().st_uid, spool.stat().st_gid)
    os.chmod(tmp, spool.stat().st_mode & 0o7777)
    os.rename(tmp, spool)     # a new inode while the old one still exists
    for run in (1, 2):
        rc, log = run_recover(env, d, ["--recover"])
        check(rc == 0, f"run {run}: exit {rc}\n{log_text(log)}")
        check(spool.read_bytes() == new, f"run {run}: the new spool was changed")
        check(any(f.endswith(".stale") for f in env.journal_files()),
              f"run {run}: the journal is not kept aside: {env.journal_files()}")
        check((b".stale" in log) == (run == 1),
              f"run {run}: the set-aside logged {'not ' if run == 1 else 'again '}"
              f"\n{log_text(log)}")
    for f in env.journal_files():     # the admin, having looked
        if f.endswith(".stale"):
            os.unlink(env.journal_dir() / f)


def test_recover_other_mailbox(ctx):
    """--recover given another --mailbox than the sessions had (the
    recovery unit and ExecStopPost= must repeat the sessions' options):
    the journal, named after the spool's path, is not that spool's. It
    must say so, not "see the lines above" with no line above; exit 1,
    nothing touched. With the sessions' options it recovers."""
    env = ctx.env
    d, spool, tokens, expected, pending = _dele1_killed(env, "recover-other")
    raw = spool.read_bytes()
    (d / "other").mkdir()
    rc, log = run_recover(env, d, ["--recover", f"--mailbox={d}/other/%u"])
    check(rc == 1 and b"none of them the journal of" in log
          and b"give --recover the sessions' options" in log,
          f"other --mailbox: exit {rc}\n{log_text(log)}")
    check(env.journal_files() == pending and spool.read_bytes() == raw,
          "a journal applied to a spool it was not written for")
    _recover_finishes(env, d, spool, tokens, expected, "with the sessions' options")


def test_recover_locks_busy(ctx):
    """Another program holds the spool's fcntl lock past the wait while a
    journal is pending: --recover must say the journal is still pending
    and exit 1 (it exited 0 with "in use; left to its session" although
    no session existed, and the boot unit reported success over a half
    rewritten spool); once the lock is gone, it finishes."""
    env = ctx.env
    d, spool, tokens, expected, pending = _dele1_killed(env, "recover-busy")
    fd = os.open(spool, os.O_RDWR)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX)
        rc, log = run_recover(env, d, ["--recover"], timeout=60)
    finally:
        os.close(fd)
    check(rc == 1 and b"stayed locked by another program" in log
          and env.journal_files() == pending,
          f"locks busy: exit {rc}, journal {env.journal_files()}\n{log_text(log)}")
    _recover_finishes(env, d, spool, tokens, expected, "once free")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pop3_line(sock):
    buf = b""
    while not buf.endswith(b"\r\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        buf += chunk
    return buf


def test_recover_after_listener_session_killed(ctx):
    """Under the Accept=no listener a session's end stops no unit, so no
    ExecStopPost= runs pop3d --recover for it (until round 13 the journal
    waited for the next login or boot). A session killed right after
    UPDATE began (its journal renamed into place, the spool not yet
    written): the listener logs it and runs --recover, which finishes
    the UPDATE with no login; the listener keeps serving."""
    env = ctx.env
    if shutil.which("systemd-socket-activate") is None:
        ctx.note("no systemd-socket-activate: listener recovery not run")
        return
    d, spool, data, tokens, expected = _spool(env, "recover-listener")
    jdir = env.journal_dir()
    port = _free_port()
    # Only a session renames in the journal directory (the .new journal
    # into place); the listener and the recovery it runs do not.
    shim = env.child_env(rules="rename@1=killafter", paths=[f"{jdir}/*"],
                         log=d.parent / (d.name + ".shim"))
    cmd = (["systemd-socket-activate", f"--listen=127.0.0.1:{port}"]
           + [f"--setenv={k}" for k in sorted(shim)] + env.command(d))
    proc = subprocess.Popen(cmd, env=shim, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                c = socket.create_connection(("127.0.0.1", port), timeout=15)
                break
            except ConnectionRefusedError:
                check(time.monotonic() < deadline, "the listener never listened")
                time.sleep(0.05)
        with c:
            check(_pop3_line(c).startswith(b"+OK"), "greeting")
            for line in (b"USER alice", b"PASS secret", b"DELE 1"):
                c.sendall(line + b"\r\n")
                r = _pop3_line(c)
                check(r.startswith(b"+OK"), f"{line!r}: {r!r}")
            c.sendall(b"QUIT\r\n")
            r = _pop3_line(c)
            check(r == b"", f"QUIT answered although the session was to be killed: {r!r}")
        deadline = time.monotonic() + 30
        while env.journal_files() and time.monotonic() < deadline:
            time.sleep(0.1)
        a = mboxcheck.Audit(spool.read_bytes(), expected).check(tokens[1:], tokens[:1])
        check(not env.journal_files() and a["ok"] and a["reappeared"] == 0,
              f"no login, yet: journal {env.journal_files()}, spool {a}")
        with socket.create_connection(("127.0.0.1", port), timeout=15) as c:
            check(_pop3_line(c).startswith(b"+OK"), "the listener serves on")
            c.sendall(b"QUIT\r\n")
            _pop3_line(c)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            kill_tree(proc.pid)
            proc.wait()
        log = proc.stderr.read()
    check(re.search(rb"session \d+ killed by signal 9: running pop3d --recover", log),
          f"the listener does not say why it recovers\n{log_text(log)}")
    check(b"recover: user=alice: " in log and b" recovered" in log,
          f"no recovery line\n{log_text(log)}")


def test_recover_refuses_foreign_dir(ctx):
    """A journal directory for alice's uid that bob owns (a journal bob
    could write would write alice's spool): refused, left alone, exit 1,
    the spool untouched. Needs real root to give bob the directory."""
    env = ctx.env
    if not env.really_root:
        from faultlib import TestSkipped
        raise TestSkipped("needs real root (chown)")
    d, spool, data, _, _ = _spool(env, "recover-foreign")
    jroot = d.parent / (d.name + "-journal")
    jroot.mkdir(mode=0o711)
    os.chmod(jroot, 0o711)
    udir = jroot / str(env.uid("alice"))
    udir.mkdir()
    os.chmod(udir, 0o700)
    (udir / "planted").write_bytes(b"pop3d journal 1\0" + b"x" * 200)
    for p in (udir / "planted", udir):
        env.chown_to(p, "bob")
    for args in (["--recover"], ["--recover=alice"]):
        rc, log = run_recover(env, d, args + [f"--journal-dir={jroot}"])
        check(rc == 1, f"{args}: exit {rc}, not 1\n{log_text(log)}")
        # Refused by root before any child became alice (the session's
        # own check of the directory would catch it later, too).
        check(b"recover: %s: refused: a directory owned by uid %d" % (
            str(udir).encode(), env.uid("bob")) in log and b"maildrop" not in log
              and b"journal directory refused" not in log,
              f"{args}: not refused by root, before the drop\n{log_text(log)}")
        check(spool.read_bytes() == data and (udir / "planted").exists(),
              f"{args}: acted on a directory bob owns")
    # A directory still root's (the monitor could not hand it over) and
    # empty: nothing to recover, not an error; with a name in it: refused.
    os.unlink(udir / "planted")
    os.chown(udir, 0, 0)
    rc, log = run_recover(env, d, ["--recover", f"--journal-dir={jroot}"])
    check(rc == 0 and b"still root's" in log, f"an empty root-owned dir: exit {rc}\n"
          f"{log_text(log)}")
    (udir / "planted").write_bytes(b"x")
    rc, log = run_recover(env, d, ["--recover", f"--journal-dir={jroot}"])
    check(rc == 1 and b"refused: a directory owned by uid 0" in log,
          f"a root-owned dir with a name in it: exit {rc}\n{log_text(log)}")
    # And a journal root others may write: nothing at all is done.
    os.chmod(jroot, 0o733)
    rc, log = run_recover(env, d, ["--recover", f"--journal-dir={jroot}"])
    check(rc == 1 and b"writable by group or others" in log,
          f"a group-writable --journal-dir: exit {rc}\n{log_text(log)}")


def test_recover_on_other_host(ctx):
    """Issue 15, point 2 (docs/multihost.md): host A is killed at each of
    the four points inside UPDATE; host B (its own --preauth-dir, the
    same spool directory and --journal-dir, --shared-spool as on NFS)
    finishes A's UPDATE: by `pop3d --recover` for two of them, by the
    next login for the other two. A's dotlock holds no PID (it would mean
    nothing to B): it is made ten minutes old first, as it is by the time
    age makes it stale. Every kept message once and byte-exact, no deleted
    one back, nothing left but the session lock."""
    env = ctx.env
    check(env.has_journal, "no --journal-dir in this build")
    hosts = {}
    # Their own journal directory, shared by both: the session locks
    # stay in it, and other tests look for an empty one.
    jroot = env.workdir / "hosts-journal"
    jdir = jroot / str(env.uid("alice"))
    for host in ("a", "b"):
        empty = env.workdir / f"host-{host}-empty"
        empty.mkdir(exist_ok=True)
        os.chmod(empty, 0o555)
        hosts[host] = [f"--preauth-dir={empty}", f"--journal-dir={jroot}",
                       "--shared-spool"]

    def pending():
        return sorted(n for n in os.listdir(jdir) if not n.endswith(".session"))

    for k, (rule, on) in enumerate(KILLS):
        d, spool, data, tokens, expected = _spool(env, f"otherhost{k}")
        dele = list(range(0, N, 2))
        kept = [t for i, t in enumerate(tokens) if i % 2]
        deleted = [t for i, t in enumerate(tokens) if not i % 2]
        _kill_in_update(env, d, spool, rule, on, dele, hosts["a"], jdir)
        check(pending(), f"{rule}: no journal pending after the kill (test premise)")
        lock = d / "alice.lock"
        check(lock.exists() and lock.read_bytes() == b"0\n",
              f"{rule}: A's dotlock: {lock.read_bytes() if lock.exists() else 'none'}")
        t = time.time() - 600
        os.utime(lock, (t, t))
        what = f"{rule}, recovered on B by " + ("--recover" if k % 2 else "a login")
        if k % 2:
            rc, log = run_recover(env, d, hosts["b"] + ["--recover"])
            check(rc == 0 and b"recovered" in log, f"{what}: exit {rc}\n{log_text(log)}")
        else:
            p = env.session(d, hosts["b"])
            try:
                r = p.login()
                check(r.startswith(f"+OK maildrop has {len(kept)} message"),
                      f"{what}: {r}")
                check(p.cmd("QUIT").startswith("+OK"), "QUIT")
            finally:
                p.close()
        a = mboxcheck.Audit(spool.read_bytes(), expected).check(kept, deleted)
        check(a["ok"] and a["reappeared"] == 0 and a["messages"] == len(kept),
              f"{what}: {a}")
        check(not pending(), f"{what}: journal left: {pending()}")
        ctx.count("other host: kills inside UPDATE on A recovered on B")
        ctx.count("other host: lost", a["lost"])
        ctx.count("other host: duplicated", a["duplicates"])
        ctx.count("other host: damaged", a["damaged_pieces"])
        ctx.count("other host: deleted messages back", a["reappeared"])
        for f in list(d.iterdir()):
            f.unlink()


def test_sigterm_in_recovery(ctx):
    """A SIGTERM (a unit stop: every process of the session) while a
    login's recovery holds the dotlock and waits for the write lock, which
    another program holds. Recovery took its locks with no signal blocked,
    unlike UPDATE: the session died at once, leaving its dotlock (or its
    keeper's, which died of the SIGTERM too), as it would have halfway
    through the rewrite. Now the recovery finishes and lets go of its
    locks, and only then the session ends: no dotlock is left, no journal
    is pending, and the next login finds the spool recovered. Once where
    the session makes the dotlock itself (alice), once where its keeper
    does (bob, in a 2775 root:mail directory; real root only; the
    keeper must outlive the SIGTERM too). pop3d --recover runs the same
    code (maildrop_open)."""
    env = ctx.env
    check(env.has_journal, "no --journal-dir in this build")
    setups = [("alice", "secret", None)]
    if env.really_root:
        setups.append(("bob", "hunter2", keeper_spool))
    for user, password, make in setups:
        rng = mboxcheck.rng_for(77)
        data, tokens, expected, _ = mboxcheck.build_spool(60, rng, prefix="s", big_every=20,
                                                          big_size=200_000)
        if make is None:
            d = env.tempdir(f"sigterm-recovery-{user}")
            spool = env.install_spool(d / user, data, user)
            lock = d / f"{user}.lock"
        else:
            d, spool, lock = make(env, f"sigterm-recovery-{user}", data)
        dele = list(range(0, 60, 2))
        kept = [t for i, t in enumerate(tokens) if i % 2]
        deleted = [t for i, t in enumerate(tokens) if not i % 2]
        _kill_in_update(env, d, spool, "pwrite@1=killafter", "spool", dele,
                        user=(user, password))
        check(env.journal_files(user), f"{user}: no journal pending after the kill "
              "(test premise)")
        what = f"{user}, SIGTERM in the login's recovery"
        fd = os.open(spool, os.O_RDWR)
        # With a keeper, the session's own removal fails, as it does
        # under NoNewPrivileges= (test_signals.py,
        # test_unit_stop_during_update_with_keeper).
        shim = {} if make is None else dict(
            rules="unlink@1-=EPERM", paths=[lock], main_only=True,
            log=d.parent / (d.name + ".shim2"))
        p = env.session(d, **shim)
        maker = survived = None
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX)
            try:
                check(p.cmd(f"USER {user}") == "+OK send PASS", "USER")
                p.send(f"PASS {password}")
                # Recovery has the dotlock (its own, not the one the
                # killed UPDATE left) and waits for the write lock.
                maker = wait_for_lock(lock, p.pid)
                check(maker is not None, f"{what}: the recovery took no dotlock while the "
                      f"write lock was held (test premise)\n{log_text(p.stderr)}")
                kill_tree(p.pid, signal.SIGTERM)
                time.sleep(0.5)
                survived = alive(p.pid)
            finally:
                os.close(fd)  # the other program lets go
            rc = p.proc.wait(30)
        finally:
            if p.proc.poll() is None:
                kill_tree(p.pid)
            p.close()
        ctx.count("recover: SIGTERM during a login's recovery")
        text = log_text(p.stderr)
        problems = []
        if lock.exists():
            problems.append(f"a stale dotlock is left: {lock.read_bytes()!r}")
        if not survived:
            problems.append("the session died of the SIGTERM inside recovery")
        if rc != -signal.SIGTERM:
            problems.append(f"the session ended with {rc}, not by the SIGTERM after recovery")
        if env.journal_files(user):
            problems.append(f"the journal is still pending: {env.journal_files(user)}")
        if maker != p.pid:
            deadline = time.monotonic() + 5
            while alive(maker) and time.monotonic() < deadline:
                time.sleep(0.05)
            if alive(maker):
                problems.append(f"the keeper {maker} outlived its session")
        check(not problems, f"{what}: " + "; ".join(problems) + f"\n{text}")
        q = env.session(d)
        try:
            r = q.login(user, password)
            check(r.startswith(f"+OK maildrop has {len(kept)} messages"),
                  f"{what}: the next login: {r}")
            check(q.cmd("QUIT").startswith("+OK"), "QUIT")
        finally:
            q.close()
        a = mboxcheck.Audit(spool.read_bytes(), expected).check(kept, deleted)
        check(a["ok"] and a["reappeared"] == 0 and a["messages"] == len(kept)
              and not env.journal_files(user) and not lock.exists(),
              f"{what}: after the next login: {a}, journal {env.journal_files(user)}")
