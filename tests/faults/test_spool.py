"""Spools that are not what they should be (issue 5, "Spool problems"):
replaced by a symlink, a hard link, a directory, a FIFO or a socket, owned
by another user, writable through another user's group, not an mbox,
over --max-size or --max-messages, shrinking or truncated in the middle
of a session or of a RETR, replaced in the middle of a session. Each is
refused or handled with a clear error (response code and log line), and
nothing is modified: bytes, inode, owner and mode of every file in the
directory are compared before and after.
"""

import os
import shutil
import socket
import subprocess
import time

from faultlib import (SYS_PERM, SYS_TEMP, UPDATE_FAILED_RE, check, check_log_clean,
                      harness, log_text, mboxcheck)
from journalname import journal_name

SMALL, TOKENS, EXPECTED, MSGS = None, None, None, None


def spool_data():
    global SMALL, TOKENS, EXPECTED, MSGS
    if SMALL is None:
        rng = mboxcheck.rng_for(77)
        SMALL, TOKENS, EXPECTED, MSGS = mboxcheck.build_spool(
            12, rng, prefix="p", big_every=6, big_size=600_000)
    return SMALL


def snapshot(d):
    """Every name in d with its lstat facts and (for regular files) bytes."""
    out = {}
    for p in sorted(d.iterdir()):
        st = os.lstat(p)
        data = p.read_bytes() if p.is_file() and not p.is_symlink() else None
        target = os.readlink(p) if p.is_symlink() else None
        out[p.name] = (st.st_ino, st.st_mode, st.st_uid, st.st_gid, st.st_nlink, data,
                       target)
    return out


def diff(before, after):
    out = []
    for name in sorted(set(before) | set(after)):
        if name not in after:
            out.append(f"{name} disappeared")
        elif name not in before:
            out.append(f"{name} appeared")
        elif before[name] != after[name]:
            out.append(f"{name} changed")
    return out


def login_reply(ctx, d, args=(), timeout=15):
    p = ctx.env.session(d, args)
    t0 = time.monotonic()
    try:
        p.cmd("USER alice")
        reply = p.cmd("PASS secret", timeout=timeout)
        took = time.monotonic() - t0
        if reply.startswith("+OK"):
            p.cmd("QUIT")
        p.wait_eof()
    finally:
        p.close()
    check_log_clean(p.stderr)
    return reply, took, log_text(p.stderr)


def refused(ctx, name, setup, log_words, args=(), expect=SYS_PERM):
    env = ctx.env
    d = env.tempdir(name)
    setup(env, d)
    before = snapshot(d)
    reply, took, log = login_reply(ctx, d, args)
    ctx.count("spool problems tried")
    check(reply == expect, f"{name}: login got {reply!r}, expected {expect!r}\n{log}")
    check(took < 3, f"{name}: the refusal took {took:.1f}s")
    check(any(w in log for w in log_words),
          f"{name}: the log does not say why (none of {log_words}):\n{log}")
    changes = diff(before, snapshot(d))
    check(not changes, f"{name}: files changed: {changes}")


def _real_file(env, d, name="real", user="alice", mode=0o600):
    p = d / name
    p.write_bytes(spool_data())
    os.chmod(p, mode)
    env.chown_to(p, user)
    return p


def test_symlink(ctx):
    def setup(env, d):
        _real_file(env, d)
        os.symlink(d / "real", d / "alice")
    refused(ctx, "symlink", setup, ["symbolic links", "refused"])


def test_symlink_to_other_users_spool(ctx):
    def setup(env, d):
        _real_file(env, d, "bob", "bob")
        os.symlink(d / "bob", d / "alice")
    refused(ctx, "symlink-to-bob", setup, ["symbolic links", "refused"])


def test_hard_link(ctx):
    def setup(env, d):
        _real_file(env, d, "alice")
        os.link(d / "alice", d / "other")
    refused(ctx, "hardlink", setup, ["refused: 2 hard links, not 1"])


def test_directory(ctx):
    def setup(env, d):
        (d / "alice").mkdir()
        env.chown_to(d / "alice", "alice")
    refused(ctx, "directory", setup, ["Is a directory", "refused"])


def test_fifo(ctx):
    """A FIFO must not block the open (O_NONBLOCK) nor the session."""
    def setup(env, d):
        os.mkfifo(d / "alice", 0o600)
        env.chown_to(d / "alice", "alice")
    refused(ctx, "fifo", setup, ["refused: not a regular file"])


def test_unix_socket(ctx):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)

    def setup(env, d):
        s.bind(str(d / "alice"))
        env.chown_to(d / "alice", "alice")
    try:
        refused(ctx, "socket", setup, ["refused", "No such device"])
    finally:
        s.close()


