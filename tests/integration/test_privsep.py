"""The process boundary seen from a client (docs/design.md §2): after a
login without TLS the pre-login process hands the session its descriptor
and the input it already read, and exits. The privilege drop itself, the
chroot and the secrets in memory are tested on the real system
(tests/system/systest.py, make check-system).
"""

import os
import re
import signal
import subprocess
import time

from harness import Sessions, check
from tcp import Conn, Server, pipelined_cases, run_pipelined, tls_args


def test_pipelined_after_pass(env):
    """R2449-15 R1939-01: commands pipelined after PASS reach the session
    intact over TCP (pop3d serves whatever port inetd or the unit gives
    it), one write each, without TLS: the pre-login process hands the
    session the descriptor and the input it read ahead. USER/PASS, an AUTH
    PLAIN exchange, and a burst larger than the 16 KiB input buffer (3000
    NOOPs). Under TLS: test_tls.test_pipelined_after_pass_tls."""
    with Server(env, "pipeline-plain", tls_args(env)) as plain:
        for data, expect, tag in pipelined_cases():
            c = Conn(plain.port)
            check(c.line() == b"+OK pop3d ready", "greeting")
            run_pipelined(c, data, expect, f"{tag} without TLS")
    plain.check_log(*[r"^<6>logout: user=alice reason=QUIT"] * 3)


def _children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def test_monitor_kills_wedged_preauth(env):
    """The root monitor does not wait for ever on the pre-login process: a
    stopped one (wedged, or hostile and silent) is killed once
    --preauth-timeout and the monitor's grace (MONITOR_GRACE_MS, 5 s) are
    over, and the connection ends."""
    d = env.tempdir("wedged-preauth")
    with Sessions(env, d) as s:
        a = s.start(["--preauth-timeout=1"])
        # The pre-auth process answers CAPA; the greeting is the
        # monitor's, written before the fork (design.md §2).
        check(a.cmd("CAPA") == "+OK capability list follows", "CAPA")
        a.multiline()
        kids = _children(a.pid)
        check(len(kids) == 1, f"children of the monitor: {kids}")
        os.kill(kids[0], signal.SIGSTOP)
        try:
            _expect_killed_in_time(a, kids[0])
        finally:
            try:
                os.kill(kids[0], signal.SIGKILL)  # a test stops what it starts
            except ProcessLookupError:
                pass


def _expect_killed_in_time(a, kid):
    start = time.monotonic()
    try:
        a.proc.wait(20)
    except subprocess.TimeoutExpired:
        os.kill(a.pid, signal.SIGKILL)
        a.close()
        check(False, "the monitor still waits 20 s after the stop")
    took = time.monotonic() - start
    a.close()
    check(3.5 <= took <= 12, f"the monitor ended after {took:.1f} s, not 1 + 5")
    check(re.search(rb"^<4>pre-login process %d still there 5000 ms after "
                    rb"--preauth-timeout: killed$" % kid, a.stderr, re.M),
          f"no log line for the kill: {a.stderr[-500:]!r}")
    for _ in range(50):
        if not os.path.exists(f"/proc/{kid}") or \
                open(f"/proc/{kid}/stat").read().split()[2] == "Z":
            return
        time.sleep(0.1)
    check(False, f"pre-login process {kid} still alive")
