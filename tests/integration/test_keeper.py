"""The dotlock keeper (design.md §4.2, keeper.c).

Where the user may not create names in the spool directory (Debian's
/var/mail, 2775 root:mail), UPDATE's dotlock is made and removed by a
child of the session that has group mail, not by two execs of the setgid
dotlockfile per UPDATE; where the user may, or is in group mail, by the
session itself, as before.

Who made a dotlock shows in it: on a local file system it carries the PID
of the process that linked it (L_PID). UPDATE takes the dotlock first and
then the fcntl write lock, so a test that holds the write lock across
QUIT can read the dotlock while it is held.

Giving a directory to group mail needs real root; under uid_wrapper the
keeper's ids are emulated, so tests/system/systest.py checks its real
uid, gids, capabilities and descriptors under pam_unix.
"""

import fcntl
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from harness import Sessions, TestSkipped, check, fixture
from test_concurrency import chunks

MAIL_GID = 8  # "mail" in tests/cwrap/env.sh's group file; alice is in it


def _dotlock_maker(env, name, user, password, mode, gid):
    """Log user in on a spool in a directory of the given mode and group,
    DELE 1, QUIT while holding the spool's fcntl write lock; returns
    (PID in the dotlock, that process's parent, the session's PID) and
    checks that UPDATE then completes and the dotlock is gone."""
    if not env.really_root:
        raise TestSkipped("needs real root to give the spool directory to group mail")
    d = env.tempdir(name)
    data = fixture("M2.mbox")
    spool = env.install_spool(d / user, data, user)
    os.chown(d, 0, gid)
    os.chmod(d, mode)
    lock = Path(str(spool) + ".lock")
    with Sessions(env, d) as s:
        a = s.start()
        a.login(user, password)
        check(a.cmd("DELE 1").startswith("+OK"), "DELE 1")
        fd = os.open(spool, os.O_RDWR)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX)
            a.send("QUIT")
            deadline = time.monotonic() + 8
            while not lock.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            check(lock.exists(), "UPDATE took no dotlock while the write lock was held")
            maker = int(lock.read_bytes().split()[0])
            try:
                status = Path(f"/proc/{maker}/status").read_text()
                parent = int(next(ln.split()[1] for ln in status.splitlines()
                                  if ln.startswith("PPid:")))
            except FileNotFoundError:
                parent = None
        finally:
            os.close(fd)  # releases the write lock
        reply = a.readline(20)
        check(reply is not None and reply.startswith(b"+OK pop3d signing off"),
              f"QUIT: {reply!r}")
        a.wait_eof()
        session = a.pid
        a.close()
    check(spool.read_bytes() == b"".join(chunks(data)[1:]), "message 1 not expunged")
    check(not lock.exists(), "the dotlock was left behind")
    return maker, parent, session


def test_keeper_makes_the_dotlock(env):
    """bob is not in group mail and cannot write a 2775 root:mail
    directory: the dotlock is made by a child of the session (the keeper),
    which is gone once the session is; UPDATE completes."""
    maker, parent, session = _dotlock_maker(env, "keeper", "bob", "hunter2", 0o2775, MAIL_GID)
    check(maker != session, "the session made the dotlock itself (no keeper)")
    check(parent == session, f"dotlock made by pid {maker}, child of {parent}, "
          f"not of the session {session}")
    check(not Path(f"/proc/{maker}").exists(), "the keeper outlived its session")


def test_no_keeper_for_a_member_of_mail(env):
    """alice is in group mail: she may create the lock herself, and no
    process with group mail is started for her."""
    maker, _, session = _dotlock_maker(env, "keeper-member", "alice", "secret", 0o2775,
                                       MAIL_GID)
    check(maker == session, f"dotlock made by pid {maker}, not by the session {session}")


def test_no_keeper_when_the_group_is_not_mail(env):
    """A group-writable directory of another group: the keeper's group is
    mail alone, never whatever group a directory has."""
    gid = env.users["bob"][1]  # bob's own group: he may write through it
    other = env.users["carol"][1]
    check(gid != other, "carol and bob share a group")
    maker, _, session = _dotlock_maker(env, "keeper-other-group", "bob", "hunter2", 0o2775,
                                       other)
    check(maker == session, f"dotlock made by pid {maker}, not by the session {session}")


def _start_up_log(env, name, mode, gid=None, nnp=True):
    """pop3d's start-up lines for a spool directory of this mode (and
    group, when given), under no_new_privs or not; QUIT at once."""
    d = env.tempdir(name)
    if gid is not None:
        os.chown(d, os.stat(d).st_uid, gid)
    os.chmod(d, mode)
    argv = (["setpriv", "--no-new-privs"] if nnp else []) + env.command(d)
    proc = subprocess.run(argv, input=b"QUIT\r\n", env=env.child_env,
                          capture_output=True, timeout=30)
    check(proc.stdout.startswith(b"+OK"), f"{name}: no greeting: {proc.stdout!r} {proc.stderr!r}")
    return proc.stderr


NNP_WARNING = re.compile(rb"^<4>spool directory \S+: not writable by group mail \(mode 0755\): "
                         rb"with no_new_privs set \(NoNewPrivileges=\), only users who may write "
                         rb"it themselves can have a dotlock made there", re.M)


def test_no_new_privs_warns_where_no_dotlock_can_be_made(env):
    """Under NoNewPrivileges= the setgid dotlockfile cannot work, and the
    keeper serves only a directory of group mail: pop3d says at start-up
    that in a 0755 spool directory users' deletions will fail, and says
    nothing without no_new_privs or in the supported 2775 root:mail."""
    if shutil.which("setpriv") is None:
        raise TestSkipped("no setpriv (Debian: util-linux)")
    err = _start_up_log(env, "nnp-0755", 0o755)
    check(NNP_WARNING.search(err), f"no warning under no_new_privs: {err!r}")
    err = _start_up_log(env, "nnp-off-0755", 0o755, nnp=False)
    check(b"dotlock" not in err, f"warned without no_new_privs: {err!r}")
    if env.really_root:
        err = _start_up_log(env, "nnp-2775-mail", 0o2775, gid=MAIL_GID)
        check(b"dotlock" not in err, f"warned for 2775 root:mail: {err!r}")
