"""Properties over every fixture, independent of the hand-written
transcripts: LIST size == unstuffed RETR octets (R1939-38, R1939-09),
STAT == sum of LIST (DEC-16), TOP n <huge> == RETR n (R1939-45), TOP n 0 ==
the header part of RETR n (R1939-44), and a pipelined burst of RETRs sent
without reading replies (R2449-16)."""

import re
import threading
import time

from harness import Sessions, TestFailure, check, fixture

MBOXES = ["M.mbox", "M2.mbox", "nonl.mbox", "quirks.mbox", "uidl.mbox"]


def unstuffed_size(lines):
    return sum(len(line) + 2 for line in lines)


def test_sizes_match_retr(env):
    problems = []
    for name in MBOXES:
        d = env.tempdir("sizes-" + name)
        env.install_spool(d / "alice", fixture(name))
        with Sessions(env, d) as s:
            a = s.start()
            a.login()
            check(a.cmd("LIST").startswith("+OK"), "LIST")
            sizes = {int(n): int(sz) for n, sz in (x.split() for x in a.multiline())}
            stat = a.cmd("STAT").split()
            if int(stat[2]) != sum(sizes.values()) or int(stat[1]) != len(sizes):
                problems.append(f"{name}: STAT {stat} vs LIST sum {sum(sizes.values())}")
            for n, size in sizes.items():
                head = a.cmd(f"RETR {n}")
                body = a.multiline()
                got = unstuffed_size(body)
                if got != size or head != f"+OK {size} octets":
                    problems.append(f"{name} msg {n}: LIST {size}, '{head}', RETR sent {got}")
                a.cmd(f"TOP {n} 18446744073709551615999")
                if a.multiline() != body:
                    problems.append(f"{name} msg {n}: TOP n huge differs from RETR")
                a.cmd(f"TOP {n} 0")
                top0 = a.multiline()
                hdr = body[:body.index(b"") + 1] if b"" in body else body
                if top0 != hdr:
                    problems.append(f"{name} msg {n}: TOP n 0 {top0!r} is not the "
                                    f"header part of RETR {hdr!r}")
            a.cmd("QUIT")
            a.close()
    check(not problems, "\n".join(problems))


def test_pipelined_retr_without_reading(env):
    """R2449-16: 200 x RETR in one write, nothing read until all is sent;
    then every reply arrives complete and in order."""
    d = env.tempdir("pipelined-retr")
    env.install_spool(d / "alice", fixture("M.mbox"))
    with Sessions(env, d) as s:
        a = s.start()
        a.login()
        a.send(b"".join(b"RETR %d\r\n" % (i % 4 + 1) for i in range(200)) + b"QUIT\r\n")
        first = {}
        for i in range(200):
            n = i % 4 + 1
            head = a.readline(30)
            check(head is not None and head.startswith(b"+OK "), f"reply {i}: {head!r}")
            body = a.multiline(30)
            if n in first:
                check(body == first[n], f"RETR {n} differs between replies")
            first[n] = body
        check(a.readline() == b"+OK pop3d signing off (4 messages left)", "QUIT")
        a.close()



def test_pipelined_burst_overflowing_output(env):
    """R2449-15, R2449-16: a burst of n commands (the pipe holds them) is
    written before any reply is read; their replies overflow the output
    pipe, so pop3d blocks in a flush. While it waits there it must keep
    reading (here: 10 more NOOPs sent meanwhile), and once the client
    reads, answer every command it queued without waiting for more input.
    Several sizes, because where the flush blocks depends on scheduling."""
    d = env.tempdir("burst-big")
    env.install_spool(d / "alice", fixture("M2.mbox"))
    for n in (6000, 7000, 7800):
        with Sessions(env, d) as s:
            a = s.start()
            a.login()
            done = threading.Event()

            def writer():
                a.proc.stdin.write(b"LIST 1\r\n" * n)
                a.proc.stdin.flush()
                time.sleep(0.5)
                a.proc.stdin.write(b"NOOP\r\n" * 10)
                a.proc.stdin.flush()
                done.set()

            threading.Thread(target=writer, daemon=True).start()
            check(done.wait(20), f"n={n}: client write blocked: pop3d stopped reading "
                  "while its replies were not read (R2449-16)")
            want = [b"+OK 1 120"] * n + [b"+OK"] * 10
            for i, expected in enumerate(want):
                try:
                    reply = a.readline(5)
                except TestFailure:
                    raise TestFailure(f"n={n}: pop3d stalled after {i} of {len(want)} "
                                      "replies, the rest of the commands already "
                                      "sent") from None
                check(reply == expected, f"n={n}: reply {i + 1}: {reply!r}")
            check(a.cmd("QUIT") == "+OK pop3d signing off (2 messages left)", "QUIT")
            a.close()


def crlf_form(content):
    """What RETR must send for stored content, before stuffing: bare LF as
    CRLF, CRLF kept, a final CRLF added if missing."""
    out = re.sub(rb"(?<!\r)\n", b"\r\n", content)
    return out if out.endswith(b"\r\n") else out + b"\r\n"


def stuffed(crlf):
    return re.sub(rb"(^|\r\n)\.", rb"\1..", crlf)


