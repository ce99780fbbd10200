#!/usr/bin/env python3
"""Write the seed corpora of tests/fuzz/corpus/ (committed; rerun only to
change them). Each file is one input in its harness's format (see the
comment at the top of tests/fuzz/fuzz_<harness>.c)."""
import base64
import os
import shutil
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")


def put(harness, name, data):
    d = os.path.join(CORPUS, harness)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def crlf(*lines):
    return "".join(l + "\r\n" for l in lines)


# --- fuzz_session: flag byte (bit 0 remote, bits 1-2 spool, bit 3
# --login-delay, --expire and --capa-implementation), client bytes.
PLAIN = base64.b64encode(b"\0alice\0secret").decode()
put("fuzz_session", "user-pass-all", "\x00" + crlf(
    "CAPA", "USER alice", "PASS secret", "STAT", "LIST", "UIDL", "RETR 1",
    "TOP 2 0", "TOP 6 1", "DELE 1", "RSET", "DELE 3", "LIST 3", "QUIT"))
put("fuzz_session", "auth-plain", "\x00" + crlf(
    "AUTH PLAIN " + PLAIN, "RETR 6", "TOP 1 5", "UIDL 4", "DELE 6",
    "DELE 5", "QUIT"))
put("fuzz_session", "auth-login", "\x00" + crlf(
    "AUTH", "AUTH LOGIN", base64.b64encode(b"alice").decode(),
    base64.b64encode(b"secret").decode(), "LIST 5", "NOOP", "RETR 2",
    "DELE 2", "DELE 4", "QUIT"))
put("fuzz_session", "auth-plain-challenge", "\x00" + crlf(
    "AUTH PLAIN", "*", "AUTH PLAIN", "=", "AUTH PLAIN",
    base64.b64encode(b"alice\0alice\0secret").decode(), "STAT", "QUIT"))
put("fuzz_session", "failures", "\x00" + crlf(
    "USER bob", "PASS wrong", "USER temp", "PASS x", "PASS y",
    "USER perm", "PASS z", "USER alice", "PASS secret"))
put("fuzz_session", "bad-commands", "\x00" + crlf(
    "HELO", "USER", "USER a b", " USER a", "USER\ta", "RETR 1", "XTND",
    "USER alice", "STAT", "PASS secret", "USER alice", "PASS  secret ",
    "STLS", "AUTH CRAM-MD5", "AUTH PLAIN !!!!", "x" * 300, "QUIT"))
put("fuzz_session", "remote-no-tls", "\x01" + crlf(
    "CAPA", "STLS", "USER alice", "AUTH", "AUTH PLAIN " + PLAIN, "QUIT"))
put("fuzz_session", "empty-spool", "\x02" + crlf(
    "USER alice", "PASS secret", "STAT", "LIST", "UIDL", "RETR 1", "QUIT"))
put("fuzz_session", "no-spool", "\x04" + crlf(
    "USER alice", "PASS secret", "STAT", "QUIT"))
put("fuzz_session", "not-mbox", "\x06" + crlf(
    "USER alice", "PASS secret", "STAT"))
# Lines over AUTH_LINE_MAX (8 KiB): an AUTH PLAIN response and a command.
put("fuzz_session", "overlong", "\x00" + crlf(
    "AUTH PLAIN", "A" * 8300, "B" * 8300, "CAPA", "QUIT"))
# --login-delay=1: the record one input leaves may refuse the login of
# the next for a second ([LOGIN-DELAY]); CAPA shows the option lines.
put("fuzz_session", "login-delay", "\x08" + crlf(
    "CAPA", "USER alice", "PASS secret", "CAPA", "QUIT"))
put("fuzz_session", "pipelined-eof", "\x00USER alice\nPASS secret\nDELE 1\n"
    "TOP 1 18446744073709551616\nLIST 00001\nRETR 7\nDELE 1")

