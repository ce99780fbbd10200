#!/usr/bin/python3
"""Crash states of a journaled UPDATE on real file systems, cut at the
block device (issue 13, point 4; make check-blkcrash, root only).

    blkcrash.py --binary BUILD/pop3d --shim BUILD/faultshim.so
                --blklog BUILD/blklog [--states N] [--seed S]
                [--fs ext4|ext4-journal|xfs|btrfs]...
                [--scenario NAME]... [--drop-sync N | --teeth] [--keep]

crash_explore.py builds crash states from pop3d's own calls on a model of
ext4. This builds them from what the kernel's file system really sent to
the disk, in the manner of CrashMonkey (OSDI 2018) and dm-log-writes:
ext4 as Debian makes it (the default), ext4 with data=journal, XFS and
btrfs, each with its own ordering of data and metadata.

1. Record. A fresh file system is made on a loop device whose backing file is
   blklog's (tests/faults/blklog.c): every block write the file system
   sends, and every cache flush, is appended to a log in the order the
   kernel completed them. The cwrap environment, the spool and the
   journal directory live on that file system. After a login (so that
   the journal directory is old and durable) and a sync, a session logs
   in, DELEs, for some scenarios lets an MTA-style writer append mail,
   and QUITs; the log's length is noted when +OK arrives.

2. Crash states. A volatile write cache loses, at a power cut, any write
   that no completed flush covers. So a state is: every record up to a
   flush, then a subset of the writes after it (until the next flush),
   each cut at the disk's 4 KiB boundaries, each piece kept or lost on its own and, where
   kept, in the order written. For each flush from the session's start to
   the end the states are: nothing after it kept, everything kept, then
   random subsets, an equal share of the states for each flush, identical
   images run once.

3. Check. The image is written to a file, attached to a loop device and
   mounted where the recorded file system was, with the same options
   (the file system replays its own journal or log at mount), and pop3d
   recovers it as in production, at a login.
   The spool must then be byte for byte
     S_after   what the uninterrupted UPDATE left, if the image held a
               journal of pop3d's before recovery (UPDATE had begun: roll
               forward) or if the state includes every flush made before
               QUIT's +OK (the client was told);
     S_before  or S_after otherwise;
   and for a state made only of writes from before QUIT, the spool as
   the crash left it (an MTA append not yet synced may be torn there);
   and no journal may be left pending.

--drop-sync N records with pop3d's Nth fsync/fdatasync made a no-op (the
fault shim, FAULTSHIM_DROP_SYNC); --teeth does that for each sync of each
scenario in turn (but a sync of the journal directory after the spool's
last one, which makes only the journal's removal durable:
crash_explore.py, exempt()) and reports which ones a failing state
catches. Unlike the model's, not every one can be: ext4 commits every
earlier metadata change with any later fsync, so the directory's fsync
after the journal's rename, say, is covered by the next fsync of a file
(XFS's log is as ordered). It fails only if a scenario catches none.

make check-blkcrash runs it (root: loop devices, mounts, FUSE); make
check-faults does not.
"""

import argparse
import hashlib
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.dont_write_bytecode = True

import crash_explore  # noqa: E402
import faultlib  # noqa: E402
from faultlib import check, mboxcheck  # noqa: E402

DISK_MIB = 16               # the small scenarios' disk; the big ones say
BLOCK = 4096
REC_WRITE, REC_FLUSH = 1, 2
HEADER = struct.Struct("<IIQQ")
FAILURES_KEPT = 3           # images kept per exploration (16-64 MiB each)


class Scenario:
    def __init__(self, name, n, dele, append=False, big_every=3, big_size=9000,
                 disk_mib=DISK_MIB):
        self.name, self.n, self.dele, self.append = name, n, dele, append
        self.big_every, self.big_size = big_every, big_size
        # Each state writes the whole disk image: no bigger than needed.
        self.disk_mib = disk_mib


