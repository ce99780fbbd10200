"""pop3d as its own Accept=no listener (server.c), under
systemd-socket-activate on 127.0.0.1, in the cwrap environment of the
integration tests: for --max-per-source, which only the listener counts.
Used by test_proxy.py and the HAProxy suite (tests/proxy/)."""

import os
import shutil
import signal
import socket
import subprocess
import threading
import time

from harness import PWRAP_RACE_RE, TestFailure, TestSkipped, check, check_stderr
from tcp import MBOX


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port, pid="self"):
    """Whether 127.0.0.1:port is in LISTEN state in the network namespace
    of process pid (without connecting, which would be a session)."""
    want = f"0100007F:{port:04X}"
    with open(f"/proc/{pid}/net/tcp") as f:
        return any(ln.split()[1] == want and ln.split()[3] == "0A"
                   for ln in list(f)[1:])


class Listener:
    """Use as a context manager; on exit SIGTERM to the listener, then
    SIGKILL to its process group (sessions included) after a grace
    period; the log is then in .log."""

    def __init__(self, env, name, args=(), prefix=()):
        """prefix: a command that execs the rest in place (same pid), such
        as ip netns exec NS."""
        if shutil.which("systemd-socket-activate") is None:
            raise TestSkipped("no systemd-socket-activate (Debian: systemd)")
        if env.wrapper:
            # tests/valgrind.sh runs pop3d as its child: LISTEN_PID is
            # then the wrapper's, and pop3d would ignore the socket.
            raise TestSkipped("a test wrapper (valgrind) cannot run the listener")
        self.dir = env.tempdir(name)
        env.install_spool(self.dir / "alice", MBOX)
        self.port = free_port()
        cmd = (list(prefix)
               + ["systemd-socket-activate", f"--listen=127.0.0.1:{self.port}"]
               # It passes on only the variables it is told to: cwrap's.
               + [f"--setenv={k}" for k in sorted(env.child_env)]
               + env.command(self.dir, args))
        self.proc = subprocess.Popen(cmd, env=env.child_env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)
        self.err = []
        self.t = threading.Thread(target=lambda: self.err.append(self.proc.stderr.read()),
                                  daemon=True)
        self.t.start()
        self.log = b""
        deadline = time.monotonic() + 10
        while not listening(self.port, self.proc.pid):
            check(self.proc.poll() is None and time.monotonic() < deadline,
                  f"{name}: pop3d is not listening on {self.port}")
            time.sleep(0.05)

    def __enter__(self):
        return self

    def pwrap_raced(self):
        """After exit: did any connection's pop3d meet pam_wrapper's race
        for /tmp/pam.X? (Each connection is its own exec of pop3d here,
        each with its own pam_wrapper; one started together with another,
        a health check's say, may share its dir and lose it when that one
        exits, and its pam_start then fails: [SYS/TEMP].)"""
        return bool(self.pwrap)

    def __exit__(self, *exc):
        try:
            os.kill(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        time.sleep(0.5)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.t.join(10)
        # systemd-socket-activate's own lines ("Listening on ...") are not
        # pop3d's; pam_wrapper's error lines are kept apart (pwrap_raced).
        lines = b"".join(self.err).splitlines(True)
        self.log = b"".join(ln for ln in lines if ln.startswith(b"<"))
        self.pwrap = b"".join(ln for ln in lines if PWRAP_RACE_RE.match(ln.rstrip(b"\n")))
        if exc[0] is TestFailure:
            note = ("\n    pam_wrapper's /tmp/pam.X race was met (harness.py, PWRAP_RACE_RE):\n      "
                    + self.pwrap.decode(errors="replace")) if self.pwrap else ""
            raise TestFailure(f"{exc[1]}\n    pop3d log:\n      "
                              + self.log.decode(errors="replace")[-4000:].replace(
                                  "\n", "\n      ") + note) from None
        if exc[0] is None:
            check_stderr(self.log, [b"secret"])
        return False
