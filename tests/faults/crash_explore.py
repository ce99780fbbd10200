#!/usr/bin/python3
"""Crash states of a journaled UPDATE after a power cut (issue 13, point 4),
explored in the manner of ALICE (OSDI 2014) and CrashMonkey (OSDI 2018).

    crash_explore.py --binary BUILD/pop3d --shim BUILD/faultshim.so
                     [--states N] [--seed S] [--undo-ok] [--scenario NAME]...
                     [--drop-sync N | --teeth] [--keep]

1. Record. A real session under cwrap (login, DELE, for some scenarios
   mail appended by an MTA-style writer, QUIT) runs with the fault shim
   in recording mode (FAULTSHIM_RECORD): every completed call on the spool
   or the journal directory that changes the file system or orders its
   changes (open with O_CREAT/O_TRUNC, write, pwrite with its octets,
   ftruncate, fsync, fdatasync, rename, unlink, link, mkdir, close), with
   the descriptor's path and inode.

2. Model. The calls become events on files and directories. A power cut
   after event k leaves, on ext4-like semantics taken conservatively:
   - a file's data and size as of its last completed fsync/fdatasync; each
     write after it, cut at 4 KiB pages of the file, and each truncation
     after it, each lost or kept independently (in program order where
     kept: a torn write keeps some of its pages, not others; a kept page
     past the end of a shorter file leaves zeros before it); a truncation
     to a length inside a page also zeroes the rest of that page, a write
     of its own kept or lost apart from the new size (ext4 does that:
     blkcrash.py found it on the disk without the size);
   - a directory's entries as of its last completed fsync; each create,
     rename, unlink or mkdir after it lost or kept independently (a file's
     fsync does not make its name durable, nor a directory's fsync its
     files' data).
   For every crash point the combinations are enumerated when there are
   at most EXHAUSTIVE_MAX, else sampled with a fixed seed: first nothing
   kept (only what was synced), then everything kept (what SIGKILL
   leaves), then in-order prefixes (an ordered file system), then random
   subsets; and each also with a message delivered after the crash, before
   recovery. Crash points are taken round-robin, so a bounded run covers
   them all before it goes deeper; identical states are run once.

3. Check. Each state is materialised into the recorded spool (the same
   inode, rewritten in place, so that the journal's name and its record of
   the spool's identity still match) and journal directory, and pop3d
   recovers it exactly as in production, at a login (USER, PASS, QUIT).
   Then the spool must be byte for byte one of the allowed outcomes:
     S_before  the spool when QUIT was sent (mail appended during the
               session included),
     S_after   the spool the uninterrupted UPDATE left,
   plus, where one was delivered after the crash, that message; and no
   journal may be left pending. Which outcome is allowed depends on where
   the cut fell:
     before    no call had changed anything yet: S_before;
     in doubt  from the first change until a journal record is durable
               (the first crash point whose synced-only state holds a
               journal file other than *.new, TEMP_SUFFIX): either;
     begun     from then on: S_after (roll forward), or with --undo-ok
               (today's journal, which rolls back UPDATE's first phase)
               either. "Either" is still all or nothing: a spool holding
               some deleted messages and not others fails.
     answered  after the last call QUIT has answered +OK: S_after,
               whatever the zone (deleting only the last messages makes
               no journal: only the truncation's sync keeps that
               promise).
   A failing state is described (crash point, what was lost, the outcome
   with lost/damaged/duplicated/resurrected counts) and its files kept.

--recovery N also cuts recoveries: for the N crash states whose recovery
makes the most calls, that recovery is recorded the same way and its own
crash states must recover to what the first cut allowed.

--drop-sync N records a mutant whose Nth fsync/fdatasync does nothing
(FAULTSHIM_DROP_SYNC); --teeth does that for every sync of the scenario
and requires the explorer to fail on each, except syncs of the journal
directory after the spool's last sync (they make only the journal's
removal durable; a journal left behind must then be harmless, which the
states with it left behind check). With --undo-ok a sync whose loss can
only roll UPDATE back counts as caught when the strict check fails. Then
the same for the syncs of the busiest recovery, where a directory's sync
may turn out unneeded (reported) but a spool's or a record's may not.

Also the test functions test_crash_states, test_crash_recovery and
test_crash_teeth for run.py (make check-faults).
"""

import argparse
import hashlib
import itertools
import os
import random
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.dont_write_bytecode = True

import faultlib  # noqa: E402
from faultlib import check, harness, mboxcheck  # noqa: E402

PAGE = 4096
EXHAUSTIVE_MAX = 256        # combinations per crash point enumerated in full
ATTEMPTS = 40               # draws per turn before a crash point's stream is given up
FAILURE_DIRS = itertools.count(1)
# A journal being written, not yet renamed into place (journal.c): its
# presence alone does not mean UPDATE began, nor is it left pending.
TEMP_SUFFIX = ".new"
# The spool's session lock (faultlib.SESSION_SUFFIX) is never written or
# synced: its calls are left out of the model, and the file out of every
# comparison.
SESSION_SUFFIX = faultlib.SESSION_SUFFIX


def not_journal(name, foreign):
    """Whether a name in the journal directory is no journal of this
    recording: another test's, or a session lock."""
    return name in foreign or name.endswith(SESSION_SUFFIX)


# --- scenarios ---------------------------------------------------------------

class Scenario:
    """A session to record: a spool of n messages (every big_every-th one
    big_size octets, so that moves and journal writes span many pages),
    the messages DELEd (1-based), whether an MTA appends mail before QUIT."""

    def __init__(self, name, n, dele, append=False, big_every=3, big_size=9000,
                 first_login=False, max_states=None, recoveries=True):
        self.name, self.n, self.dele, self.append = name, n, dele, append
        self.big_every, self.big_size = big_every, big_size
        # The user's journal directory is made by this session's login.
        self.first_login = first_login
        # A big spool: each state costs seconds to build and recover, so
        # fewer of them, and its recoveries (one recording per crash
        # state) are left to the small scenarios, which take the same
        # steps.
        self.max_states, self.recoveries = max_states, recoveries

    def budget(self, states):
        return min(states, self.max_states or states)


