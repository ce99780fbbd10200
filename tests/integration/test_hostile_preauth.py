"""The monitor against a compromised pre-login process (issue 14, points
6 and 7; docs/design.md §2, §7).

build/pop3d-test is pop3d with the test hooks of test_hooks.h: with
POP3D_TEST_PREAUTH set, the real monitor forks, and in place of the
pre-auth process runs hostile_preauth.py, which sends what HOSTILE_STEPS
says over the record socket and reports what comes back on the client's
stdout. What a well-behaved pre-auth process never sends (a fourth
login, a handoff before a successful verdict, malformed records, forged
log lines) is tested here, against the monitor's own checks.
"""

import copy
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

from harness import Pop3d, Sessions, TestSkipped, check, check_stderr
from tcp import tls_args

HOSTILE = Path(__file__).resolve().parent / "hostile_preauth.py"
SPOOL = (b"From alice@example.org Mon Jan  1 00:00:00 2024\n"
         b"Subject: hello\n\nhello alice\n\n")
REFUSED = (rb"^<2>monitor: refused (a malformed or unexpected record|a log line too many"
           rb"|an oversized or unreadable record) "
           rb"from pre-login process \d+$")
LOG_CRIT, LOG_NOTICE, LOG_EMERG = 2, 5, 0


def hook_binary(env):
    """build/pop3d-test beside the binary under test (make check builds
    both); the ASan one beside the ASan pop3d."""
    path = Path(env.binary).with_name("pop3d-test")
    check(path.exists(), f"{path} is missing: make {path.parent.name}/pop3d-test")
    return str(path)


def hostile_program(env):
    """hostile_preauth.py where pop3d-test can run it: the harness gives
    pop3d a private /tmp when it can, which hides a clone under /tmp (as
    CI's is), so the script is copied into the work dir then, as the
    harness copies the binaries."""
    if not str(HOSTILE).startswith("/tmp/"):
        return str(HOSTILE)
    copy_ = Path(env.workdir) / "bin" / HOSTILE.name
    if not copy_.exists():
        copy_.parent.mkdir(exist_ok=True)
        part = copy_.with_name(f"{copy_.name}.{threading.get_ident()}")
        shutil.copy2(HOSTILE, part)
        os.replace(part, copy_)  # tests run side by side: never half a file
    return str(copy_)


def hook_env(env, **extra):
    """env, running build/pop3d-test with extra variables."""
    henv = copy.copy(env)
    henv.binary = hook_binary(env)
    henv.child_env = dict(env.child_env, **extra)
    return henv


def hostile(env, steps, spool=True, args=()):
    """Start pop3d-test with hostile_preauth.py playing the pre-login
    process; returns (Pop3d, maildir)."""
    d = env.tempdir("hostile")
    if spool:
        env.install_spool(d / "alice", SPOOL)
    henv = hook_env(env, POP3D_TEST_PREAUTH=hostile_program(env),
                    HOSTILE_STEPS=json.dumps(steps))
    return Pop3d(henv, d, args, expect_greeting=False), d


GREETING = "+OK pop3d ready"


def run_hostile(env, steps, timeout=30.0, greeted=True, **kw):
    """Run one hostile pre-login process to the end: (report lines, the
    rest of stdout, exit status, stderr). The program never greets: the
    greeting is the monitor's, written before the fork (design.md §2), so
    it must come first and once (greeted), or, where something must come
    before it (--tls-implicit), not at all."""
    p, _ = hostile(env, steps, **kw)
    try:
        out = p.wait_eof(timeout)
    finally:
        if p.proc.poll() is None:
            try:
                rc = p.close(10)
            except Exception:
                p.kill()
                raise
        else:
            rc = p.close(10)
    lines = out.decode(errors="replace").replace("\r\n", "\n").split("\n")
    if greeted:
        check(lines[0] == GREETING, f"the monitor's greeting first: {lines[:3]}")
        lines = lines[1:]
    check(GREETING not in lines, f"a greeting {'again' if greeted else 'from the monitor'}: "
          f"{lines}")
    report = [ln for ln in lines if re.match(r"^(sent|verdict|record|eof|error) ", ln)]
    rest = [ln for ln in lines if ln and ln not in report]
    check(not any(ln.startswith("error") for ln in report),
          f"hostile_preauth.py: {report}")
    return report, rest, rc, p.stderr


