#!/usr/bin/env python3
"""make bench-peers (root): pop3d against Debian's Dovecot and popa3d.

    bench/peers.py [--build DIR] [--sets 10M,100M,1G] [--runs 3]
                   [--runs-1g 1] [--servers pop3d,popa3d,Dovecot]
                   [--scenarios stat,list,...] [--no-short] [--out FILE]
                   [--keep]

The same spools (bench/genspool) and the same client (bench/popbench,
lockstep, over loopback TCP) against three servers, each as a real
deployment would run it, with a throwaway user made by useradd (removed
afterwards) whose spool is /var/mail/USER, and real PAM (pam_unix, one
PAM service file for all three: common-auth + common-account):

  pop3d    systemd-socket-activate --inetd --accept, a pop3d per connection
  popa3d   the same (Debian's binary; the package conflicts with
           dovecot-pop3d, so it is unpacked with apt-get download and
           dpkg-deb -x rather than installed; its chroot /var/lib/popa3d
           and user popa3d are made for the run if missing)
  Dovecot  dovecot -F with a config file of ours: POP3 only, mbox INBOX
           /var/mail/%u, its index in the work directory, PAM passdb

dovecot-pop3d is installed with apt-get if missing (with a policy-rc.d
that keeps the package from starting the system's Dovecot). Everything
listens on 127.0.0.1 only; every process started is stopped by its pid.

Dovecot keeps an index: its first login on a spool (which builds it) is
reported on its own row; later sessions find it. Destructive runs restore
the spool (and, for Dovecot, the index as it was after the warm-up, with
the spool's mtime) before each run.

The table gives pop3d's time divided by each peer's, pair by pair, and
the targets of issues 12 and 13 (bench/benchlib.py: PEER_TARGETS) against
popa3d on the 100 MB and 1 GB spools. DELE first + QUIT also runs against
its floors, taking turns with the servers: dd moving the same bytes down
in place (conv=notrunc) with one fdatasync, then the truncate; and
bench/movefloor, the same move made crash-safe by saved windows as
UPDATE makes it, with none of the journal's bookkeeping.

A quick run of the issues' targets only (about 4 minutes on the 2-core
machine of bench/RESULTS.md):

    make bench-peers BENCH_ARGS="--sets 100M --servers pop3d,popa3d --no-short"
"""

import argparse
import datetime
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402

USER = "popbench"
GECOS = "pop3d benchmark throwaway user"
PAM_SERVICE = "pop3d-bench"
PAM_TEXT = ("# pop3d make bench-peers (removed afterwards)\n"
            "@include common-auth\n@include common-account\n")
SERVERS = ("pop3d", "popa3d", "Dovecot")


def sh(*argv, **kw):
    return subprocess.run([str(a) for a in argv], check=True,
                          capture_output=True, **kw)


