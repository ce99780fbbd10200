"""Command-line interface (issue 2, "Flags" in the lead's spec): --version,
--help, bad flags (exit 2, nothing on stdout, a message on stderr), and the
--mailbox pattern escapes %h and %%."""

import os
import re
import subprocess

from harness import Sessions, TestSkipped, check, fixture

FLAGS = ["--mailbox", "--pam-service", "--timeout", "--min-uid", "--allow-plaintext",
         "--log", "--max-messages", "--max-size", "--login-delay", "--expire",
         "--capa-implementation", "--language", "--version", "--help"]


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


# Each flag's refusal, word for word: admins' scripts and the man page
# quote them. One row per check of the option table in pop3d.c (bounds,
# "at least", paths, names), plus the abbreviations getopt must refuse as
# ambiguous and the pairings checked after parsing.
FLAG_MESSAGES = [
    (["--bogus"], "unknown or incomplete option: --bogus"),
    (["--timeout"], "unknown or incomplete option: --timeout"),
    (["--help=x"], "unknown or incomplete option: --help=x"),
    (["--pre=5"], "unknown or incomplete option: --pre=5"),
    (["--max=5"], "unknown or incomplete option: --max=5"),
    (["stray"], "unexpected argument: stray"),
    (["--timeout=abc"], "bad value for --timeout"),
    (["--timeout=0"], "--timeout must be at least 1"),
    (["--timeout=86401"], "bad value for --timeout"),
    (["--min-uid=4294967295"], "bad value for --min-uid"),
    (["--log=file"], "--log takes syslog or stderr, not file"),
    (["--max-messages=18446744073709551616"], "bad value for --max-messages"),
    # No more than the journal's bound on regions allows (found in review,
    # round 12: QUIT could never delete in a larger maildrop).
    (["--max-messages=2000001"], "bad value for --max-messages"),
    (["--max-size=1x"], "bad value for --max-size"),
    (["--max-children=0"], "--max-children must be at least 1"),
    (["--max-children=100001"], "bad value for --max-children"),
    (["--max-per-source=0"], "--max-per-source must be at least 1"),
    (["--preauth-timeout=0"], "--preauth-timeout must be at least 1"),
    (["--preauth-user="], "empty --preauth-user"),
    (["--preauth-dir=rel"], "--preauth-dir must be absolute: rel"),
    (["--journal-dir=rel"], "--journal-dir must be absolute: rel"),
    (["--mailbox=rel"], "--mailbox must be an absolute path: rel"),
    (["--mailbox=/x/%z"], "--mailbox: only %u, %h and %% may follow %: /x/%z"),
    (["--pam-service=a/b"], "bad PAM service name: a/b"),
    (["--tls-key=k"], "--tls-key needs --tls-cert"),
    (["--tls-implicit"], "--tls-implicit needs --tls-cert"),
    # R2449-20 R2449-21: the policy announcements.
    (["--login-delay=86401"], "bad value for --login-delay"),
    (["--login-delay=-1"], "bad value for --login-delay"),
    (["--expire=36501"], "--expire takes a number of days from 0 to 36500, or NEVER, not 36501"),
    (["--expire=forever"], "--expire takes a number of days from 0 to 36500, or NEVER, not forever"),
    (["--expire=-1"], "--expire takes a number of days from 0 to 36500, or NEVER, not -1"),
    (["--expire="], "--expire takes a number of days from 0 to 36500, or NEVER, not "),
    (["--capa-implementation=yes"], "unknown or incomplete option: --capa-implementation=yes"),
    # R6856-15: LANG * must find a catalogue.
    (["--language=fr"], "--language=fr: no such language (pop3d has: en de)"),
    (["--language=de_CH"], "--language=de_CH: no such language (pop3d has: en de)"),
    (["--language=*"], "--language=*: no such language (pop3d has: en de)"),
]


def test_bad_flag_messages(env):
    problems = []
    for args, message in FLAG_MESSAGES:
        r = run(env, *args)
        want = f"pop3d: {message}\nTry 'pop3d --help'.\n".encode()
        if r.returncode != 2 or r.stdout != b"" or r.stderr != want:
            problems.append(f"{args}: exit {r.returncode}, stderr {r.stderr[:100]!r}")
    check(not problems, "flag refused with another message:\n    "
          + "\n    ".join(problems))


def test_journal_dir_refusal_names_the_fault(env):
    """Issue 14: a --journal-dir that another user can write (mode 1777)
    or that is not root's is refused at start-up, as --preauth-dir is:
    anyone who can write it can plant a journal that a victim's next login
    writes into the victim's spool (test_journal_dir.py)."""
    if not env.really_root:
        raise TestSkipped("needs real root")
    d = env.tempdir("journal-dir")
    (d / "file").write_bytes(b"")
    for name, mode in (("sticky", 0o1777), ("group", 0o775), ("bobs", 0o755)):
        (d / name).mkdir()
        os.chmod(d / name, mode)
    env.chown_to(d / "bobs", "bob")
    cases = [("file", r"not a directory"),
             ("sticky", r"writable by group or others \(mode 1777\)"),
             ("group", r"writable by group or others \(mode 0775\)"),
             ("bobs", rf"owned by uid {env.users['bob'][0]}, not root")]
    preauth = [a for a in env.default_args if a.startswith("--preauth-dir=")]
    problems = []
    for name, want in cases:
        r = run(env, "--log=stderr", *preauth, f"--journal-dir={d / name}")
        line = rf"<2>--journal-dir {re.escape(str(d / name))}: {want}"
        if r.returncode != 1 or not re.fullmatch(line.encode(), r.stderr.strip()):
            problems.append(f"{name}: exit {r.returncode}, stderr {r.stderr[:200]!r}, "
                            f"expected {line!r}")
    check(not problems, "\n    ".join(problems))


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