def login(user="alice", password="wrong", **kw):
    return {"login": dict(user=user, password=password, **kw)}


RECV = {"recv": True}


def test_fourth_login_record_refused(env):
    """Issue 14.6, DEC-05: four well-formed login records with wrong
    passwords: three verdicts, each after the failure delay
    (AUTH_FAIL_DELAY_MS, 2 s, counted from the record), then the monitor
    ends the pre-login process and the connection. Catches the limit
    check `>=` turned into `>`. Each record goes after the last verdict:
    sent at once, the fourth would be refused, and this process killed,
    before it could read the third verdict."""
    report, rest, rc, err = run_hostile(env, [login(), RECV] * 4)
    verdicts = [ln.split() for ln in report if ln.startswith("verdict")]
    check([v[1] for v in verdicts] == ["1"] * 3,
          f"exactly three AUTH_FAILED verdicts, got {report}")
    for i, v in enumerate(verdicts, 1):
        check(float(v[2]) >= 2.0 * i - 0.05,
              f"verdict {i} after {v[2]} s, before {i} failure delays: {report}")
    check(not any(ln.startswith("eof") for ln in report) and not rest,
          f"the pre-login process must be killed, not told: {report} {rest}")
    check(rc == 1, f"monitor exit status {rc}")
    check(re.search(REFUSED, err, re.M), f"no refusal logged: {err[-500:]!r}")
    check(len(re.findall(rb"^<5>login failed: user=alice ", err, re.M)) == 3,
          f"three failed logins logged: {err[-800:]!r}")
    check_stderr(err, [b"secret"])


def _expect_refused(env, name, steps, verdicts):
    report, rest, rc, err = run_hostile(env, steps)
    got = [ln.split()[1] for ln in report if ln.startswith("verdict")]
    problems = []
    if got != verdicts:
        problems.append(f"verdicts {got}, expected {verdicts}")
    if any(ln.startswith(("eof", "record")) for ln in report):
        problems.append(f"the pre-login process outlived the refusal: {report}")
    if rest:
        problems.append(f"the client got {rest}")
    if rc != 1:
        problems.append(f"exit status {rc}")
    if not re.search(REFUSED, err, re.M):
        problems.append(f"no refusal in the log: {err[-300:]!r}")
    if re.search(rb"^<6>maildrop: ", err, re.M):
        problems.append("a session started")
    return [f"{name}: {p}" for p in problems]


def test_malformed_records_close_the_connection(env):
    """Issue 14.6: out-of-order, oversized, truncated, unterminated and
    repeated records end the pre-login process and the connection at once:
    no verdict, no session, exit status 1, the refusal logged."""
    cases = [
        ("handoff first", [{"handoff": "STAT\r\n"}, RECV], []),
        ("verdict sent to the monitor", [{"verdict": 0}, RECV], []),
        ("login one octet long", [dict(login(), pad=1), RECV], []),
        ("login one octet short", [dict(login(), cut=1), RECV], []),
        ("record larger than any", [{"junk": 40000}, RECV], []),
        ("four octets", [{"junk": 4}, RECV], []),
        ("unterminated user field", [dict(login(), unterminated=True), RECV], []),
        ("unknown method", [login(method="CRAM"), RECV], []),
        ("log line at LOG_EMERG", [{"log": "x", "priority": LOG_EMERG}, RECV], []),
        ("handoff after a failed login",
         [login(), RECV, {"handoff": "STAT\r\n"}, RECV], ["1"]),
        ("login repeated after a successful one",
         [login(password="secret"), RECV, login(password="secret"), RECV], ["0"]),
        ("handoff without descriptors",
         [login(password="secret"), RECV, {"handoff": "STAT\r\n", "fds": False}, RECV],
         ["0"]),
    ]
    problems = []
    for name, steps, verdicts in cases:
        problems += _expect_refused(env, name, steps, verdicts)
    check(not problems, "\n    ".join(problems))


