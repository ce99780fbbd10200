"""Randomised spools through the real pop3d binary.

For each of N seeded spools (mixed LF and CRLF messages, dot lines, >From
lines, "From " inside bodies, NUL bytes, long lines, header-only and empty
messages, no final newline) this checks, against a model written from the
mbox rules in design.md section 4:
  - STAT and every LIST size equal the octets RETR sends (R1939-38),
  - every RETR body, unstuffed, equals the stored message in CRLF form,
  - TOP n 0 sends exactly the header section and its blank line,
  - UIDL is stable across sessions and unique,
  - after DELE of a random subset and QUIT, the spool holds exactly the kept
    messages' bytes, in order, From_ lines and separators included.

Run by tests/run-integration.sh like the other test modules.
"""
import random
import subprocess

from harness import check

SEEDS = 150


def make_message(rng, i):
    eol = b"\r\n" if rng.random() < 0.2 else b"\n"
    headers = [b"Received: from host%d by mx; Mon, 1 Jan 2024" % i,
               b"Message-ID: <%d.%d@example.org>" % (i, rng.randrange(10**9)),
               b"Subject: test %d" % i]
    if rng.random() < 0.2:
        headers.append(b"X-Folded: first" + eol + b"\tsecond")
    lines = []
    for _ in range(rng.randrange(0, 12)):
        kind = rng.random()
        if kind < 0.1:
            lines.append(b"." + b"x" * rng.randrange(0, 5))
        elif kind < 0.15:
            lines.append(b".")
        elif kind < 0.2:
            lines.append(b">From somebody")
        elif kind < 0.25:
            # Unquoted "From " is only body text where no blank line
            # precedes it; an MDA would have quoted it otherwise.
            if lines and lines[-1] != b"":
                lines.append(b"From inside a body, no blank line before")
        elif kind < 0.28:
            lines.append(b"nul\x00byte")
        elif kind < 0.3:
            lines.append(b"L" * rng.randrange(300000, 400000))
        elif kind < 0.4:
            lines.append(b"")
        else:
            lines.append(b"body line %d" % rng.randrange(1000))
    shape = rng.random()
    if shape < 0.05:
        content = b""                                  # empty message
    elif shape < 0.12:
        content = eol.join(headers) + eol              # headers only
    else:
        content = eol.join(headers) + eol + eol + eol.join(lines)
        if lines and lines[-1] == b"":
            content += eol          # a real trailing empty line survives
        elif rng.random() < 0.85 or not lines:
            content += eol
        # else: no final newline (only possible for the last message,
        # see build_spool)
    return content


def build_spool(rng, count):
    """Return (spool bytes, [(region start, region end, content)])."""
    out = bytearray()
    msgs = []
    for i in range(count):
        content = make_message(rng, i)
        last = i == count - 1
        if not last and content and not content.endswith(b"\n"):
            content += b"\n"
        start = len(out)
        out += b"From sender%d@example.org Mon Jan  1 00:00:00 2024\n" % i
        out += content
        # At the end of the file a last blank line is read as the
        # separator (as mutt and Dovecot do), so a last message whose own
        # last line is empty needs its separator to stay unambiguous.
        ends_blank = content.endswith(b"\n\n") or content.endswith(b"\n\r\n")
        if not last or ends_blank or rng.random() < 0.7:
            # The separator: mbox writers end every message with one.
            if content and not content.endswith(b"\n"):
                pass        # no final newline: nothing may follow
            else:
                out += b"\n"
        msgs.append((start, len(out), content))
    return bytes(out), msgs


def crlf(content):
    """The message as RETR must send it before dot-stuffing."""
    out = bytearray()
    for line in content.split(b"\n"):
        out += line
        if not line.endswith(b"\r"):
            out += b"\r"
        out += b"\n"
    out = bytes(out)
    if content.endswith(b"\n"):
        out = out[:-2]      # split() gave an empty last piece
    return out if content else b""


def unstuff(lines):
    return b"".join((l[1:] if l.startswith(b".") else l) for l in lines)


def multiline(data, pos):
    """Parse the multi-line reply body at pos; return (unstuffed, next pos).
    A stuffed body never holds a line that is just ".", so the first
    CRLF.CRLF (starting at pos - 2 for an empty body) ends it."""
    end = data.index(b"\r\n.\r\n", pos - 2)
    lines = data[pos:end + 2].split(b"\r\n")[:-1]
    return unstuff([l + b"\r\n" for l in lines]), end + 5