def test_other_owner(ctx):
    if not ctx.env.really_root:
        raise harness.TestSkipped("needs root to give the file to bob")
    refused(ctx, "owned-by-bob", lambda env, d: _real_file(env, d, "alice", "bob"),
            ["refused: owned by uid"])


def test_other_group_world_writable(ctx):
    """alice's file, bob's group, mode 0666: anyone could rewrite it."""
    def setup(env, d):
        p = _real_file(env, d, "alice", "alice", 0o666)
        if env.really_root:
            os.chown(p, env.uid("alice"), env.users["bob"][1])
        os.chmod(p, 0o666)
    refused(ctx, "group-bob-0666", setup, ["refused: writable by others (mode 0666)"])


def test_directory_writable_by_others(ctx):
    """Anyone could swap the spool in a directory like this (no sticky bit)."""
    def setup(env, d):
        _real_file(env, d, "alice")
        os.chmod(d, 0o777)
    refused(ctx, "dir-0777", setup,
            ["refused: the spool directory is writable by others and not sticky"])


def test_not_mbox(ctx):
    def setup(env, d):
        env.install_spool(d / "alice", b"Subject: no From_ line\n\nbody\n")
    refused(ctx, "not-mbox", setup, ["not an mbox"])


def test_over_max_size(ctx):
    refused(ctx, "max-size", lambda env, d: _real_file(env, d, "alice"),
            ["--max-size"], args=["--max-size=100000"])


def test_over_max_messages(ctx):
    refused(ctx, "max-messages", lambda env, d: _real_file(env, d, "alice"),
            ["--max-messages"], args=["--max-messages=5"])


# --- in the middle of a session ------------------------------------------------

def _session_then(ctx, name, change, after_login=None):
    """Login, let change(d, spool) act, then RETR every message, DELE 1
    and QUIT. Returns (replies, spool bytes after change, log)."""
    env = ctx.env
    d = env.tempdir(name)
    spool = env.install_spool(d / "alice", spool_data())
    p = env.session(d)
    replies = {}
    try:
        p.login()
        state = change(env, d, spool)
        before = snapshot(d)
        for i in range(1, len(TOKENS) + 1):
            r = p.cmd(f"RETR {i}")
            if r.startswith("+OK"):
                body = b"".join(line + b"\r\n" for line in p.multiline())
                replies[i] = ("+OK", body)
            else:
                replies[i] = (r, None)
        p.cmd("DELE 1")
        replies["QUIT"] = p.cmd("QUIT")
        p.wait_eof()
    finally:
        p.close()
    check_log_clean(p.stderr)
    ctx.count("spool problems tried")
    return replies, before, snapshot(d), state, log_text(p.stderr)


def _mid_session_check(name, replies, before, after, cut_tokens, log):
    problems = []
    for i, t in enumerate(TOKENS, 1):
        status, body = replies[i]
        if t in cut_tokens:
            if status != SYS_TEMP:
                problems.append(f"{name}: RETR {i} of a message that is gone or cut: {status!r}")
        elif status == "+OK" and body != mboxcheck.retr_form(MSGS[t]):
            problems.append(f"{name}: RETR {i} sent a wrong message as complete")
    if not UPDATE_FAILED_RE.match(replies["QUIT"]):
        problems.append(f"{name}: QUIT after DELE got {replies['QUIT']!r}, "
                        f"expected -ERR [SYS/TEMP] (nothing deleted)")
    changes = diff(before, after)
    if changes:
        problems.append(f"{name}: pop3d modified the spool after the change: {changes}")
    if "changed by another program" not in log and "shrank" not in log:
        problems.append(f"{name}: no log line about the change:\n{log}")
    check(not problems, "\n".join(problems))


def test_shrinks_mid_session(ctx):
    """An MUA cuts the spool in the middle of message 5 (under the MTA
    locks) while pop3d has it listed."""
    def change(env, d, spool):
        data = spool.read_bytes()
        cut = data.index(EXPECTED[TOKENS[4]]) + 100
        with harness.MtaLock(spool) as lk:
            lk.rewrite(data[:cut])
        return cut
    replies, before, after, _cut, log = _session_then(ctx, "shrinks", change)
    _mid_session_check("shrinks", replies, before, after, set(TOKENS[4:]), log)


def test_truncated_to_zero_mid_session(ctx):
    def change(env, d, spool):
        with harness.MtaLock(spool) as lk:
            lk.rewrite(b"")
    replies, before, after, _s, log = _session_then(ctx, "truncated", change)
    _mid_session_check("truncated to 0", replies, before, after, set(TOKENS), log)


