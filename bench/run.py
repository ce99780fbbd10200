#!/usr/bin/env python3
"""make bench: pop3d's benchmark, under cwrap (no root needed).

    bench/run.py [--build DIR] [--sets 10M,100M,1G] [--runs 5] [--runs-1g 3]
                 [--out FILE] [--profile] [--keep]

For each spool set (bench/genspool: 1,000 messages / 10 MB, 10,000 /
100 MB, 100,000 / 1 GB) every scenario runs as a whole session of the
real binary, through a pipe (popbench starts pop3d on two pipes, as inetd
would) and over loopback TCP (systemd-socket-activate --inetd --accept, a
pop3d per connection), one warm-up run and then --runs timed runs (the
1 GB set: --runs-1g). Destructive scenarios restore the spool before each
run, and need no warm-up: the restore leaves the spool in the page cache.

Then: login cost and start-up time (a 10-message spool), 200 sequential
short sessions per mode (pipe, Accept=yes, Accept=no), the client's own
ceiling (cat of the spool through the same path), RETR of everything over
STLS against plain, with and without TCP_QUICKACK on the client, and
pipelined (-P 16) against lockstep.

The spools live in a temporary directory that is removed at the end; the
results go to standard output and, as markdown, to --out (default
bench/out/bench-DATE.md). With --profile, perf record profiles login + STAT, RETR of
everything and DELE of the first message on the 100 MB set.
"""

import argparse
import datetime
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402


class Cwrap:
    """tests/cwrap/env.sh's environment, as the integration tests use it."""

    def __init__(self, envdir):
        envdir.mkdir()
        base = dict(os.environ)
        base["POP3D_TEST_ENV_DIR"] = str(envdir)
        base["POP3D_TEST_ASAN"] = "0"
        base.pop("LD_PRELOAD", None)
        res = subprocess.run(["/bin/sh", "-c", '. "$0" && env -0',
                              str(bl.TOP / "tests" / "cwrap" / "env.sh")],
                             env=base, capture_output=True, check=False)
        if res.returncode != 0:
            raise SystemExit("tests/cwrap/env.sh failed: "
                             + res.stderr.decode(errors="replace"))
        env = {}
        for item in res.stdout.split(b"\0"):
            if b"=" in item:
                k, v = item.split(b"=", 1)
                env[k.decode()] = v.decode()
        self.pairs = []
        for name in env["POP3D_CWRAP_VARS"].split():
            value = env["POP3D_CWRAP_PRELOAD"] if name == "LD_PRELOAD" \
                else env[name]
            self.pairs.append(f"{name}={value}")
        self.args = env["POP3D_TEST_ARGS"].split()
        self.root = env["POP3D_TEST_ROOT"] == "1"
        if not self.root:
            # uid_wrapper's fake root cannot chroot, nor make our
            # --preauth-dir root's: started by a user, pop3d runs as that
            # user (no chroot, no uid change; see pop3d(8)), which is
            # what is measured then.
            self.pairs = [p for p in self.pairs
                          if not p.startswith("UID_WRAPPER")]
        self.owner = None
        for line in Path(env["NSS_WRAPPER_PASSWD"]).read_text().splitlines():
            f = line.split(":")
            if f[0] == "alice" and self.root:
                self.owner = (int(f[2]), int(f[3]))