def test_hook_login_and_handoff(env):
    """The hook itself: a login and a handoff sent by hostile_preauth.py
    work as the real pre-auth process's do (verdict 0, then the session
    on the handed-over descriptors with the input read ahead), so the
    refusals above are the monitor's, not a broken hook's."""
    steps = [login(password="secret"), RECV, {"handoff": "STAT\r\nQUIT\r\n"}]
    report, rest, rc, err = run_hostile(env, steps)
    # "sent 2" may not come: the monitor kills the process once it has
    # the handoff, maybe before it reports.
    check(report[:2] == ["sent 0", report[1]] and report[1].startswith("verdict 0 ")
          and report[2:] in ([], ["sent 2"]), f"report {report}")
    n = 31  # the message as served: CRLF lines, no From_ line
    check(rest == [f"+OK maildrop has 1 message ({n} octets)", f"+OK 1 {n}",
                   "+OK pop3d signing off (1 message left)"],
          f"session replies {rest}")
    check(rc == 0, f"exit status {rc}")
    check(re.search(rb"^<6>login: user=alice peer=pipe method=USER tls=no$", err, re.M),
          f"login not logged: {err[-500:]!r}")
    check_stderr(err, [b"secret"])


def _gone(pid, within=3.0):
    """Whether process pid has ended (exited, or a zombie) within the
    time given."""
    deadline = time.monotonic() + within
    while True:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state in ("Z", "X"):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def _lingering(env, name, steps):
    """Run a pre-login process that stays after its part is over (its
    first step writes its pid to a file): (stdout, exit status, stderr,
    its pid). It holds the client's stdout, so the connection reaches EOF
    only once it is gone; the test stops it by pid whatever happens."""
    pidfile = env.tempdir(name) / "hostile.pid"
    p, _ = hostile(env, [{"pidfile": str(pidfile)}] + steps)
    pid = None
    try:
        out = p.wait_eof(15)
        rc = p.close(10)
        pid = int(pidfile.read_text())
    finally:
        if p.proc.poll() is None:
            p.kill()
        try:
            os.kill(int(pidfile.read_text()), 9)
        except (OSError, ValueError):
            pass
    return out.decode(errors="replace").replace("\r\n", "\n"), rc, p.stderr, pid


def test_preauth_lingering_after_handoff_is_killed(env):
    """SECURITY.md: a wedged or hostile pre-login process cannot hold a
    root process. After a handoff without TLS its part is over; the
    monitor, still root, waited for it to exit, without a bound, before
    it even started the session (found in review, round 12). It is now
    killed at once: the session runs, the connection ends, the process is
    gone."""
    out, rc, err, pid = _lingering(env, "linger-handoff", [
        login(password="secret"), RECV, {"handoff": "STAT\r\nQUIT\r\n", "linger": 60}])
    n = 31
    for line in ("sent 1", f"+OK maildrop has 1 message ({n} octets)",
                 f"+OK 1 {n}", "+OK pop3d signing off (1 message left)"):
        check(line in out.split("\n"), f"{line!r} missing from {out!r}")
    check(rc == 0, f"exit status {rc}")
    check(_gone(pid), f"pre-login process {pid} still running")
    check_stderr(err, [b"secret"])


def test_empty_record_ends_preauth(env):
    """An empty record reads like the end of the record socket. The
    monitor took it for the pre-login process's exit and left without
    killing it: a hostile one then stayed, out of root's --preauth-timeout
    and, under Accept=no, of --max-children (found in review, round 12).
    It is now killed either way."""
    out, rc, err, pid = _lingering(env, "empty-record", [{"junk": 0}, {"sleep": 60}])
    check("error" not in out, f"hostile_preauth.py: {out!r}")
    check(not re.search(rb"^<6>maildrop: ", err, re.M), "a session started")
    check(rc == 0, f"exit status {rc}")
    check(_gone(pid), f"pre-login process {pid} still running")


def test_monitor_greets_before_the_fork(env):
    """Issue 12 (design.md §2): the greeting is the monitor's, written
    before it forks, so the client of a pre-auth process that never greets
    (this one sends nothing and exits) is still greeted, once (run_hostile
    checks it). With --tls-implicit the monitor writes nothing: there the
    greeting is the first octet inside TLS (RFC 8314), the pre-auth
    process's, after the handshake. Catches the monitor greeting in the
    wrong mode, or not at all."""
    report, rest, rc, _ = run_hostile(env, [])
    check((report, rest, rc) == ([], [], 0), f"plain: {report} {rest} exit {rc}")
    report, rest, rc, _ = run_hostile(env, [], greeted=False,
                                      args=tls_args(env, implicit=True))
    check((report, rest, rc) == ([], [], 0), f"--tls-implicit: {report} {rest} exit {rc}")


