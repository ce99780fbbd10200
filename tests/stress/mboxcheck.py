"""Messages with unique ids, and audits of an mbox spool against what was
delivered: shared by the stress harness (tests/stress/stress.py) and the
fault and kill tests (tests/faults/).

Every generated message carries its token three times: in Message-ID,
in an X-Stress-Token header and on the first body line. A spool is cut
into messages the way pop3d cuts it (design.md section 4: "From " at
offset 0 or after an empty line), and each piece is compared byte for
byte with the stored form of the message its Message-ID names.

Standard library only.
"""

import random
import re

DOMAIN = b"stress.pop3d.test"
MSGID_RE = re.compile(rb"^Message-ID: <([A-Za-z0-9._-]+)@" + re.escape(DOMAIN) + rb">",
                      re.M | re.I)
# Where a message starts: the From_ line at offset 0 or after an empty line.
BOUNDARY_RE = re.compile(rb"\n\r?\nFrom ")

WORDS = (b"mail spool server client delivery lock update expunge message "
         b"header body octet line dot stuff journal crash kill fault retry "
         b"quota alpha beta gamma delta epsilon zeta theta lambda sigma").split()

DAYS = [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"]
MONTHS = [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug",
          b"Sep", b"Oct", b"Nov", b"Dec"]


def from_line(rng, sender=b"sender@example.org"):
    """An mbox From_ line as MTAs write it (asctime date, two spaces
    before a one-digit day)."""
    day = rng.randint(1, 28)
    return (b"From %s %s %s %2d %02d:%02d:%02d 2025\n"
            % (sender, rng.choice(DAYS), rng.choice(MONTHS), day,
               rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)))


def _text_line(rng, max_words=14):
    return b" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, max_words)))


def make_message(token, rng, size=None, user=b"alice", extra_headers=b""):
    """The message as an MDA is given it (no From_ line): headers, a blank
    line, a body that ends in a non-empty line and LF. The body exercises
    dot-stuffing ('.' and '..' lines), a stored '>From ' line, a blank line
    inside the body, CRLF line ends and, with size, long lines and bulk.
    No body line starts with 'From ' (an MDA would quote it)."""
    if isinstance(token, str):
        token = token.encode()
    if isinstance(user, str):
        user = user.encode()
    n = rng.randint(0, 255)
    hdr = (b"Received: from client%d.example.org (client%d.example.org [192.0.2.%d])\n"
           b"\tby mx.%s (Postfix) with ESMTP id %s\n"
           b"\tfor <%s@%s>; Mon, 3 Mar 2025 09:14:07 +0000 (UTC)\n"
           b"Date: Mon, 3 Mar 2025 10:%02d:%02d +0100\n"
           b"From: Sender %d <sender%d@example.org>\n"
           b"To: %s@%s\n"
           b"Subject: stress %s\n"
           b"Message-ID: <%s@%s>\n"
           b"X-Stress-Token: %s\n"
           b"MIME-Version: 1.0\n"
           b"Content-Type: text/plain; charset=us-ascii\n"
           % (n, n, n, DOMAIN, token, user, DOMAIN, rng.randint(0, 59),
              rng.randint(0, 59), n, n, user, DOMAIN, token, token, DOMAIN, token))
    hdr += extra_headers
    body = [b"token: " + token]
    for _ in range(rng.randint(2, 12)):
        r = rng.random()
        if r < 0.08:
            body.append(b"." + _text_line(rng))         # dot-stuffed
        elif r < 0.12:
            body.append(b"..")                           # stuffed to '...'
        elif r < 0.14:
            body.append(b".")                            # a lone dot
        elif r < 0.17:
            body.append(b">From the archive, quoted as stored")
        elif r < 0.20:
            body.append(b"")                             # blank inside
        elif r < 0.23:
            body.append(_text_line(rng) + b"\r")         # stored CRLF
        else:
            body.append(_text_line(rng))
    if size is not None:
        have = len(hdr) + sum(len(b) + 1 for b in body)
        filler = 0
        while have < size:
            if filler % 50 == 7:
                line = b"x" * rng.randint(1000, 9000)    # long line
            else:
                line = b"%06d " % filler + _text_line(rng, 20)
            body.append(line)
            have += len(line) + 1
            filler += 1
    body.append(b"end " + token)
    return hdr + b"\n" + b"\n".join(body) + b"\n"