def test_replaced_by_rename_mid_session(ctx):
    """An MUA rewrites the spool the other way: a new file renamed over it
    (here with message 1 removed). The session's messages are no longer in
    the spool: UPDATE must say -ERR [SYS/TEMP] and touch nothing."""
    def change(env, d, spool):
        data = spool.read_bytes()
        new = d / "alice.new"
        new.write_bytes(data[len(EXPECTED[TOKENS[0]]):])
        os.chmod(new, 0o600)
        env.chown_to(new, "alice")
        os.rename(new, spool)
    replies, before, after, _s, log = _session_then(ctx, "renamed", change)
    problems = []
    if not UPDATE_FAILED_RE.match(replies["QUIT"]):
        problems.append(f"QUIT after the spool was replaced got {replies['QUIT']!r}, "
                        f"expected -ERR [SYS/TEMP]: the DELE went to the old, unlinked "
                        f"file")
    changes = diff(before, after)
    if changes:
        problems.append(f"the new spool was modified: {changes}")
    check(not problems, "\n".join(problems))


def test_replaced_by_symlink_mid_session(ctx):
    def change(env, d, spool):
        real = _real_file(env, d, "real")
        os.unlink(spool)
        os.symlink(real, spool)
    replies, before, after, _s, log = _session_then(ctx, "symlinked", change)
    problems = []
    if not UPDATE_FAILED_RE.match(replies["QUIT"]):
        problems.append(f"QUIT after the spool became a symlink got {replies['QUIT']!r}, "
                        f"expected -ERR [SYS/TEMP]")
    changes = diff(before, after)
    if changes:
        problems.append(f"files changed: {changes}")
    check(not problems, "\n".join(problems))


def test_truncated_during_retr(ctx):
    """The spool is truncated (without any lock, as a broken program would)
    while a 600 KB message is being sent: the transfer must end without
    its final "." and nothing may be written to the spool."""
    env = ctx.env
    spool_data()
    d = env.tempdir("truncated-during-retr")
    spool = env.install_spool(d / "alice", SMALL)
    log = d.parent / (d.name + ".shim")
    # Reads so far: the parse. RETR 6 (the big one) reads its first
    # 64 KiB with its check, before +OK, then the rest in 64 KiB chunks:
    # the pause is on the second, mid-message. (It was the sixth while
    # every RETR parsed its message again first, issue 12.)
    p = env.session(d, trace=True, paths=[spool], log=log, rules="")
    try:
        p.login()
        from faultlib import shim_log
        n_login = sum(1 for e in shim_log(log) if e[0] == "CALL" and e[2] == "pread")
        p.cmd("QUIT")
    finally:
        p.close()
    log.unlink()
    p = env.session(d, rules=f"pread@{n_login + 2}=pause:1500", paths=[spool], log=log)
    try:
        p.login()
        p.send("RETR 6")
        time.sleep(0.5)
        os.truncate(spool, SMALL.index(EXPECTED[TOKENS[5]]) + 1000)
        before = snapshot(d)
        raw = p.wait_eof(20)
    finally:
        p.close()
    ctx.count("spool problems tried")
    from faultlib import fired
    check(fired(log), "the pause never happened")
    check(raw.startswith(b"+OK"), f"RETR reply {raw[:60]!r}")
    check(not raw.endswith(b"\r\n.\r\n"), "a cut message was ended with '.'")
    check(not diff(before, snapshot(d)), "pop3d changed the spool")
    text = log_text(p.stderr)
    check("shrank" in text or "changed" in text, f"log: {text}")


# --- a journal tied to its spool (issue 13, point 6) -------------------------
#
# Real ext4 on loop devices (as root): the two ways a journal named after
# the spool's device and inode went wrong. A file system of its own makes
# inode reuse likely and lets the device number change under the spool.

class Ext4:
    """A small ext4 image, attached to a loop device and mounted."""

    def __init__(self, ctx, name):
        if not ctx.env.really_root:
            raise harness.TestSkipped("needs real root (loop devices)")
        for tool in ("losetup", "mkfs.ext4", "mount", "umount"):
            if shutil.which(tool) is None:
                raise harness.TestSkipped(f"no {tool}")
        base = ctx.env.tempdir(name)
        self.image = base / "fs.img"
        self.mnt = base / "mnt"
        self.mnt.mkdir()
        with open(self.image, "wb") as f:
            f.truncate(32 << 20)
        subprocess.run(["mkfs.ext4", "-q", "-F", str(self.image)], check=True)
        self.loops = []
        self.mounted = False
        self.attach()
        self.mount()

    def attach(self):
        try:
            out = subprocess.run(["losetup", "--find", "--show", str(self.image)],
                                 check=True, capture_output=True, text=True)
        except subprocess.CalledProcessError as e:
            raise harness.TestSkipped(f"losetup: {e.stderr.strip()}")
        self.loops.append(out.stdout.strip())

    def detach(self, dev):
        subprocess.run(["losetup", "-d", dev], check=True)
        self.loops.remove(dev)

    def mount(self):
        subprocess.run(["mount", "-t", "ext4", self.loops[-1], str(self.mnt)], check=True)
        self.mounted = True

    def umount(self):
        subprocess.run(["umount", str(self.mnt)], check=True)
        self.mounted = False

    def close(self):
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.mnt)])
        for dev in list(self.loops):
            subprocess.run(["losetup", "-d", dev])
        self.loops = []


