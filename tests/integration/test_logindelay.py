"""--login-delay, --expire and --capa-implementation (RFC 2449 §6.5, §6.7,
§6.9, §8.1.1; design.md §4.10). The delay's state is the time of the
user's last login, the modification time of <journal-dir>/<uid>/last-login,
so it holds across pop3d processes and socket modes; each test has a
--journal-dir of its own and plants that time instead of sleeping.
Python's poplib reads the CAPA lines; fetchmail and mpop are the real
clients on this machine that know of LOGIN-DELAY (see pop3d.8).
"""

import os
import poplib
import shutil
import signal
import socket
import subprocess
import time

from harness import Pop3d, TestFailure, TestSkipped, check, fixture
from tcp import HOST, MAILDROP_OK, MBOX, Conn, Server, run_tool, tool_output

DELAY = 600
REFUSED = "-ERR [LOGIN-DELAY] too soon after the last login, try again later"


def journal_root(env, d):
    """A --journal-dir of the test's own, as pop3d requires it (root's,
    mode 0711, when we are root)."""
    j = d / "journal"
    j.mkdir()
    os.chmod(j, 0o711)
    return j


def stamp(env, jroot, user="alice"):
    return jroot / str(env.users[user][0]) / "last-login"


def plant(env, jroot, when, user="alice"):
    """Record a last login at when (seconds since the epoch), as the
    user's session would: the per-uid directory is made by pop3d's
    monitor at the first login, so make it the same way if missing."""
    path = stamp(env, jroot, user)
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700)
        env.chown_to(path.parent, user)
    path.touch()
    env.chown_to(path, user)
    os.utime(path, (when, when), follow_symlinks=False)
    return path


def pipe_login(env, d, args, password="secret"):
    """One pop3d on pipes (the inetd nowait / StandardInput=socket shape):
    the reply to PASS, then QUIT if it was accepted. Returns (reply, log)."""
    p = Pop3d(env, d, args)
    check(p.cmd("USER alice") == "+OK send PASS", "USER refused")
    reply = p.cmd(f"PASS {password}")
    if reply.startswith("+OK"):
        p.cmd("QUIT")
    else:
        rest = p.wait_eof()
        check(rest == b"" or not reply.startswith("-ERR [LOGIN-DELAY]"),
              f"more after {reply!r}: {rest!r}")
    p.close()
    return reply, p.stderr


def tcp_login(port):
    c = Conn(port)
    check(c.line() == b"+OK pop3d ready", "greeting")
    check(c.cmd("USER alice") == b"+OK send PASS", "USER refused")
    reply = c.cmd("PASS secret")
    if reply.startswith(b"+OK"):
        c.cmd("QUIT")
    else:
        check(c.read_to_eof() == b"", f"more after {reply!r}")
    c.close()
    return reply.decode()


def test_delay_across_processes_and_socket_modes(env):
    """R2449-21 R2449-05: a login over TCP (pop3d with the connected
    socket on stdin, as inetd nowait and systemd Accept=yes with
    StandardInput=socket run it) makes the next login on a pipe, a
    separate pop3d, get exactly [LOGIN-DELAY] and the connection closed;
    once the delay has passed (the record planted 601 s back) the pipe
    login is let in, and then a login over TCP is refused in its turn.
    Mutations caught: no check (second login let in), no record (second
    login let in), record at the check instead of at +OK (caught by
    test_refusals_record_nothing)."""
    d = env.tempdir("ld-modes")
    jroot = journal_root(env, d)
    args = [f"--journal-dir={jroot}", f"--login-delay={DELAY}"]
    with Server(env, "ld-modes-tcp", args) as srv:
        # The pipe sessions use the TCP server's spool directory.
        check(tcp_login(srv.port) == MAILDROP_OK.decode(), "first login refused")
        before = stamp(env, jroot).stat().st_mtime
        check(abs(before - time.time()) < 60, f"record not the time of login: {before}")
        reply, log = pipe_login(env, srv.dir, args)
        check(reply == REFUSED, f"second login within the delay: {reply!r}")
        check(b"<6>logout: user=alice reason=login delay" in log, f"log: {log!r}")
        check(stamp(env, jroot).stat().st_mtime == before,
              "a refused login moved the record")
        plant(env, jroot, time.time() - DELAY - 1)
        reply, _ = pipe_login(env, srv.dir, args)
        check(reply == MAILDROP_OK.decode(), f"login after the delay: {reply!r}")
        check(tcp_login(srv.port) == REFUSED, "TCP login within the delay let in")
    srv.check_log(r"^<6>logout: user=alice reason=QUIT",
                  r"^<5>login delay: user=alice \d+ s to wait$",
                  r"^<6>logout: user=alice reason=login delay$")


