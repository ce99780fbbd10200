#!/usr/bin/python3
"""Fault, kill, signal and spool-problem tests of pop3d (issue 5):

    run.py --binary BUILD/pop3d --shim BUILD/faultshim.so [-k NAME]...
           [--kill-runs 200] [--kill-messages 3000] [--seed N] [-j JOBS]
           [--crash-states 200] [--crash-teeth-states 150] [--crash-undo-ok]

Tests are the test_* functions of test_faults.py (injected I/O faults),
test_kill.py (SIGKILL at random moments), test_recover.py (pop3d
--recover after a kill inside UPDATE), test_signals.py (hang-ups,
SIGTERM/SIGHUP, a client that stops reading), test_spool.py (spools
that are not what they should be), test_cowspace.py (UPDATE on nearly
full btrfs, XFS and ext4; root) and crash_explore.py (power-cut states
of UPDATE, and that the explorer catches each sync left out). One line per test, then the figures
(faults injected, kills, messages checked, anything lost, duplicated or
damaged), then the failures in full, and last "N passed, N failed"; the
exit status is 1 if any test failed.
"""

import argparse
import importlib
import os
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.dont_write_bytecode = True

import faultlib  # noqa: E402
from faultlib import harness  # noqa: E402

MODULES = ["test_spool", "test_signals", "test_faults", "test_kill", "test_recover",
           "test_cowspace", "crash_explore"]


class Context:
    def __init__(self, env, opts):
        self.env = env
        self.opts = opts
        self.lock = threading.Lock()
        self.figures = {}
        self.notes = []

    def count(self, name, n=1):
        with self.lock:
            self.figures[name] = self.figures.get(name, 0) + n

    def note(self, text):
        with self.lock:
            self.notes.append(text)


def collect(filters):
    tests = []
    for name in MODULES:
        mod = importlib.import_module(name)
        for attr in sorted(dir(mod)):
            fn = getattr(mod, attr)
            if attr.startswith("test_") and callable(fn):
                full = f"{name}.{attr}"
                if not filters or any(f in full for f in filters):
                    tests.append((full, fn))
    return tests


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--shim", required=True)
    ap.add_argument("-k", "--filter", action="append", default=[])
    # One test at a time: pop3d processes started at the same moment race
    # for pam_wrapper's /tmp/pam.X directory (cwrap), which fails logins.
    ap.add_argument("-j", "--jobs", type=int, default=1)
    ap.add_argument("--kill-runs", type=int, default=200)
    ap.add_argument("--kill-messages", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=None)
    # A bounded exploration; make check-crash runs a long one.
    ap.add_argument("--crash-states", type=int, default=200,
                    help="distinct power-cut states per scenario")
    ap.add_argument("--crash-teeth-states", type=int, default=150,
                    help="states tried per mutant before a dropped sync counts as missed")
    ap.add_argument("--crash-undo-ok", action="store_true",
                    help="the journal may roll UPDATE back after it began (today's)")
    ap.add_argument("--keep", action="store_true")
    opts = ap.parse_args()
    if opts.seed is None:
        opts.seed = int(time.time()) % 100000
    for f in (opts.binary, opts.shim):
        if not os.path.exists(f):
            print(f"run.py: {f} not found", file=sys.stderr)
            return 2

    workdir = harness.make_workdir()
    env = faultlib.Env(opts.binary, workdir, opts.shim)
    ctx = Context(env, opts)
    tests = collect(opts.filter)
    print(f"# {env.binary} ({'ASan' if env.asan else 'plain'}, "
          f"{'with' if env.has_journal else 'without'} --journal-dir), "
          f"{'real root' if env.really_root else 'not root'}, {len(tests)} tests, "
          f"seed {opts.seed}, work dir {workdir}", flush=True)

    results = {}
    plock = threading.Lock()

    def run_one(name, fn):
        start = time.monotonic()
        try:
            fn(ctx)
            status, detail = "ok", ""
        except harness.TestSkipped as e:
            status, detail = "skip", str(e)
        except harness.TestFailure as e:
            status, detail = "FAIL", str(e)
        except Exception:
            status, detail = "FAIL", traceback.format_exc()
        took = time.monotonic() - start
        with plock:
            results[name] = (status, detail)
            first = detail.splitlines()[0] if detail else ""
            print(f"{status:4} {name} ({took:.1f}s){': ' + first[:150] if first else ''}",
                  flush=True)

    # The kill test is long and sequential: start it first.
    tests.sort(key=lambda t: 0 if "test_kill" in t[0] else 1)
    with ThreadPoolExecutor(max_workers=opts.jobs) as pool:
        for name, fn in tests:
            pool.submit(run_one, name, fn)

    print("\n# figures")
    for k in sorted(ctx.figures):
        print(f"  {k}: {ctx.figures[k]}")
    for n in ctx.notes:
        print(f"  note: {n}")
    failed = sorted(n for n, (s, _) in results.items() if s == "FAIL")
    passed = sum(1 for s, _ in results.values() if s == "ok")
    skipped = sum(1 for s, _ in results.values() if s == "skip")
    for name in failed:
        print(f"\n--- FAIL {name}\n    " + results[name][1].replace("\n", "\n    "))
    if failed:
        print()
    if opts.keep or failed:
        print(f"# work dir kept: {workdir}")
    else:
        harness.remove_workdir(workdir)
    line = f"{passed} passed, {len(failed)} failed"
    if skipped:
        line += f", {skipped} skipped"
    print(line, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