# UTF8 and LANG (RFC 6856): UTF-8 and prepared names and passwords, the
# language before and after the login, STLS after UTF8.
put("fuzz_session", "utf8-lang", b"\x00" + crlf(
    "CAPA", "LANG", "LANG de-CH-1996", "UTF8", "UTF8", "USER al\xc3",
    "USER a\xc2\x85", "USER alic\xef\xbd\x85", "LANG en", "PASS s\xc3\xa9",
    "USER alice", "PASS secret", "LANG *", "LIST", "LANG MUL", "UTF8",
    "STLS", "DELE 1", "QUIT").encode("latin-1"))

# --- fuzz_lang: flag byte (bit 0: 0 LANG range, 1 USER/PASS argument;
# bits 1-7: spare room in the argument's buffer), the string.
for name, r in (("en", "en"), ("de-CH-1996", "de-CH-1996"),
                ("singleton", "de-x-private"), ("star", "*"),
                ("bad", "de--1"), ("long", "de-" + "-".join(["abcdefgh"] * 8))):
    put("fuzz_lang", "range-" + name, b"\x00" + r.encode())
for name, a in (("nfd", "cafe\u0301"), ("fullwidth", "\uff41lice"),
                ("nbsp", "a\u00a0b"), ("bidi", "\u0627" + "1"),
                ("c1", "a\u0085")):
    put("fuzz_lang", "prep-" + name, b"\x01" + a.encode())
put("fuzz_lang", "prep-overlong", b"\x01\xc0\xaf\xe0\x80\xaf")
put("fuzz_lang", "prep-surrogate", b"\x01\xed\xa0\x80")
# U+FDFA prepares to 33 octets: room for it, and none.
put("fuzz_lang", "prep-expand", b"\xff" + "\ufdfa".encode())
put("fuzz_lang", "prep-tight", b"\x01\xef\xb7\xba")

# --- fuzz_mbox: the spool as it is.
for f in ("M.mbox", "M2.mbox", "nonl.mbox"):
    with open(os.path.join(ROOT, "tests", "fixtures", f), "rb") as src:
        put("fuzz_mbox", f, src.read())
put("fuzz_mbox", "crlf", "From a@b Mon Jan  1 00:00:00 2024\r\n"
    "Received: x\r\nMessage-ID: <1@b>\r\n\r\nbody\r\n.\r\n\r\n"
    "From a@b Mon Jan  1 00:00:00 2024\r\nSubject: y\r\n\r\n")
put("fuzz_mbox", "empty-and-dups", "From a\n\nFrom a\n\nFrom b\nX-UIDL: u1\n"
    "\nx\n\nFrom c\nX-UIDL: u1\n\nx\n\nFrom d\nDate: 1\n\n\n\n")
put("fuzz_mbox", "no-blank", "From a\nFrom b\nSubject: s\n\n\nFrom c\n\r")
put("fuzz_mbox", "not-mbox", "Received: x\n\nFrom a\n")
put("fuzz_mbox", "fallback-digest", "From x@y Mon Jan  1 00:00:00 2024\n"
    "Subject: no MTA\nStatus: RO\nX-IMAPbase: 1 2\n folded\nLines: 2\n\n"
    "a\nb\n")
# Aimed at the end of the first window (fuzz_mbox.c: a tag, then n, the
# octet of the spool that begins the second window, less one): the CR LF
# blank line of "crlf" split by it, with each body scan; and M.mbox with
# its second From_ line's "From " cut.
CRLF_MBOX = ("From a@b Mon Jan  1 00:00:00 2024\r\n"
             "Received: x\r\nMessage-ID: <1@b>\r\n\r\nbody\r\n.\r\n\r\n"
             "From a@b Mon Jan  1 00:00:00 2024\r\nSubject: y\r\n\r\n").encode()
split = CRLF_MBOX.index(b"\r\n\r\nFrom ") + 2  # the blank line's CR
for tag, name in ((1, "aimed-crlf-picked"), (2, "aimed-crlf-portable")):
    put("fuzz_mbox", name, bytes([tag]) + struct.pack("<H", split)
        + CRLF_MBOX)
with open(os.path.join(ROOT, "tests", "fixtures", "M.mbox"), "rb") as src:
    m = src.read()