def kill_inside_update(ctx, d, spool, dele):
    """Login, DELE, QUIT, and the session killed at its second write to
    the spool: UPDATE has begun (its journal is in place)."""
    log = d.parent / (d.name + ".shim")
    p = ctx.env.session(d, rules="pwrite@2=kill", paths=[spool], log=log)
    try:
        p.login()
        for i in dele:
            check(p.cmd(f"DELE {i + 1}").startswith("+OK"), "DELE")
        p.send("QUIT")
        p.proc.wait(30)
    finally:
        p.close()
    from faultlib import fired
    check(fired(log), "the kill inside UPDATE never fired")
    jname = journal_name(spool)
    check(ctx.env.journal_files(), "no journal pending after the kill")
    lock = d / "alice.lock"
    if lock.exists():
        lock.unlink()       # see test_kill: a stale dotlock
    return jname


def test_kill_then_spool_recreated(ctx):
    """A session killed inside UPDATE; then the spool is removed and made
    again (an MUA that removes empty mailboxes, an admin), and ext4 gives
    the new file the old inode number. The next login must not apply the
    old journal to it: the new message stays byte for byte, the journal
    is set aside as stale, and the login serves the new spool."""
    data = spool_data()
    fs = Ext4(ctx, "recreated")
    try:
        d = fs.mnt / "mail"
        d.mkdir()
        spool = ctx.env.install_spool(d / "alice", data)
        old_ino = os.stat(spool).st_ino
        jname = kill_inside_update(ctx, d, spool, [0])
        spool.unlink()
        new = (b"From admin@example.org Mon Jan  1 00:00:00 2024\n"
               b"Subject: the new spool\n\nmust not be overwritten\n")
        ctx.env.install_spool(d / "alice", new)
        same = os.stat(spool).st_ino == old_ino
        ctx.note(f"spool recreated on ext4: inode {'reused' if same else 'not reused'}")
        p = ctx.env.session(d)
        try:
            reply = p.login()
            p.cmd("QUIT")
        finally:
            p.close()
        check(reply.startswith("+OK maildrop has 1 message"),
              f"login after the spool was recreated: {reply!r}\n{log_text(p.stderr)}")
        check(spool.read_bytes() == new, "the old journal was applied to the new spool")
        files = ctx.env.journal_files()
        check(jname + ".stale" in files and jname not in files,
              f"journal not set aside as stale: {files}")
        check(b"replaced by another file" in p.stderr, f"log: {log_text(p.stderr)}")
        os.unlink(ctx.env.journal_dir() / (jname + ".stale"))
    finally:
        fs.close()


def test_kill_then_device_renumbered(ctx):
    """A session killed inside UPDATE; then the file system comes back on
    another device number (a reboot renumbering loop, LVM or dm minors).
    The next login must still find the journal and finish the UPDATE:
    the kept messages once and byte-exact, the deleted one gone."""
    data = spool_data()
    fs = Ext4(ctx, "renumbered")
    try:
        d = fs.mnt / "mail"
        d.mkdir()
        spool = ctx.env.install_spool(d / "alice", data)
        old_dev = os.stat(spool).st_dev
        jname = kill_inside_update(ctx, d, spool, [0])
        fs.umount()
        old_loop = fs.loops[0]
        fs.attach()             # the image on a second loop device
        fs.detach(old_loop)
        fs.mount()
        new_dev = os.stat(spool).st_dev
        check(new_dev != old_dev, "the device number did not change (test premise)")
        p = ctx.env.session(d)
        try:
            reply = p.login()
            p.cmd("QUIT")
        finally:
            p.close()
        kept = TOKENS[1:]
        a = mboxcheck.Audit(spool.read_bytes(), EXPECTED).check(kept, TOKENS[:1])
        check(reply.startswith(f"+OK maildrop has {len(kept)} message"),
              f"login after the device changed: {reply!r}\n{log_text(p.stderr)}")
        check(a["ok"] and not a["reappeared"] and a["messages"] == len(kept),
              f"after recovery: {a['kept_intact']}/{a['kept_checked']} kept intact, "
              f"{a['reappeared']} deleted back")
        check(not ctx.env.journal_files(), f"journal still pending: {ctx.env.journal_files()}")
        ctx.note(f"device {old_dev:#x} -> {new_dev:#x}: journal found and finished")
    finally:
        fs.close()
