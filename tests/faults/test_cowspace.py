"""UPDATE on a nearly full copy-on-write file system (btrfs, and XFS
for a reflinked spool; issue 13, "Bad input gets a clear -ERR ... or
lost mail"; design.md §4.8, "Full disks").

On btrfs a write in place takes new blocks, and the blocks it replaces
come free only once a whole extent has been rewritten, or never while a
snapshot shares them. Measured before the check: DELE 1 + QUIT on a 277 MB
spool with 41 MB free ran out of space after three windows and left the
spool half moved (one damaged piece for every other reader) until a
later login found room. Now UPDATE does not begin without room:

- the QUIT reply is "messages not deleted, try again later", the spool
  is byte for byte as it was, no journal is left, and the log says how
  much is free and needed;
- once space is freed, the same DELE + QUIT deletes the message.

On ext4, and on XFS for a spool of its own, the move writes in place
over blocks the spool has: only the journal takes new ones (its save
areas, allocated before UPDATE begins). Two tests fill such a file
system to the last block: QUIT is refused whole; with room for the
journal and nothing more, the deletion is done.

Each test makes its own file system on a loop device (root, btrfs-progs,
xfsprogs). The snapshot test fails if shared extents are not counted:
the rewrite then looks like it needs one extent's worth, starts, and
runs out halfway. On XFS only a spool that shares its extents with a
reflinked copy is rewritten to new blocks, and the third test fails if
XFS is taken as writing in place.
"""

import contextlib
import errno
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import faultlib
from faultlib import check, check_log_clean, log_text, mboxcheck

NOT_DELETED = "-ERR [SYS/TEMP] messages not deleted, try again later"
NOSPACE = "No space left on device"
MB = 1000 * 1000


# ext4 without blocks kept for root: the sessions here run as root
# (uid_wrapper), and would write into them.
MKFS = {"btrfs": ["mkfs.btrfs", "-q", "-f"], "xfs": ["mkfs.xfs", "-q", "-f"],
        "ext4": ["mkfs.ext4", "-q", "-F", "-m", "0"]}
# What DELE 1 of _spool's messages asks of the journal's directory: two
# save areas of 8 MiB (JOURNAL_WINDOW) and a header, regions and slots.
JOURNAL_ROOM = 16 * 1024 * 1024 + 256 * 1024


