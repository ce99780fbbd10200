#!/usr/bin/python3
"""A mailbox writer that locks the way Postfix local(8) does, for the
stress harness: mta_writer.py SPOOL [dotlock-first|fcntl-first|flock]

Requests on stdin: an 8-octet big-endian length, then that many octets
to append (From_ line, message and blank line, as local(8) writes them).
One reply line per request on stdout:
    OK <lock wait ms> <total ms>
    ERR <reason> <lock wait ms>
The locks, as Postfix's mbox_open() takes them for mailbox_delivery_lock
= fcntl, dotlock (Debian's default):
  1. the dotlock SPOOL.lock, created with O_CREAT|O_EXCL (dot_lockfile):
     up to deliver_lock_attempts = 20 tries, deliver_lock_delay = 1 s
     apart; a lock older than stale_lock_time = 500 s is removed;
  2. open SPOOL for append (O_APPEND, O_NONBLOCK as safe_open does);
  3. an fcntl write lock on the whole file, non-blocking (deliver_flock),
     the same 20 tries 1 s apart;
then append, fsync, unlock, close, remove the dotlock. Postfix takes the
dotlock before opening the file (src/global/mbox_open.c); "fcntl-first"
takes the kernel lock first instead, the order some older MTAs used.
"flock" takes flock(2) alone, as local(8) with mailbox_delivery_lock =
flock does (deliver_flock with MYFLOCK_STYLE_FLOCK): the same 20 tries 1 s
apart, no dotlock. A delivery that cannot get its locks is deferred
(ERR), as local(8) does.
"""

import errno
import fcntl
import os
import struct
import sys
import time

TRIES = 20
DELAY = 1.0
STALE = 500


def dotlock(lock):
    for i in range(TRIES):
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
            return True
        except FileExistsError:
            try:
                if time.time() - os.stat(lock).st_mtime > STALE:
                    os.unlink(lock)
                    continue
            except FileNotFoundError:
                continue
        if i + 1 < TRIES:
            time.sleep(DELAY)
    return False


def kernel_lock(fd, take=fcntl.lockf):
    for i in range(TRIES):
        try:
            take(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
        if i + 1 < TRIES:
            time.sleep(DELAY)
    return False


def deliver(spool, data, order):
    lock = spool + ".lock"
    t0 = time.monotonic()
    fd = -1
    have_dot = False
    try:
        if order == "dotlock-first":
            if not dotlock(lock):
                return "ERR dotlock", t0
            have_dot = True
            fd = os.open(spool, os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK)
            if not kernel_lock(fd):
                return "ERR fcntl", t0
        elif order == "flock":
            fd = os.open(spool, os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK)
            if not kernel_lock(fd, fcntl.flock):
                return "ERR flock", t0
        else:
            fd = os.open(spool, os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK)
            if not kernel_lock(fd):
                return "ERR fcntl", t0
            if not dotlock(lock):
                return "ERR dotlock", t0
            have_dot = True
        waited = time.monotonic() - t0
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
        return f"OK {waited * 1000:.1f}", t0
    finally:
        if fd >= 0:
            try:
                (fcntl.flock if order == "flock" else fcntl.lockf)(fd, fcntl.LOCK_UN)
            except OSError:
                pass
            os.close(fd)
        if have_dot:
            os.unlink(lock)


def main():
    spool = sys.argv[1]
    order = sys.argv[2] if len(sys.argv) > 2 else "dotlock-first"
    inp = sys.stdin.buffer
    out = sys.stdout
    while True:
        head = inp.read(8)
        if len(head) < 8:
            return 0
        (n,) = struct.unpack(">Q", head)
        data = inp.read(n)
        try:
            res, t0 = deliver(spool, data, order)
        except OSError as e:
            res, t0 = f"ERR {e.strerror.replace(' ', '_')}", time.monotonic()
        total = (time.monotonic() - t0) * 1000
        if res.startswith("OK"):
            out.write(f"{res} {total:.1f}\n")
        else:
            out.write(f"{res} {total:.1f}\n")
        out.flush()


if __name__ == "__main__":
    sys.exit(main())