SCENARIOS = {
    "dele": Scenario("dele", 10, [2, 5, 6]),
    "dele-append": Scenario("dele-append", 10, [1, 4, 9], append=True),
    "dele-last": Scenario("dele-last", 8, [8]),
    "dele-all": Scenario("dele-all", 6, [1, 2, 3, 4, 5, 6], append=True),
    "first-login": Scenario("first-login", 10, [2, 5, 6], first_login=True),
    # Moves longer than the 256 KiB copy buffer: several writes per region.
    "dele-big": Scenario("dele-big", 24, [2, 3, 10, 17], big_every=3, big_size=70000),
    # A small shift under 9.6 MB of mail: two saved windows (8 MiB, then
    # the rest), the second saved while the first is being written back
    # (journal.c, save_ahead).
    "dele-windows": Scenario("dele-windows", 16, [1], big_every=1,
                             big_size=600000, max_states=300, recoveries=False),
}
# make check-faults: mail appended during the session, and a session
# whose login makes the user's journal directory.
QUICK = ["dele-append", "first-login"]


class Recording:
    """What one recorded session left: the calls, the spool before QUIT
    and after, the journal directory's final contents."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


def record(env, scen, tag, drop_sync=None):
    """Run the scenario's session under the recording shim (with the Nth
    sync left out if drop_sync) and return its Recording. First-login
    scenarios need set_aside() around them."""
    rng = mboxcheck.rng_for(4242)
    data, tokens, expected, _ = mboxcheck.build_spool(
        scen.n, rng, prefix="c", big_every=scen.big_every, big_size=scen.big_size)
    d = env.tempdir(f"crash-{scen.name}-{tag}")
    spool = env.install_spool(d / "alice", data)
    jdir = env.journal_dir()
    check(jdir is not None, "pop3d has no --journal-dir")
    recfile = d.parent / (d.name + ".rec")
    jroot = jdir.parent
    if not jdir.exists():       # a login before: the directories are old and durable
        r = subprocess.run(env.command(d), env=env.child_env(),
                           input=b"USER alice\r\nPASS secret\r\nQUIT\r\n",
                           capture_output=True, timeout=60)
        check(jdir.is_dir(), f"no journal directory after a login: {r.stderr!r}")
    # Whatever else is there belongs to other tests: never touched.
    foreign = set(os.listdir(jdir))
    if scen.first_login:
        # set_aside() emptied it, but for the session lock files that
        # logins since made (the one above, the recoveries of a teeth run)
        for n in os.listdir(jdir):
            if n.endswith(SESSION_SUFFIX):
                os.unlink(jdir / n)
        jdir.rmdir()
        paths = [spool, jroot, f"{jroot}/*"]
    else:
        paths = [spool, jdir, f"{jdir}/*"]
    p = env.session(d, rules="", paths=paths, record=recfile, drop_sync=drop_sync)
    try:
        appended = dele_and_append(p, scen, rng, spool, expected, "c-during")
        before = spool.read_bytes()
        q = p.cmd("QUIT")
        check(q.startswith("+OK"), f"QUIT: {q}")
    finally:
        p.close()
    after = spool.read_bytes()
    pid = p.pid
    calls = own_calls(recfile, pid)
    others = {c.pid for c in read_record(recfile)} - {pid}
    check(not others, f"calls recorded from other processes {others}")
    dele = {i - 1 for i in scen.dele}
    kept = [t for i, t in enumerate(tokens) if i not in dele] + appended
    deleted = [tokens[i] for i in sorted(dele)]
    # A message delivered after the crash, before recovery.
    late = mboxcheck.make_message("c-late", rng, size=5000)
    expected["c-late"] = mboxcheck.stored_form(late, mboxcheck.from_line(rng))
    return Recording(scen=scen, dir=d, spool=spool, jdir=jdir, jroot=jroot,
                     jdir_existed=not scen.first_login, foreign=foreign, calls=calls,
                     initial=before, jinitial={}, final=after, allowed=None, paths=paths,
                     before=before, after=after, expected=expected, kept=kept,
                     deleted=deleted, late=expected["c-late"],
                     jfinal=journal_files(jdir, foreign))


def dele_and_append(p, scen, rng, spool, expected, token):
    """The session's part before QUIT: login, the scenario's DELEs, and
    if it says so a message appended by an MTA-style writer under its
    locks (stored form into expected). Returns the appended tokens."""
    p.login()
    for i in scen.dele:
        check(p.cmd(f"DELE {i}").startswith("+OK"), f"DELE {i}")
    if not scen.append:
        return []
    msg = mboxcheck.make_message(token, rng, size=6000)
    expected[token] = mboxcheck.stored_form(msg, mboxcheck.from_line(rng))
    with harness.MtaLock(spool) as m:
        m.append(expected[token])
    return [token]


def own_calls(recfile, pid):
    """The calls pid made, but the opens of the session lock (SESSION_SUFFIX;
    a close of one pops nothing the model knows)."""
    return [c for c in read_record(recfile)
            if c.pid == pid and not (c.op == "open" and c.path.endswith(SESSION_SUFFIX))]


def journal_files(jdir, foreign):
    """The journal directory's files but the foreign ones, by name."""
    return {n: (jdir / n).read_bytes() for n in os.listdir(jdir) if not not_journal(n, foreign)}


# --- the recording -------------------------------------------------------------

class Call:
    __slots__ = ("op", "pid", "fd", "ino", "off", "len", "created", "flags", "path",
                 "path2", "data", "n")

    def __str__(self):
        s = f"#{self.n} {self.op} {Path(self.path).name or self.path}"
        if self.op in ("write", "pwrite"):
            s += f" [{self.off}, +{self.len})"
        elif self.op == "ftruncate":
            s += f" to {self.off}"
        elif self.op in ("rename", "link"):
            s += f" -> {Path(self.path2).name}"
        elif self.op == "dropsync":
            s += f" ({self.path2} DROPPED)"
        return s