class System:
    """Changes outside the work directory, each undone by undo()."""

    def __init__(self, work):
        self.work = work
        self.undo_steps = []

    def undo(self):
        while self.undo_steps:
            what, fn = self.undo_steps.pop()
            try:
                fn()
            except Exception as e:  # keep undoing the rest
                bl.log(f"  cleanup: {what}: {e}")

    def install_dovecot(self):
        if shutil.which("dovecot") is not None and \
                Path("/usr/lib/dovecot/pop3").exists():
            return
        bl.log("  installing dovecot-pop3d (apt-get)")
        policy = Path("/usr/sbin/policy-rc.d")
        made = False
        if not policy.exists():
            policy.write_text("#!/bin/sh\n# pop3d bench-peers: no service "
                              "starts during the install\nexit 101\n")
            policy.chmod(0o755)
            made = True
        try:
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            sh("apt-get", "update", "-qq", env=env)
            sh("apt-get", "install", "-y", "-qq", "--no-install-recommends",
               "dovecot-pop3d", env=env, stdin=subprocess.DEVNULL)
        finally:
            if made:
                policy.unlink()

    def unpack_popa3d(self):
        d = self.work / "popa3d-pkg"
        d.mkdir()
        sh("apt-get", "download", "popa3d", cwd=d)
        deb = next(d.glob("popa3d_*.deb"))
        sh("dpkg-deb", "-x", deb, d / "root")
        binary = d / "root" / "usr" / "sbin" / "popa3d"
        # Its compiled-in pre-login user and chroot.
        try:
            pwd.getpwnam("popa3d")
        except KeyError:
            sh("useradd", "--system", "--no-create-home", "--home-dir",
               "/nonexistent", "--shell", "/usr/sbin/nologin", "--comment",
               GECOS, "popa3d")
            self.undo_steps.append(("userdel popa3d",
                                    lambda: sh("userdel", "popa3d")))
        empty = Path("/var/lib/popa3d")
        if not empty.exists():
            empty.mkdir(mode=0o755)
            self.undo_steps.append(("rmdir /var/lib/popa3d", empty.rmdir))
        self.pam_file("popa3d")
        return binary

    def pam_file(self, service):
        p = Path("/etc/pam.d") / service
        if p.exists():
            return
        p.write_text(PAM_TEXT)
        self.undo_steps.append((f"rm {p}", p.unlink))

    def user(self):
        try:
            pw = pwd.getpwnam(USER)
        except KeyError:
            pw = None
        if pw is not None:
            if pw.pw_gecos != GECOS:
                raise SystemExit(f"a user {USER} exists and is not ours")
            sh("userdel", USER)  # left over by an interrupted run
        home = self.work / "home"
        sh("useradd", "--no-create-home", "--home-dir", home, "--shell",
           "/usr/sbin/nologin", "--comment", GECOS, "--user-group", USER)
        self.undo_steps.append((f"userdel {USER}",
                                lambda: sh("userdel", USER)))
        password = secrets.token_hex(12)
        sh("chpasswd", input=f"{USER}:{password}\n".encode())
        pw = pwd.getpwnam(USER)
        home.mkdir()
        os.chown(home, pw.pw_uid, pw.pw_gid)
        spool = Path("/var/mail") / USER
        self.undo_steps.append((f"rm {spool}", lambda: (
            spool.unlink(missing_ok=True),
            Path(str(spool) + ".lock").unlink(missing_ok=True))))
        return pw, password, spool


