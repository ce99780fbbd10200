"""The process boundary seen from a client (docs/design.md §2): after a
login without TLS the pre-login process hands the session its descriptor
and the input it already read, and exits. The privilege drop itself, the
chroot and the secrets in memory are tested on the real system
(tests/system/systest.py, make check-system).
"""

from harness import check
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
