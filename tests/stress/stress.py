#!/usr/bin/python3
"""Stress harness for pop3d (issue 5): real delivery agents append to the
spools while concurrent POP3 clients read and delete, then an invariant
is checked over everything that was delivered.

    stress.py --binary build/pop3d [--users 5] [--clients 20]
              [--deliveries 2000] [--min-seconds 20] [--max-seconds 300]
              [--writer-order dotlock-first|fcntl-first|flock]
              [--idle-seconds S] [--seed N] [--keep]

Delivery agents, half the deliveries each (with --writer-order flock, the
writer all of them: it shares no lock with procmail):
  procmail   Debian's procmail as the MDA, run as the recipient (uid/gid of
             the spool's owner) with a tiny rcfile that delivers to the
             spool with its own locking (":0:" = a dotlock, plus procmail's
             fcntl lock on the folder). It is given the From_ line, as
             Postfix's mailbox_command would give it.
  writer     tests/stress/mta_writer.py, one process per user running as
             that user, which locks exactly as Postfix local(8) does (see
             there) and appends From_ line, message and blank line; with
             --writer-order flock, as local(8) with mailbox_delivery_lock
             = flock: flock(2) alone.
Every message carries a unique token (Message-ID, X-Stress-Token, first
body line). A delivery that fails is retried with a new token, up to 3
times; the failed token must then never show up.

POP3 clients: --clients threads, each session for a random user over
127.0.0.1 to pop3d run by systemd-socket-activate --inetd --accept with the
cwrap environment (as tests/demo.sh does). A session lists (LIST, UIDL),
retrieves a random subset (checking each RETR byte for byte against what
was delivered, after CRLF conversion, and its size against LIST), looks
at a few with TOP, deletes some of what it retrieved, sometimes RSETs,
and ends with QUIT, or drops the connection (sometimes in the middle of a
RETR), or sends QUIT without waiting for the reply, or resets (RST).
With --idle-seconds S a tenth of the sessions first sit idle for 0.5 S
to S after their listing, as a client that keeps its session open does:
with S above --max-lock-wait, a pop3d that held any lock a writer takes
for the whole session fails the lock-wait verdict (as pop3d did before
round 15 of issue 13 with --writer-order flock).
A second session for a busy maildrop gets [IN-USE] and tries later.

Invariant at the end (one PASS/FAIL line each, then "N passed, N failed"):
every delivered message was retrieved complete and deleted (confirmed by
+OK to QUIT), or is in its spool intact, once; no message was retrieved
after its deletion was confirmed; the spools parse with Python's
mailbox.mbox and formail -s and agree with pop3d's own listing; the UIDL
of a message never changed. Figures: throughput (sessions/s,
deliveries/s), the longest lock wait of a delivery, and more.
"""

import argparse
import collections
import mailbox
import os
import pwd
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "faults"))
sys.dont_write_bytecode = True

import mboxcheck  # noqa: E402
import faultlib  # noqa: E402
import postfix_mta  # noqa: E402

EXTRA_USERS = ["frank", "grace", "heidi", "ivan", "judy", "mallory", "niaj", "olivia"]
BASE_USERS = {"alice": "secret", "bob": "hunter2", "carol": "a b c", "demo": "demo"}


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.c = collections.Counter()
        self.samples = collections.defaultdict(list)
        self.violations = collections.defaultdict(list)

    def inc(self, k, n=1):
        with self.lock:
            self.c[k] += n

    def sample(self, k, v):
        with self.lock:
            self.samples[k].append(v)

    def violation(self, k, text):
        with self.lock:
            self.violations[k].append(text)


