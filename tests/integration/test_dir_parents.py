"""The directories above --preauth-dir and --journal-dir (issue 14,
point 2's review of the other root-only directories; design.md §2,
§4.8): each one up to / must be root's, not a symlink, and writable by
root alone, or sticky (/tmp, /var/tmp), where nobody else may rename an
entry of root's. Otherwise whoever can write a parent can move the
checked directory away and put one of their own in its place, after the
start-up check. pop3d refuses to start, naming the parent.

Real root only, as test_cli's checks of the directories themselves: the
attack needs a directory of another user's.
"""

import os
import re
import subprocess

from harness import TestSkipped, check


def _run(env, *args):
    return subprocess.run([env.binary, "--log=stderr", *args], env=env.child_env,
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=15,
                          check=False)


def _cases(env, d, leaf_mode):
    """(name, the checked directory, the line expected or None to start),
    with the directories made: each name is a parent of its own."""
    bob = env.users["bob"][0]
    cases = []

    def leaf(parent):
        t = parent / "dir"
        t.mkdir()
        os.chmod(t, leaf_mode)
        return t

    for name, mode, owner in (("open", 0o777, None), ("group", 0o775, None),
                              ("bobs", 0o755, "bob"), ("sticky", 0o1777, None),
                              ("plain", 0o755, None)):
        p = d / name
        p.mkdir()
        os.chmod(p, mode)
        if owner:
            env.chown_to(p, owner)
        want = {"open": rf"parent {re.escape(str(p))} writable by group or others \(mode 0777\)",
                "group": rf"parent {re.escape(str(p))} writable by group or others \(mode 0775\)",
                "bobs": rf"parent {re.escape(str(p))} owned by uid {bob}, not root",
                "sticky": None, "plain": None}[name]
        cases.append((name, leaf(p), want))
    # A grandparent others may write, and a symlink on the way.
    gp = d / "grand"
    gp.mkdir()
    os.chmod(gp, 0o777)
    (gp / "p").mkdir()
    cases.append(("grandparent", leaf(gp / "p"),
                  rf"parent {re.escape(str(gp))} writable by group or others \(mode 0777\)"))
    real = d / "real"
    real.mkdir()
    leaf(real)
    (d / "link").symlink_to(real)
    cases.append(("symlink", d / "link" / "dir",
                  rf"parent {re.escape(str(d / 'link'))} is a symlink"))
    return cases


def _check(env, flag, leaf_mode):
    if not env.really_root:
        raise TestSkipped("needs real root")
    d = env.tempdir(flag.strip("-"))
    others = [a for a in env.default_args if not a.startswith(flag + "=")]
    problems = []
    for name, target, want in _cases(env, d, leaf_mode):
        r = _run(env, *others, f"{flag}={target}")
        if want is None:
            if r.returncode != 0 or not r.stdout.startswith(b"+OK pop3d ready"):
                problems.append(f"{name}: refused: exit {r.returncode}, {r.stderr[-200:]!r}")
            continue
        line = rf"<2>{flag} {re.escape(str(target))}: {want}"
        if r.returncode != 1 or not re.fullmatch(line.encode(), r.stderr.strip()):
            problems.append(f"{name}: exit {r.returncode}, stderr {r.stderr[-200:]!r}, "
                            f"expected {line!r}")
    check(not problems, "\n    ".join(problems))


def test_preauth_dir_parents(env):
    _check(env, "--preauth-dir", 0o555)


def test_journal_dir_parents(env):
    _check(env, "--journal-dir", 0o711)