SCENARIOS = {
    # A small shift under 24 MB of mail: three saved windows.
    "dele-first": Scenario("dele-first", 40, [1], big_every=1, big_size=600000,
                           disk_mib=64),
    # Saved windows, then direct steps once the shift passes 1 MiB.
    "dele-spread": Scenario("dele-spread", 60, [1, 2, 5, 9, 20, 33, 34, 50],
                            big_every=2, big_size=400000, disk_mib=40),
    "dele-append": Scenario("dele-append", 10, [1, 4, 9], append=True),
    # Nothing moves: the spool is only truncated, without a journal.
    "dele-last": Scenario("dele-last", 12, [11, 12], big_every=0),
    # The new end and the old one in one 4 KiB block: a truncation's
    # zeroing reaches the old end's bytes.
    "dele-near-end": Scenario("dele-near-end", 12, [10, 12], big_every=0),
    "dele-all": Scenario("dele-all", 6, [1, 2, 3, 4, 5, 6], append=True),
}


class FileSystem:
    """How to make and mount one kind of file system on the logged disk.
    Recovery mounts each crash image with the same options, so that the
    file system replays its own log as it would after the power cut."""

    def __init__(self, name, mkfs, options=(), min_mib=DISK_MIB, env=None):
        self.name, self.mkfs, self.options = name, list(mkfs), list(options)
        self.min_mib, self.env = min_mib, env or {}

    def make(self, dev):
        run(*self.mkfs, dev, env={**os.environ, **self.env})

    def mount_argv(self, dev, where):
        return ["mount"] + (["-o", ",".join(self.options)] if self.options else []) \
            + [dev, str(where)]


EXT4_MKFS = ("mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0")
FILESYSTEMS = {
    # Debian's default: data=ordered, delayed allocation.
    "ext4": FileSystem("ext4", EXT4_MKFS),
    # Data through the journal too: other orderings of data and metadata.
    "ext4-journal": FileSystem("ext4-journal", EXT4_MKFS, options=["data=journal"]),
    # No data ordering at all, its own log (RHEL's default). mkfs.xfs
    # refuses disks under 300 MB unless told it is a test (xfstests'
    # variables); a small disk keeps every state's image small.
    "xfs": FileSystem("xfs", ("mkfs.xfs", "-q", "-f"), min_mib=32,
                      env={"TEST_DIR": "1", "TEST_DEV": "1", "QA_CHECK_FS": "1"}),
    # Copy on write, fsync through its log tree; --mixed lets it be small.
    "btrfs": FileSystem("btrfs", ("mkfs.btrfs", "-q", "-f", "--mixed"), min_mib=128),
}


def run(*argv, **kw):
    return subprocess.run(list(argv), check=True, capture_output=True, timeout=60, **kw)


# --- the logged disk -------------------------------------------------------------

class LoggedDisk:
    """blklog on top/fuse, a loop device on its disk, the file system
    made and mounted on top/mnt. stop() undoes all of it and stops blklog
    by its pid."""

    def __init__(self, blklog, top, mib, fs):
        self.top, self.mnt = top, top / "mnt"
        self.fuse, self.log = top / "fuse", top / "blocks.log"
        self.loop = None
        self.mounted = False
        for d in (self.fuse, self.mnt):
            d.mkdir(exist_ok=True)
        self.err = open(top / "blklog.err", "wb")
        self.proc = subprocess.Popen([str(blklog), str(self.fuse), str(mib),
                                      str(self.log)], stdout=self.err, stderr=self.err)
        try:
            deadline = time.monotonic() + 10
            while not (self.fuse / "disk").exists():
                check(self.proc.poll() is None, "blklog exited: "
                      + (top / "blklog.err").read_text(errors="replace"))
                check(time.monotonic() < deadline, "blklog did not mount")
                time.sleep(0.05)
            self.loop = run("losetup", "-f", "--show", str(self.fuse / "disk")
                            ).stdout.decode().strip()
            fs.make(self.loop)
            run(*fs.mount_argv(self.loop, self.mnt))
            self.mounted = True
        except BaseException:
            self.stop()
            raise

    def size(self):
        return self.log.stat().st_size

    def stop(self):
        if self.mounted:
            subprocess.run(["umount", str(self.mnt)], check=False)
            self.mounted = False
        if self.loop:
            subprocess.run(["losetup", "-d", self.loop], check=False)
            self.loop = None
        if self.proc.poll() is None:
            subprocess.run(["fusermount3", "-u", str(self.fuse)], check=False,
                           capture_output=True)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.err.close()


