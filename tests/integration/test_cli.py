"""Command-line interface (issue 2, "Flags" in the lead's spec): --version,
--help, bad flags (exit 2, nothing on stdout, a message on stderr), and the
--mailbox pattern escapes %h and %%."""

import os
import re
import subprocess

from harness import Sessions, check, fixture

FLAGS = ["--mailbox", "--pam-service", "--timeout", "--min-uid", "--allow-plaintext",
         "--log", "--max-messages", "--max-size", "--version", "--help"]


def run(env, *args):
    return subprocess.run([env.binary, *args], env=env.child_env, stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=15, check=False)


def test_version(env):
    r = run(env, "--version")
    check(r.returncode == 0, f"--version exit {r.returncode}")
    check(r.stdout == b"pop3d 0.1\n", f"--version printed {r.stdout!r}")


def test_help_lists_every_flag(env):
    r = run(env, "--help")
    check(r.returncode == 0, f"--help exit {r.returncode}")
    out = r.stdout.decode(errors="replace")
    missing = [f for f in FLAGS if f not in out]
    check(not missing, f"--help does not mention {missing}")
    check(not out.startswith("+OK"), "--help speaks POP3")


def test_bad_flags_exit_2(env):
    bad = [["--bogus"], ["--timeout=abc"], ["--timeout=-1"], ["--timeout="],
           ["--timeout=99999999999999999999"], ["--min-uid=x"], ["--min-uid=-5"],
           ["--mailbox=relative/%u"], ["--mailbox="], ["--log=foo"],
           ["--max-messages=abc"], ["--max-size=-5"], ["--max-size=1x"],
           ["--pam-service="], ["stray-argument"]]
    problems = []
    for args in bad:
        r = run(env, "--log=stderr", *args)
        if r.returncode != 2 or r.stdout != b"" or not r.stderr.strip():
            problems.append(f"{args}: exit {r.returncode}, stdout {r.stdout[:60]!r}, "
                            f"stderr {r.stderr[:80]!r}")
    check(not problems, "bad flag not refused with exit 2 + message:\n    "
          + "\n    ".join(problems))


def test_mailbox_home_and_percent(env):
    """--mailbox=%h/... uses the passwd home; %% is a literal percent."""
    d = env.tempdir("mailbox-pattern")
    home = env.users["alice"][2]
    env.install_spool(f"{home}/mail%box", fixture("M2.mbox"))
    with Sessions(env, d) as s:
        a = s.start(["--mailbox=%h/mail%%box"])
        reply = a.login()
        check(reply == "+OK maildrop has 2 messages (320 octets)", f"%h/%%: {reply}")
        a.cmd("QUIT")
        a.close()


def test_preauth_dir_refusal_names_the_fault(env):
    """Issue 10: a bad --preauth-dir is refused with the one check that
    failed, not the list of every condition."""
    d = env.tempdir("preauth-dir")
    (d / "file").write_bytes(b"")
    (d / "open").mkdir()
    os.chmod(d / "open", 0o777)
    cases = [("file", r"not a directory")]
    if env.really_root:
        cases.append(("open", r"writable by group or others \(mode 0777\)"))
    else:
        cases.append(("open", r"owned by uid \d+, not root"))
    for name, want in cases:
        r = run(env, "--log=stderr", f"--preauth-dir={d / name}")
        line = rf"<2>--preauth-dir {re.escape(str(d / name))}: {want}"
        check(r.returncode == 1 and re.fullmatch(line.encode(), r.stderr.strip()),
              f"--preauth-dir {name}: exit {r.returncode}, stderr {r.stderr[:200]!r}, "
              f"expected {line!r}")