FORGED = ("x\npop3d[1]: login failed: user=alice peer=192.0.2.99 "
          "method=USER tls=no")


def fail2ban_regex():
    """The shipped filter's failregex, with fail2ban's prefix taken as a
    syslog or journal "pop3d[PID]: " tag and <HOST> as a word."""
    conf = (Path(__file__).resolve().parents[2] / "units" / "fail2ban" / "filter.d"
            / "pop3d.conf").read_text()
    rx = re.search(r"^failregex = (.*)$", conf, re.M).group(1)
    rx = rx.replace("^%(__prefix_line)s", r"^(?:\S+ )?pop3d\[\d+\]: ")
    return re.compile(rx.replace("<HOST>", r"(?P<host>\S+)"))


def test_forged_log_line_is_prefixed(env):
    """Issue 14.7: a pre-login process's log line reaches the log only
    through the monitor: one line, control characters replaced, after the
    monitor's "preauth: " prefix, so that a forged "login failed" line
    naming another peer is not one fail2ban's filter takes; a 511-octet
    line stays one bounded line; more than PREAUTH_LOG_LINES_MAX (32) lines
    end the connection."""
    long_text = "y" * 511
    steps = ([{"log": FORGED, "priority": LOG_NOTICE},
              {"log": long_text, "priority": LOG_CRIT}] + [{"log": "z"}] * 31 + [RECV])
    report, rest, rc, err = run_hostile(env, steps)
    lines = err.decode(errors="replace").splitlines()
    forged = [ln for ln in lines if "192.0.2.99" in ln]
    want = "<5>preauth: " + FORGED.replace("\n", "?")
    check(forged == [want], f"forged line logged as {forged}, expected [{want!r}]")
    rx = fail2ban_regex()
    check(not rx.search("pop3d[7]: " + forged[0][3:]), "fail2ban's filter takes the forged line")
    check(rx.search("pop3d[7]: login failed: user=alice peer=192.0.2.7 method=USER tls=no"),
          "test bug: the filter regex does not take a real line")
    check(f"<2>preauth: {long_text}" in lines, "the 511-octet line is not logged whole")
    zs = [ln for ln in lines if ln == "<5>preauth: z"]
    check(len(zs) == 30, f"{len(zs)} short lines logged, expected 30 (32 in all)")
    check(rc == 1 and re.search(REFUSED, err, re.M) and b"a log line too many" in err,
          f"33rd line not refused: exit {rc}, {err[-300:]!r}")
    check(not any(ln.startswith("eof") for ln in report), f"report {report}")
    check_stderr(err, [])


def _served(proc):
    """CAPA answered: only the pre-auth process answers it, after it has
    confined itself (log_detach, chroot, drop). The greeting is no such
    sign: the monitor writes it before it forks (design.md §2)."""
    proc.stdin.write(b"CAPA\r\n")
    proc.stdin.flush()
    check(proc.stdout.readline() == b"+OK capability list follows\r\n", "CAPA")
    while proc.stdout.readline() not in (b".\r\n", b""):
        pass


def _preauth_of(proc):
    """The greeting, then CAPA answered (by then the pre-auth process has
    confined itself): the pid of that process, the monitor's one child."""
    check(proc.stdout.readline() == b"+OK pop3d ready\r\n", "greeting")
    _served(proc)
    with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
        kids = [int(k) for k in f.read().split()]
    check(len(kids) == 1, f"children of the monitor: {kids}")
    return kids[0]


def _quit(proc, reply):
    """QUIT: then that reply, the end of the output and exit status 0."""
    proc.stdin.write(b"QUIT\r\n")
    proc.stdin.close()
    out = proc.stdout.read()
    check(out == reply, f"QUIT: {out!r}")
    check(proc.wait(10) == 0, "exit status")