def stored_form(msg, fromline):
    """The bytes an MDA appends for msg: From_ line, message, blank line."""
    return fromline + msg + b"\n"


def retr_form(msg):
    """What RETR must deliver (after dot-unstuffing): every LF as CRLF;
    an LF that already has its CR stays a CRLF."""
    return re.sub(rb"(?<!\r)\n", b"\r\n", msg)


def token_of(data):
    """The token of a message (stored or retrieved), or None."""
    m = MSGID_RE.search(data[:8192])
    return m.group(1).decode() if m else None


def split_spool(data):
    """Cut a spool into messages as pop3d does. Returns (prefix, chunks):
    prefix is whatever precedes the first From_ line (b"" in a good mbox),
    each chunk runs from its From_ line to the next one, separator
    included."""
    if not data:
        return b"", []
    starts = []
    if data.startswith(b"From "):
        starts.append(0)
    starts += [m.end() - 5 for m in BOUNDARY_RE.finditer(data)]
    if not starts:
        return data, []
    prefix = data[:starts[0]]
    chunks = [data[a:b] for a, b in zip(starts, starts[1:] + [len(data)])]
    return prefix, chunks


class Audit:
    """What a spool holds, message by message, against the stored forms
    of known tokens (expected: token -> bytes)."""

    def __init__(self, data, expected):
        self.prefix, self.chunks = split_spool(data)
        self.tokens = []          # token per chunk (None if unknown)
        self.intact = {}          # token -> number of intact copies
        self.damaged = []         # (index, token or None, first bytes)
        self.order = []           # intact tokens in file order
        for i, c in enumerate(self.chunks):
            t = token_of(c)
            self.tokens.append(t)
            if t is not None and t in expected and c == expected[t]:
                self.intact[t] = self.intact.get(t, 0) + 1
                self.order.append(t)
            else:
                self.damaged.append((i, t, c[:120]))
        if self.prefix:
            self.damaged.append((-1, None, self.prefix[:120]))

    def duplicates(self):
        return {t: n for t, n in self.intact.items() if n > 1}

    def check(self, kept, deleted=(), may_be_absent=()):
        """Counts for a spool that must hold every token in kept (in that
        order), may hold tokens in deleted (reappearing) and may or may not
        hold those in may_be_absent. Returns a dict of figures; 'ok' is True
        when nothing kept is missing or damaged, nothing is duplicated and
        no unknown or damaged piece exists."""
        kept = list(kept)
        kept_set = set(kept)
        deleted = set(deleted)
        optional = set(may_be_absent)
        missing = [t for t in kept if self.intact.get(t, 0) == 0]
        damaged_kept = [t for t in missing if t in self.tokens]
        reappeared = [t for t in deleted if self.intact.get(t, 0) > 0]
        unknown = [t for t in self.intact
                   if t not in kept_set and t not in deleted and t not in optional]
        dups = self.duplicates()
        in_order = [t for t in self.order if t in kept_set]
        seen = set()
        first_order = []
        for t in in_order:
            if t not in seen:
                seen.add(t)
                first_order.append(t)
        order_ok = first_order == [t for t in kept if t in seen]
        return {
            "messages": len(self.chunks),
            "kept_checked": len(kept),
            "kept_intact": len(kept) - len(missing),
            "lost": len(missing) - len(damaged_kept),
            "damaged_kept": len(damaged_kept),
            "damaged_pieces": len(self.damaged),
            "duplicates": sum(n - 1 for n in dups.values()),
            "reappeared": len(reappeared),
            "unknown": len(unknown),
            "order_ok": order_ok,
            "ok": (not missing and not self.damaged and not dups and not unknown
                   and order_ok),
            "missing_tokens": missing[:5],
            "damaged_examples": self.damaged[:3],
        }


def build_spool(n, rng, prefix="m", big_every=0, big_size=300_000, user=b"alice"):
    """A spool of n messages. Returns (data, tokens, expected, msgs):
    expected maps token -> stored form, msgs token -> message (no From_)."""
    tokens, expected, msgs, parts = [], {}, {}, []
    for i in range(n):
        t = f"{prefix}{i:05d}"
        size = big_size if big_every and i % big_every == big_every - 1 else None
        msg = make_message(t, rng, size=size, user=user)
        st = stored_form(msg, from_line(rng))
        tokens.append(t)
        expected[t] = st
        msgs[t] = msg
        parts.append(st)
    return b"".join(parts), tokens, expected, msgs


def rng_for(seed):
    return random.Random(seed)
