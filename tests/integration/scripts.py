"""Script tests: tests/scripts/NAME.in is piped into pop3d and its whole
transcript is compared with NAME.out.

NAME.in, one client line per line, sent with CRLF appended:
  "# ..."         comment, stripped (the first one lists the checklist IDs)
  escapes         \\r \\n \\t \\xHH \\\\ ; "\\c" at the very end: no CRLF added
                  (so "CAPA\\n\\c" sends a bare-LF line)
  {{rep N:TEXT}}  TEXT (escapes allowed) repeated N times
  #!sleep SECS    send what came before, then pause
  #!hold          keep stdin open at the end, until pop3d exits by itself
  #!session       end this session; the next lines drive a new pop3d on the
                  same spool directory (regex captures carry over)
  #!user NAME     the spool the test works on is NAME's (default alice)
  #!spool FILE    (re)write the spool in place with FILE (scripts/ or
                  fixtures/), keeping its inode
  #!append FILE   append FILE to the spool
  #!expect-spool FILE   between sessions: the spool must equal FILE now
  #!symlink / #!hardlink / #!mkdir / #!mkfifo   make the spool a symlink to
                  a copy of itself / give it a second link / a directory / a FIFO
  #!chown USER    give the spool to USER (needs real root; else skipped)
  #!chmod MODE    set the spool's mode (octal)
  #!duration MIN MAX   this session must last between MIN and MAX seconds
The whole script of a session is written at once (pipelining), except
around #!sleep.

NAME.out: the server's lines with CRLF removed (every line must end in
CRLF), sessions separated by "#!session" lines. Literal text except:
  {{re:REGEX}}    a regex for text that legitimately varies; named groups
                  (?P<x>...) are remembered and (?P=x) reuses the value in
                  later lines and sessions
  {{hex:HHHH}}    literal bytes
  {{rep N}} ... {{end}}  lines repeated N times
NAME.mbox: alice's spool before the test (none: no spool file at all).
NAME.after: the spool afterwards; without it the spool must be unchanged.
NAME.args: extra pop3d flags (shell words). NAME.log: one regex per line that
must match stderr lines in this order; "!REGEX" means no line may match.
"""

import os
import re
import shlex
import signal
import stat
import subprocess
import threading
import time

from harness import (SCRIPTS, TestFailure, TestSkipped, check, check_stderr,
                     check_transcript, compare_snapshots, dir_snapshot,
                     fixture, split_crlf_lines)

SESSION_TIMEOUT = 60.0


def unescape(text):
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c != "\\":
            out += c.encode("utf-8")
            i += 1
            continue
        nxt = text[i + 1:i + 2]
        if nxt == "x":
            out.append(int(text[i + 2:i + 4], 16))
            i += 4
            continue
        out += {"r": b"\r", "n": b"\n", "t": b"\t", "\\": b"\\"}[nxt]
        i += 2
    return bytes(out)


REP_RE = re.compile(r"\{\{rep (\d+):(.*?)\}\}")


def expand_line(text):
    """One .in line to the bytes sent."""
    eol = b"\r\n"
    if text.endswith("\\c"):
        text, eol = text[:-2], b""
    out = b""
    pos = 0
    for m in REP_RE.finditer(text):
        out += unescape(text[pos:m.start()]) + unescape(m.group(2)) * int(m.group(1))
        pos = m.end()
    return out + unescape(text[pos:]) + eol


class Session:
    def __init__(self):
        self.actions = []      # spool set-up run before this session
        self.steps = []        # ("data", bytes) or ("sleep", secs)
        self.hold = False
        self.duration = None


def parse_in(path):
    sessions = [Session()]
    for raw in path.read_text(encoding="utf-8").split("\n"):
        s = sessions[-1]
        if raw.startswith("# ") or raw == "#":
            continue
        if raw.startswith("#!"):
            words = raw[2:].split()
            op = words[0]
            if op == "session":
                sessions.append(Session())
            elif op == "sleep":
                s.steps.append(("sleep", float(words[1])))
            elif op == "hold":
                s.hold = True
            elif op == "duration":
                s.duration = (float(words[1]), float(words[2]))
            elif op in ("user", "spool", "append", "expect-spool", "symlink",
                        "hardlink", "mkdir", "mkfifo", "chown", "chmod"):
                s.actions.append(words)
            else:
                raise ValueError(f"{path.name}: unknown directive {raw}")
            continue
        if raw == "" and not s.steps:
            continue
        s.steps.append(("data", expand_line(raw)))
    # A trailing empty line of the file is not an empty command.
    for s in sessions:
        if s.steps and s.steps[-1] == ("data", b"\r\n"):
            s.steps.pop()
    return sessions