def read_log(path):
    """[(kind, offset, octets, end of the record in the log)]."""
    raw = Path(path).read_bytes()
    out, pos = [], 0
    while pos + HEADER.size <= len(raw):
        kind, n, off, _ = HEADER.unpack_from(raw, pos)
        pos += HEADER.size
        data = raw[pos:pos + n] if kind == REC_WRITE else b""
        check(len(data) == n, "blklog's log ends inside a record")
        pos += n if kind == REC_WRITE else 0
        out.append((kind, off, data, pos))
    return out


def index_at(records, size):
    """How many records the log held when it was size octets long."""
    return sum(1 for r in records if r[3] <= size)


# --- recording -------------------------------------------------------------------

class Recording:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def record(binary, shim, blklog, top, scen, fs, drop_sync=None):
    """Run the scenario's session on a fresh logged disk and return what
    the exploration needs. Its pop3d calls are recorded by the shim too,
    which lists the syncs --teeth leaves out."""
    if top.exists():
        shutil.rmtree(top)
    top.mkdir()
    disk = LoggedDisk(blklog, top, max(scen.disk_mib, fs.min_mib), fs)
    try:
        (disk.mnt / "w").mkdir()
        env = faultlib.Env(binary, disk.mnt / "w", shim)
        rng = mboxcheck.rng_for(2026)
        data, tokens, expected, _ = mboxcheck.build_spool(
            scen.n, rng, prefix="b", big_every=scen.big_every, big_size=scen.big_size)
        d = env.tempdir(scen.name)
        spool = env.install_spool(d / "alice", data)
        jdir = env.journal_dir()
        check(jdir is not None, "pop3d has no --journal-dir")
        r = subprocess.run(env.command(d), env=env.child_env(),
                           input=b"USER alice\r\nPASS secret\r\nQUIT\r\n",
                           capture_output=True, timeout=60)
        check(jdir.is_dir(), f"no journal directory after a login: {r.stderr!r}")
        foreign = set(os.listdir(jdir))
        calls = top / "calls.rec"
        os.sync()
        start = disk.size()
        p = env.session(d, rules="", paths=[spool, jdir, f"{jdir}/*"], record=calls,
                        drop_sync=drop_sync)
        try:
            kept = [t for i, t in enumerate(tokens) if i + 1 not in scen.dele]
            kept += crash_explore.dele_and_append(p, scen, rng, spool, expected,
                                                  "b-during")
            before = spool.read_bytes()
            quit_sent = disk.size()
            q = p.cmd("QUIT", timeout=60)
            answered = disk.size()
            check(q.startswith("+OK"), f"QUIT: {q}")
        finally:
            p.close()
        after = spool.read_bytes()
        os.sync()
        end = disk.size()
        pid = p.pid
        syncs = [c for c in crash_explore.read_record(calls)
                 if c.pid == pid and c.op in ("fsync", "fdatasync")]
        rec = Recording(scen=scen, env=env, dir=d, spool=spool, jdir=jdir,
                        foreign=foreign, before=before, after=after,
                        expected=expected, kept=kept,
                        deleted=[tokens[i - 1] for i in scen.dele], syncs=syncs,
                        fs=fs, disk_mib=max(scen.disk_mib, fs.min_mib))
    finally:
        disk.stop()
    records = read_log(disk.log)
    rec.records = records
    rec.start, rec.answered = index_at(records, start), index_at(records, answered)
    rec.quit_sent = index_at(records, quit_sent)
    rec.end = index_at(records, end)
    rec.top, rec.mnt = top, disk.mnt
    check(rec.start < rec.answered <= rec.end, "the session wrote nothing to the disk")
    return rec


# --- exploration -----------------------------------------------------------------