class LoopFs:
    """A file system of kind (btrfs, xfs) and mib MiB on a loop device,
    mounted on a fresh directory under /var/tmp; close() unmounts it (the
    loop device goes with it) and removes everything."""

    def __init__(self, kind, mib):
        faultlib.require_loop_fs(kind, MKFS[kind][0])
        self.top = Path(tempfile.mkdtemp(prefix="pop3d-cowspace-", dir="/var/tmp"))
        self.img, self.mnt = self.top / "disk.img", self.top / "mnt"
        self.mounted = False
        try:
            self.mnt.mkdir()
            with open(self.img, "wb") as f:
                f.truncate(mib << 20)
            subprocess.run(MKFS[kind] + [str(self.img)], check=True,
                           capture_output=True, timeout=60)
            subprocess.run(["mount", "-o", "loop", str(self.img), str(self.mnt)],
                           check=True, capture_output=True, timeout=60)
            self.mounted = True
        except BaseException:
            self.close()
            raise

    def free(self):
        st = os.statvfs(self.mnt)
        return st.f_bavail * st.f_frsize

    def leave_free(self, octets):
        """Take space with a filler file until about octets are free."""
        os.sync()
        take = self.free() - octets
        check(take > 0, f"only {self.free()} octets free, wanted {octets}")
        with open(self.mnt / "filler", "wb") as f:
            os.posix_fallocate(f.fileno(), 0, take)
        os.sync()

    def fill(self):
        """Take every free block with a filler file."""
        os.sync()
        fd = os.open(self.mnt / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.posix_fallocate(fd, 0, max(self.free() - (1 << 20), 1))
            os.lseek(fd, 0, os.SEEK_END)
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError as e:
            check(e.errno == errno.ENOSPC, f"filling the disk: {e}")
        finally:
            os.close(fd)
        os.sync()
        check(self.free() < 64 * 1024, f"{self.free()} octets still free")

    def drop_filler(self):
        (self.mnt / "filler").unlink()
        os.sync()

    def close(self):
        if self.mounted:
            subprocess.run(["umount", str(self.mnt)], check=False, capture_output=True)
            self.mounted = False
        shutil.rmtree(self.top, ignore_errors=True)


def _spool(n):
    rng = mboxcheck.rng_for(4242)
    data, tokens, _, _ = mboxcheck.build_spool(n, rng, prefix="c", big_every=1,
                                               big_size=600_000)
    prefix, chunks = mboxcheck.split_spool(data)
    check(prefix == b"" and len(chunks) == n, "the test spool does not split")
    return data, prefix + b"".join(chunks[1:])


def _dele_first(env, d):
    p = env.session(d)
    try:
        p.login()
        check(p.cmd("DELE 1") == "+OK message 1 deleted", "DELE 1")
        reply = p.cmd("QUIT", timeout=120)
        p.wait_eof()
    finally:
        p.close()
    check_log_clean(p.stderr)
    return reply, log_text(p.stderr)


def _refused_whole(env, d, spool, data, what, *says):
    """DELE 1 + QUIT is refused whole: the reply, the spool byte for byte
    as it was, no journal, and a log that says each of says. Returns the
    log's lines that say the first."""
    reply, log = _dele_first(env, d)
    check(reply == NOT_DELETED, f"{what}: QUIT got {reply!r}, expected {NOT_DELETED!r}\n{log}")
    check(spool.read_bytes() == data, f"{what}: the spool changed after a refused UPDATE")
    check(env.journal_files() == [], f"{what}: journal left: {env.journal_files()}")
    check(all(x in log for x in says), f"{what}: the log does not say why:\n{log}")
    return "; ".join(line for line in log.splitlines() if says[0] in line)


def _refused_then_done(ctx, fs, env, d, spool, data, after, what):
    """DELE 1 + QUIT is refused whole, then done once space is freed."""
    _refused_whole(env, d, spool, data, what, "UPDATE not begun", "copy-on-write")
    fs.drop_filler()
    reply, log = _dele_first(env, d)
    check(reply.startswith("+OK pop3d signing off"),
          f"{what}: QUIT with room got {reply!r}\n{log}")
    check(spool.read_bytes() == after, f"{what}: the spool is not the spool less message 1")
    ctx.count("copy-on-write updates refused for room")


def _run(*argv):
    subprocess.run(list(argv), check=True, capture_output=True, timeout=60)


@contextlib.contextmanager
def _spool_on(ctx, kind, mib, data, subvolume=False):
    """data as alice's spool on a fresh file system of kind and mib MiB
    (in a btrfs subvolume if asked): (fs, env, its directory, the spool).
    The file system is gone after the block."""
    fs = LoopFs(kind, mib)
    try:
        w = fs.mnt / "w"
        if subvolume:
            _run("btrfs", "-q", "subvolume", "create", str(w))
        else:
            w.mkdir()
        env = faultlib.Env(ctx.env.binary, w, ctx.env.shim)
        d = env.tempdir("spool")
        yield fs, env, d, env.install_spool(d / "alice", data)
    finally:
        fs.close()


def _case(ctx, kind, mib, messages, free, what, subvolume=False, share=None):
    """A spool of messages on a fresh file system, shared by share(fs, w,
    spool) if given, with free octets left: refused, then done."""
    data, after = _spool(messages)
    with _spool_on(ctx, kind, mib, data, subvolume) as (fs, env, d, spool):
        if share is not None:
            os.sync()
            share(fs, fs.mnt / "w", spool)
        fs.leave_free(free)
        _refused_then_done(ctx, fs, env, d, spool, data, after, what)


def test_cow_full_disk_refused_whole(ctx):
    """100 MB in one extent with 60 MB free: refused, not half moved."""
    _case(ctx, "btrfs", 384, 170, 60 * MB, "full btrfs")


def test_cow_snapshot_counts_shared_extents(ctx):
    """240 MB under a read-only snapshot with 200 MB free: enough for an
    unshared rewrite (one 128 MiB extent held, plus the save areas), not
    for this one, where no replaced block comes free."""
    _case(ctx, "btrfs", 640, 400, 200 * MB, "snapshotted btrfs", subvolume=True,
          share=lambda fs, w, spool: _run("btrfs", "-q", "subvolume", "snapshot", "-r",
                                          str(w), str(fs.mnt / "snap")))


def test_cow_xfs_reflinked_spool(ctx):
    """100 MB sharing its extents with a reflinked copy on XFS, 60 MB
    free: every block rewritten is new, and none comes free."""
    _case(ctx, "xfs", 384, 170, 60 * MB, "reflinked spool on XFS",
          share=lambda fs, w, spool: _run("cp", "--reflink=always", str(spool),
                                          str(fs.mnt / "copy")))


def _full_in_place(ctx, kind, mib, what):
    """100 messages of 600 KB (DELE 1 moves 59 MB down by 600 KB, saving
    each window in the journal) on a file system with no free block, then
    with 1 MiB free (room for the journal's header, not its save areas):
    refused whole both times, the log naming ENOSPC, since the save areas
    are allocated before UPDATE begins; with room for the journal alone,
    done."""
    data, after = _spool(100)
    with _spool_on(ctx, kind, mib, data) as (fs, env, d, spool):
        p = env.session(d)  # the first login makes the journal directory
        try:
            p.login()
            p.cmd("QUIT")
            p.wait_eof()
        finally:
            p.close()
        fs.fill()
        ctx.note(f"{what}, no block free: "
                 + _refused_whole(env, d, spool, data, f"{what}, no block free", NOSPACE))
        fs.drop_filler()
        fs.leave_free(1 << 20)
        ctx.note(f"{what}, 1 MiB free: "
                 + _refused_whole(env, d, spool, data, f"{what}, 1 MiB free", NOSPACE))
        fs.drop_filler()
        fs.leave_free(JOURNAL_ROOM)
        reply, log = _dele_first(env, d)
        check(reply.startswith("+OK pop3d signing off"),
              f"{what}, room for the journal alone: QUIT got {reply!r}\n{log}")
        check(spool.read_bytes() == after, f"{what}: the spool is not the spool less message 1")
        check(env.journal_files() == [], f"{what}: journal left: {env.journal_files()}")
        ctx.count("full disks: updates refused whole, then done in place")


def test_full_ext4_refused_whole_then_in_place(ctx):
    """ext4 (Debian's default for /var/mail) filled to the last block."""
    _full_in_place(ctx, "ext4", 160, "full ext4")


def test_full_xfs_refused_whole_then_in_place(ctx):
    """XFS (mkfs.xfs makes none under 300 MB), the spool sharing no
    extent, filled to the last block."""
    _full_in_place(ctx, "xfs", 384, "full XFS")