put("fuzz_mbox", "aimed-from-line", b"\x01"
    + struct.pack("<H", m.index(b"\nFrom ") + 2) + m)

# --- fuzz_sasl: selector byte (cap), data.
put("fuzz_sasl", "plain", b"\x80" + PLAIN.encode())
put("fuzz_sasl", "plain-authzid", b"\x40" + base64.b64encode(
    b"alice\0alice\0secret"))
put("fuzz_sasl", "pad1", b"\xff" + b"YWI=")
put("fuzz_sasl", "pad-bits", b"\x80" + b"YWJ=")
put("fuzz_sasl", "raw-plain", b"\x00" + b"\0alice\0s\xc3\xa9cret")
put("fuzz_sasl", "utf8", b"\x01" + "h\u00e9\u20ac\U0001f600".encode()
    + b"\xed\xa0\x80\xf4\x90\x80\x80\xc0\x80")

# --- fuzz_records: flag byte, fill byte, the record.
MSG_LOGIN, MSG_VERDICT, MSG_HANDOFF = 0x706f7031, 0x706f7032, 0x706f7033


def login(user, authzid, password, method, tls):
    def field(s, n):
        return s.ljust(n, b"\0")[:n]
    return (struct.pack("<I", MSG_LOGIN) + field(user, 256) +
            field(authzid, 256) + field(password, 256) +
            field(method, 8) + bytes([tls]))


# Length mode 1 (sizeof login), nfds 0, before login, zero fill.
put("fuzz_records", "login-user", b"\x10\x00" +
    login(b"alice", b"", b"secret", b"USER", 0))
put("fuzz_records", "login-plain-tls", b"\x10\x00" +
    login(b"alice", b"alice", b"secret", b"PLAIN", 1))
put("fuzz_records", "login-unterminated", b"\x10\x41" +
    login(b"a" * 256, b"", b"x", b"LOGIN", 0))
# Length mode 2 (sizeof handoff), nfds index 2 (2 fds), logged in.
put("fuzz_records", "handoff", b"\x25\x00" +
    struct.pack("<III", MSG_HANDOFF, 0, 16) + b"STAT\r\nQUIT\r\n")
put("fuzz_records", "handoff-too-long", b"\x25\x00" +
    struct.pack("<III", MSG_HANDOFF, 1, 16385))
put("fuzz_records", "verdict", b"\x30\x00" +
    struct.pack("<Ii", MSG_VERDICT, 0))
put("fuzz_records", "raw-length", b"\x50\x00" + struct.pack("<q", -1))
# MSG_PEER (design.md §13): type, family (AF_INET 2), 16 address octets.
put("fuzz_records", "peer-v4", b"\x00\x00" +
    struct.pack("<Ii16s", 0x706f7035, 2, bytes([192, 0, 2, 7])))
put("fuzz_records", "peer-after-login", b"\x01\x00" +
    struct.pack("<Ii16s", 0x706f7035, 10, b"\x20\x01\x0d\xb8" + b"\x00" * 12))

# --- fuzz_uidl: flag byte, parameter byte, header block.
put("fuzz_uidl", "selected", b"\x00\x00"
    b"Received: from a by b; Mon, 1 Jan 2024 00:00:00 +0000\n"
    b"Message-ID: <m@example.org>\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n"
    b"Subject: s\nStatus: O\n")
put("fuzz_uidl", "xuidl", b"\x06\x01X-UIDL:   qpopper-7  \r\n"
    b"Delivered-To: alice@example.org\r\nX-Status: A\r\n")
put("fuzz_uidl", "fallback", b"\x08\x02From: bob\nSubject: none\n"
    b"X-IMAP: 12\nX-Keywords: $x\n\tfolded\nContent-Length: 5\n")
put("fuzz_uidl", "received-twice", b"\x0c\x03Received: one\n"
    b"Received: two\nMessage-ID: <after@received>\nX-Delivery-ID: d1\n")
put("fuzz_uidl", "boundary", b"\x03\x20Received: x\nX-UIDL: " +
    b" " * 100 + b"id-at-the-edge\n")