def parse_out(path):
    """The expected transcript: one list of template lines per session."""
    sessions = [[]]
    lines = path.read_bytes().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.fullmatch(rb"\{\{rep (\d+)\}\}", line)
        if m:
            end = lines.index(b"{{end}}", i)
            sessions[-1].extend(lines[i + 1:end] * int(m.group(1)))
            i = end + 1
            continue
        if line == b"#!session":
            sessions.append([])
        else:
            sessions[-1].append(line)
        i += 1
    return sessions


# The closing "}}" is the last of a run of braces, so a regex may end in a
# quantifier: {{re:[0-9a-f]{32}}}.
TOKEN_RE = re.compile(rb"\{\{(re|hex):(.*?)\}\}(?!\})")
BACKREF_RE = re.compile(rb"\(\?P=(\w+)\)")


def template_regex(template, captures):
    parts = []
    pos = 0
    for m in TOKEN_RE.finditer(template):
        parts.append(re.escape(template[pos:m.start()]))
        if m.group(1) == b"hex":
            parts.append(re.escape(bytes.fromhex(m.group(2).decode())))
        else:
            # Earlier captures become literals, so they work across lines.
            def sub(b):
                name = b.group(1).decode()
                if name in captures:
                    return re.escape(captures[name])
                return b.group(0)
            parts.append(b"(?:" + BACKREF_RE.sub(sub, m.group(2)) + b")")
        pos = m.end()
    parts.append(re.escape(template[pos:]))
    return re.compile(b"".join(parts), re.S)


def match_transcript(expected, actual, captures, label):
    for i, tmpl in enumerate(expected):
        if i >= len(actual):
            raise TestFailure(f"{label}: output ends after {len(actual)} lines; "
                              f"expected line {i + 1}: {tmpl.decode(errors='replace')}")
        m = template_regex(tmpl, captures).fullmatch(actual[i])
        if not m:
            raise TestFailure(
                f"{label}: line {i + 1} differs\n"
                f"    expected: {tmpl.decode(errors='replace')}\n"
                f"    actual:   {actual[i][:300]!r}")
        for k, v in m.groupdict().items():
            if v is not None:
                captures[k] = v
    if len(actual) > len(expected):
        extra = b"\n      ".join(x[:120] for x in actual[len(expected):len(expected) + 5])
        raise TestFailure(f"{label}: {len(actual) - len(expected)} unexpected lines "
                          f"after line {len(expected)}:\n      {extra.decode(errors='replace')}")