def _stop(proc):
    """Stop pop3d by its pid if it is still there; close its output."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    proc.stdout.close()


def _fd_targets(pid):
    out = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            pass
    return out


def test_preauth_has_no_log_channel(env):
    """Issue 14.7: the real pre-auth process holds no socket but the
    record socket (the client here is a pair of pipes) and no stderr: run
    with --log=stderr and stderr a Unix stream socket, as journald gives
    a unit, its fd 2 is /dev/null, so it cannot write a line the journal
    would take as pop3d's."""
    if not env.really_root:
        raise TestSkipped("/proc/PID/fd of a non-dumpable process needs real root")
    if env.asan:
        raise TestSkipped("the ASan build keeps stderr for sanitizer reports")
    d = env.tempdir("preauth-fds")
    env.install_spool(d / "alice", SPOOL)
    logger, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    proc = subprocess.Popen(env.command(d), env=env.child_env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=theirs.fileno())
    theirs.close()
    try:
        preauth = _preauth_of(proc)
        fds = _fd_targets(preauth)
        socks = {fd: t for fd, t in fds.items() if t.startswith("socket:")}
        check(len(socks) == 1 and min(socks) > 2,
              f"the pre-auth process holds one socket, the record socket: {fds}")
        check(fds.get(2) == "/dev/null", f"its stderr is /dev/null: {fds}")
        _quit(proc, b"+OK pop3d signing off\r\n")
    finally:
        _stop(proc)
    logger.settimeout(5)
    log = b""
    while True:
        chunk = logger.recv(65536)
        if not chunk:
            break
        log += chunk
    logger.close()
    check(re.search(rb"^<6>preauth: logout: user=- peer=pipe reason=QUIT$", log, re.M),
          f"the pre-login process's line, through the monitor: {log!r}")


def test_no_descriptor_follows_into_confinement(env):
    """A descriptor pop3d did not open itself (here one its parent left
    open; NSS and PAM, run as root, may leave others) reaches neither the
    pre-auth process in its chroot nor the user's session: each closes
    every descriptor but its own before it serves (found in review,
    round 12: both kept whatever they inherited)."""
    if not env.really_root:
        raise TestSkipped("/proc/PID/fd of a non-dumpable process needs real root")
    d = env.tempdir("stray-fd")
    env.install_spool(d / "alice", SPOOL)
    (d / "stray").write_bytes(b"not pop3d's\n")
    stray = os.open(d / "stray", os.O_RDONLY)
    target = os.readlink(f"/proc/self/fd/{stray}")
    proc = subprocess.Popen(env.command(d), env=env.child_env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            pass_fds=(stray,))
    os.close(stray)
    try:
        preauth = _preauth_of(proc)
        held = {fd: t for fd, t in _fd_targets(preauth).items() if t == target}
        check(not held, f"the pre-auth process holds {target} on {held}")
        proc.stdin.write(b"USER alice\r\nPASS secret\r\n")
        proc.stdin.flush()
        check(proc.stdout.readline() == b"+OK send PASS\r\n", "USER")
        check(proc.stdout.readline().startswith(b"+OK maildrop has 1 message"), "PASS")
        held = {fd: t for fd, t in _fd_targets(proc.pid).items() if t == target}
        check(not held, f"the session holds {target} on {held}")
        _quit(proc, b"+OK pop3d signing off (1 message left)\r\n")
    finally:
        _stop(proc)
        proc.stderr.close()