class World:
    """What was delivered, retrieved and deleted; shared by all threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.retr = {}          # token -> RETR form (CRLF)
        self.stored = {}        # token -> stored form (From_ .. blank line)
        self.user_of = {}       # token -> user
        self.delivered = set()
        self.failed = set()     # tokens of failed delivery attempts
        self.confirmed = {}     # token -> monotonic time its deletion was confirmed
        self.ambiguous = set()  # DELEted, QUIT sent, reply never seen
        self.uids = collections.defaultdict(set)   # token -> uids seen
        # --mta postfix: the MTA prepends header lines; what was injected
        # (token -> message) must follow them unchanged.
        self.prefixed = False
        self.msgs = {}

    def matches(self, body, want):
        if body == want:
            return True
        return self.prefixed and postfix_mta.prefixed_match(body, want)


# --- setup ------------------------------------------------------------------------

def add_users(env, names, uids=None):
    """More cwrap users: passwd, group and passdb lines (uid 2001 on as
    root, or as uids says; our own uid otherwise)."""
    cw = env.base.child_env
    passwd, group = Path(cw["NSS_WRAPPER_PASSWD"]), Path(cw["NSS_WRAPPER_GROUP"])
    passdb = Path(cw["NSS_WRAPPER_PASSWD"]).parent / "passdb"
    users = dict(BASE_USERS)
    with open(passwd, "a") as pw, open(group, "a") as gr, open(passdb, "a") as pd:
        for i, name in enumerate(names):
            if env.really_root:
                uid = gid = uids[name] if uids else 2001 + i
                gr.write(f"{name}:x:{gid}:\n")
            else:
                uid, gid = os.getuid(), os.getgid()
            home = passwd.parent / "home" / name
            home.mkdir(parents=True, exist_ok=True)
            pw.write(f"{name}:x:{uid}:{gid}:{name}:{home}:/bin/sh\n")
            pd.write(f"{name}:pw-{name}:pop3\n")
            env.users[name] = (uid, gid, str(home))
            users[name] = f"pw-{name}"
    return users


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_server(env, maildir, logf, args=()):
    port = free_port()
    cmd = ["systemd-socket-activate", "--inetd", "--accept", f"--listen=127.0.0.1:{port}"]
    cw = env.base.child_env
    for name in cw["POP3D_CWRAP_VARS"].split():
        # The harness may keep LD_PRELOAD for its private-/tmp wrapper.
        value = cw["POP3D_CWRAP_PRELOAD"] if name == "LD_PRELOAD" else cw[name]
        cmd += ["-E", f"{name}={value}"]
    cmd += env.command(maildir, args)
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                            start_new_session=True)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("systemd-socket-activate did not start listening")
            time.sleep(0.05)
    return proc, port


# --- deliveries -------------------------------------------------------------------

class Writers:
    """One mta_writer.py per user, running as that user. The user may not
    be able to read the checkout (a clone under /root, or in a mode 0700
    directory): the writer runs from a copy in the work directory, which
    is also its working directory."""

    def __init__(self, env, spools, order):
        self.procs = {}
        self.locks = {}
        writer = env.workdir / "mta_writer.py"
        shutil.copyfile(HERE / "mta_writer.py", writer)
        os.chmod(writer, 0o644)
        for user, spool in spools.items():
            uid, gid, _ = env.users[user]
            kw = dict(user=uid, group=gid, extra_groups=[]) if env.really_root else {}
            self.procs[user] = subprocess.Popen(
                ["/usr/bin/python3", "-B", str(writer), str(spool), order],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=env.workdir, **kw)
            self.locks[user] = threading.Lock()

    def deliver(self, user, data):
        with self.locks[user]:
            p = self.procs[user]
            p.stdin.write(struct.pack(">Q", len(data)) + data)
            p.stdin.flush()
            line = p.stdout.readline().decode().split()
        if not line:
            return False, None, None
        if line[0] == "OK":
            return True, float(line[1]), float(line[2])
        return False, line[1], float(line[2])

    def close(self):
        for p in self.procs.values():
            try:
                p.stdin.close()
            except OSError:
                pass
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def procmail_as_user(env, user):
    """Can procmail run as the recipient? It looks its uid up in the real
    passwd database (and crashes when the uid is not there); it is setuid
    root, so it ignores the nss_wrapper that gives our test users their
    names. Where the uid is unknown to /etc/passwd, procmail runs as root
    in mail filter mode (-m: it then keeps root's uid, and appends to the
    user's spool without changing its owner)."""
    if not env.really_root:
        return True
    try:
        pwd.getpwuid(env.users[user][0])
        return True
    except KeyError:
        return False


def procmail_deliver(env, rcfile, user, spool, data):
    uid, gid, home = env.users[user]
    if procmail_as_user(env, user):
        kw = dict(user=uid, group=gid, extra_groups=[]) if env.really_root else {}
        argv = ["procmail", f"SPOOL={spool}", str(rcfile)]
    else:
        kw = {}
        argv = ["procmail", "-m", f"SPOOL={spool}", str(rcfile)]
    t0 = time.monotonic()
    r = subprocess.run(argv, input=data, cwd=env.workdir,
                       capture_output=True, env={"PATH": "/usr/bin:/bin", "HOME": home,
                                                 "SHELL": "/bin/sh"}, **kw)
    took = (time.monotonic() - t0) * 1000
    return r.returncode == 0, r, took


def delivery_worker(opts, env, world, stats, jobs, spools, writers, rcfile, rng, mta=None):
    """Deliver the jobs of one user's queue, one at a time: MDAs contend
    with pop3d, not with each other."""
    while True:
        with world.lock:
            if not jobs:
                return
            n, user, agent, attempt = jobs.popleft()
        token = f"d{n:05d}{agent[0]}{attempt}"
        r = rng.random()
        size = None
        if r < 0.02:
            size = rng.randint(300_000, 1_000_000)
        elif r < 0.10:
            size = rng.randint(20_000, 60_000)
        msg = mboxcheck.make_message(token, rng, size=size, user=user)
        if agent == "writer":
            msg = (b"Return-Path: <sender@example.org>\nDelivered-To: %s@%s\n"
                   % (user.encode(), mboxcheck.DOMAIN)) + msg
        if agent == "postfix":
            msg = postfix_mta.postfix_safe(msg)
        fl = mboxcheck.from_line(rng)
        stored = mboxcheck.stored_form(msg, fl)
        with world.lock:
            world.retr[token] = mboxcheck.retr_form(msg)
            world.stored[token] = stored
            world.user_of[token] = user
            world.msgs[token] = msg
        if agent == "postfix":
            ok, took = mta.inject(user, msg)
            stats.sample("sendmail ms", took)
            stats.sample("injected at", time.monotonic())
        elif agent == "procmail":
            ok, res, took = procmail_deliver(env, rcfile, user, spools[user], fl + msg)
            stats.sample("procmail ms", took)
            if not ok:
                stats.inc(f"procmail failures (exit {res.returncode})")
                if stats.c["procmail failures shown"] < 3:
                    stats.inc("procmail failures shown")
                    print(f"# procmail exit {res.returncode}: "
                          f"{res.stderr.decode(errors='replace').strip()[:300]}", flush=True)
        else:
            ok, wait, took = writers.deliver(user, stored)
            stats.sample("writer ms", took)
            if ok:
                stats.sample("writer lock wait ms", wait)
            else:
                stats.inc(f"writer failures ({wait})")
        with world.lock:
            if ok:
                world.delivered.add(token)
            else:
                world.failed.add(token)
                if attempt < 3:
                    jobs.append((n, user, agent, attempt + 1))
        stats.inc(f"deliveries by {agent}" if ok else f"failed attempts by {agent}")


# --- POP3 clients --------------------------------------------------------------------

class Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.f = self.sock.makefile("rb", buffering=65536)

    def line(self):
        data = self.f.readline()
        if not data:
            return None
        if not data.endswith(b"\r\n"):
            raise ValueError(f"line without CRLF: {data[-40:]!r}")
        return data[:-2]

    def send(self, text):
        self.sock.sendall(text.encode() + b"\r\n")

    def cmd(self, text):
        self.send(text)
        return self.line()

    def multi(self):
        """A multi-line body dot-unstuffed, as bytes with CRLFs; None if the
        connection ended before the final '.'."""
        out = []
        while True:
            ln = self.f.readline()
            if not ln:
                return None
            if ln == b".\r\n":
                return b"".join(out)
            if not ln.endswith(b"\r\n"):
                raise ValueError("body line without CRLF")
            out.append(ln[1:] if ln.startswith(b".") else ln)

    def close(self, rst=False):
        if rst:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        try:
            self.f.close()
            self.sock.close()
        except OSError:
            pass


def note_uid(world, stats, token, uid):
    with world.lock:
        seen = world.uids[token]
        if seen and uid not in seen:
            stats.violation("UIDL changed", f"{token}: {sorted(seen)} then {uid}")
        seen.add(uid)


IDLE_SHARE = 0.1       # of sessions, with --idle-seconds


def client_session(opts, ports, users, world, stats, rng, final=False, user=None):
    """One session on one of the hosts (ports: one listener each)."""
    user = user or rng.choice(list(users))
    port = rng.choice(ports)
    if len(ports) > 1:
        stats.inc(f"sessions on host {'abcdefgh'[ports.index(port)]}")
    c = Conn(port)
    t_start = time.monotonic()
    try:
        g = c.line()
        if g is None:
            # Checked against the exit statuses in the log at the end.
            stats.inc("connections closed before the greeting")
            return
        if g != b"+OK pop3d ready":
            stats.violation("protocol", f"greeting {g!r}")
            return
        c.cmd(f"USER {user}")
        r = c.cmd(f"PASS {users[user]}")
        if r is None:
            stats.violation("protocol", f"{user}: EOF after PASS")
            return
        if r.startswith(b"-ERR [IN-USE]"):
            stats.inc("sessions refused [IN-USE]")
            if len(ports) > 1:
                stats.inc(f"[IN-USE] on host {'abcdefgh'[ports.index(port)]}")
            return "in-use"
        if not r.startswith(b"+OK maildrop has"):
            stats.inc(f"logins failed: {r.decode(errors='replace')[:60]}")
            return "failed"
        login_time = time.monotonic()
        stats.sample("login ms", (login_time - t_start) * 1000)
        stats.inc("sessions logged in")
        c.send("UIDL")
        if c.line() != b"+OK unique-id listing follows":
            stats.violation("protocol", "UIDL")
            return
        uidl = {}
        for ln in c.multi().split(b"\r\n")[:-1]:
            n, u = ln.split(b" ")
            uidl[int(n)] = u.decode()
        c.send("LIST")
        c.line()
        sizes = {}
        for ln in c.multi().split(b"\r\n")[:-1]:
            n, s = ln.split(b" ")
            sizes[int(n)] = int(s)
        if set(uidl) != set(sizes):
            stats.violation("protocol", "UIDL and LIST disagree")
        if len(set(uidl.values())) != len(uidl):
            stats.violation("UIDL changed", f"{user}: duplicate ids in one listing")
        nums = sorted(uidl)
        if opts.idle_seconds and not final and rng.random() < IDLE_SHARE:
            # A client that keeps its session open while its user reads
            # (an MUA's leave-open, a slow link): no step runs, so no
            # delivery may wait for it, whatever lock it takes.
            time.sleep(rng.uniform(0.5, 1.0) * opts.idle_seconds)
            stats.inc("sessions that idled")
        if final:
            want = nums
        else:
            k = min(len(nums), rng.choice([0, 1, 2, 5, 10, 30]))
            want = rng.sample(nums, k)
        retrieved = {}
        dropped_mid = not final and rng.random() < 0.05 and want
        for i, n in enumerate(want):
            if dropped_mid and i == len(want) - 1:
                c.send(f"RETR {n}")
                stats.inc("sessions dropped in the middle of a RETR")
                c.close()
                return
            r = c.cmd(f"RETR {n}")
            if r is None:
                stats.violation("protocol", f"EOF after RETR {n}")
                return
            if not r.startswith(b"+OK"):
                stats.inc(f"RETR refused: {r.decode(errors='replace')[:50]}")
                continue
            body = c.multi()
            if body is None:
                stats.inc("RETR cut off (no final '.')")
                return
            stats.inc("messages retrieved")
            stats.inc("octets retrieved", len(body))
            token = mboxcheck.token_of(body)
            with world.lock:
                want_body = world.retr.get(token)
                conf = world.confirmed.get(token)
                tuser = world.user_of.get(token)
            if want_body is None:
                stats.violation("RETR not byte-exact", f"{user} #{n}: unknown message "
                                f"{body[:100]!r}")
                continue
            if not world.matches(body, want_body):
                stats.violation("RETR not byte-exact", f"{user} #{n} {token}: "
                                f"{len(body)} octets, expected {len(want_body)}")
                continue
            if len(body) != sizes[n]:
                stats.violation("RETR not byte-exact", f"{token}: LIST said {sizes[n]}, "
                                f"RETR gave {len(body)}")
            if tuser != user:
                stats.violation("RETR not byte-exact", f"{token} of {tuser} in {user}'s spool")
            if conf is not None and conf < login_time:
                stats.violation("retrieved after its deletion was confirmed",
                                f"{token} ({user})")
            note_uid(world, stats, token, uidl[n])
            retrieved[n] = token
        if final:
            c.cmd("QUIT")
            return retrieved
        # A look at a few others with TOP.
        for n in rng.sample(nums, min(2, len(nums))):
            r = c.cmd(f"TOP {n} 0")
            if r and r.startswith(b"+OK"):
                head = c.multi()
                if head is None:
                    return
                t = mboxcheck.token_of(head)
                if t is not None:
                    note_uid(world, stats, t, uidl[n])
        deleted = []
        for n, t in retrieved.items():
            if rng.random() < 0.4:
                if c.cmd(f"DELE {n}").startswith(b"+OK"):
                    deleted.append(t)
        if deleted and rng.random() < 0.1:
            c.cmd("RSET")
            stats.inc("RSETs")
            deleted = []
        r = rng.random()
        if r < 0.08:
            stats.inc("sessions dropped")
            c.close()
            return
        if r < 0.12:
            stats.inc("sessions reset (RST)")
            c.close(rst=True)
            return
        if r < 0.17:
            c.send("QUIT")
            stats.inc("QUIT without waiting for the reply")
            with world.lock:
                world.ambiguous.update(deleted)
            c.close()
            return
        t0 = time.monotonic()
        r = c.cmd("QUIT")
        stats.sample("QUIT ms", (time.monotonic() - t0) * 1000)
        if r is not None and r.startswith(b"+OK"):
            stats.inc("QUIT +OK")
            stats.inc("QUITs with deletions" if deleted else "QUITs with nothing deleted")
            stats.inc("messages deleted (confirmed)", len(deleted))
            now = time.monotonic()
            with world.lock:
                for t in deleted:
                    world.confirmed[t] = now
        elif r is None:
            stats.inc("QUIT without a reply")
            with world.lock:
                world.ambiguous.update(deleted)
        else:
            stats.inc(f"QUIT -ERR: {r.decode(errors='replace')[:60]}")
    except (OSError, ValueError) as e:
        stats.inc(f"client errors: {type(e).__name__}")
        stats.violation("protocol", f"{user}: {e}")
    finally:
        c.close()
        stats.inc("sessions")


def client_worker(opts, ports, users, world, stats, rng, stop):
    while not stop.is_set():
        r = client_session(opts, ports, users, world, stats, rng)
        # A client's think time between sessions, longer after [IN-USE].
        time.sleep(rng.uniform(0.05, 0.3) if r == "in-use" else rng.uniform(0.02, 0.2))


# --- the end ------------------------------------------------------------------------

def formail_ids(spool):
    """Message-IDs as formail -s splits the spool (one line per message)."""
    with open(spool, "rb") as f:
        # The inner formail stops reading after the header; cat takes the
        # rest, or the outer one sees EPIPE and exits 74.
        r = subprocess.run(["formail", "-s", "sh", "-c",
                            "formail -czx Message-ID:; cat >/dev/null"], stdin=f,
                           capture_output=True, check=False)
    if r.returncode != 0:
        return None
    return [ln.strip() for ln in r.stdout.decode(errors="replace").splitlines()]


def mbox_ids(spool):
    box = mailbox.mbox(str(spool), create=False)
    try:
        return [(m["Message-ID"] or "").strip() for m in box]
    finally:
        box.close()


def postfix_verdicts(opts, verdict, world, outcomes, queue_empty):
    """Postfix's own account: the queue emptied, every injected message
    was delivered (status=sent) once, nothing deferred by pop3d's locks
    beyond the bound. Returns the delivery latencies (Postfix's delay=,
    arrival to delivery) and the delivery-stage times (delays= d)."""
    verdict("Postfix queue empty at the end (postqueue -p)", queue_empty)
    sent, unsent, deferred = [], [], []
    for t in world.delivered:
        attempts = outcomes.get(t, [])
        deferred += [(t, a) for a in attempts if a[0] == "deferred"]
        ok = [a for a in attempts if a[0] == "sent"]
        if len(ok) == 1:
            sent.append(ok[0])
        else:
            unsent.append((t, [a[0] for a in attempts]))
    verdict("every injected message delivered once (Postfix's log: status=sent)",
            not unsent, f"{len(sent)} sent, {len(unsent)} not"
            + (f": {unsent[:5]}" if unsent else ""))
    lat = [a[1] for a in sent]
    stage = [a[2] for a in sent]
    worst = max(stage, default=0)
    if opts.postfix_mda == "local":
        verdict(f"no delivery deferred or held up by pop3d for more than "
                f"{opts.max_lock_wait:.0f} s (design.md section 4, guarantee 2)",
                not deferred and worst <= opts.max_lock_wait,
                f"{len(deferred)} deferred, longest delivery stage {worst:.2f} s"
                + (f": {deferred[:3]}" if deferred else ""))
    else:
        verdict("no delivery deferred (procmail waits for the lock itself)", not deferred,
                f"{len(deferred)} deferred" + (f": {deferred[:3]}" if deferred else ""))
    return lat, stage


def pct(values, p):
    if not values:
        return 0.0
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * p))]


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--users", type=int, default=5)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--deliveries", type=int, default=2000)
    ap.add_argument("--min-seconds", type=float, default=20)
    ap.add_argument("--max-seconds", type=float, default=300)
    ap.add_argument("--max-lock-wait", type=float, default=5.0,
                    help="seconds a delivery may wait for the spool locks")
    ap.add_argument("--idle-seconds", type=float, default=0,
                    help="a tenth of the sessions idle 0.5-1 times this long "
                         "after their listing")
    ap.add_argument("--writer-order", default="dotlock-first",
                    choices=["dotlock-first", "fcntl-first", "flock"])
    ap.add_argument("--mta", default="builtin", choices=["builtin", "postfix"],
                    help="builtin: procmail and the local(8)-style writer; postfix: "
                    "Debian's Postfix (real root)")
    ap.add_argument("--postfix-mda", default="local", choices=["local", "procmail"],
                    help="with --mta postfix: local(8) writes the mailbox, or procmail "
                    "(mailbox_command, its default LOCKSLEEP of 8 s)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--hosts", type=int, default=1, choices=range(1, 9),
                    help="pop3d 'hosts' over the one spool directory: each a listener "
                         "with its own --preauth-dir, all with --shared-spool and one "
                         "--journal-dir (docs/multihost.md)")
    ap.add_argument("--keep", action="store_true")
    opts = ap.parse_args()
    seed = opts.seed if opts.seed is not None else int(time.time()) % 100000
    for tool in ("procmail", "formail", "systemd-socket-activate"):
        if shutil.which(tool) is None:
            print(f"stress: {tool} not found (Debian packages procmail, systemd)",
                  file=sys.stderr)
            return 2
    postfix = opts.mta == "postfix"
    if postfix and (os.getuid() != 0 or not postfix_mta.available()):
        print("stress: --mta postfix needs root and Postfix (tests/stress/deps.sh postfix)",
              file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="pop3d-stress-"))
    env = faultlib.Env(opts.binary, workdir, None)
    if postfix:
        # Real users, for local(8); the same uids for pop3d's cwrap.
        names = [f"pstress{i}" for i in range(1, opts.users + 1)]
        users = add_users(env, names, postfix_mta.make_users(names))
    else:
        names = (list(BASE_USERS) + EXTRA_USERS)[:opts.users]
        users = add_users(env, [n for n in names if n not in BASE_USERS])
    users = {u: users[u] for u in names}
    maildir = workdir / "mail"
    maildir.mkdir()
    os.chmod(maildir, 0o1777)
    spools = {}
    for u in users:
        spools[u] = env.install_spool(maildir / u, b"", u)
    rcfile = workdir / "procmailrc"
    rcfile.write_text("# Deliver to $SPOOL (set on the command line), with a\n"
                      "# dotlock (':0:') and procmail's own fcntl lock.\n"
                      "LOCKSLEEP=1\nDEFAULT=$SPOOL\nORGMAIL=$SPOOL\n:0:\n$SPOOL\n")
    os.chmod(rcfile, 0o644)
    os.chmod(workdir, 0o755)

    agents = (f"Debian's Postfix, {opts.postfix_mda}" if postfix else
              f"procmail and a Postfix-style writer, {opts.writer_order}")
    print(f"# stress: {env.binary} ({'ASan' if env.asan else 'plain'}), "
          f"{'with' if env.has_journal else 'without'} journal, {len(users)} users, "
          f"{opts.clients} clients, {opts.deliveries} deliveries ({agents}), "
          f"seed {seed}, work dir {workdir}", flush=True)

    logf = open(workdir / "pop3d.log", "wb")
    mta = None
    if postfix:
        mta = postfix_mta.Postfix(workdir, maildir, opts.postfix_mda, opts.max_lock_wait)
        try:
            mta.start()
        except Exception as e:
            mta.stop()
            postfix_mta.remove_users(names)
            print(f"stress: {e}", file=sys.stderr)
            return 2
        print(f"# postfix started, mailbox_delivery_lock = {mta.lock_setting}", flush=True)
    servers, ports = [], []
    for h in range(opts.hosts):
        args = []
        if opts.hosts > 1:
            empty = workdir / f"host-{'abcdefgh'[h]}-empty"
            empty.mkdir()
            os.chmod(empty, 0o555)
            args = [f"--preauth-dir={empty}", "--shared-spool"]
        server, port = start_server(env, maildir, logf, args)
        servers.append(server)
        ports.append(port)
    if opts.hosts > 1:
        print(f"# {opts.hosts} hosts over {maildir}, --shared-spool, listening on "
              + ", ".join(f"127.0.0.1:{p}" for p in ports), flush=True)
    writers = Writers(env, spools, opts.writer_order) if not postfix else None
    watch = postfix_mta.DotlockWatch(spools.values())
    watch.start()
    world, stats = World(), Stats()
    world.prefixed = postfix
    rng = random.Random(seed)
    queues = {u: collections.deque() for u in users}
    for n in range(opts.deliveries):
        u = rng.choice(list(users))
        queues[u].append((n, u, "postfix" if postfix else
                          "procmail" if n % 2 and opts.writer_order != "flock"
                          else "writer", 1))
    if not postfix:
        pm_modes = {u: "as the user" if procmail_as_user(env, u) else "as root, -m"
                    for u in users}
        print("# procmail runs " + ", ".join(f"{u} {m}" for u, m in pm_modes.items()),
              flush=True)
    stop = threading.Event()
    threads = []
    t0 = time.monotonic()
    try:
        for i in range(opts.clients):
            t = threading.Thread(target=client_worker, daemon=True,
                                 args=(opts, ports, users, world, stats,
                                       random.Random(seed * 1000 + i), stop))
            t.start()
            threads.append(t)
        dthreads = []
        for i, u in enumerate(users):
            t = threading.Thread(target=delivery_worker, daemon=True,
                                 args=(opts, env, world, stats, queues[u], spools, writers,
                                       rcfile, random.Random(seed * 7 + i), mta))
            t.start()
            dthreads.append(t)
        for t in dthreads:
            t.join(max(1, opts.max_seconds - (time.monotonic() - t0)))
        queue_empty = True
        if postfix:
            # Every message delivered (or bounced) before the last sessions.
            queue_empty = mta.wait_empty(max(10, opts.max_seconds - (time.monotonic() - t0)))
        t_deliv = time.monotonic() - t0
        while time.monotonic() - t0 < opts.min_seconds:
            time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join(180)
        elapsed = time.monotonic() - t0
        timed_out = any(t.is_alive() for t in dthreads + threads)
        # Let the last pop3d processes finish, then one final session per
        # user retrieves everything (nothing deleted).
        final_ok = {}
        for u in users:
            for _ in range(50):
                r = client_session(opts, ports, users, world, stats, rng, final=True, user=u)
                if r != "in-use":
                    break
                time.sleep(0.2)
            final_ok[u] = r
    finally:
        stop.set()
        holds = watch.finish()
        if writers is not None:
            writers.close()
        if mta is not None:
            outcomes = mta.outcomes()
            mta.stop()
            postfix_mta.remove_users(names)
        for server in servers:
            faultlib.kill_tree(server.pid, signal.SIGTERM)
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                faultlib.kill_tree(server.pid)
                server.wait()
        logf.close()

    # --- the invariant -------------------------------------------------------------
    checks = []

    def verdict(name, ok, detail=""):
        checks.append(ok)
        print(f"{'PASS' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}",
              flush=True)

    present = collections.Counter()
    damaged, unknown_pieces, parse_problems = [], 0, []
    for u, spool in spools.items():
        data = spool.read_bytes()
        expected = world.stored
        if postfix:
            expected = dict(world.stored)
            expected.update(postfix_mta.expected_chunks(data, world.msgs,
                                                        mboxcheck.split_spool,
                                                        mboxcheck.token_of))
        audit = mboxcheck.Audit(data, expected)
        for t, k in audit.intact.items():
            present[t] += k
            if world.user_of.get(t) != u:
                damaged.append(f"{t} of {world.user_of.get(t)} in {u}'s spool")
        damaged += [f"{u}: piece {i} ({t}): {head[:60]!r}" for i, t, head in audit.damaged]
        ids = [f"<{t}@{mboxcheck.DOMAIN.decode()}>" for t in audit.tokens]
        mids = mbox_ids(spool)
        if mids != ids:
            parse_problems.append(f"{u}: mailbox.mbox sees {len(mids)} messages, "
                                  f"pop3d's cut {len(ids)}")
        fids = formail_ids(spool)
        if fids != ids:
            parse_problems.append(f"{u}: formail -s sees "
                                  f"{'nothing' if fids is None else len(fids)} messages, "
                                  f"pop3d's cut {len(ids)}")
        stats.inc("messages left in the spools", len(audit.chunks))
        stats.inc("octets left in the spools", len(data))
    delivered = world.delivered
    confirmed = set(world.confirmed)
    lost = [t for t in delivered
            if t not in present and t not in confirmed and t not in world.ambiguous]
    ambiguous_gone = [t for t in world.ambiguous if t not in present and t not in confirmed]
    reappeared = [t for t in confirmed if t in present]
    dups = {t: k for t, k in present.items() if k > 1}
    strays = [t for t in present if t not in delivered]

    undone = sum(len(q) for q in queues.values())
    verdict("deliveries", not timed_out and not undone and len(delivered) == opts.deliveries,
            f"{len(delivered)} of {opts.deliveries} delivered"
            + (f", {undone} never done" if undone else "")
            + (" (timed out)" if timed_out else ""))
    verdict("no message lost", not lost,
            f"{len(lost)} delivered messages neither deleted nor in the spool"
            + (f": {sorted(lost)[:10]}" if lost else ""))
    verdict("no deleted message reappeared", not reappeared,
            f"{len(reappeared)} confirmed deletions back in the spool"
            + (f": {sorted(reappeared)[:10]}" if reappeared else ""))
    verdict("no duplicates", not dups, f"{sum(dups.values()) - len(dups)} extra copies"
            + (f": {sorted(dups)[:10]}" if dups else ""))
    verdict("spools intact", not damaged,
            f"{len(damaged)} damaged pieces" + (f": {damaged[:5]}" if damaged else ""))
    verdict("no failed delivery in the spools", not strays,
            f"{len(strays)} tokens of failed attempts present" + (f": {strays[:5]}" if strays else ""))
    for k in ("RETR not byte-exact", "retrieved after its deletion was confirmed",
              "UIDL changed", "protocol"):
        v = stats.violations.get(k, [])
        verdict(k.replace("RETR not", "every RETR").replace("UIDL changed", "UIDLs stable")
                .replace("retrieved after", "nothing retrieved after")
                .replace("protocol", "protocol clean"), not v,
                f"{len(v)} cases" + (f": {v[:5]}" if v else ""))
    verdict("spools parse with mailbox.mbox and formail -s as pop3d cuts them",
            not parse_problems, "; ".join(parse_problems[:5]))
    verdict("final sessions retrieved every message", all(isinstance(v, dict) for v in
                                                             final_ok.values()),
            ", ".join(f"{u}: {len(v) if isinstance(v, dict) else v}"
                      for u, v in final_ok.items()))
    w = stats.samples["writer lock wait ms"]
    pm = stats.samples["procmail ms"]
    worst = max(w + pm, default=0)
    deferred = s_failed = stats.c["failed attempts by writer"] + stats.c["failed attempts by procmail"]
    if not postfix:
        verdict(f"no delivery held up by pop3d for more than {opts.max_lock_wait:.0f} s "
                f"(design.md section 4, guarantee 2)",
                worst <= opts.max_lock_wait * 1000 and not s_failed,
                f"longest wait {worst / 1000:.1f} s, {deferred} deliveries deferred")
    else:
        pf_lat = postfix_verdicts(opts, verdict, world, outcomes, queue_empty)
    log = (workdir / "pop3d.log").read_bytes()
    sanit = len(re.findall(rb"AddressSanitizer|LeakSanitizer|runtime error:", log))
    verdict("no sanitizer report", sanit == 0, f"{sanit} reports")
    # systemd-socket-activate logs every child's end. pop3d itself exits 0,
    # or 1 through fatal(), which always logs a <2> line first. cwrap's
    # pam_wrapper, preloaded into every pop3d, races for its /tmp/pam.X
    # directory under load and may exit 1 from its constructor, before
    # pop3d's main() (often with a PWRAP_ERROR line, not always): those
    # connections close before the greeting, and are the test
    # environment's, not pop3d's.
    ends = re.findall(rb"Child \d+ died with (code \d+|signal \S+)", log)
    bad = [h.decode() for h in ends if h not in (b"code 0", b"code 1")]
    code1 = sum(1 for h in ends if h == b"code 1")
    fatal_lines = len(re.findall(rb"^<2>", log, re.M))
    closed = stats.c["connections closed before the greeting"]
    stats.inc("pop3d exits with status 1 before the greeting (cwrap)", code1)
    verdict("no pop3d process crashed or hit a fatal error", not bad and not fatal_lines,
            f"{len(bad)} died by a signal or odd status {bad[:5]}, {fatal_lines} fatal lines")
    verdict("every connection closed before the greeting is a pop3d that never reached "
            "main() (status 1, nothing logged: cwrap)", closed <= code1 and not fatal_lines,
            f"{closed} such connections, {code1} exits with status 1")
    loglines = collections.Counter()
    for ln in log.splitlines():
        m = re.match(rb"<(\d)>(.*)", ln)
        if not m or m.group(1) > b"4":
            continue
        text = re.sub(rb"/\S+", b"PATH", m.group(2))
        text = re.sub(rb"\d+", b"N", text)
        loglines[text.decode(errors="replace")[:100]] += 1

    # --- figures ------------------------------------------------------------------------
    s = stats.c
    sessions = s["sessions"]
    print("\n# figures")
    print(f"  run: {elapsed:.1f} s ({t_deliv:.1f} s of deliveries), {len(users)} users, "
          f"{opts.clients} clients")
    print(f"  deliveries: {len(delivered)} ({s['deliveries by procmail']} procmail, "
          f"{s['deliveries by writer']} writer), {len(delivered) / t_deliv:.1f}/s; "
          f"failed attempts {s['failed attempts by procmail']} procmail, "
          f"{s['failed attempts by writer']} writer")
    print(f"  lock wait of the writer (local(8) locking): max {max(w, default=0):.0f} ms, "
          f"p99 {pct(w, .99):.0f} ms, mean {sum(w) / max(1, len(w)):.1f} ms")
    print(f"  procmail run time (lock wait included): max {max(pm, default=0):.0f} ms, "
          f"p99 {pct(pm, .99):.0f} ms, median {pct(pm, .5):.0f} ms")
    print(f"  sessions: {sessions} ({sessions / elapsed:.1f}/s), logged in "
          f"{s['sessions logged in']}, [IN-USE] {s['sessions refused [IN-USE]']}, "
          f"QUIT +OK {s['QUIT +OK']}, dropped {s['sessions dropped']}, dropped in RETR "
          f"{s['sessions dropped in the middle of a RETR']}, RST {s['sessions reset (RST)']}, "
          f"QUIT unread {s['QUIT without waiting for the reply']}, RSET {s['RSETs']}"
          + (f", idled {s['sessions that idled']} ({opts.idle_seconds / 2:g}-"
             f"{opts.idle_seconds:g} s each)" if opts.idle_seconds else ""))
    if postfix:
        lat, stage = pf_lat
        print(f"  Postfix ({opts.postfix_mda}) delivery latency, arrival to mailbox "
              f"(delay=): median {pct(lat, .5):.2f} s, p99 {pct(lat, .99):.2f} s, "
              f"max {max(lat, default=0):.2f} s; delivery stage (delays= d): median "
              f"{pct(stage, .5):.2f} s, p99 {pct(stage, .99):.2f} s, "
              f"max {max(stage, default=0):.2f} s")
        print(f"  UPDATEs that took the dotlock (QUIT +OK with deletions): "
              f"{s['QUITs with deletions']}; QUITs with nothing deleted (no lock): "
              f"{s['QUITs with nothing deleted']}")
    if opts.hosts > 1:
        # On a shared spool pop3d's dotlock holds no PID (design.md §9):
        # DotlockWatch cannot tell it from an MDA's, and counts it there.
        holds = {"pop3d or MDA (no PID on a shared spool)":
                 holds["pop3d"] + holds["MDA"]}
    for who, h in holds.items():
        h = [x * 1000 for x in h]
        print(f"  dotlock held by {who}: {len(h)} times ({len(h) / elapsed:.2f}/s), "
              f"median {pct(h, .5):.0f} ms, p99 {pct(h, .99):.0f} ms, "
              f"max {max(h, default=0):.0f} ms, {sum(h) / 1000 / elapsed * 100:.1f}% of the "
              f"run summed over {len(spools)} spools (polled every "
              f"{postfix_mta.DotlockWatch.POLL * 1000:.0f} ms)")
    q = stats.samples["QUIT ms"]
    lg = stats.samples["login ms"]
    print(f"  QUIT (UPDATE) time: max {max(q, default=0):.0f} ms, p99 {pct(q, .99):.0f} ms; "
          f"login: max {max(lg, default=0):.0f} ms, p99 {pct(lg, .99):.0f} ms")
    print(f"  messages retrieved {s['messages retrieved']} ({s['octets retrieved']} octets), "
          f"deleted (confirmed) {len(confirmed)}, deletion unconfirmed "
          f"{len(world.ambiguous)} (of which gone {len(ambiguous_gone)}), left in the "
          f"spools {s['messages left in the spools']} ({s['octets left in the spools']} "
          f"octets), messages checked at the end {sum(present.values())}")
    for k in sorted(s):
        if k.startswith(("QUIT -ERR", "RETR refused", "logins failed", "client errors",
                         "procmail failures", "writer failures", "RETR cut", "QUIT without a",
                         "connections closed", "pop3d exits", "sessions on host",
                         "[IN-USE] on host")):
            print(f"  {k}: {s[k]}")
    if loglines:
        print("  pop3d warnings and errors in the log:")
        for text, k in loglines.most_common(12):
            print(f"    {k} x {text}")
    failed = checks.count(False)
    if failed or opts.keep:
        print(f"# work dir kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"stress: {checks.count(True)} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