class Bench:
    def __init__(self, a, work):
        self.a = a
        self.work = work
        self.binary = (Path(a.build) / "pop3d").resolve()
        self.popbench = bl.tool(a.build, "popbench")
        self.genspool = bl.tool(a.build, "genspool")
        self.cw = Cwrap(work / "cwrap")
        self.mail = work / "mail"
        self.mail.mkdir()
        self.spool = self.mail / "alice"
        self.logs = work / "logs"
        self.logs.mkdir()
        self.listeners = []
        self.md = []  # markdown sections
        self.summary = {}

    # --- helpers ----------------------------------------------------------

    def pop3d(self, extra=()):
        return [str(self.binary), "--log=stderr",
                f"--mailbox={self.mail}/%u"] + self.cw.args + list(extra)

    def generate(self, name, n, size):
        master = self.work / f"master-{name}"
        t = time.monotonic()
        owner = self.cw.owner
        argv = [str(self.genspool)]
        if owner is not None:
            argv += ["-o", f"{owner[0]}:{owner[1]}"]
        subprocess.run(argv + [str(n), str(size), str(master)], check=True,
                       capture_output=True)
        bl.log(f"  generated {name}: {n} messages, "
               f"{master.stat().st_size / 1e6:.1f} MB in "
               f"{time.monotonic() - t:.1f} s")
        return master

    def listen(self, command, env_pairs=(), accept=True, name="ssa"):
        lst = bl.Listener(command, self.logs / f"{name}.log", env_pairs,
                          accept)
        self.listeners.append(lst)
        return lst

    def unlisten(self, lst):
        lst.stop()
        self.listeners.remove(lst)

    def wrapped(self, name, extra=()):
        """Accept=yes with `popbench wrap` between systemd-socket-activate
        and pop3d, for the session's rusage."""
        ru = bl.RusageFile(self.logs / f"{name}.rusage")
        cmd = [str(self.popbench), "wrap", str(ru.path)]
        for pair in self.cw.pairs:
            cmd += ["-E", pair]
        cmd += ["--"] + self.pop3d(extra)
        return self.listen(cmd, name=name), ru

    def once(self, transport, scenario, expect=None, flags=(), tcp=None,
             ru=None, extra=()):
        args = [scenario] + list(flags)
        if expect is not None:
            args += ["-e", str(expect)]
        for attempt in range(3):
            try:
                if transport == "pipe":
                    return bl.run_client(self.popbench, args, self.cw.pairs,
                                         self.pop3d(extra),
                                         self.logs / "pipe.log")
                r = bl.run_client(self.popbench, args + ["-t", tcp.addr])
                if ru is not None:
                    r.update(ru.next())
                return r
            except RuntimeError as e:
                # pam_wrapper picks its directory among /tmp/pam.[0-9A-z]
                # and loses races with other cwrap users on the machine
                # (PAM then fails: [SYS/TEMP]); the session is not ours to
                # blame, so it is run again.
                if ru is not None:
                    try:
                        ru.next(timeout=5)
                    except RuntimeError:
                        pass
                if not pwrap_race(e) or attempt == 2:
                    raise
                bl.log(f"  (once more: {str(e)[-70:]}; pam_wrapper "
                       "lost a race for /tmp/pam.X?)")
        raise AssertionError

    def many(self, args, command=None, env_pairs=()):
        """run_client for the -r loops, again after a pam_wrapper race."""
        for attempt in range(3):
            try:
                return bl.run_client(self.popbench, args, env_pairs, command,
                                     self.logs / "pipe.log")
            except RuntimeError as e:
                if not pwrap_race(e) or attempt == 2:
                    raise
                bl.log(f"  (once more: {str(e)[-70:]}; pam_wrapper "
                       "lost a race for /tmp/pam.X?)")
        raise AssertionError

    def alternate(self, runs, warmup, fns, before=None):
        """Several variants of one measurement, taking turns run by run so
        that a change in the machine's load hits them alike."""
        out = {k: [] for k in fns}
        for i in range(warmup + runs):
            for k, fn in fns.items():
                if before is not None:
                    before()
                r = fn()
                if i >= warmup:
                    out[k].append(r)
        return out

    def series(self, runs, warmup, fn, before=None):
        out = []
        for i in range(warmup + runs):
            if before is not None:
                before()
            r = fn()
            if i >= warmup:
                out.append(r)
        return out

    # --- the scenario tables -----------------------------------------------

    def spool_set(self, name):
        n, size = bl.SETS[name]
        runs = self.a.runs_1g if name == "1G" else self.a.runs
        bl.log(f"== {name}: {n} messages, {runs} runs per cell")
        master = self.generate(name, n, size)
        nbytes = master.stat().st_size
        bl.restore(master, self.spool, self.cw.owner)
        tcp, ru = self.wrapped(f"tcp-{name}")
        res = {}
        t_set = time.monotonic()

        def before():
            bl.restore(master, self.spool, self.cw.owner)

        for sc in bl.SCENARIOS:
            t = time.monotonic()
            destructive = sc in bl.DESTRUCTIVE
            # The two transports take turns, run by run.
            got = self.alternate(
                runs, 0 if destructive else 1,
                {tr: (lambda tr=tr: self.once(tr, sc, n, tcp=tcp, ru=ru))
                 for tr in ("pipe", "tcp")},
                before if destructive else None)
            for tr in ("pipe", "tcp"):
                res[sc, tr] = got[tr]
            meds = "  ".join(
                f"{tr} {bl.fmt_s(bl.stats([r['wall'] for r in got[tr]])['median'])}"
                for tr in got)
            bl.log(f"  {sc:11} {meds}   ({time.monotonic() - t:.1f} s)")
        bl.restore(master, self.spool, self.cw.owner)
        # Pipelined RETR (up to 16 commands in flight): streaming speed
        # without a round trip per message.
        res["retr-P16", "pipe"] = self.series(
            runs, 1, lambda: self.once("pipe", "retr", n, ["-P", "16"]))
        res["top-P16", "pipe"] = self.series(
            runs, 1, lambda: self.once("pipe", "top", n, ["-P", "16"]))
        # The copy a rewrite must do when the first message goes: the
        # same bytes moved down in place by dd, with the same fdatasync.
        first_len = bl.first_message_length(master)

        def dd_move():
            return {"wall": bl.dd_move(self.spool, first_len, nbytes)}

        res["dd-move", "-"] = self.series(
            runs, 0, dd_move,
            lambda: bl.restore(master, self.spool, self.cw.owner))
        self.unlisten(tcp)
        # The client's ceiling: cat of the spool through the same paths.
        if name != "10M":
            bl.restore(master, self.spool, self.cw.owner)
            res["sink", "pipe"] = self.series(
                3, 1, lambda: bl.run_client(self.popbench, ["sink"], (),
                                            ["cat", str(master)]))
            cat = self.listen(["cat", str(master)], name=f"cat-{name}")
            res["sink", "tcp"] = self.series(
                3, 1, lambda: bl.run_client(self.popbench,
                                            ["sink", "-t", cat.addr]))
            self.unlisten(cat)
        if name == "100M" or (name == "1G" and self.a.tls_1g):
            self.tls_and_quickack(name, n, res)
        bl.log(f"  {name} done in {time.monotonic() - t_set:.0f} s")
        self.spool.unlink()
        master.unlink()
        self.report_set(name, n, nbytes, runs, res)
        return res

    def tls_and_quickack(self, name, n, res):
        # Pairs of close figures: more runs than elsewhere.
        runs = self.a.runs_1g if name == "1G" else max(self.a.runs, 10)
        if shutil.which("openssl") is None:
            bl.log("  openssl not found: no STLS runs")
        else:
            cert = bl.make_cert(self.work)
            tls, ru = self.wrapped(f"tls-{name}", ["--tls-cert", str(cert)])
            got = self.alternate(runs, 1, {
                "retr-stls": lambda: self.once("tcp", "retr", n, ["-S"], tls, ru),
                "retr-plain-tlsbuild": lambda: self.once("tcp", "retr", n, [],
                                                         tls, ru)})
            for k, v in got.items():
                res[k, "tcp"] = v
            self.unlisten(tls)
        tcp, ru = self.wrapped(f"qa-{name}")
        for sc in ("retr", "top"):
            got = self.alternate(runs, 1, {
                f"{sc}-quickack": lambda sc=sc: self.once(
                    "tcp", sc, n, ["-q"], tcp, ru),
                f"{sc}-delack": lambda sc=sc: self.once(
                    "tcp", sc, n, [], tcp, ru)})
            for k, v in got.items():
                res[k, "tcp"] = v
        self.unlisten(tcp)

    def report_set(self, name, n, nbytes, runs, res):
        rows = []
        for sc in bl.SCENARIOS:
            for tr in ("pipe", "tcp"):
                rs = res[sc, tr]
                w = bl.stats([r["wall"] for r in rs])
                mbps = "-"
                if sc == "retr":
                    mbps = f"{statistics_median([r['rx'] for r in rs]) / w['median'] / 1e6:.0f}"
                elif sc == "dele-first":
                    mbps = f"{nbytes / w['median'] / 1e6:.0f}"
                rows.append([
                    bl.LABELS[sc], tr, bl.fmt_s(w["median"]), bl.fmt_spread(w),
                    mbps,
                    f"{statistics_median([r['auth'] for r in rs]) * 1000:.1f}",
                    f"{statistics_median([r['quit'] for r in rs]) * 1000:.1f}",
                    f"{max(r['maxrss'] for r in rs) / 1024:.1f}",
                    f"{statistics_median([r['utime'] for r in rs]):.3f}",
                    f"{statistics_median([r['stime'] for r in rs]):.3f}",
                ])
        extra = []
        for key, label in (("retr-P16", "RETR all, 16 in flight"),
                           ("top-P16", "TOP n 0 all, 16 in flight")):
            rs = res[key, "pipe"]
            w = bl.stats([r["wall"] for r in rs])
            mbps = f"{statistics_median([r['rx'] for r in rs]) / w['median'] / 1e6:.0f}"
            extra.append([label, "pipe", bl.fmt_s(w["median"]),
                          bl.fmt_spread(w), mbps,
                          f"{statistics_median([r['auth'] for r in rs]) * 1000:.1f}",
                          f"{statistics_median([r['quit'] for r in rs]) * 1000:.1f}",
                          f"{max(r['maxrss'] for r in rs) / 1024:.1f}",
                          f"{statistics_median([r['utime'] for r in rs]):.3f}",
                          f"{statistics_median([r['stime'] for r in rs]):.3f}"])
        w = bl.stats([r["wall"] for r in res["dd-move", "-"]])
        extra.append(["reference: dd moving the same bytes as DELE first "
                      "(+ fdatasync)", "-", bl.fmt_s(w["median"]),
                      bl.fmt_spread(w), f"{nbytes / w['median'] / 1e6:.0f}",
                      "", "", "", "", ""])
        for tr in ("pipe", "tcp"):
            if ("sink", tr) in res:
                rs = res["sink", tr]
                w = bl.stats([r["wall"] for r in rs])
                extra.append([f"client ceiling: cat of the spool, read "
                              f"until EOF (3 runs)", tr, bl.fmt_s(w["median"]),
                              bl.fmt_spread(w),
                              f"{rs[0]['rx'] / w['median'] / 1e6:.0f}",
                              "", "", "", "", ""])
        hdr = ["scenario", "via", "median s", "spread (min/max)", "MB/s",
               "PASS→+OK ms", "QUIT→+OK ms", "peak RSS MB", "user s",
               "sys s"]
        runs_note = (f"{runs} timed runs per cell after one warm-up "
                     "(destructive scenarios: the spool restored before "
                     "each run, no warm-up needed)")
        self.md.append(
            f"### {name} spool: {n:,} messages, {nbytes / 1e6:.1f} MB\n\n"
            f"{runs_note}. Pipe and TCP take turns run by run. MB/s: octets "
            "received per second for RETR, spool size per second for DELE "
            "first. QUIT→+OK is UPDATE (the rewrite).\n\n"
            + bl.table(hdr, rows + extra))
        # Facts for the targets.
        s = self.summary.setdefault(name, {})
        s["n"], s["bytes"] = n, nbytes
        for sc in bl.SCENARIOS:
            for tr in ("pipe", "tcp"):
                s[sc, tr] = statistics_median([r["wall"] for r in res[sc, tr]])
                s[sc, tr, "auth"] = statistics_median(
                    [r["auth"] for r in res[sc, tr]])
                s[sc, tr, "rss"] = max(r["maxrss"] for r in res[sc, tr])
                s[sc, tr, "quit"] = statistics_median(
                    [r["quit"] for r in res[sc, tr]])
        s["retr-P16"] = statistics_median(
            [r["wall"] for r in res["retr-P16", "pipe"]])
        s["retr-rx"] = res["retr", "pipe"][0]["rx"]
        s["dd-move"] = statistics_median([r["wall"] for r in res["dd-move", "-"]])
        for key in ("retr-stls", "retr-plain-tlsbuild", "retr-quickack",
                    "retr-delack", "top-quickack", "top-delack"):
            if (key, "tcp") in res:
                s[key] = [r["wall"] for r in res[key, "tcp"]]
        for tr in ("pipe", "tcp"):
            if ("sink", tr) in res:
                s["sink", tr] = statistics_median(
                    [r["wall"] for r in res["sink", tr]])

    # --- login cost, start-up, connections per second ----------------------

    def small(self):
        bl.log("== login cost, start-up, connections per second")
        n, size = bl.TINY
        master = self.generate("tiny", n, size)
        bl.restore(master, self.spool, self.cw.owner)
        rows = []
        res = {}
        runs = max(self.a.runs, 20)
        # Start-up: exec to greeting, with and without the cwrap
        # libraries (without them nobody logs in, but the greeting
        # comes all the same).
        res["true"] = self.series(runs, 3, lambda: bl.run_client(
            self.popbench, ["sink"], (), ["/bin/true"]))
        # (As root: pre-login as nobody, a user from /etc/passwd, as the
        # pop3d user that make install adds would be; a name that is in
        # no file sends glibc on to the systemd NSS module, 5 ms more.)
        res["greet-plain"] = self.series(runs, 3, lambda: bl.run_client(
            self.popbench, ["greet"], (),
            self.pop3d(["--preauth-user=nobody"]), self.logs / "plain.log"))
        res["greet-cwrap"] = self.series(
            runs, 3, lambda: self.once("pipe", "greet"))
        res["stat-pipe"] = self.series(
            runs, 3, lambda: self.once("pipe", "stat", n))
        tcp, ru = self.wrapped("tcp-tiny")
        res["stat-tcp"] = self.series(
            runs, 3, lambda: self.once("tcp", "stat", n, tcp=tcp, ru=ru))
        self.unlisten(tcp)

        def med(key, field):
            return statistics_median([r[field] for r in res[key]])

        rows.append(["fork + exec of /bin/true (the floor)", "pipe",
                     f"{med('true', 'wall') * 1000:.2f}", "", "", ""])
        rows.append(["start to greeting, no cwrap", "pipe",
                     f"{med('greet-plain', 'greet') * 1000:.2f}", "", "",
                     f"{max(r['maxrss'] for r in res['greet-plain']) / 1024:.1f}"])
        rows.append(["start to greeting, under cwrap", "pipe",
                     f"{med('greet-cwrap', 'greet') * 1000:.2f}", "", "",
                     f"{max(r['maxrss'] for r in res['greet-cwrap']) / 1024:.1f}"])
        for tr in ("pipe", "tcp"):
            k = f"stat-{tr}"
            rows.append([f"login + STAT, {n} messages", tr,
                         f"{med(k, 'greet') * 1000:.2f}",
                         f"{med(k, 'auth') * 1000:.2f}",
                         f"{med(k, 'wall') * 1000:.2f}",
                         f"{max(r['maxrss'] for r in res[k]) / 1024:.1f}"])
        self.summary["greet"] = med("greet-plain", "greet")
        self.summary["rss-greet"] = max(r["maxrss"]
                                        for r in res["greet-cwrap"])
        self.summary["rss-tiny"] = max(r["maxrss"] for r in res["stat-pipe"])
        self.summary["true"] = med("true", "wall")
        self.summary["auth-tiny"] = {"pipe": med("stat-pipe", "auth"),
                                     "tcp": med("stat-tcp", "auth")}
        self.md.append(
            "### Start-up and login cost\n\n"
            f"Medians of {runs} runs. PASS→+OK is the login itself: PAM "
            "(pam_matrix under cwrap), the privilege separation hand-off and "
            f"loading a {n}-message spool.\n\n"
            + bl.table(["what", "via", "to greeting ms", "PASS→+OK ms",
                        "whole session ms", "peak RSS MB"], rows))

        # 200 sequential short sessions.
        count = 200
        cps = {}
        cps["pipe"] = self.many(["stat", "-r", str(count), "-e", str(n)],
                                self.pop3d(), self.cw.pairs)
        yes = self.listen(self.pop3d(), self.cw.pairs, True, "accept-yes")
        self.many(["stat", "-r", "10", "-t", yes.addr])
        cps["Accept=yes (systemd-socket-activate --inetd -a)"] = self.many(
            ["stat", "-r", str(count), "-e", str(n), "-t", yes.addr])
        self.unlisten(yes)
        no = self.listen(self.pop3d(), self.cw.pairs, False, "accept-no")
        self.many(["stat", "-r", "10", "-t", no.addr])
        cps["Accept=no (pop3d accepts, fork + exec per connection)"] = \
            self.many(["stat", "-r", str(count), "-e", str(n), "-t",
                       no.addr])
        self.unlisten(no)
        rows = []
        for mode, r in cps.items():
            rows.append([mode, f"{count / r['wall']:.0f}",
                         f"{r['session'] * 1000:.2f}",
                         f"{r['greet'] * 1000:.2f}",
                         f"{r['auth'] * 1000:.2f}"])
            bl.log(f"  {mode}: {count / r['wall']:.0f} sessions/s")
        self.summary["cps"] = {m: count / r["wall"] for m, r in cps.items()}
        self.md.append(
            f"### Connections per second\n\n{count} sequential sessions of "
            f"USER, PASS, STAT, QUIT on a {n}-message spool, one after the "
            "other (each waits for the server to close), after 10 warm-up "
            "sessions; medians per session.\n\n"
            + bl.table(["mode", "sessions/s", "session ms", "to greeting ms",
                        "PASS→+OK ms"], rows))
        self.spool.unlink()
        master.unlink()

    # --- targets -----------------------------------------------------------

    def rss_target(self, big, b):
        """Issue 12: peak RSS ≤ 100 B per message + 4 MB, with PAM's own
        memory reported apart. The login's fixed part (PAM and what it
        loads, OpenSSL for the UIDL digest, the session's buffers): the
        peak of a login + STAT on the 10-message spool less the peak of a
        session that only greets and quits (both under cwrap, pipe). The
        spool's own: the worst peak of any scenario on the big spool less
        that fixed part; per message: the worst peak less the 10-message
        login's, over the message count."""
        s = self.summary
        greet, tiny = s.get("rss-greet"), s.get("rss-tiny")
        worst = max(b[sc, tr, "rss"] for sc in bl.SCENARIOS
                    for tr in ("pipe", "tcp")) * 1024
        limit = 100 * b["n"] + 4 * 1024 * 1024
        label = (f"peak RSS ≤ 100 B/message + 4 MB ({big}: "
                 f"{limit / 1048576:.1f} MB), the login's fixed part "
                 "(PAM, OpenSSL) apart")
        if greet is None or tiny is None:
            return [label, f"{worst / 1048576:.1f} MB worst scenario "
                    "(no login figures: PAM's part unknown)", "-"]
        pam = max(0, tiny - greet) * 1024
        own = worst - pam
        per = (worst - tiny * 1024) / b["n"]
        return [label,
                f"{own / 1048576:.1f} MB: worst scenario "
                f"{worst / 1048576:.1f} MB less the login's fixed "
                f"{pam / 1048576:.1f} MB (login on 10 messages "
                f"{tiny / 1024:.1f} MB, greeting only "
                f"{greet / 1024:.1f} MB); {per:.0f} B per message above "
                "the 10-message login",
                "met" if own <= limit else "missed"]

    def targets(self):
        s = self.summary
        rows = []
        big = "1G" if "1G" in s else ("100M" if "100M" in s else None)
        tiny = s.get("auth-tiny", {}).get("pipe")
        if big is not None and tiny is not None:
            b = s[big]
            parse = b["stat", "pipe", "auth"] - tiny
            rows.append([f"parse at login ≥ 3 GB/s ({big} spool, PASS→+OK "
                         "minus the same on a 10-message spool)",
                         f"{b['bytes'] / parse / 1e9:.2f} GB/s "
                         f"({parse:.3f} s + {tiny * 1000:.1f} ms login)",
                         "met" if b["bytes"] / parse >= 3e9 else "missed"])
            rate = b["retr-rx"] / b["retr", "pipe"]
            rows.append([f"RETR all through a pipe ≥ 1 GB/s ({big}, lockstep)",
                         f"{rate / 1e9:.2f} GB/s",
                         "met" if rate >= 1e9 else "missed"])
            rate = b["retr-rx"] / b["retr-P16"]
            rows.append([f"RETR all through a pipe ≥ 1 GB/s ({big}, 16 "
                         "commands in flight)", f"{rate / 1e9:.2f} GB/s",
                         "met" if rate >= 1e9 else "missed"])
            rows.append(self.rss_target(big, b))
            rw = b["dele-first", "pipe", "quit"]
            rows.append([f"rewrite at copy speed ({big}, DELE first: QUIT "
                         "to +OK, against dd moving the same bytes in place "
                         "with fdatasync)",
                         f"{rw:.2f} s vs {b['dd-move']:.2f} s "
                         f"({rw / b['dd-move']:.2f}×)",
                         "met" if rw <= 1.1 * b["dd-move"] else "missed"])
            for sc in ("dele-last", "dele-all"):
                q = b[sc, "pipe", "quit"]
                rows.append([f"{bl.LABELS[sc]} costs no copy ({big}: QUIT "
                             "to +OK)",
                             f"{q * 1000:.1f} ms (DELE first: "
                             f"{rw * 1000:.0f} ms)",
                             "met" if q < 0.05 * rw + 0.005 else "missed"])
        if "greet" in s:
            rows.append(["process start to greeting ≤ 2 ms (pipe, no "
                         "cwrap, median)",
                         f"{s['greet'] * 1000:.2f} ms (fork + exec of "
                         f"/bin/true: {s['true'] * 1000:.2f} ms)",
                         "met" if s["greet"] <= 0.002 else "missed"])
        for name in ("100M", "1G"):
            if name in s and "retr-quickack" in s[name]:
                for sc, label in (("retr", "no stall with delayed-ACK "
                                   "clients: RETR all, delayed ACKs / "
                                   "TCP_QUICKACK ≤ 1.1"),
                                  ("top", "(also) TOP n 0 all, delayed "
                                   "ACKs / TCP_QUICKACK")):
                    q = s[name][f"{sc}-quickack"]
                    d = s[name][f"{sc}-delack"]
                    mq, md_ = statistics_median(q), statistics_median(d)
                    # A stall shows in the median and in the best run
                    # alike; a burst of load from other processes seldom
                    # hits both the same way, so the closer one decides.
                    ratio = min(d) / min(q)
                    off = min(abs(ratio - 1), abs(md_ / mq - 1))
                    rows.append([f"{label} ({name}, TCP; delayed ACKs vs "
                                 "TCP_QUICKACK, runs taking turns)",
                                 f"median {md_:.3f} s vs {mq:.3f} s "
                                 f"({(md_ / mq - 1) * 100:+.1f} %), best "
                                 f"{min(d):.3f} s vs {min(q):.3f} s "
                                 f"({(ratio - 1) * 100:+.1f} %)",
                                 "met" if off <= 0.10 else "missed"])
            if name in s and "retr-stls" in s[name]:
                p = statistics_median(s[name]["retr-plain-tlsbuild"])
                t = statistics_median(s[name]["retr-stls"])
                rows.append([f"(for reference) RETR all over STLS vs plain "
                             f"({name}, TCP, same server)",
                             f"{t:.3f} s vs {p:.3f} s ({t / p:.2f}×)", "-"])
        self.md.insert(0, "### Targets (issue 12) measured by make bench\n\n"
                       "Ratios against popa3d come from make bench-peers. "
                       "The rewrite rows are issue 6's, kept for "
                       "reference (issue 13 states its own against popa3d "
                       "and dd, in make bench-peers).\n\n"
                       + bl.table(["target", "measured", ""], rows))