def run(env, spool_dir, script):
    p = subprocess.run(env.command(spool_dir), input=script,
                       capture_output=True, env=env.child_env, timeout=120)
    if p.returncode != 0 or b"ERROR: AddressSanitizer" in p.stderr or \
            b"+OK maildrop has" not in p.stdout:
        raise AssertionError("pop3d failed: %r %r" % (p.stdout[-300:],
                                                      p.stderr[-2000:]))
    return p.stdout


def check_one(env, seed, tmp):
    rng = random.Random(seed)
    spool, msgs = build_spool(rng, rng.randrange(0, 8))
    path = tmp / "alice"
    env.install_spool(path, spool)
    n = len(msgs)
    script = b"USER alice\r\nPASS secret\r\nSTAT\r\nLIST\r\nUIDL\r\n"
    for i in range(1, n + 1):
        script += b"RETR %d\r\nTOP %d 0\r\n" % (i, i)
    dele = sorted(rng.sample(range(1, n + 1), rng.randrange(0, n + 1))) if n else []
    for i in dele:
        script += b"DELE %d\r\n" % i
    script += b"QUIT\r\n"
    out = run(env, tmp, script)

    lines = out.split(b"\r\n")
    noun = b"message" if n == 1 else b"messages"
    assert lines[2].startswith(b"+OK maildrop has %d %s" % (n, noun)), lines[:4]
    expect = [crlf(c) for _, _, c in msgs]
    total = sum(len(e) for e in expect)
    assert lines[3] == b"+OK %d %d" % (n, total), (lines[3], n, total)
    # LIST
    pos = out.index(b"\r\n", out.index(b"+OK %d %s (" % (n, noun))) + 2
    sizes = []
    for i in range(n):
        eol = out.index(b"\r\n", pos)
        num, size = out[pos:eol].split(b" ")
        assert int(num) == i + 1
        sizes.append(int(size))
        pos = eol + 2
    assert out[pos:pos + 3] == b".\r\n"
    assert sizes == [len(e) for e in expect], (sizes, [len(e) for e in expect])
    pos += 3
    # UIDL
    assert out[pos:].startswith(b"+OK unique-id listing follows\r\n")
    pos = out.index(b"\r\n", pos) + 2
    uids = []
    for i in range(n):
        eol = out.index(b"\r\n", pos)
        num, uid = out[pos:eol].split(b" ")
        assert 1 <= len(uid) <= 70 and all(0x21 <= c <= 0x7e for c in uid)
        uids.append(uid)
        pos = eol + 2
    assert len(set(uids)) == n, uids
    pos += 3
    for i in range(n):
        head = b"+OK %d octets\r\n" % sizes[i]
        assert out[pos:pos + len(head)] == head, out[pos:pos + 60]
        body, pos = multiline(out, pos + len(head))
        assert body == expect[i], (seed, i, body[:200], expect[i][:200])
        head = b"+OK top of message follows\r\n"
        assert out[pos:pos + len(head)] == head
        body, pos = multiline(out, pos + len(head))
        sep = expect[i].find(b"\r\n\r\n")
        want = expect[i][:sep + 4] if sep >= 0 else expect[i]
        if expect[i].startswith(b"\r\n"):
            want = b"\r\n"
        assert body == want, (seed, i, body[:300], want[:300])
    # UPDATE kept exactly the messages not deleted, byte for byte.
    with open(path, "rb") as f:
        after = f.read()
    kept = b"".join(spool[s:e] for k, (s, e, _) in enumerate(msgs)
                    if k + 1 not in dele)
    assert after == kept, (seed, dele, after[:300], kept[:300])
    # UIDs of the survivors are unchanged in a new session.
    if kept:
        out2 = run(env, tmp, b"USER alice\r\nPASS secret\r\nUIDL\r\nQUIT\r\n")
        listed = [l.split(b" ")[1] for l in out2.split(b"\r\n")
                  if l[:1].isdigit()]
        survivors = [u for k, u in enumerate(uids) if k + 1 not in dele]
        # Suffixes of duplicates may renumber when an earlier copy goes.
        strip = lambda u: u.split(b"-")[0]
        assert [strip(u) for u in listed] == [strip(u) for u in survivors]


def test_random_spools(env):
    failures = []
    for seed in range(SEEDS):
        tmp = env.tempdir("property-%d" % seed)
        try:
            check_one(env, seed, tmp)
        except AssertionError as e:
            failures.append("seed %d: %s" % (seed, str(e)[:1500]))
    check(not failures, "\n".join(failures[:5]))