def test_large_messages_stream_exactly(env):
    """Streaming across read/write buffer boundaries (256 KiB spool chunks,
    64 KiB output): a body of lone-dot lines and of CRLF-stored 3-octet
    lines puts a stuffed dot and a CR/LF pair at every alignment; a 1 MiB
    line without final newline ends the spool. RETR bytes must be exact."""
    hdr = b"Received: by mx.example.net; Mon, 8 Jan 2024 10:00:00 +0000\nSubject: big\n\n"
    m1 = hdr + b".\n" * 150000 + b"a\r\n" * 100000 + b"..x\n" * 1000
    m2 = hdr + b"y" * (1 << 20)
    fl = b"From big@example.org Mon Jan  8 10:00:00 2024\n"
    mbox = fl + m1 + b"\n" + fl + m2
    d = env.tempdir("large")
    env.install_spool(d / "alice", mbox)
    with Sessions(env, d) as s:
        a = s.start()
        a.login()
        for n, m in ((1, m1), (2, m2)):
            want = crlf_form(m)
            reply = a.cmd(f"LIST {n}")
            check(reply == f"+OK {n} {len(want)}", f"LIST {n}: {reply}, expected size {len(want)}")
            a.send(f"RETR {n}")
            head = a.readline(30)
            check(head == b"+OK %d octets" % len(want), f"RETR {n}: {head!r}")
            raw = b""
            while not raw.endswith(b"\r\n.\r\n"):
                check(a._fill(30) and not a.eof, f"RETR {n}: reply cut short")
                raw, a.buf = raw + a.buf, b""
            check(raw == stuffed(want) + b".\r\n",
                  f"RETR {n}: bytes differ from the stored message "
                  f"({len(raw)} octets, expected {len(stuffed(want)) + 3})")
        a.cmd("QUIT")
        a.close()


def test_crlf_separator_split_by_parse_window(env):
    """A spool stored with CR LF whose separator's blank line has its CR as
    the last octet the login parse scans in its first 256 KiB window and
    its LF as the first of the next: the session crashed at login (the
    body scan counted line ends up to an offset before the window) until
    round 6. Both messages must be listed and sent whole."""
    fl1 = b"From a@example.org Mon Jan  1 00:00:00 2024\r\n"
    fl2 = b"From b@example.org Tue Jan  2 00:00:00 2024\r\n"
    m1 = b"Subject: one\r\n\r\n"
    while len(fl1) + len(m1) + 80 < 262138:
        m1 += b"y" * 76 + b"\r\n"
    m1 += b"z" * (262138 - len(fl1) - len(m1) - 2) + b"\r\n"
    m2 = b"Subject: two\r\n\r\nbody\r\n"
    mbox = fl1 + m1 + b"\r\n" + fl2 + m2
    check(mbox[262138:262140] == b"\r\n" and mbox[262140:262145] == b"From ",
          "the blank line is not where the window ends")
    d = env.tempdir("crlf-window")
    env.install_spool(d / "alice", mbox)
    with Sessions(env, d) as s:
        a = s.start()
        a.login()
        check(a.cmd("STAT") == f"+OK 2 {len(m1) + len(m2)}", "STAT")
        for n, m in ((1, m1), (2, m2)):
            a.send(f"RETR {n}")
            head = a.readline(30)
            check(head == b"+OK %d octets" % len(m), f"RETR {n}: {head!r}")
            raw, a.buf = a.buf, b""
            while not raw.endswith(b"\r\n.\r\n"):
                check(a._fill(30) and not a.eof, f"RETR {n}: reply cut short")
                raw, a.buf = raw + a.buf, b""
            check(raw == m + b".\r\n", f"RETR {n}: bytes differ")
        a.cmd("QUIT")
        a.close()


def test_many_messages_compaction(env):
    """20000 messages: LIST and UIDL list them all, ids unique; deleting
    every third one and QUIT keeps exactly the others, in order."""
    count = 20000
    msgs = [b"From m%d@example.org Mon Jan  8 10:00:00 2024\n"
            b"Received: by mx.example.net; id %d\nSubject: message %d\n\nbody %d\n\n"
            % (i, i, i, i) for i in range(count)]
    d = env.tempdir("many")
    spool = env.install_spool(d / "alice", b"".join(msgs))
    with Sessions(env, d) as s:
        a = s.start()
        reply = a.login()
        check(reply.startswith(f"+OK maildrop has {count} messages"), reply)
        a.cmd("LIST")
        check(len(a.multiline(60)) == count, "LIST length")
        a.cmd("UIDL")
        uids = [x.split()[1] for x in a.multiline(60)]
        check(len(set(uids)) == count, "UIDL ids not unique")
        gone = sorted(range(1, count + 1, 3))
        # Batches small enough that no pipe fills (see the burst test).
        for i in range(0, len(gone), 500):
            batch = gone[i:i + 500]
            a.send(b"".join(b"DELE %d\r\n" % n for n in batch))
            for n in batch:
                check(a.readline(30) == b"+OK message %d deleted" % n, f"DELE {n}")
        gone = set(gone)
        reply = a.cmd("QUIT", timeout=60)
        check(reply == f"+OK pop3d signing off ({count - len(gone)} messages left)", reply)
        a.close()
    want = b"".join(m for i, m in enumerate(msgs, 1) if i not in gone)
    check(spool.read_bytes() == want, "spool after QUIT is not the kept messages in order")