def read_record(path):
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    out, pos = [], 0
    while pos < len(raw):
        nl = raw.index(b"\n", pos)
        f = raw[pos:nl].decode("latin-1").split(" ", 8)
        pos = nl + 1
        c = Call()
        c.op, c.pid, c.fd, c.ino, c.off, c.len = (f[0], int(f[1]), int(f[2]), int(f[3]),
                                                  int(f[4]), int(f[5]))
        c.created, c.flags = f[6] == "1", int(f[7], 16)
        c.path, _, c.path2 = f[8].partition("\t")
        c.data = None
        if c.op in ("write", "pwrite"):
            c.data = raw[pos:pos + c.len]
            pos += c.len
        c.n = len(out) + 1
        out.append(c)
    return out


# --- the model -------------------------------------------------------------------

class Event:
    """kind: 'w' (node, off, data), 't' (node, length), 'sync' (node),
    'dir' (dirs it touches, op: ('link', dir, name, node) or ('unlink', dir,
    name)), 'drop' (a sync the mutant left out)."""
    __slots__ = ("kind", "node", "off", "data", "length", "dirs", "ops", "call")


class Model:
    def __init__(self, rec):
        self.rec = rec
        # Nodes: 0 the spool, 1 the journal root, 2 the user's journal
        # directory if it existed before; new files and directories after.
        self.kind = {0: "file", 1: "dir"}
        self.initial = {0: rec.initial}
        self.names = {str(rec.spool): 0, str(rec.jroot): 1}
        self.uid = rec.jdir.name
        self.entries = {1: {}}
        if rec.jdir_existed:
            self.kind[2] = "dir"
            self.names[str(rec.jdir)] = 2
            self.entries = {1: {self.uid: 2}, 2: {}}
            for name, data in rec.jinitial.items():     # durable
                n = self._new("file")
                self.initial[n] = data
                self.names[str(rec.jdir / name)] = n
                self.entries[2][name] = n
        self.events = []
        fds = {}
        for c in rec.calls:
            self._event(c, fds)
        self.points = [i for i, e in enumerate(self.events) if e.kind != "drop"]
        self._zones()

    def _new(self, kind):
        n = len(self.kind)
        self.kind[n] = kind
        self.initial[n] = b""
        return n

    def _add(self, kind, call, **kw):
        e = Event()
        e.kind, e.call = kind, call
        e.node = e.off = e.data = e.length = None
        e.dirs, e.ops = (), ()
        for k, v in kw.items():
            setattr(e, k, v)
        self.events.append(e)

    def _dir_of(self, path):
        d = self.names.get(os.path.dirname(path))
        check(d is not None and self.kind[d] == "dir",
              f"a name outside the modelled directories: {path}")
        return d

    def _event(self, c, fds):
        if c.op == "open":
            node = self.names.get(c.path)
            if c.created or node is None:
                check(c.created, f"open of an unknown file {c.path}")
                node = self._new("file")
                d = self._dir_of(c.path)
                self.names[c.path] = node
                self._add("dir", c, dirs=(d,), ops=(("link", d, os.path.basename(c.path), node),))
            elif c.flags & os.O_TRUNC and self.kind[node] == "file":
                self._add("t", c, node=node, length=0)
            fds[c.fd] = node
        elif c.op == "close":
            fds.pop(c.fd, None)
        elif c.op in ("write", "pwrite"):
            self._add("w", c, node=fds[c.fd], off=c.off, data=c.data)
        elif c.op == "ftruncate":
            self._add("t", c, node=fds[c.fd], length=c.off)
        elif c.op in ("fsync", "fdatasync"):
            self._add("sync", c, node=fds[c.fd])
        elif c.op == "dropsync":
            self._add("drop", c, node=fds.get(c.fd))
        elif c.op == "rename":
            node = self.names.pop(c.path)
            a, b = self._dir_of(c.path), self._dir_of(c.path2)
            self.names[c.path2] = node
            self._add("dir", c, dirs=tuple({a, b}),
                      ops=(("unlink", a, os.path.basename(c.path)),
                           ("link", b, os.path.basename(c.path2), node)))
        elif c.op == "link":
            node = self.names[c.path]
            b = self._dir_of(c.path2)
            self.names[c.path2] = node
            self._add("dir", c, dirs=(b,), ops=(("link", b, os.path.basename(c.path2), node),))
        elif c.op == "unlink":
            self.names.pop(c.path)
            d = self._dir_of(c.path)
            self._add("dir", c, dirs=(d,), ops=(("unlink", d, os.path.basename(c.path)),))
        elif c.op == "mkdir":
            node = self._new("dir")
            d = self._dir_of(c.path)
            self.names[c.path] = node
            self._add("dir", c, dirs=(d,), ops=(("link", d, os.path.basename(c.path), node),))
        else:
            check(False, f"unknown recorded call {c.op}")

    # Units of a crash point: what may be lost or kept independently.
    def units(self, k):
        last = {}
        for i in range(k + 1):
            e = self.events[i]
            if e.kind == "sync":
                last[e.node] = i
        out = []
        for i in range(k + 1):
            e = self.events[i]
            if e.kind == "w" and i > last.get(e.node, -1):
                first, end = e.off // PAGE, (e.off + len(e.data) - 1) // PAGE
                out += [(i, p) for p in range(first, end + 1)]
            elif e.kind == "t" and i > last.get(e.node, -1):
                out.append((i, None))
                if e.length % PAGE:
                    out.append((i, "zeroed"))
            elif e.kind == "dir" and any(i > last.get(d, -1) for d in e.dirs):
                out.append((i, None))
        return out

    def state(self, k, kept):
        """The files after a cut after event k with the units in kept (a
        set) persisted: (spool bytes, {journal name: bytes} or None if the
        journal directory itself is gone)."""
        last = {}
        for i in range(k + 1):
            e = self.events[i]
            if e.kind == "sync":
                last[e.node] = i
        content = {n: bytearray(v) for n, v in self.initial.items()}
        entries = {d: dict(e) for d, e in self.entries.items()}
        for i in range(k + 1):
            e = self.events[i]
            if e.kind == "w":
                durable = i < last.get(e.node, -1)
                buf, off, data = content[e.node], e.off, e.data
                end = off + len(data)
                for p in range(off // PAGE, (end - 1) // PAGE + 1):
                    if durable or (i, p) in kept:
                        a, b = max(off, p * PAGE), min(end, (p + 1) * PAGE)
                        if len(buf) < a:
                            buf.extend(bytes(a - len(buf)))
                        buf[a:b] = data[a - off:b - off]
            elif e.kind == "t":
                buf = content[e.node]
                if i < last.get(e.node, -1) or (i, None) in kept:
                    if len(buf) > e.length:
                        del buf[e.length:]
                    else:
                        buf.extend(bytes(e.length - len(buf)))
                elif (i, "zeroed") in kept:
                    # ext4 zeroes the rest of the page at the new end, a
                    # data write that can reach the disk while the new
                    # size does not (tests/faults/blkcrash.py).
                    z = min(len(buf), -(-e.length // PAGE) * PAGE)
                    if z > e.length:
                        buf[e.length:z] = bytes(z - e.length)
            elif e.kind == "dir":
                if all(i < last.get(d, -1) for d in e.dirs) or (i, None) in kept:
                    for op in e.ops:
                        if op[0] == "link":
                            entries.setdefault(op[1], {})[op[2]] = op[3]
                            if self.kind[op[3]] == "dir":
                                entries.setdefault(op[3], {})
                        else:
                            entries.setdefault(op[1], {}).pop(op[2], None)
        jdir = entries[1].get(self.uid)
        if jdir is None:
            return bytes(content[0]), None
        journal = {name: bytes(content[n]) for name, n in entries.get(jdir, {}).items()
                   if self.kind[n] == "file"}
        return bytes(content[0]), journal

    def _zones(self):
        """zone[k] for every event index: 'before', 'doubt' or 'begun'."""
        self.zone = {}
        first_change = next((i for i, e in enumerate(self.events)
                             if e.kind in ("w", "t", "dir")), len(self.events))
        begun = False
        for k in range(len(self.events)):
            if not begun and k >= first_change:
                _, j = self.state(k, set())
                begun = any(not n.endswith(TEMP_SUFFIX) for n in j or ())
            self.zone[k] = ("before" if k < first_change else
                            "begun" if begun else "doubt")
        self.begun_at = next((k for k in range(len(self.events))
                              if self.zone[k] == "begun"), None)

    def describe(self, k, kept):
        lost = [u for u in self.units(k) if u not in kept]
        byev = {}
        for i, p in lost:
            byev.setdefault(i, []).append(p)
        parts = []
        for i, ps in byev.items():
            c = self.events[i].call
            if None in ps:
                parts.append(f"{c}")
            if "zeroed" in ps:
                parts.append(f"{c}: its zeroing of the page after the new end")
            ps = [p for p in ps if p not in (None, "zeroed")]
            if ps:
                parts.append(f"{c} pages {','.join(str(p) for p in ps)}")
        return (f"cut after {self.events[k].call} ({self.zone[k]}); lost: "
                + ("; ".join(parts) if parts else "nothing"))


# --- candidates ------------------------------------------------------------------

def candidates(model, k, rng, late_mail=True):
    """The kept-sets to try at crash point k, best first (a generator)."""
    for kept, late in _candidates(model, k, rng):
        if late_mail or not late:
            yield kept, late


def _candidates(model, k, rng):
    units = model.units(k)
    n = len(units)
    yield frozenset(), False
    yield frozenset(units), False
    if 2 ** n <= EXHAUSTIVE_MAX:
        masks = list(range(1, 2 ** n - 1))
        rng.shuffle(masks)
        masks = [0, 2 ** n - 1] + masks
        for m in masks[2:3] + masks[:2] + masks[3:]:
            kept = frozenset(u for b, u in enumerate(units) if m >> b & 1)
            yield kept, True
            if m not in (0, 2 ** n - 1):
                yield kept, False
        return
    yield frozenset(), True
    yield frozenset(units), True
    while True:
        r = rng.random()
        if r < 0.25:                                    # an ordered file system
            kept = frozenset(units[:rng.randint(1, n - 1)])
        elif r < 0.4:                                   # one unit lost or kept
            u = rng.choice(units)
            kept = frozenset([u]) if rng.random() < 0.5 else frozenset(units) - {u}
        else:
            q = rng.choice((0.2, 0.5, 0.8))
            kept = frozenset(u for u in units if rng.random() < q)
        yield kept, rng.random() < 0.3


def combinations(model):
    return sum(2 * 2 ** len(model.units(k)) for k in model.points)


def number(n):
    """n for a report line: beyond a float's range, as a power of two."""
    try:
        return f"{float(n):.3g}"
    except OverflowError:
        return f"2^{n.bit_length() - 1}"


# --- checking one state ----------------------------------------------------------

class Explorer:
    def __init__(self, env, rec, undo_ok, seed):
        self.env, self.rec, self.undo_ok = env, rec, undo_ok
        self.model = Model(rec)
        self.rng = random.Random(seed)
        self.seen = set()
        self.failures = []
        self.figures = {"states": 0, "draws": 0, "duplicates skipped": 0,
                        "with a delivery after the crash": 0, "resurrected": 0,
                        "rolled back": 0, "rolled forward": 0}
        self._selfcheck()

    def _selfcheck(self):
        """Everything kept at the last event must be what the run left."""
        m = self.model
        k = m.points[-1]
        spool, j = m.state(k, frozenset(m.units(k)))
        check(spool == self.rec.final, "model: the spool with every call kept is not the "
              "spool the session left")
        check(j == self.rec.jfinal, f"model: journal files {sorted(j or ())} with every call "
              f"kept, the session left {sorted(self.rec.jfinal)}")

    def materialise(self, spool, journal):
        rec = self.rec
        with open(rec.spool, "r+b") as f:       # the same inode: the journal names it
            f.truncate(0)
            f.write(spool)
        if rec.jdir.exists():
            for n in os.listdir(rec.jdir):
                if n not in rec.foreign:
                    os.unlink(rec.jdir / n)
        if journal is None:             # the user's directory itself was lost
            if rec.jdir.exists():
                rec.jdir.rmdir()
            journal = {}
        elif not rec.jdir.exists():
            rec.jdir.mkdir(0o700)
        for n, data in journal.items():
            (rec.jdir / n).write_bytes(data)
            os.chmod(rec.jdir / n, 0o600)
        lock = rec.dir / "alice.lock"
        if lock.exists():
            lock.unlink()

    def recover(self):
        """A login, as production recovers; the replies."""
        env = self.env
        r = subprocess.run(env.command(self.rec.dir), env=env.child_env(),
                           input=b"USER alice\r\nPASS secret\r\nQUIT\r\n",
                           capture_output=True, timeout=60)
        lines = r.stdout.decode("latin-1").split("\r\n")
        return lines, r.stderr

    def allowed_at(self, k):
        """The spools recovery may leave after a cut at k (before any late
        mail)."""
        rec = self.rec
        if rec.allowed is not None:     # a recovery's own cuts: as its state allows
            return rec.allowed
        zone = self.model.zone[k]
        if zone == "before":
            return [rec.before]
        if k == self.model.points[-1]:
            # After the last call QUIT answered +OK: the client was told
            # the messages are deleted, so a cut now must not bring them
            # back, journal or not (deleting only the last messages
            # writes none: there only the truncation's sync says so).
            return [rec.after]
        if zone == "begun" and not self.undo_ok:
            return [rec.after]
        return [rec.before, rec.after]

    def run_one(self, k, kept, late):
        m, rec = self.model, self.rec
        spool, journal = m.state(k, kept)
        if late:
            spool += rec.late
        key = hashlib.sha256(spool + repr(None if journal is None else sorted(
            (n, hashlib.sha256(v).digest()) for n, v in journal.items())).encode()).digest()
        if key in self.seen:
            self.figures["duplicates skipped"] += 1
            return None
        self.seen.add(key)
        self.figures["states"] += 1
        self.figures["with a delivery after the crash"] += late
        self.materialise(spool, journal)
        lines, stderr = self.recover()
        after = rec.spool.read_bytes()
        left = [n for n in os.listdir(rec.jdir) if not not_journal(n, rec.foreign)] \
            if rec.jdir.exists() else []
        tail = rec.late if late else b""
        zone = m.zone[k]
        allowed = self.allowed_at(k)
        problems = []
        login = lines[2] if len(lines) > 2 else "(none)"
        if not login.startswith("+OK") or len(lines) < 4 or not lines[3].startswith("+OK"):
            problems.append(f"login {login!r}, QUIT {lines[3] if len(lines) > 3 else None!r}")
        if after not in [a + tail for a in allowed]:
            kept_tokens = self.rec.kept + (["c-late"] if late else [])
            a = mboxcheck.Audit(after, rec.expected).check(kept_tokens, rec.deleted)
            what = (f"{a['lost']} lost, {a['damaged_kept']} kept damaged, "
                    f"{a['damaged_pieces']} damaged pieces, {a['duplicates']} duplicated, "
                    f"{a['reappeared']}/{len(rec.deleted)} deleted back, order "
                    f"{'ok' if a['order_ok'] else 'WRONG'}")
            if after == rec.before + tail:
                what = "rolled back: every deleted message is back"
            problems.append(f"spool not {' or '.join(n for n, s in (('S_before', rec.before), ('S_after', rec.after)) if s in allowed)}"
                            f"{' + late mail' if late else ''}: {what}")
        if after == rec.before + tail and rec.before != rec.after:
            self.figures["rolled back"] += 1
            if zone == "begun" and rec.allowed is None:
                self.figures["resurrected"] += 1
        elif after == rec.after + tail:
            self.figures["rolled forward"] += 1
        if [n for n in left if not n.endswith(TEMP_SUFFIX)]:
            problems.append(f"journal left after recovery: {left}")
        if problems:
            self.keep_failure(k, kept, late, spool, journal, problems, stderr)
        return not problems

    def keep_failure(self, k, kept, late, spool, journal, problems, stderr):
        d = self.rec.dir.parent / f"{self.rec.dir.name}-failure{next(FAILURE_DIRS)}"
        d.mkdir()
        (d / "spool").write_bytes(spool)
        for name, data in (journal or {}).items():
            (d / name).write_bytes(data)
        (d / "pop3d.log").write_bytes(stderr)
        desc = (f"{self.model.describe(k, kept)}"
                f"{'; mail delivered before recovery' if late else ''}: "
                + "; ".join(problems) + f" (files in {d})")
        self.failures.append(desc)

    def explore(self, budget, stop_at_failure=False, after=None, before=None):
        """Run up to budget distinct states (counted over every call),
        crash points round-robin; with after and before (event indices),
        only the crash points from after on and before before."""
        m = self.model
        points = [k for k in m.points if (after is None or k >= after)
                  and (before is None or k < before)]
        streams = {k: candidates(m, k, self.rng, self.rec.late is not None)
                   for k in points}
        start = time.monotonic()
        while streams and self.figures["states"] < budget:
            for k in list(streams):
                if self.figures["states"] >= budget:
                    break
                for _ in range(ATTEMPTS):
                    try:
                        kept, late = next(streams[k])
                    except StopIteration:
                        del streams[k]
                        break
                    self.figures["draws"] += 1
                    r = self.run_one(k, kept, late)
                    if r is not None:
                        break
                else:
                    del streams[k]          # nothing new found: drawn out
                if stop_at_failure and self.failures:
                    streams = {}
                    break
        self.seconds = time.monotonic() - start
        self.figures["crash points"] = len(points)
        self.figures["crash points drawn out"] = len(points) - len(streams)
        return self.failures


# --- cuts during recovery ------------------------------------------------------------

def record_recovery(env, ex, k, kept, late, tag, drop_sync=None):
    """Materialise a crash state of ex's recording, then record its
    recovery (a login). None if there is nothing to recover."""
    parent, m = ex.rec, ex.model
    spool, journal = m.state(k, kept)
    if not journal:
        return None
    tail = parent.late if late else b""
    spool += tail
    ex.materialise(spool, journal)
    recfile = parent.dir.parent / f"{parent.dir.name}-{tag}.rec"
    p = env.session(parent.dir, rules="", paths=parent.paths, record=recfile,
                    drop_sync=drop_sync)
    try:
        check(p.cmd("USER alice") == "+OK send PASS", "USER")
        r = p.cmd("PASS secret")
        check(r.startswith("+OK"), f"recovery login: {r}")
        check(p.cmd("QUIT").startswith("+OK"), "QUIT")
    finally:
        p.close()
    calls = own_calls(recfile, p.pid)
    if not any(c.op not in ("open", "close") for c in calls):
        return None
    allowed = [a + tail for a in ex.allowed_at(k)]
    final = parent.spool.read_bytes()
    check(final in allowed, f"the uninterrupted recovery of {m.describe(k, kept)} "
          f"left a spool it must not")
    return Recording(scen=parent.scen, dir=parent.dir, spool=parent.spool, jdir=parent.jdir,
                     jroot=parent.jroot, jdir_existed=True, foreign=parent.foreign,
                     calls=calls, initial=spool, jinitial=journal, final=final,
                     jfinal=journal_files(parent.jdir, parent.foreign),
                     allowed=allowed, paths=parent.paths, before=parent.before + tail,
                     after=parent.after + tail, expected=parent.expected,
                     kept=parent.kept + (["c-late"] if late else []),
                     deleted=parent.deleted, late=None,
                     origin=f"recovery of [{m.describe(k, kept)}"
                            f"{', mail delivered before recovery' if late else ''}]")


def recoveries(env, ex, limit=None):
    """Record the recovery of each crash point's synced-only and fully
    kept state, with and without late mail; the ones with the most calls
    first (up to limit)."""
    m, out, seen = ex.model, [], set()
    for k in m.points:
        for kept in (frozenset(), frozenset(m.units(k))):
            for late in (False, True):
                spool, journal = m.state(k, kept)
                # A digest, not the bytes: a big scenario's states are
                # tens of MB each, and there are hundreds.
                h = hashlib.sha256(spool)
                for name, data in sorted((journal or {}).items()):
                    h.update(b"\0" + name.encode() + b"\0" + data)
                key = (h.digest(), late, journal is None)
                if key in seen:
                    continue
                seen.add(key)
                rec = record_recovery(env, ex, k, kept, late, f"rec{len(seen)}")
                if rec is not None:
                    out.append((k, kept, late, rec))
                    # Keep only the busiest: each recording holds the
                    # data it wrote.
                    out.sort(key=lambda t: -len(t[3].calls))
                    del out[limit or len(out):]
    return out


def explore_recoveries(env, name, count, budget, undo_ok, seed, out=print):
    """Power cuts during recovery: the recoveries of count crash states of
    the scenario (the busiest first), each explored like UPDATE."""
    rec = record(env, SCENARIOS[name], "nested")
    ex = Explorer(env, rec, undo_ok, seed)
    total, failures = {"states": 0, "seconds": 0.0}, []
    for _, _, _, nrec in recoveries(env, ex, count):
        nex = Explorer(env, nrec, undo_ok, seed)
        nex.explore(budget)
        f = nex.figures
        out(f"  {name}, {nrec.origin}: {len(nrec.calls)} calls, "
            f"{len(nex.model.points)} crash points, {number(combinations(nex.model))} "
            f"combinations; {f['states']} states in {nex.seconds:.1f}s; "
            f"{len(nex.failures)} failing")
        total["states"] += f["states"]
        total["seconds"] += nex.seconds
        failures += [f"{name}, {nrec.origin}: {x}" for x in nex.failures]
    return total, failures


def recovery_teeth(env, name, budget, undo_ok, seed, out=print):
    """Drop each sync of the busiest recovery in turn."""
    base = record(env, SCENARIOS[name], "rteeth")
    bex = Explorer(env, base, undo_ok, seed)
    caught, missed, exempted = [], [], []
    busiest = recoveries(env, bex, 1)
    if not busiest:         # no journal (nothing moves): nothing to recover
        out("  no crash state leaves a journal: no recovery to cut")
        return caught, missed, exempted
    k, kept, late, nrec = busiest[0]
    out(f"  {nrec.origin}")
    for i, c in enumerate(syncs_of(nrec), 1):
        drec = record_recovery(env, bex, k, kept, late, f"rdrop{i}", drop_sync=i)
        _judge(env, nrec, drec, c, i, budget, undo_ok, seed, caught, missed, exempted, out)
    return caught, missed, exempted


# --- entry points ------------------------------------------------------------------

def role(rec, path):
    if path == str(rec.spool):
        return "the spool"
    if path == str(rec.jdir):
        return "the journal directory"
    if path == str(rec.jroot):
        return "the journal root"
    return f"journal file {Path(path).name}"


def syncs_of(rec):
    return [c for c in rec.calls if c.op in ("fsync", "fdatasync")]


def exempt(rec, call):
    """Why a dropped sync may go unnoticed, or None. A sync of the journal
    directory after the spool's last sync only makes the journal's
    removal durable. A recovery's first sync of the journal, before it
    writes the spool, makes durable again what an earlier sync of the
    journal should have (journal.c, settle): it matters only after a
    sync that failed, which the model does not produce (test_journal's
    failed_journal_sync_then_power_cut does)."""
    spool = str(rec.spool)
    spool_syncs = [c.n for c in syncs_of(rec) if c.path == spool]
    if call.path == str(rec.jdir) and spool_syncs and call.n > max(spool_syncs):
        return "only the journal's removal"
    if getattr(rec, "origin", "").startswith("recovery") and \
            role(rec, call.path).startswith("journal file"):
        first_spool_write = min((c.n for c in rec.calls
                                 if c.path == spool and c.op in ("write", "pwrite", "ftruncate")),
                                default=None)
        journal_syncs = [c.n for c in syncs_of(rec) if c.path == call.path]
        if call.n == journal_syncs[0] and (first_spool_write is None
                                           or call.n < first_spool_write):
            return "the recovery's settle, for a sync that failed before"
    return None


def set_aside(env, scen):
    """For a first-login scenario, which removes the user's journal
    directory, move whatever other tests left there aside; returns the
    function that puts it back."""
    jdir = env.journal_dir()
    aside = jdir.parent / f".crash-aside-{os.getpid()}"
    names = os.listdir(jdir) if scen.first_login and jdir.exists() else []
    if names:
        aside.mkdir()
        for n in names:
            os.rename(jdir / n, aside / n)

    def restore():
        if names:
            jdir.mkdir(mode=0o700, exist_ok=True)
            for n in names:
                os.rename(aside / n, jdir / n)
            aside.rmdir()
    return restore


def explore_scenarios(env, names, budget, undo_ok, seed, out=print):
    total, failures = {"states": 0, "seconds": 0.0}, []
    for name in names:
        restore = set_aside(env, SCENARIOS[name])
        try:
            rec = record(env, SCENARIOS[name], "explore")
            ex = Explorer(env, rec, undo_ok, seed)
            ex.explore(SCENARIOS[name].budget(budget))
        finally:
            restore()
        f = ex.figures
        rate = f["states"] / ex.seconds if ex.seconds else 0
        out(f"  {name}: {len(rec.calls)} calls, {len(ex.model.points)} crash points "
            f"(UPDATE begun at event {ex.model.begun_at}), "
            f"{number(combinations(ex.model))} combinations; {f['states']} states explored "
            f"({f['with a delivery after the crash']} with mail delivered after the cut, "
            f"{f['crash points drawn out']} crash points exhausted) in {ex.seconds:.1f}s "
            f"= {rate:.1f}/s; rolled forward {f['rolled forward']}, rolled back "
            f"{f['rolled back']} (after UPDATE began: {f['resurrected']}); "
            f"{len(ex.failures)} failing")
        total["states"] += f["states"]
        total["seconds"] += ex.seconds
        failures += [f"{name}: {x}" for x in ex.failures]
    return total, failures


def teeth(env, name, budget, undo_ok, seed, out=print):
    """Drop each sync in turn. Returns (caught, missed, exempt missed)."""
    caught, missed, exempted = [], [], []
    restore = set_aside(env, SCENARIOS[name])
    try:
        base = record(env, SCENARIOS[name], "base")
        for i, c in enumerate(syncs_of(base), 1):
            rec = record(env, SCENARIOS[name], f"drop{i}", drop_sync=i)
            _judge(env, base, rec, c, i, budget, undo_ok, seed, caught, missed, exempted,
                   out)
            # A failing state may leave a journal set aside (.rejected,
            # .stale); the next first-login recording needs the
            # directory as set_aside() left it.
            if rec.jdir.exists():
                for n in os.listdir(rec.jdir):
                    if n not in rec.foreign:
                        os.unlink(rec.jdir / n)
    finally:
        restore()
    return caught, missed, exempted


def _strict_catches(env, rec, budget, seed, at):
    ex = Explorer(env, rec, False, seed)
    ex.explore(budget, stop_at_failure=True, after=max(at - 1, 0))
    return bool(ex.failures)


def _judge(env, base, rec, c, i, budget, undo_ok, seed, caught, missed, exempted, out):
    drops = [x for x in rec.calls if x.op == "dropsync"]
    check(len(drops) == 1, f"sync {i}: the shim dropped {len(drops)} syncs")
    ex = Explorer(env, rec, undo_ok, seed)
    # Before the dropped sync the mutant does what the original does.
    at = next(j for j, e in enumerate(ex.model.events) if e.kind == "drop")
    # The writes that sync made durable stay unordered until the next
    # sync of the same file: cuts there are where its loss shows, and
    # among the scenario's other cut points (92 in dele-windows, 8 MiB
    # windows) round-robin would give each only a few states. Half the
    # budget goes to them first.
    node = ex.model.events[at].node
    until = next((j for j, e in enumerate(ex.model.events)
                  if j > at and e.kind == "sync" and e.node == node), None)
    if node is not None and until is not None:
        ex.explore(budget // 2, stop_at_failure=True, after=max(at - 1, 0),
                   before=until)
    if not ex.failures:
        ex.explore(budget, stop_at_failure=True, after=max(at - 1, 0))
    what = f"sync {i} ({c.op} of {role(base, c.path)}, call #{c.n})"
    if ex.failures:
        caught.append(what)
        out(f"  dropped {what}: caught after {ex.figures['states']} states: "
            f"{ex.failures[0]}")
    elif exempt(base, c):
        exempted.append(what)
        out(f"  dropped {what}: not caught in {ex.figures['states']} states "
            f"(exempt: {exempt(base, c)})")
    elif undo_ok and _strict_catches(env, rec, budget, seed, at):
        caught.append(what)
        out(f"  dropped {what}: caught only as a roll back after UPDATE began, which "
            f"--undo-ok allows (nothing lost or damaged)")
    else:
        missed.append(what)
        out(f"  dropped {what}: NOT CAUGHT in {ex.figures['states']} states")


def test_crash_states(ctx):
    """Power-cut states of UPDATE (a bounded run; make check-crash runs a
    long one): every state recovers to before or after UPDATE."""
    opts = ctx.opts
    lines = []
    total, failures = explore_scenarios(ctx.env, QUICK, opts.crash_states,
                                        opts.crash_undo_ok, opts.seed, out=lines.append)
    for line in lines:
        ctx.note("crash states: " + line.strip())
    ctx.count("crash: states explored", total["states"])
    ctx.count("crash: failing states", len(failures))
    check(not failures, f"{len(failures)} crash states broke a promise:\n"
          + "\n".join(failures[:10]))


def test_crash_recovery(ctx):
    """Power cuts during recovery: the recovery of the busiest crash state
    (today the APPLY path: mail delivered after the cut), cut in its turn,
    recovers to what the first cut allowed."""
    opts = ctx.opts
    lines = []
    total, failures = explore_recoveries(ctx.env, "dele-append", 1, opts.crash_states // 3,
                                         opts.crash_undo_ok, opts.seed, out=lines.append)
    for line in lines:
        ctx.note("crash in recovery: " + line.strip())
    ctx.count("crash: states explored (cuts during recovery)", total["states"])
    ctx.count("crash: failing states", len(failures))
    check(not failures, f"{len(failures)} crash states during recovery broke a promise:\n"
          + "\n".join(failures[:10]))


def test_crash_teeth(ctx):
    """The explorer finds the dropped sync: every fsync/fdatasync of the
    UPDATE, and of the busiest recovery, made a no-op in turn, leaves a
    crash state that fails."""
    lines = []
    caught, missed, exempted = teeth(ctx.env, "dele", ctx.opts.crash_teeth_states,
                                     ctx.opts.crash_undo_ok, ctx.opts.seed,
                                     out=lines.append)
    # Deleting the last message writes no journal: one truncation, whose
    # sync alone keeps QUIT's +OK.
    c2, m2, e2 = teeth(ctx.env, "dele-last", ctx.opts.crash_teeth_states,
                       ctx.opts.crash_undo_ok, ctx.opts.seed, out=lines.append)
    caught, missed, exempted = caught + c2, missed + m2, exempted + e2
    r = recovery_teeth(ctx.env, "dele", ctx.opts.crash_teeth_states,
                       ctx.opts.crash_undo_ok, ctx.opts.seed, out=lines.append)
    for line in lines:
        ctx.note("crash teeth: " + line.strip())
    ctx.count("crash: dropped syncs caught", len(caught) + len(r[0]))
    check(caught and r[0], "no sync recorded in UPDATE or in its recovery")
    # In recovery a directory's sync can be unneeded (today: the one after
    # APPLY is replaced by TRUNCATE, APPLY being idempotent); a spool's or
    # a journal record's never is.
    unneeded = [w for w in r[1] if "directory" in w]
    for w in unneeded:
        ctx.note(f"crash teeth: recovery's {w}: no failing state without it")
    check(not missed and len(unneeded) == len(r[1]),
          f"the explorer missed dropped syncs: {missed + r[1]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--shim", required=True)
    ap.add_argument("--states", type=int, default=400,
                    help="distinct states per scenario (default 400)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--undo-ok", action="store_true",
                    help="today's journal: after UPDATE began, recovery may roll back")
    ap.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    ap.add_argument("--drop-sync", type=int, help="record with the Nth sync left out")
    ap.add_argument("--teeth", action="store_true",
                    help="leave out each sync in turn, of UPDATE and of its busiest "
                    "recovery; each must be caught")
    ap.add_argument("--recovery", type=int, default=0, metavar="N",
                    help="also cut the recoveries of the N busiest crash states per "
                    "scenario (--states/3 states each)")
    ap.add_argument("--keep", action="store_true")
    opts = ap.parse_args()
    workdir = harness.make_workdir()
    env = faultlib.Env(opts.binary, workdir, opts.shim)
    names = opts.scenario or sorted(SCENARIOS)
    print(f"# {env.binary}, seed {opts.seed}, "
          f"{'--undo-ok (roll back allowed)' if opts.undo_ok else 'roll forward'}, "
          f"work dir {workdir}", flush=True)
    bad = False
    if opts.teeth:
        for name in names:
            print(f"{name}: dropping each sync in turn", flush=True)
            caught, missed, exempted = teeth(env, name, SCENARIOS[name].budget(opts.states),
                                             opts.undo_ok,
                                             opts.seed, out=lambda s: print(s, flush=True))
            print(f"{name}: {len(caught)} caught, {len(missed)} missed, "
                  f"{len(exempted)} exempt")
            bad |= bool(missed)
            if SCENARIOS[name].first_login or not SCENARIOS[name].recoveries:
                continue
            print(f"{name}: dropping each sync of a recovery in turn", flush=True)
            caught, missed, exempted = recovery_teeth(env, name, opts.states, opts.undo_ok,
                                                      opts.seed,
                                                      out=lambda s: print(s, flush=True))
            print(f"{name} recovery: {len(caught)} caught, {len(missed)} missed, "
                  f"{len(exempted)} exempt")
            bad |= any("directory" not in w for w in missed)   # as test_crash_teeth
    else:
        total, failures = (None, [])
        if opts.drop_sync:
            for name in names:
                restore = set_aside(env, SCENARIOS[name])
                try:
                    rec = record(env, SCENARIOS[name], f"drop{opts.drop_sync}",
                                 drop_sync=opts.drop_sync)
                    ex = Explorer(env, rec, opts.undo_ok, opts.seed)
                    failures += [f"{name}: {x}" for x in ex.explore(opts.states)]
                finally:
                    restore()
                print(f"  {name}: {ex.figures['states']} states, {len(ex.failures)} failing")
        else:
            total, failures = explore_scenarios(env, names, opts.states, opts.undo_ok,
                                                opts.seed, out=lambda s: print(s, flush=True))
            for name in names if opts.recovery else ():
                if SCENARIOS[name].first_login or not SCENARIOS[name].recoveries:
                    continue
                t, f = explore_recoveries(env, name, opts.recovery, opts.states // 3,
                                          opts.undo_ok, opts.seed,
                                          out=lambda s: print(s, flush=True))
                total["states"] += t["states"]
                total["seconds"] += t["seconds"]
                failures += f
            print(f"# {total['states']} states in {total['seconds']:.1f}s "
                  f"({total['states'] / max(total['seconds'], 1e-9):.1f}/s), "
                  f"{len(failures)} failing")
        for f in failures:
            print("FAIL " + f)
        bad = bool(failures)
    if opts.keep or bad:
        print(f"# work dir kept: {workdir}")
    else:
        harness.remove_workdir(workdir)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