class Dovecot:
    def __init__(self, work, pw, port):
        self.dir = work / "dovecot"
        self.dir.mkdir()
        for sub in ("run", "state"):
            (self.dir / sub).mkdir()
        self.mail = self.dir / "mail" / USER
        self.index = self.dir / "index" / USER
        for d in (self.mail, self.index):
            d.mkdir(parents=True)
            os.chown(d, pw.pw_uid, pw.pw_gid)
        self.port = port
        self.addr = f"127.0.0.1:{port}"
        self.conf = self.dir / "dovecot.conf"
        self.log = self.dir / "dovecot.log"
        self.conf.write_text(f"""# pop3d make bench-peers
base_dir = {self.dir}/run
state_dir = {self.dir}/state
log_path = {self.log}
protocols = pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
first_valid_uid = 1000
mail_location = mbox:{self.dir}/mail/%u:INBOX=/var/mail/%u:INDEX={self.dir}/index/%u
mail_privileged_group = mail
passdb {{
  driver = pam
  args = {PAM_SERVICE}
}}
userdb {{
  driver = passwd
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
""")
        self.proc = None

    def start(self, popbench):
        self.proc = subprocess.Popen(
            ["dovecot", "-F", "-c", str(self.conf)], stdin=subprocess.DEVNULL,
            stdout=open(self.dir / "stdout", "wb"), stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                bl.run_client(popbench, ["greet", "-t", self.addr],
                              timeout=5)
                return
            except Exception:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("Dovecot did not start: "
                           + (self.dir / "stdout").read_text(errors="replace")
                           + (self.log.read_text(errors="replace")
                              if self.log.exists() else ""))

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def wipe_index(self, pw):
        shutil.rmtree(self.index)
        self.index.mkdir()
        os.chown(self.index, pw.pw_uid, pw.pw_gid)


class Peers:
    def __init__(self, a, work, system):
        self.a = a
        self.work = work
        self.sys = system
        self.binary = (Path(a.build) / "pop3d").resolve()
        self.popbench = bl.tool(a.build, "popbench")
        self.movefloor = bl.tool(a.build, "movefloor")
        self.genspool = bl.tool(a.build, "genspool")
        self.listeners = []
        self.dovecot = None
        self.results = {}   # (set, scenario, server) -> list of dicts | str
        self.md = []

    def setup(self):
        if "Dovecot" in self.a.servers:
            self.sys.install_dovecot()
        self.popa3d = self.sys.unpack_popa3d()
        self.sys.pam_file(PAM_SERVICE)
        self.pw, self.password, self.spool = self.sys.user()
        self.owner = (self.pw.pw_uid, self.pw.pw_gid)
        empty = self.work / "empty"
        empty.mkdir(mode=0o555)
        empty.chmod(0o555)
        # UPDATE's journals in the run's own directory: the default,
        # /var/lib/pop3d/journal, exists only after make install, and
        # without it every DELE + QUIT is refused ([SYS/TEMP]).
        journal = self.work / "journal"
        journal.mkdir(mode=0o711)
        journal.chmod(0o711)
        self.logs = self.work / "logs"
        self.logs.mkdir()
        self.ru = {}
        pop3d = [str(self.binary), "--log=stderr",
                 f"--pam-service={PAM_SERVICE}", "--mailbox=/var/mail/%u",
                 "--preauth-user=nobody", f"--preauth-dir={empty}",
                 f"--journal-dir={journal}"]
        self.servers = {}
        for name, cmd in (("pop3d", pop3d), ("popa3d", [str(self.popa3d)])):
            if name not in self.a.servers:
                continue
            ru = bl.RusageFile(self.logs / f"{name}.rusage")
            lst = bl.Listener([str(self.popbench), "wrap", str(ru.path), "--"]
                              + cmd, self.logs / f"{name}.log")
            self.listeners.append(lst)
            self.servers[name] = lst.addr
            self.ru[name] = ru
        if "Dovecot" in self.a.servers:
            self.dovecot = Dovecot(self.work, self.pw, bl.free_port())
            self.dovecot.start(self.popbench)
            self.servers["Dovecot"] = self.dovecot.addr
            self.ru["Dovecot"] = None

    def stop(self):
        for lst in self.listeners:
            lst.stop()
        self.listeners = []
        if self.dovecot is not None:
            self.dovecot.stop()

    def client(self, server, scenario, n, flags=(), quickack=True):
        """One session. The main table's client uses TCP_QUICKACK, so that
        a server that leaves Nagle on is not measured by its stalls (the
        rows on delayed ACKs show those)."""
        args = [scenario, "-u", USER, "-p", self.password, "-t",
                self.servers[server]] + list(flags)
        if quickack:
            args.append("-q")
        if n is not None:
            args += ["-e", str(n)]
        try:
            r = bl.run_client(self.popbench, args, timeout=1800)
        except Exception:
            # The session still ended: skip its rusage line.
            if self.ru[server] is not None:
                try:
                    self.ru[server].next(timeout=5)
                except RuntimeError:
                    pass
            raise
        if self.ru[server] is not None:
            r.update(self.ru[server].next())
        return r

    def restore(self, master):
        bl.restore(master, self.spool, self.owner)

    # Dovecot's state after its warm-up: the spool as it left it (mtime
    # included) and its index.
    def snapshot_dovecot(self):
        snap = self.work / "dovecot-snap"
        shutil.rmtree(snap, ignore_errors=True)
        snap.mkdir()
        sh("cp", "-a", self.spool, snap / "spool")
        sh("cp", "-a", self.dovecot.index, snap / "index")

    def restore_dovecot(self):
        snap = self.work / "dovecot-snap"
        tmp = self.spool.with_name(self.spool.name + ".restore")
        sh("cp", "-a", snap / "spool", tmp)
        fd = os.open(tmp, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
        os.rename(tmp, self.spool)
        shutil.rmtree(self.dovecot.index)
        sh("cp", "-a", snap / "index", self.dovecot.index)

    def prepare(self, server, master):
        """Put the spool (and Dovecot's index) in the state the server's
        run starts from, unless it is in it already."""
        if server in ("dd", "saved"):
            server = "pop3d"  # the spool as generated
        same = self.snap_same  # Dovecot left the spool as generated
        want = "snap" if server == "Dovecot" or same else "pristine"
        ok = {"snap"} if server == "Dovecot" else (
            {"pristine", "snap"} if same else {"pristine"})
        if self.state in ok:
            return
        if want == "snap":
            self.restore_dovecot()
        else:
            self.restore(master)
        self.state = want

    def run_set(self, name):
        n, size = bl.SETS[name]
        runs = self.a.runs_1g if name == "1G" else self.a.runs
        bl.log(f"== {name}: {n} messages, {runs} runs per cell")
        master = self.work / f"master-{name}"
        sh(self.genspool, "-o", f"{self.owner[0]}:{self.owner[1]}", "-u",
           USER, n, size, master)
        nbytes = master.stat().st_size
        servers = []
        self.first_len = bl.first_message_length(master)
        self.nbytes = nbytes
        # The first login on this spool (Dovecot builds its index).
        for server in [s for s in SERVERS if s in self.a.servers]:
            self.restore(master)
            if server == "Dovecot":
                self.dovecot.wipe_index(self.pw)
            key = (name, "first", server)
            try:
                self.results[key] = [self.client(server, "stat", n)]
                servers.append(server)
            except Exception as e:
                self.results[key] = f"failed: {str(e)[-160:]}"
                bl.log(f"  {server}: {self.results[key]}")
        self.snap_same = False
        if "Dovecot" in servers:
            self.snapshot_dovecot()
            self.snap_same = subprocess.run(
                ["cmp", "-s", str(master),
                 str(self.work / "dovecot-snap" / "spool")]).returncode == 0
        self.state = "snap" if "Dovecot" in servers else "pristine"
        # Each scenario: the servers take turns, run by run, so that a
        # change in the machine's load hits all of them alike.
        extra = []
        if name in ("10M", "100M"):
            # Delayed ACKs on the client: a server that writes a reply in
            # small pieces without TCP_NODELAY waits for them.
            extra = [("retr100-quickack", "retr", ["-m", "100", "-q"]),
                     ("retr100-delack", "retr", ["-m", "100"])]
        plan = [(sc, sc, None) for sc in self.a.scenarios] + [
            e for e in extra if e[1] in self.a.scenarios]
        for key, sc, flags in plan:
            destructive = sc in bl.DESTRUCTIVE
            # DELE 1's floors take their turns with the servers: dd, and
            # the saved windows' input/output alone (bench/movefloor.c).
            turns = servers + (["dd", "saved"] if sc == "dele-first"
                               else [])
            out = {srv: [] for srv in turns}
            failed = set()
            t = time.monotonic()
            for i in range(runs + (0 if destructive else 1)):
                for server in turns:
                    if server in failed:
                        continue
                    self.prepare(server, master)
                    try:
                        if server == "dd":
                            r = {"wall": bl.dd_move(self.spool,
                                                    self.first_len,
                                                    nbytes)}
                        elif server == "saved":
                            r = {"wall": bl.saved_move(
                                self.movefloor, self.spool, self.first_len,
                                self.work / "movefloor.save")}
                        elif flags is None:
                            r = self.client(server, sc, n)
                        else:
                            r = self.client(server, sc, n, flags,
                                            quickack=False)
                    except Exception as e:
                        self.results[name, key, server] = \
                            f"failed: {str(e)[-160:]}"
                        bl.log(f"  {server:8} {key:11} failed: "
                               f"{str(e)[-300:]}")
                        failed.add(server)
                        self.state = "dirty"
                        continue
                    if destructive:
                        self.state = "dirty"
                    if destructive or i > 0:
                        out[server].append(r)
            for server in turns:
                if server not in failed:
                    self.results[name, key, server] = out[server]
            meds = "  ".join(
                f"{srv} {bl.fmt_s(bl.stats([r['wall'] for r in out[srv]])['median'])}"
                for srv in turns if srv not in failed)
            bl.log(f"  {key:16} {meds}   ({time.monotonic() - t:.1f} s)")
        master.unlink()
        self.spool.unlink(missing_ok=True)
        return nbytes

    def short_sessions(self):
        n, size = bl.TINY
        master = self.work / "master-tiny"
        sh(self.genspool, "-o", f"{self.owner[0]}:{self.owner[1]}", "-u",
           USER, n, size, master)
        self.restore(master)
        # 200 sessions per server, in 10 rounds of 20 that take turns, so
        # that a change in the machine's load hits all three alike.
        count, rounds = 200, 10
        per_round = count // rounds
        walls = {srv: [] for srv in SERVERS if srv in self.a.servers}
        rus = {srv: [] for srv in walls}
        failed = {}
        for rnd in range(rounds + 1):
            for server in walls:
                if server in failed:
                    continue
                args = ["stat", "-u", USER, "-p", self.password, "-t",
                        self.servers[server], "-e", str(n), "-r",
                        str(per_round)]
                try:
                    r = bl.run_client(self.popbench, args)
                    ru = [self.ru[server].next() for _ in range(per_round)] \
                        if self.ru[server] is not None else []
                except Exception as e:
                    failed[server] = f"failed: {str(e)[-160:]}"
                    bl.log(f"  {server}: short sessions failed: {e}")
                    continue
                if rnd == 0:
                    continue  # warm-up
                walls[server].append(r["wall"] / per_round)
                rus[server] += ru
        for server in walls:
            if server in failed:
                self.results["tiny", "short", server] = failed[server]
                continue
            r = {"wall": bl.stats(walls[server])["median"]}
            if rus[server]:
                r["maxrss"] = max(x["maxrss"] for x in rus[server])
                r["utime"] = sum(x["utime"] for x in rus[server]) / count
                r["stime"] = sum(x["stime"] for x in rus[server]) / count
            self.results["tiny", "short", server] = [r]
            bl.log(f"  {server}: {1 / r['wall']:.0f} sessions/s")
        master.unlink()

    # --- the tables -----------------------------------------------------

    def med(self, key, field="wall"):
        r = self.results.get(key)
        if not isinstance(r, list) or not r:
            return None
        return bl.stats([x[field] for x in r])["median"]

    def cell(self, key, field="wall"):
        r = self.results.get(key)
        if r is None:
            return "-"
        if isinstance(r, str):
            return "refused" if "STAT" in r or "-ERR" in r else "failed"
        v = self.med(key, field)
        return bl.fmt_s(v)

    def ratio(self, a, b):
        if a is None or b is None or b <= 0:
            return "-"
        return f"{a / b:.2f}"

    def target(self, name, sc, p, a):
        """The issues' target for this row, and its verdict, or ""."""
        if name not in ("100M", "1G") or sc not in bl.PEER_TARGETS:
            return ""
        limit, issue = bl.PEER_TARGETS[sc]
        if p is None or a is None:
            verdict = "n/a"
        else:
            verdict = "met" if p / a <= limit else "missed"
        self.verdicts.append((issue, name, bl.LABELS[sc],
                              "-" if p is None or a is None
                              else f"{p / a:.2f}", f"≤ {limit}", verdict))
        return f"≤ {limit} vs popa3d ({issue}): {verdict}"

    def update_row(self, name, sc):
        """The UPDATE alone, QUIT sent to +OK, of a deleting scenario:
        the whole session is mostly login and one DELE round trip per
        message for both servers, which hides what UPDATE itself costs.
        Shown beside the session's target, not in place of it."""
        p = self.med((name, sc, "pop3d"), "quit")
        a = self.med((name, sc, "popa3d"), "quit")
        if p is None or a is None:
            return None
        target = ""
        if name in ("100M", "1G") and sc in bl.PEER_TARGETS:
            limit = bl.PEER_TARGETS[sc][0]
            verdict = "met" if p <= limit * a else "missed"
            target = (f"the session's limit ≤ {limit} applied to UPDATE "
                      f"alone: {verdict} (for information)")
            self.verdicts.append(("issue 13", name, bl.LABELS[sc]
                                  + ": its UPDATE alone (QUIT→+OK), for "
                                  "information", f"{p / a:.2f}",
                                  f"≤ {limit}", verdict))
        return [name, "its UPDATE alone: QUIT sent to +OK", bl.fmt_s(p),
                bl.fmt_s(a), "", self.ratio(p, a), "", target]

    def dd_row(self, name):
        """DELE first's floor, and the UPDATE against it (issue 13)."""
        d = self.med((name, "dele-first", "dd"))
        q = self.med((name, "dele-first", "pop3d"), "quit")
        if d is None:
            return None
        target = ""
        if q is not None and name in ("100M", "1G"):
            verdict = "met" if q <= bl.DD_FACTOR * d else "missed"
            target = (f"pop3d's QUIT→+OK {bl.fmt_s(q)} = {q / d:.2f}× dd "
                      f"(≤ {bl.DD_FACTOR:g}, issue 13): {verdict}")
            self.verdicts.append(("issue 13", name, "DELE first + QUIT: "
                                  "UPDATE (QUIT→+OK) against dd",
                                  f"{q / d:.2f}", f"≤ {bl.DD_FACTOR:g}",
                                  verdict))
        return [name, "floor of DELE first + QUIT: dd moving the same "
                "bytes down in place (conv=notrunc), one fdatasync, "
                "truncate", bl.fmt_s(d), "", "", "", "", target]

    def saved_row(self, name):
        """The floor of a crash-safe move by a small shift (issue 13):
        the saved windows' input/output alone, against dd and pop3d."""
        s = self.med((name, "dele-first", "saved"))
        d = self.med((name, "dele-first", "dd"))
        q = self.med((name, "dele-first", "pop3d"), "quit")
        if s is None or d is None:
            return None
        note = f"{s / d:.2f}× dd"
        if q is not None:
            note += f"; pop3d's QUIT→+OK = {q / s:.2f}× it"
        return [name, "floor of a crash-safe move by a small shift: every "
                "byte saved in a journal area first, two fdatasyncs per "
                "8 MiB window, truncate (bench/movefloor)", bl.fmt_s(s), "",
                "", "", "", note]

    def report(self, sets, sizes):
        rows = []
        self.verdicts = []
        for name in sets:
            labels = [("first", "first login + STAT (Dovecot: builds its "
                       "index)")] + [(sc, bl.LABELS[sc])
                                     for sc in self.a.scenarios]
            if name in ("10M", "100M") and "retr" in self.a.scenarios:
                labels += [("retr100-quickack", "RETR of the first 100 "
                            "messages, client with TCP_QUICKACK"),
                           ("retr100-delack", "the same, client with "
                            "ordinary delayed ACKs")]
            for sc, label in labels:
                p = self.med((name, sc, "pop3d"))
                a = self.med((name, sc, "popa3d"))
                d = self.med((name, sc, "Dovecot"))
                ra, rd = self.ratio(p, a), self.ratio(p, d)
                rows.append([name, label, self.cell((name, sc, "pop3d")),
                             self.cell((name, sc, "popa3d")),
                             self.cell((name, sc, "Dovecot")), ra, rd,
                             self.target(name, sc, p, a)])
                if sc in bl.DESTRUCTIVE:
                    row = self.update_row(name, sc)
                    if row is not None:
                        rows.append(row)
                if sc == "dele-first":
                    for row in (self.dd_row(name), self.saved_row(name)):
                        if row is not None:
                            rows.append(row)
        # Short sessions.
        p = self.med(("tiny", "short", "pop3d"))
        a = self.med(("tiny", "short", "popa3d"))
        d = self.med(("tiny", "short", "Dovecot"))

        def per(server):
            v = self.med(("tiny", "short", server))
            return "-" if v is None else f"{v * 1000:.2f} ms"
        if not self.a.no_short:
            rows.append(["10 msgs", "200 short sessions (USER, PASS, "
                         "STAT, QUIT), per session (median of 10 rounds of "
                         "20, the servers taking turns)", per("pop3d"),
                         per("popa3d"), per("Dovecot"), self.ratio(p, a),
                         self.ratio(p, d), ""])
        hdr = ["spool", "scenario", "pop3d s", "popa3d s", "Dovecot s",
               "pop3d / popa3d", "pop3d / Dovecot", "target"]
        note = (f"Medians of {self.a.runs} runs (1 GB: {self.a.runs_1g}) "
                "after a warm-up (destructive scenarios: the spool restored "
                "before each run), over loopback TCP, one command at a "
                "time, the client acknowledging at once (TCP_QUICKACK) "
                "except on the delayed-ACK rows; the servers (and dd, for "
                "DELE first) take turns run by run, so every ratio comes "
                "from the same run. Times are whole sessions: connection "
                "to the server's close, login included. Targets: issue 12 "
                "(login + STAT ≤ 0.8, LIST + UIDL ≤ 0.6, TOP ≤ 0.5, RETR "
                "≤ 0.5 of popa3d's time) and issue 13 (DELE every other "
                "≤ 1.0, DELE first ≤ 1.5 and its UPDATE, QUIT to +OK, "
                "within 2× of dd moving the same bytes, DELE all and DELE "
                "last ≤ 0.3), on the 100 MB and 1 GB spools.")
        if any(isinstance(v, str) for v in self.results.values()):
            note += (" \"refused\"/\"failed\": the server did not serve "
                     "the spool (see the run's output).")
        self.md.append("### pop3d against popa3d and Dovecot\n\n" + note
                       + "\n\n" + bl.table(hdr, rows))
        if self.verdicts:
            self.md.insert(0, "### Targets of issues 12 and 13\n\n"
                           "pop3d's time over popa3d's, same run (and the "
                           "UPDATE of DELE first over dd's).\n\n"
                           + bl.table(["issue", "spool", "scenario",
                                       "measured", "target", ""],
                                      self.verdicts))
        # Resources of the session processes, where wrap saw them.
        rrows = []
        for name in sets + ([] if self.a.no_short else ["tiny"]):
            for sc in (["short"] if name == "tiny" else self.a.scenarios):
                row = [name, "short session" if sc == "short"
                       else bl.LABELS[sc]]
                for server in ("pop3d", "popa3d"):
                    r = self.results.get((name, sc, server))
                    if isinstance(r, list) and r and "maxrss" in r[0]:
                        row += [f"{max(x['maxrss'] for x in r) / 1024:.1f}",
                                f"{self.med((name, sc, server), 'utime'):.3f}"
                                f" + {self.med((name, sc, server), 'stime'):.3f}"]
                    else:
                        row += ["-", "-"]
                rrows.append(row)
        self.md.append(
            "### Session process: peak RSS and CPU (user + system)\n\n"
            "From wait4() in `popbench wrap` between systemd-socket-activate "
            "and the server (Dovecot's processes are its own master's "
            "children: not measured).\n\n"
            + bl.table(["spool", "scenario", "pop3d MB", "pop3d CPU s",
                        "popa3d MB", "popa3d CPU s"], rrows))
        return self.verdicts


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--sets", default="10M,100M,1G")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--runs-1g", type=int, default=1)
    ap.add_argument("--servers", default=",".join(SERVERS),
                    help="which servers (pop3d and popa3d give the "
                    "issues' ratios; Dovecot adds about a third to the time)")
    ap.add_argument("--scenarios", default=",".join(bl.SCENARIOS),
                    help="which scenarios (" + ",".join(bl.SCENARIOS) + ")")
    ap.add_argument("--no-short", action="store_true",
                    help="skip the 200 short sessions per server")
    ap.add_argument("--out")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    a.servers = [x for x in a.servers.split(",") if x]
    a.scenarios = [x for x in a.scenarios.split(",") if x]
    for x in a.servers:
        if x not in SERVERS:
            raise SystemExit(f"unknown server {x}; servers: "
                             + ", ".join(SERVERS))
    if "pop3d" not in a.servers:
        raise SystemExit("--servers must include pop3d")
    for x in a.scenarios:
        if x not in bl.SCENARIOS:
            raise SystemExit(f"unknown scenario {x}; scenarios: "
                             + ", ".join(bl.SCENARIOS))
    if os.geteuid() != 0:
        raise SystemExit("bench-peers: run as root (it installs packages, "
                         "adds a user and writes /var/mail)")
    sets = [s for s in a.sets.split(",") if s]
    for s in sets:
        if s not in bl.SETS:
            raise SystemExit(f"unknown set {s}")
    out = Path(a.out) if a.out else bl.TOP / "bench" / "out" / (
        "peers-" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S") + ".md")
    work = Path(tempfile.mkdtemp(prefix="pop3d-peers.",
                                 dir=os.environ.get("TMPDIR", "/tmp")))
    os.chmod(work, 0o755)
    system = System(work)
    p = Peers(a, work, system)
    t0 = time.monotonic()
    load = None
    try:
        p.setup()
        load = bl.LoadMeter()
        if not a.no_short:
            bl.log("== short sessions")
            p.short_sessions()
        sizes = {}
        for s in sets:
            sizes[s] = p.run_set(s)
        p.report(sets, sizes)
        head = (f"## pop3d against popa3d and Dovecot (make bench-peers)\n\n"
                f"Machine: {bl.machine()}. pop3d at commit {bl.commit()}. "
                f"Real PAM (pam_unix, yescrypt "
                f"hash) for a throwaway user; Debian's dovecot-pop3d "
                f"{pkg_version('dovecot-pop3d')} and popa3d "
                f"{deb_version(p.popa3d)}; spools from bench/genspool in "
                f"/var/mail. Total time {time.monotonic() - t0:.0f} s; "
                f"{load.report()}.")
        text = head + "\n\n" + "\n\n".join(p.md) + "\n"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print("\n" + text)
        bl.log(f"bench-peers: results in {out}")
    finally:
        p.stop()
        system.undo()
        if a.keep:
            bl.log(f"bench-peers: kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def pkg_version(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg],
                       capture_output=True, check=False)
    return r.stdout.decode() or "?"


def deb_version(binary):
    deb = next(Path(binary).parents[3].glob("popa3d_*.deb"), None)
    return deb.name.split("_")[1] if deb else "?"


if __name__ == "__main__":
    main()