put("fuzz_uidl", "more-messages", b"\x00\x00Message-ID: <a>\n\nbody\n\n"
    b"From x\nMessage-ID: <a>\n")

# --- fuzz_journal: flag byte (bit 0 fix the hashes, bit 1 run recovery),
# then a journal image (journal.h). The hashes are fixed by the harness
# when bit 0 is set; a saved window's own digest is computed here, with
# hash.c's content hash as tests/integration/journalname.py has it.
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from journalname import content_hash  # noqa: E402


def journal(dst, end, eof, regions, slots, window=16, mark=b"\x01\x02\x03",
            areas=(), dotlock=None, synced=False):
    """synced: flag 4, each area durable before its slot, no area hash."""
    flags = (2 if dotlock else 0) | (4 if synced else 0)
    head = struct.pack("<16sIIQqII", b"pop3d journal 2\0", flags,
                       len(mark), 0, 0, 0, window)
    head += struct.pack("<QQQQ", dst, end, eof, len(regions))
    head_from = max(0, dst - 64)
    tail_from = max(end + len(mark), eof - 64)
    head += struct.pack("<QQQQ", head_from, 0, tail_from, 0)
    head += mark.ljust(32, b"\0") + struct.pack("<QQ", 0, 0)
    if dotlock:     # inode, ctime s and ns, padding, then the hash (fixed)
        head += struct.pack("<QqIIQ", *dotlock, 0, 0)
    img = bytearray(head.ljust(4096, b"\0"))
    for s, l in regions:
        img += struct.pack("<QQ", s, l)
    img = img.ljust(4096 + (len(regions) * 16 + 4095) // 4096 * 4096, b"\0")
    img += b"\0" * 8192
    base = len(img) - 8192
    for seq, phase, done, save in slots:
        area = seq & 1 if save else 0
        data = areas[area] if save else b""
        slot = b"pop3dslt" + struct.pack("<QIIQQQQQ", seq, phase, area, done,
                                         len(data), content_hash(data)
                                         if save and not synced else 0, 0, 0)
        at = base + 4096 * (seq & 1)
        img[at:at + 64] = slot
    if areas:
        img += b"".join(a.ljust(window, b"\0") for a in areas)
    return bytes(img)


# A spool of 200 octets: message at [0, 50) kept, [50, 80) deleted,
# [80, 200) kept: moves down by 30 to [50, 170).
put("fuzz_journal", "moving-start", b"\x03" +
    journal(50, 170, 200, [(80, 120)], [(1, 1, 50, False)]))
put("fuzz_journal", "moving-mid", b"\x03" +
    journal(50, 170, 200, [(80, 120)], [(1, 1, 50, False), (2, 1, 90, False)]))
put("fuzz_journal", "moving-saved", b"\x03" +
    journal(50, 170, 200, [(80, 120)], [(1, 1, 50, True)],
            areas=[b"", b"0123456789abcdef"]))
# Round 14: the same with flag 4 (the area synced before its slot).
put("fuzz_journal", "moving-saved-synced", b"\x03" +
    journal(50, 170, 200, [(80, 120)], [(1, 1, 50, True)],
            areas=[b"", b"0123456789abcdef"], synced=True))
put("fuzz_journal", "moved", b"\x03" +
    journal(50, 170, 200, [(80, 120)], [(2, 2, 170, False)]))
put("fuzz_journal", "every-other", b"\x03" +
    journal(10, 60, 110, [(20, 10), (40, 10), (60, 10), (80, 20)],
            [(1, 1, 10, False), (2, 1, 20, False)]))
put("fuzz_journal", "unfixed", b"\x00" +
    journal(50, 170, 200, [(80, 120)], [(1, 1, 50, False)]))
put("fuzz_journal", "empty", b"\x01")
# Issue 13, round 9: a truncation alone (no region, dst = end; the last
# message deleted), and a header with the dotlock's stamp.
put("fuzz_journal", "truncation-alone", b"\x03" +
    journal(170, 170, 200, [], [(1, 1, 170, False)]))
put("fuzz_journal", "truncation-moved", b"\x03" +
    journal(170, 170, 200, [], [(2, 2, 170, False)]))
put("fuzz_journal", "dotlock-stamp", b"\x01" +
    journal(50, 170, 200, [(80, 120)], [(1, 1, 50, False)],
            dotlock=(123456, 1764800000, 999)))
# --- fuzz_dotstuff: flag byte (bits 0-2 repeat 1 << n times, bits 3-4
# piece sizes, bits 5-7 writer failure), seed byte, prefix length, message
# (the prefix once, the rest repeated).
put("fuzz_dotstuff", "lf-dots", b"\x00\x00\x00H: a\n\n.body\n..\n.\nend")
put("fuzz_dotstuff", "crlf-bytewise", b"\x08\x07\x00a\r\nb\r\n.c\r\n\r\n")
put("fuzz_dotstuff", "stray-cr", b"\x10\x03\x00x\r\r\n\ry\n\r.\r")
put("fuzz_dotstuff", "large-crlf", b"\x1f\x11\x00" +
    b"".join(b"line %03d of a CRLF message\r\n" % i for i in range(60)))
put("fuzz_dotstuff", "lf-then-long-crlf", b"\x1f\x12\x0a.a\nb\nc\n.d\n" +
    b"".join(b"line %03d of a CRLF message\r\n" % i for i in range(60)))
put("fuzz_dotstuff", "large-lf-dots", b"\x17\x05\x00" +
    b"".join(b".%d\n" % i for i in range(400)))
put("fuzz_dotstuff", "fail-third", b"\x47\x09\x00" + b"a\n" * 700)
# --- fuzz_proxy: flag byte (low bits: the largest read, 0 = whole
# requests), then the connection's first octets (proxyhdr.py's headers:
# HAProxy's send-proxy and send-proxy-v2, its health checks, TLVs).
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import proxyhdr  # noqa: E402

put("fuzz_proxy", "v1-tcp4", b"\x00" + proxyhdr.v1("192.0.2.7") + b"CAPA\r\n")
put("fuzz_proxy", "v1-tcp6-bytewise", b"\x01" +
    proxyhdr.v1("2001:db8::7", "::1", 65535, 995) + b"\x16\x03\x01")
put("fuzz_proxy", "v1-unknown", b"\x00PROXY UNKNOWN\r\n")
put("fuzz_proxy", "v1-unknown-long", b"\x05PROXY UNKNOWN " + b"f" * 80 + b"\r\n")
put("fuzz_proxy", "v1-no-crlf", b"\x00PROXY TCP4 " + b"1" * 120)
put("fuzz_proxy", "v2-tcp4", b"\x00" + proxyhdr.v2("192.0.2.7") + b"CAPA\r\n")
put("fuzz_proxy", "v2-tcp6-tlvs", b"\x03" + proxyhdr.v2(
    "2001:db8::7", tlvs=proxyhdr.tlv(1, b"pop3") + proxyhdr.tlv(2, b"mail.example.org")
    + proxyhdr.tlv(0x20, b"\x07\x00\x00\x00\x00" + proxyhdr.tlv(0x21, b"TLSv1.3"))
    + proxyhdr.tlv(4, b"\0" * 5)))
put("fuzz_proxy", "v2-local", b"\x00" + proxyhdr.v2_local())
put("fuzz_proxy", "v2-local-block", b"\x02" + proxyhdr.v2_local(b"\x01" * 12))
put("fuzz_proxy", "v2-udp", b"\x00" + proxyhdr.v2("192.0.2.7")[:13] + b"\x12" +
    proxyhdr.v2("192.0.2.7")[14:])
put("fuzz_proxy", "v2-unix", b"\x00" + proxyhdr.V2_SIG + b"\x21\x31\x00\xd8" + b"\0" * 216)
put("fuzz_proxy", "v2-tlv-overrun", b"\x00" + proxyhdr.v2("192.0.2.7", tlvs=b"\x04\x00\x09"))
put("fuzz_proxy", "pop3", b"\x00CAPA\r\nUSER alice\r\n")