def pwrap_race(e):
    """pam_wrapper, racing other cwrap users for /tmp/pam.X, makes PAM
    fail: [SYS/TEMP], or [AUTH] when its copy of the config is missing."""
    return ("SYS/TEMP" in str(e) or "[AUTH]" in str(e)
            or "connection closed while waiting" in str(e))


def statistics_median(v):
    return bl.stats(v)["median"]


def clean(line):
    # perf pads each row with empty columns ("-  -").
    return re.sub(r"(\s+-)+\s*$", "", line.rstrip())


def profile(b, work):
    """perf record of login + STAT (the parser), RETR all and DELE first
    on the 100 MB set, through the pipe."""
    if shutil.which("perf") is None:
        bl.log("perf not found: no profile")
        return
    n, size = bl.SETS["100M"]
    master = b.generate("100M", n, size)
    out = []
    for sc in ("stat", "retr", "dele-first"):
        bl.restore(master, b.spool, b.cw.owner)
        b.once("pipe", "stat", n)
        bl.restore(master, b.spool, b.cw.owner)
        data = work / f"perf-{sc}.data"
        argv = ["perf", "record", "-q", "-F", "4000", "-g", "-o", str(data),
                "--", str(b.popbench)]
        for p in b.cw.pairs:
            argv += ["-E", p]
        argv += ["-L", str(b.logs / "perf.log"), sc, "-e", str(n), "--"] \
            + b.pop3d()
        subprocess.run(argv, check=True, capture_output=True)
        rep = subprocess.run(
            ["perf", "report", "-i", str(data), "--stdio", "--no-children",
             "--comm", "pop3d", "--sort", "dso,symbol", "-g", "none",
             "--percent-limit", "0.7"],
            capture_output=True, check=False)
        lines = [clean(ln) for ln in
                 rep.stdout.decode(errors="replace").splitlines()
                 if ln.strip() and not ln.startswith("#")]
        callers = subprocess.run(
            ["perf", "report", "-i", str(data), "--stdio", "--children",
             "--comm", "pop3d", "--sort", "symbol", "-g", "none",
             "--percent-limit", "5"],
            capture_output=True, check=False)
        clines = [clean(ln) for ln in
                  callers.stdout.decode(errors="replace").splitlines()
                  if ln.strip() and not ln.startswith("#")]
        out.append(f"#### {bl.LABELS[sc]}, 100 MB spool, pipe\n\n"
                   "Self time, samples in pop3d processes (perf record "
                   "-F 4000 -g; perf report --no-children --comm pop3d "
                   "--sort dso,symbol):\n\n```\n" + "\n".join(lines[:30])
                   + "\n```\n\nInclusive time (--children, ≥ 5 %):\n\n```\n"
                   + "\n".join(clines[:30]) + "\n```")
        bl.log(f"  profiled {sc}")
    b.spool.unlink()
    master.unlink()
    b.md.append("### Profiles\n\n" + "\n\n".join(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--sets", default="10M,100M,1G")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--runs-1g", type=int, default=3)
    ap.add_argument("--tls-1g", action="store_true",
                    help="also STLS and TCP_QUICKACK runs on the 1 GB set")
    ap.add_argument("--out")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--profile-only", action="store_true")
    ap.add_argument("--keep", action="store_true",
                    help="keep the work directory (logs)")
    a = ap.parse_args()
    sets = [s for s in a.sets.split(",") if s]
    for s in sets:
        if s not in bl.SETS:
            raise SystemExit(f"unknown set {s}; sets: {', '.join(bl.SETS)}")
    if shutil.which("systemd-socket-activate") is None:
        raise SystemExit("systemd-socket-activate not found (make deps)")
    out = Path(a.out) if a.out else bl.TOP / "bench" / "out" / (
        "bench-" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S") + ".md")
    work = Path(tempfile.mkdtemp(prefix="pop3d-bench.",
                                 dir=os.environ.get("TMPDIR", "/tmp")))
    os.chmod(work, 0o755)
    t0 = time.monotonic()
    load = bl.LoadMeter()
    b = None
    try:
        b = Bench(a, work)
        bl.log(f"bench: {b.binary}, work directory {work}")
        if not a.profile_only:
            b.small()
            for s in sets:
                b.spool_set(s)
            b.targets()
        if a.profile or a.profile_only:
            profile(b, work)
        head = (f"## pop3d benchmark (make bench)\n\nMachine: {bl.machine()}. "
                f"pop3d at commit {bl.commit()}. "
                f"pop3d under cwrap (tests/cwrap/env.sh: pam_matrix, "
                f"nss_wrapper, uid_wrapper), client bench/popbench "
                f"(lockstep: one command, then its whole reply, unless "
                f"said otherwise). "
                + ("" if b.cw.root else "Not root: pop3d runs as the user "
                   "itself (no chroot, no uid change). ")
                + f"Total time {time.monotonic() - t0:.0f} s; "
                f"{load.report()}.")
        text = head + "\n\n" + "\n\n".join(b.md) + "\n"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print("\n" + text)
        bl.log(f"bench: results in {out}")
    finally:
        if b is not None:
            for lst in list(b.listeners):
                lst.stop()
        if a.keep:
            bl.log(f"bench: kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