def client_lines(data):
    """The command lines pop3d will see (DEC-01: LF ends a line)."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [x[:-1] if x.endswith(b"\r") else x for x in lines]


def run_session(env, maildir, args, session):
    proc = env.spawn(maildir, args)
    out, err = [], []

    def reader(stream, sink):
        for chunk in iter(lambda: stream.read1(1 << 20), b""):
            sink.append(chunk)

    threads = [threading.Thread(target=reader, args=(proc.stdout, out), daemon=True),
               threading.Thread(target=reader, args=(proc.stderr, err), daemon=True)]
    for t in threads:
        t.start()
    start = time.monotonic()

    def writer():
        try:
            for kind, val in session.steps:
                if kind == "sleep":
                    time.sleep(val)
                else:
                    proc.stdin.write(val)
                    proc.stdin.flush()
            if not session.hold:
                proc.stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            pass   # pop3d closed first (3 bad logins, 20 bad commands...)

    w = threading.Thread(target=writer, daemon=True)
    w.start()
    try:
        proc.wait(SESSION_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        raise TestFailure(f"pop3d (pid {proc.pid}) still running after {SESSION_TIMEOUT}s")
    finally:
        elapsed = time.monotonic() - start
        w.join(5)
        for t in threads:
            t.join(5)
        try:
            proc.stdin.close()
        except (BrokenPipeError, ValueError):
            pass
    return proc.returncode, b"".join(out), b"".join(err), elapsed


class ScriptTest:
    def __init__(self, name):
        self.name = name
        self.base = SCRIPTS / name

    def file(self, ext):
        p = self.base.with_suffix(ext)
        return p if p.exists() else None

    def run(self, env):
        sessions = parse_in(self.base.with_suffix(".in"))
        expected = parse_out(self.base.with_suffix(".out"))
        check(len(expected) == len(sessions),
              f".out has {len(expected)} sessions, .in has {len(sessions)}")
        args = shlex.split(self.file(".args").read_text()) if self.file(".args") else []
        maildir = env.tempdir(self.name)
        user = "alice"
        spool = maildir / user
        if self.file(".mbox"):
            env.install_spool(spool, self.file(".mbox").read_bytes(), user)

        # The bytes the spool must hold at the end (None: must not exist).
        want = self.file(".mbox").read_bytes() if self.file(".mbox") else None
        captures = {}
        stderr_all = b""
        secrets = {b"secret"}
        for n, sess in enumerate(sessions, 1):
            for act in sess.actions:
                op = act[0]
                if op == "user":
                    # Move the fixture to another user's spool.
                    new = maildir / act[1]
                    if spool.exists():
                        os.rename(spool, new)
                        env.chown_to(new, act[1])
                    user, spool = act[1], new
                elif op == "spool":
                    data = fixture(act[1])
                    if spool.exists():
                        with open(spool, "r+b") as f:
                            f.write(data)
                            f.truncate()
                    else:
                        env.install_spool(spool, data, user)
                    want = data
                elif op == "append":
                    with open(spool, "ab") as f:
                        f.write(fixture(act[1]))
                    want = spool.read_bytes()
                elif op == "expect-spool":
                    check(spool.read_bytes() == fixture(act[1]),
                          f"before session {n}: spool differs from {act[1]}")
                elif op == "symlink":
                    target = maildir / (user + ".real")
                    os.rename(spool, target)
                    os.symlink(target.name, spool)
                    env.chown_to(spool, user)
                elif op == "hardlink":
                    os.link(spool, maildir / (user + ".link"))
                elif op == "mkdir":
                    spool.mkdir()
                    env.chown_to(spool, user)
                    want = None
                elif op == "mkfifo":
                    os.mkfifo(spool, 0o600)
                    env.chown_to(spool, user)
                    want = None
                elif op == "chown":
                    if not env.really_root:
                        raise TestSkipped("needs real root to chown")
                    env.chown_to(spool, act[1])
                elif op == "chmod":
                    os.chmod(spool, int(act[1], 8))

            data = b"".join(v for k, v in sess.steps if k == "data")
            for line in client_lines(data):
                if line[:5].upper() == b"PASS " and len(line) > 8:
                    secrets.add(line[5:])
            before = dir_snapshot(maildir)
            rc, out, err, elapsed = run_session(env, maildir, args, sess)
            stderr_all += err
            label = f"session {n}" if len(sessions) > 1 else "transcript"
            check(rc >= 0, f"{label}: pop3d killed by signal {-rc}\n"
                  + err.decode(errors="replace")[-2000:])
            lines = split_crlf_lines(out, label)
            check(lines, f"{label}: no output at all (not even a greeting); stderr: "
                  + err.decode(errors="replace")[-500:])
            check_transcript(lines, client_lines(data))
            match_transcript(expected[n - 1], lines, captures, label)
            if sess.duration:
                lo, hi = sess.duration
                # Under valgrind (make check-valgrind) every process
                # starts seconds late: only the lower bound still means
                # something.
                if os.environ.get("POP3D_TEST_WRAPPER"):
                    hi = float("inf")
                check(lo <= elapsed <= hi,
                      f"{label}: lasted {elapsed:.1f}s, expected {lo}-{hi}s")
            after = dir_snapshot(maildir)
            problems = compare_snapshots(before, after)
            check(not problems, f"{label}: spool directory changed: {'; '.join(problems)}")

        check_stderr(stderr_all, secrets)
        if self.file(".after"):
            want = self.file(".after").read_bytes()
        if want is None:
            check(not spool.exists() or stat.S_ISDIR(os.lstat(spool).st_mode)
                  or stat.S_ISFIFO(os.lstat(spool).st_mode),
                  "a spool file was created")
        else:
            got = (maildir / (user + ".real")).read_bytes() if spool.is_symlink() \
                else spool.read_bytes()
            if got != want:
                raise TestFailure("spool contents differ from "
                                  + (".after" if self.file(".after") else "the fixture")
                                  + f" ({len(got)} bytes, expected {len(want)})\n"
                                  + first_difference(want, got))
        if self.file(".log"):
            check_log(self.file(".log"), stderr_all)


def first_difference(want, got):
    i = 0
    while i < min(len(want), len(got)) and want[i] == got[i]:
        i += 1
    return (f"    first difference at byte {i}:\n"
            f"    expected: {want[max(0, i - 30):i + 50]!r}\n"
            f"    actual:   {got[max(0, i - 30):i + 50]!r}")


def check_log(path, stderr):
    lines = stderr.splitlines()
    pos = 0
    for pat in path.read_bytes().splitlines():
        if not pat or pat.startswith(b"# "):
            continue
        if pat.startswith(b"!"):
            rx = re.compile(pat[1:])
            bad = [x for x in lines if rx.search(x)]
            if bad:
                raise TestFailure(f"log line must not match {pat[1:]!r}: {bad[0]!r}")
            continue
        rx = re.compile(pat)
        while pos < len(lines) and not rx.search(lines[pos]):
            pos += 1
        check(pos < len(lines),
              f"no log line (in order) matches {pat.decode()!r}; log was:\n      "
              + b"\n      ".join(lines).decode(errors="replace"))
        pos += 1


def discover():
    return sorted(p.stem for p in SCRIPTS.glob("*.in"))