class Explorer:
    def __init__(self, rec, seed, budget):
        self.rec, self.rng, self.budget = rec, random.Random(seed), budget
        r = rec.records
        # Crash points: the flushes from the last one before the session
        # on. Each has the writes after it, up to the next flush.
        flushes = [i for i in range(rec.end) if r[i][0] == REC_FLUSH]
        first = max([i for i in flushes if i < rec.start], default=-1)
        self.points = [i for i in flushes if i >= first] or [-1]
        if first == -1:
            self.points.insert(0, -1)
        bounds = self.points[1:] + [rec.end]
        self.pending = {p: [i for i in range(p + 1, b) if r[i][0] == REC_WRITE]
                        for p, b in zip(self.points, bounds)}
        # States whose every record came before QUIT: UPDATE had not
        # begun, whatever the MTA's unsynced append left is as it left it.
        self.before_quit = {p for p, b in zip(self.points, bounds) if b <= rec.quit_sent}
        before_ok = [i for i in flushes if i < rec.answered]
        self.answered_at = before_ok[-1] if before_ok else None
        self.image = rec.top / "crash.img"
        self.seen = set()
        self.failures = []
        self.figures = {"states": 0, "begun": 0, "answered": 0, "rolled forward": 0,
                        "rolled back": 0, "duplicates skipped": 0}

    def journals(self):
        """This recording's journals in the journal directory now (not
        another test's files, the session lock, or one still being made)."""
        rec = self.rec
        return [n for n in os.listdir(rec.jdir) if not crash_explore.not_journal(n, rec.foreign)
                and not n.endswith(crash_explore.TEMP_SUFFIX)]

    def units(self, p):
        """The 4 KiB pieces of the writes after flush p, in order, cut at
        the disk's 4 KiB boundaries: a write need not start on one (a
        file system of 1 KiB blocks writes at any 1 KiB), and a piece
        cut from its start would straddle two of the pages a power cut
        keeps or loses."""
        out = []
        for i in self.pending[p]:
            _, off, data, _ = self.rec.records[i]
            k = 0
            while k < len(data):
                end = min(len(data), (off + k) // BLOCK * BLOCK + BLOCK - off)
                out.append((i, off + k, data[k:end]))
                k = end
        return out

    def draws(self, n):
        """Subsets of n units to keep: none, all, then random ones."""
        yield frozenset()
        yield frozenset(range(n))
        while n > 1:
            q = self.rng.choice((0.2, 0.5, 0.8))
            yield frozenset(k for k in range(n) if self.rng.random() < q)

    def explore(self):
        """Each crash point in turn, an equal share of the budget each
        (at least its two extremes), from one image advanced in order."""
        rec = self.rec
        base = bytearray(rec.disk_mib << 20)
        applied = 0
        quota = max(2, self.budget // len(self.points))
        for p in self.points:
            while applied <= p:
                kind, off, data, _ = rec.records[applied]
                if kind == REC_WRITE:
                    base[off:off + len(data)] = data
                applied += 1
            units = self.units(p)
            ran = tries = 0
            for kept in self.draws(len(units)):
                if ran >= quota or tries >= 4 * quota:
                    break
                tries += 1
                ran += self.run_one(p, units, kept, base)

    def run_one(self, p, units, kept, base):
        rec = self.rec
        img = bytearray(base)
        for k, (_, off, data) in enumerate(units):
            if k in kept:
                img[off:off + len(data)] = data
        key = hashlib.blake2b(img, digest_size=16).digest()
        if key in self.seen:
            self.figures["duplicates skipped"] += 1
            return False
        self.seen.add(key)
        self.figures["states"] += 1
        self.image.write_bytes(img)
        loop = run("losetup", "-f", "--show", str(self.image)).stdout.decode().strip()
        try:
            m = subprocess.run(rec.fs.mount_argv(loop, rec.mnt), capture_output=True,
                               timeout=60)
            if m.returncode != 0:
                problems = ["the image did not mount: " + m.stderr.decode(errors="replace")]
            else:
                try:
                    problems = self.check(p)
                finally:
                    run("umount", str(rec.mnt))
        finally:
            run("losetup", "-d", loop)
        if problems:
            self.keep_failure(p, len(units), kept, problems, img)
        return True

    def check(self, p):
        rec, env = self.rec, self.rec.env
        journals = self.journals()
        answered = self.answered_at is not None and p >= self.answered_at
        begun = bool(journals)
        self.figures["begun"] += begun
        self.figures["answered"] += answered
        if p in self.before_quit:
            allowed = [rec.spool.read_bytes()]      # untouched by recovery
        elif begun or answered:
            allowed = [rec.after]
        else:
            allowed = [rec.before, rec.after]
        r = subprocess.run(env.command(rec.dir), env=env.child_env(),
                           input=b"USER alice\r\nPASS secret\r\nQUIT\r\n",
                           capture_output=True, timeout=60)
        lines = r.stdout.decode("latin-1").split("\r\n")
        problems = []
        if len(lines) < 4 or not lines[2].startswith("+OK") or not lines[3].startswith("+OK"):
            problems.append(f"login and QUIT: {lines[1:4]!r}; log: "
                            + r.stderr.decode(errors="replace")[-400:])
        after = rec.spool.read_bytes()
        if after == rec.after:
            self.figures["rolled forward"] += 1
        elif after == rec.before:
            self.figures["rolled back"] += 1
        if after not in allowed:
            a = mboxcheck.Audit(after, rec.expected).check(rec.kept, rec.deleted)
            what = (f"{a['lost']} lost, {a['damaged_kept']} kept damaged, "
                    f"{a['damaged_pieces']} damaged pieces, {a['duplicates']} duplicated, "
                    f"{a['reappeared']}/{len(rec.deleted)} deleted back")
            if after == rec.before:
                what = "rolled back: every deleted message is back"
            if p in self.before_quit:
                want = "as the crash left it (before QUIT)"
            elif begun or answered:
                want = f"S_after ({'journal present' if begun else 'QUIT answered'})"
            else:
                want = "S_before or S_after"
            problems.append(f"spool not {want}: {what}")
        left = self.journals()
        if left:
            problems.append(f"journal left after recovery: {left}")
        return problems

    def describe(self, p, n, kept):
        at = "the start" if p < 0 else f"flush record {p}"
        return (f"cut after {at} ({self.points.index(p) + 1} of {len(self.points)}), "
                f"{len(kept)} of {n} later 4 KiB writes kept")

    def keep_failure(self, p, n, kept, problems, img):
        desc = f"{self.describe(p, n, kept)}: " + "; ".join(problems)
        if len(self.failures) < FAILURES_KEPT:
            dest = self.rec.top / f"failure{len(self.failures) + 1}.img"
            dest.write_bytes(img)       # as the crash left it
            desc += f" (image before recovery in {dest})"
        self.failures.append(desc)

    def summary(self):
        rec, f = self.rec, self.figures
        writes = sum(1 for i in range(rec.start, rec.end) if rec.records[i][0] == REC_WRITE)
        return (f"{rec.scen.name}: {len(rec.syncs)} syncs by pop3d; on the disk "
                f"{writes} writes and {len(self.points)} crash points (flushes); "
                f"{f['states']} states explored ({f['begun']} with a journal, "
                f"{f['answered']} after +OK, {f['duplicates skipped']} duplicates skipped); "
                f"rolled forward {f['rolled forward']}, rolled back {f['rolled back']}; "
                f"{len(self.failures)} failing")


def explore_scenario(args, scen, fs, tag, drop_sync=None, out=print,
                     expect_failures=False):
    top = args.work / f"{fs.name}-{scen.name}-{tag}"
    rec = record(args.binary, args.shim, args.blklog, top, scen, fs, drop_sync)
    ex = Explorer(rec, args.seed, args.states)
    ex.explore()
    out(f"  {fs.name} " + ex.summary())
    for f in ex.failures[:10]:
        out("    FAIL " + f)
    if (expect_failures or not ex.failures) and not args.keep:
        shutil.rmtree(top)
    return rec, ex


def exempt(rec, call):
    """A sync of the journal directory after the spool's last sync."""
    spool = [c.n for c in rec.syncs if c.path == str(rec.spool)]
    return call.path == str(rec.jdir) and spool and call.n > max(spool)


def teeth(args, scen, fs, out=print):
    """Each of pop3d's syncs left out in turn, and whether a state then
    fails: (caught, missed) lists of sync numbers. ext4 is stronger than
    the model of crash_explore.py: one fsync commits every earlier change
    of metadata (jbd2 commits them in order), so a sync that only makes a
    rename, a creation or a truncation durable before a later file sync
    is not needed there (design.md §12.1 names them)."""
    base, ex = explore_scenario(args, scen, fs, "all-syncs", out=out)
    check(not ex.failures, f"{scen.name}: failing with every sync")
    caught, missed = [], []
    for k, c in enumerate(base.syncs, 1):
        if exempt(base, c):
            out(f"  sync {k} ({c.op} {Path(c.path).name}): exempt, the journal's removal")
            continue
        _, ex = explore_scenario(args, scen, fs, f"drop{k}", drop_sync=k,
                                 out=lambda s: None, expect_failures=True)
        caught_now = bool(ex.failures)
        out(f"  sync {k} ({c.op} {Path(c.path).name}) left out: "
            f"{'caught' if caught_now else 'not caught'} ({ex.figures['states']} states, "
            f"{len(ex.failures)} failing)")
        (caught if caught_now else missed).append(k)
    return caught, missed


def preflight(fs):
    """Root, FUSE, loop devices and the tools: a clear skip otherwise."""
    faultlib.require_loop_fs(fs.mkfs[0].split(".")[1], fs.mkfs[0])
    for tool in ("losetup", "fusermount3"):
        if shutil.which(tool) is None:
            raise faultlib.TestSkipped(f"{tool} not found (tests/deps.sh installs it)")
    if not Path("/dev/fuse").exists():
        raise faultlib.TestSkipped("no /dev/fuse")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", required=True)
    ap.add_argument("--shim", required=True)
    ap.add_argument("--blklog", required=True)
    ap.add_argument("--states", type=int, default=200, help="per scenario")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--drop-sync", type=int)
    g.add_argument("--teeth", action="store_true")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--fs", choices=sorted(FILESYSTEMS), action="append",
                    help="the file systems to cut (default: ext4)")
    args = ap.parse_args()
    filesystems = [FILESYSTEMS[n] for n in args.fs or ["ext4"]]
    try:
        for fs in filesystems:
            preflight(fs)
    except faultlib.TestSkipped as e:
        print(f"blkcrash: skipped: {e}")
        return 0
    args.binary = str(Path(args.binary).resolve())
    args.shim = str(Path(args.shim).resolve())
    args.blklog = str(Path(args.blklog).resolve())
    names = args.scenario or list(SCENARIOS)
    # Not under /tmp: the sessions get a private /tmp of their own.
    args.work = Path(tempfile.mkdtemp(prefix="pop3d-blkcrash-", dir="/var/tmp"))
    bad = 0
    t0 = time.monotonic()
    try:
        for fs in filesystems:
            for name in names:
                scen = SCENARIOS[name]
                if args.teeth:
                    print(f"{fs.name} {name}: each sync left out in turn")
                    caught, missed = teeth(args, scen, fs)
                    print(f"  {len(caught)} caught, {len(missed)} not caught"
                          f"{' (syncs ' + str(missed) + ')' if missed else ''}")
                    if not caught:
                        print("  NO TEETH: no sync left out made a state fail")
                        bad += 1
                else:
                    _, ex = explore_scenario(args, scen, fs, "run",
                                             drop_sync=args.drop_sync)
                    bad += len(ex.failures)
    finally:
        if not args.keep and bad == 0:
            shutil.rmtree(args.work, ignore_errors=True)
        else:
            print(f"blkcrash: files kept in {args.work}")
    print(f"blkcrash: {time.monotonic() - t0:.0f} s, "
          f"{'OK' if bad == 0 else f'{bad} FAILING'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