def test_delay_in_accept_no_mode(env):
    """R2449-21: the listener mode (a listening socket on stdin: inetd
    wait, like systemd Accept=no), where each connection is a fresh exec
    of pop3d: a login there, then a second connection to it within the
    delay is refused, and so is a pop3d on a pipe afterwards."""
    if env.wrapper:
        # Under valgrind /proc/self/exe is valgrind's tool, not pop3d.
        raise TestSkipped("the listener re-executes /proc/self/exe")
    d = env.tempdir("ld-listener")
    jroot = journal_root(env, d)
    env.install_spool(d / "alice", MBOX)
    args = [f"--journal-dir={jroot}", f"--login-delay={DELAY}"]
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.bind((HOST, 0))
    lst.listen(8)
    port = lst.getsockname()[1]
    proc = subprocess.Popen(env.command(d, args), env=env.child_env, stdin=lst,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    lst.close()
    try:
        check(tcp_login(port) == MAILDROP_OK.decode(), "first login refused")
        check(tcp_login(port) == REFUSED, "second login within the delay let in")
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise TestFailure("the listener did not stop on SIGTERM") from None
        proc.stderr.close()
    reply, _ = pipe_login(env, d, args)
    check(reply == REFUSED, f"pipe login after the listener's: {reply!r}")


def test_wrong_password_neither_reveals_nor_resets(env):
    """R2449-05 R3206-03: within the delay a wrong password gets the
    same [AUTH] failure as ever (so the delay tells nothing about a
    password) and leaves the record as it was; the right one then gets
    [LOGIN-DELAY]. Mutation caught: checking the delay before the
    password is judged."""
    d = env.tempdir("ld-wrong")
    jroot = journal_root(env, d)
    env.install_spool(d / "alice", fixture("M2.mbox"))
    args = [f"--journal-dir={jroot}", f"--login-delay={DELAY}"]
    t = time.time() - 10
    path = plant(env, jroot, t)
    p = Pop3d(env, d, args)
    check(p.cmd("USER alice") == "+OK send PASS", "USER refused")
    check(p.cmd("PASS wrong") == "-ERR [AUTH] authentication failed", "wrong password")
    check(path.stat().st_mtime == t, "a failed login moved the record")
    check(p.cmd("USER alice") == "+OK send PASS", "USER refused")
    check(p.cmd("PASS secret") == REFUSED, "right password within the delay")
    p.wait_eof()
    p.close()
    check(path.stat().st_mtime == t, "a refused login moved the record")


def test_refusals_record_nothing(env):
    """R2449-21: the delay counts from a +OK to a login (RFC 2449 §6.5),
    so a login whose maildrop is refused ([SYS/PERM]: the spool is a
    directory) records nothing, and the next login with a good spool is
    let in. Mutation caught: recording at the check, before the maildrop
    is opened."""
    d = env.tempdir("ld-norecord")
    jroot = journal_root(env, d)
    (d / "alice").mkdir()
    args = [f"--journal-dir={jroot}", f"--login-delay={DELAY}"]
    reply, _ = pipe_login(env, d, args)
    check(reply.startswith("-ERR [SYS/PERM]"), f"spool that is a directory: {reply!r}")
    check(not stamp(env, jroot).exists(), "a refused login was recorded")
    (d / "alice").rmdir()
    env.install_spool(d / "alice", fixture("M2.mbox"))
    reply, _ = pipe_login(env, d, args)
    check(reply == "+OK maildrop has 2 messages (320 octets)", f"next login: {reply!r}")


def test_untrusted_records_allow(env):
    """R2449-21, design.md §4.10: a record in the future (the clock was
    set back) is ignored, logged and replaced by the present; a record
    that is a directory, a FIFO or a symlink is ignored and logged, never
    followed, never blocks. Each is a login let in, never a lockout.
    Mutations caught: trusting a future time (refused for an hour);
    following the symlink (its target's time refuses, or it is touched);
    opening the FIFO without O_NONBLOCK (the session hangs)."""
    d = env.tempdir("ld-untrusted")
    jroot = journal_root(env, d)
    env.install_spool(d / "alice", fixture("M2.mbox"))
    args = [f"--journal-dir={jroot}", f"--login-delay={DELAY}"]
    ok = "+OK maildrop has 2 messages (320 octets)"
    path = plant(env, jroot, time.time() + 3600)
    reply, log = pipe_login(env, d, args)
    check(reply == ok, f"record in the future: {reply!r}")
    check(b"last login in the future (clock set back?): ignored" in log, f"log: {log!r}")
    check(abs(path.stat().st_mtime - time.time()) < 60, "future record not replaced")
    # Now a real record: within the delay again.
    check(pipe_login(env, d, args)[0] == REFUSED, "record after the future one")

    target = d / "elsewhere"
    target.touch()
    os.utime(target, (time.time(), time.time()))
    t_target = target.stat().st_mtime
    path.unlink()
    for kind in ("dir", "fifo", "symlink"):
        if kind == "dir":
            path.mkdir()
        elif kind == "fifo":
            os.mkfifo(path)
        else:
            path.symlink_to(target)
        env.chown_to(path, "alice")
        reply, log = pipe_login(env, d, args)
        check(reply == ok, f"record that is a {kind}: {reply!r}")
        check(b"/last-login: not a regular file" in log, f"{kind}: not logged: {log!r}")
        if kind == "dir":
            path.rmdir()
        else:
            path.unlink()
    check(target.stat().st_mtime == t_target, "the symlink's target was touched")


def test_poplib_capa_and_refusal(env):
    """R2449-19 R2449-20 R2449-21 R2449-09: Python's poplib (capa())
    reads the same LOGIN-DELAY, EXPIRE and IMPLEMENTATION values before
    and after login, without USER; without the options none of them is
    there. A second login within the delay raises poplib's error_proto
    carrying [LOGIN-DELAY]."""
    d = env.tempdir("ld-poplib")
    jroot = journal_root(env, d)
    args = [f"--journal-dir={jroot}", "--login-delay=900", "--expire=NEVER",
            "--capa-implementation"]
    with Server(env, "ld-poplib", args) as srv, Server(env, "ld-poplib-bare") as bare:
        want = {"LOGIN-DELAY": ["900"], "EXPIRE": ["NEVER"],
                "IMPLEMENTATION": ["pop3d-0.1"]}
        p = poplib.POP3(HOST, srv.port, timeout=15)
        before = p.capa()
        p.user("alice")
        p.pass_("secret")
        after = p.capa()
        p.quit()
        for name, caps in (("before login", before), ("after login", after)):
            got = {k: caps.get(k) for k in want}
            check(got == want, f"poplib capa() {name}: {got}")
        p = poplib.POP3(HOST, srv.port, timeout=15)
        p.user("alice")
        try:
            p.pass_("secret")
            raise TestFailure("poplib: second login within the delay accepted")
        except poplib.error_proto as e:
            check(e.args[0] == REFUSED.encode(), f"poplib error: {e.args[0]!r}")
        p.close()
        p = poplib.POP3(HOST, bare.port, timeout=15)
        caps = p.capa()
        p.quit()
        check(not {"LOGIN-DELAY", "EXPIRE", "IMPLEMENTATION"} & set(caps),
              f"capa() without the options: {sorted(caps)}")


def test_fetchmail_reports_login_delay(env):
    """R2449-05: fetchmail 6.4 treats [LOGIN-DELAY] as a busy lock
    (PS_LOCKBUSY, exit 9): it shows the server's text and tries again at
    its next poll; it does not read the LOGIN-DELAY capability to space
    its polls (pop3d.8, CLIENTS). The first run fetches, the second within
    the delay is refused and says so."""
    if shutil.which("fetchmail") is None:
        raise TestSkipped("fetchmail not installed (Debian: apt-get install fetchmail)")
    d = env.tempdir("ld-fetchmail")
    jroot = journal_root(env, d)
    with Server(env, "ld-fetchmail", [f"--journal-dir={jroot}", f"--login-delay={DELAY}",
                                      "--expire=0"]) as srv:
        home = srv.dir / "fetchmail"
        home.mkdir()
        rc = home / "fetchmailrc"
        rc.write_text(f'poll {HOST} protocol pop3 port {srv.port}\n'
                      f'  user "alice" there with password "secret"\n')
        os.chmod(rc, 0o600)
        out = home / "delivered"
        # --pidfile: as root fetchmail locks /var/run/fetchmail.pid
        # whatever FETCHMAILHOME says, and test_tls's may run meanwhile.
        argv = ["fetchmail", "-f", str(rc), "--nosyslog", "--nodetach", "-v", "--keep",
                "--pidfile", str(home / "fetchmail.pid"),
                "--idfile", str(home / "ids"), "--sslproto", "",
                "--mda", f"/bin/sh -c 'cat >> {out}'"]
        fenv = {**os.environ, "HOME": str(home), "FETCHMAILHOME": str(home)}
        first = run_tool(argv, env=fenv)
        check(first.returncode == 0, f"first fetchmail: {first.returncode}: "
              f"{tool_output(first)}")
        second = run_tool(argv, env=fenv)
        text = tool_output(second)
        check(second.returncode == 9, f"second fetchmail exit {second.returncode}: {text}")
        check(REFUSED[5:] in text, f"fetchmail did not show the reason: {text}")
        # --keep with EXPIRE 0 announced: fetchmail keeps the mail, and
        # pop3d does not delete it either.
        check(srv.spool() == MBOX, "spool changed")


def test_mpop_serverinfo(env):
    """R2449-20 R2449-21: mpop --serverinfo reads LOGIN-DELAY and EXPIRE
    from CAPA and shows them; it is the one client here that reads the
    values (it does not act on them, see pop3d.8)."""
    if shutil.which("mpop") is None:
        raise TestSkipped("mpop not installed (Debian: apt-get install mpop)")
    d = env.tempdir("ld-mpop")
    jroot = journal_root(env, d)
    with Server(env, "ld-mpop", [f"--journal-dir={jroot}", "--login-delay=900",
                                 "--expire=30"]) as srv:
        res = run_tool(["mpop", "--serverinfo", f"--host={HOST}", f"--port={srv.port}",
                        "--tls=off", "--auth=user", "--user=alice", "--passwordeval=echo secret"],
                       env={**os.environ, "HOME": str(srv.dir)})
        text = tool_output(res)
        check(res.returncode == 0, f"mpop exit {res.returncode}: {text}")
        check("LOGIN-DELAY 900" in text and "EXPIRE 30" in text, f"mpop --serverinfo: {text}")


def test_curl_login_delay(env):
    """R2449-05: curl knows no LOGIN-DELAY: the refusal is a failed
    login to it (exit 67, "login denied"); the first fetch works."""
    if shutil.which("curl") is None:
        raise TestSkipped("curl not installed")
    d = env.tempdir("ld-curl")
    jroot = journal_root(env, d)
    with Server(env, "ld-curl", [f"--journal-dir={jroot}", f"--login-delay={DELAY}"]) as srv:
        url = f"pop3://{HOST}:{srv.port}/1"
        argv = ["curl", "-sS", "--user", "alice:secret", url]
        first = run_tool(argv)
        check(first.returncode == 0, f"first curl: {first.returncode}: {tool_output(first)}")
        second = run_tool(argv + ["-v"])
        text = tool_output(second)
        check(second.returncode == 67, f"second curl exit {second.returncode}: {text}")
        check(REFUSED in text, f"curl -v does not show the reply: {text}")


def test_recover_ignores_the_record(env):
    """design.md §4.9, §4.10: the record lives beside the journals in
    <journal-dir>/<uid>, and pop3d --recover (run by ExecStopPost= after
    every session under systemd) must not take it for a pending journal:
    exit 0, nothing opened or logged as left behind, the record kept.
    Mutation caught: recover.c counting it (exit 1, "name(s) still in")."""
    d = env.tempdir("ld-recover")
    jroot = journal_root(env, d)
    env.install_spool(d / "alice", fixture("M2.mbox"))
    args = [f"--journal-dir={jroot}", f"--login-delay={DELAY}"]
    check(pipe_login(env, d, args)[0].startswith("+OK"), "login refused")
    check(stamp(env, jroot).exists(), "no record after a login")
    for how in ("--recover", "--recover=alice"):
        res = subprocess.run(env.command(d, [f"--journal-dir={jroot}", how]),
                             env=env.child_env, stdin=subprocess.DEVNULL,
                             capture_output=True, timeout=60, check=False)
        check(res.returncode == 0 and b"still in" not in res.stderr
              and b"recovered" not in res.stderr,
              f"{how}: exit {res.returncode}: {res.stderr.decode(errors='replace')}")
    check(stamp(env, jroot).exists(), "--recover removed the record")