def test_preauth_has_no_syslog_socket(env):
    """Issue 14.7, with --log=syslog: the pre-auth process has closed the
    syslog socket the monitor opened (openlog's LOG_NDELAY) before its
    fork; its line reaches syslog from the monitor, after "preauth: ".
    /dev/log is this test's datagram socket, in a mount namespace of
    pop3d's own (/dev there is a directory holding it and /dev/null)."""
    if not env.really_root or not shutil.which("unshare"):
        raise TestSkipped("a private /dev needs real root and unshare")
    d = env.tempdir("preauth-syslog")
    dev = d / "dev"
    dev.mkdir()
    (dev / "null").touch()
    syslog = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    syslog.bind(str(dev / "log"))
    syslog.settimeout(10)
    argv = [a for a in env.command(d) if a != "--log=stderr"] + ["--log=syslog"]
    start = argv.index(env.binary)
    argv = ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c",
            'mount --bind /dev/null "$P3_DEV/null" && mount --bind "$P3_DEV" /dev && '
            "mount -t tmpfs -o size=8m,mode=1777 pop3d-tmp /tmp && "
            'LD_PRELOAD="$POP3D_CWRAP_PRELOAD" && export LD_PRELOAD && exec "$0" "$@"'
            ] + argv[start:]
    child = dict(env.child_env, P3_DEV=str(dev))
    child.pop("LD_PRELOAD", None)
    proc = subprocess.Popen(argv, env=child, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        preauth = _preauth_of(proc)
        pre = {fd: t for fd, t in _fd_targets(preauth).items() if t.startswith("socket:")}
        # The monitor closes the child's end of the socketpair just after
        # the fork, maybe after the child answered CAPA: give it a moment.
        for _ in range(50):
            mon = {fd: t for fd, t in _fd_targets(proc.pid).items()
                   if t.startswith("socket:")}
            if len(mon) == 2:
                break
            time.sleep(0.1)
        check(len(mon) == 2, f"the monitor holds its syslog and record sockets (so this test "
              f"is not vacuous): {mon}")
        check(len(pre) == 1, f"the pre-auth process holds one socket, the record socket: {pre}")
        proc.stdin.write(b"QUIT\r\n")
        proc.stdin.close()
        check(proc.stdout.read() == b"+OK pop3d signing off\r\n", "QUIT")
        check(proc.wait(10) == 0, f"exit status, stderr {proc.stderr.read()[-300:]!r}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    lines = []
    try:
        while True:
            lines.append(syslog.recv(4096).decode(errors="replace"))
            if "logout:" in lines[-1]:
                break
    except socket.timeout:
        pass
    syslog.close()
    want = rf"^<22>.* pop3d\[{proc.pid}\]: preauth: logout: user=- peer=pipe reason=QUIT$"
    check(any(re.match(want, ln) for ln in lines), f"no line {want!r} in {lines}")


def _group_file_gids(env, user):
    uid, gid, _ = env.users[user]
    want = {gid}
    for line in Path(env.child_env["NSS_WRAPPER_GROUP"]).read_text().splitlines():
        f = line.split(":")
        if user in f[3].split(","):
            want.add(int(f[2]))
    return uid, gid, want


def test_session_groups_are_the_users(env):
    """Issue 14.6 (make check's part of check-system's proc-user): after
    the drop the session's supplementary groups are exactly the user's in
    the group database (alice: her own and "mail"), never 0. Read with
    getgroups() through the test hook, since uid_wrapper emulates the
    groups where /proc cannot show them. Catches a missing initgroups."""
    d = env.tempdir("groups")
    problems = []
    for user, pw in (("alice", "secret"), ("bob", "hunter2")):
        env.install_spool(d / user, SPOOL, user)
        henv = hook_env(env, POP3D_TEST_REPORT_IDS="1")
        with Sessions(henv, d) as s:
            p = s.start()
            p.login(user, pw)
            check(p.cmd("QUIT").startswith("+OK"), "QUIT")
            p.close()
        m = re.search(rb"^<7>test-hook: uid=(\d+) gid=(\d+) groups=([\d,]*) ngroups=(-?\d+)$",
                      p.stderr, re.M)
        if not m:
            problems.append(f"{user}: no test-hook line: {p.stderr[-500:]!r}")
            continue
        uid, gid, want = _group_file_gids(env, user)
        got = {int(g) for g in m.group(3).split(b",") if g}
        if (int(m.group(1)), int(m.group(2))) != (uid, gid):
            problems.append(f"{user}: uid/gid {m.group(1)}/{m.group(2)}, not {uid}/{gid}")
        if got != want or 0 in got:
            problems.append(f"{user}: groups {sorted(got)}, expected {sorted(want)}")
    check(not problems, "\n    ".join(problems))


def test_production_binary_has_no_hook(env):
    """The hooks are in build/pop3d-test only: pop3d itself holds none of
    their variable names."""
    data = Path(env.binary).read_bytes()
    check(b"POP3D_TEST_" not in data, f"{env.binary} holds a test hook")
    check(b"POP3D_TEST_PREAUTH" in Path(hook_binary(env)).read_bytes(),
          "test bug: pop3d-test has no hook")
