#!/usr/bin/python3
"""Run every pop3d integration test against one binary.

    run.py BINARY [-j JOBS] [-k SUBSTRING]...

Tests are the scripts in tests/scripts/ (see scripts.py) and the functions
named test_* in tests/integration/test_*.py, each called with the shared
Environment. They run in parallel because every failed login costs pop3d
at least 2 s by design. One line per test, failure details after all of
them, and last a line "N passed, N failed"; the exit status is 1 if any
test failed.
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
sys.dont_write_bytecode = True   # keep the source tree clean

import harness  # noqa: E402
import scripts  # noqa: E402


def collect():
    tests = [(f"scripts/{name}", scripts.ScriptTest(name).run)
             for name in scripts.discover()]
    for path in sorted(HERE.glob("test_*.py")):
        mod = importlib.import_module(path.stem)
        for attr in sorted(dir(mod)):
            fn = getattr(mod, attr)
            if attr.startswith("test_") and callable(fn):
                tests.append((f"{path.stem}.{attr}", fn))
    return tests


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binary")
    ap.add_argument("-j", "--jobs", type=int, default=8)
    ap.add_argument("-k", "--filter", action="append", default=[],
                    help="run only tests whose name contains this")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    opts = ap.parse_args()

    if not os.access(opts.binary, os.X_OK):
        print(f"run.py: {opts.binary} is not an executable", file=sys.stderr)
        return 2
    tests = collect()
    if opts.filter:
        tests = [t for t in tests if any(f in t[0] for f in opts.filter)]

    workdir = harness.make_workdir()
    env = harness.Environment(opts.binary, workdir)
    print(f"# {opts.binary} ({'ASan' if env.asan else 'plain'}), "
          f"{'real root' if env.really_root else 'not root'}, {len(tests)} tests, "
          f"work dir {workdir}", flush=True)

    lock = threading.Lock()
    results = {}

    def run_one(name, fn):
        start = time.monotonic()
        try:
            fn(env)
            status, detail = "ok", ""
        except harness.TestSkipped as e:
            status, detail = "skip", str(e)
        except harness.TestFailure as e:
            status, detail = "FAIL", str(e)
        except Exception:
            status, detail = "FAIL", traceback.format_exc()
        took = time.monotonic() - start
        with lock:
            results[name] = (status, detail)
            first = detail.splitlines()[0] if detail else ""
            print(f"{status:4} {name} ({took:.1f}s){': ' + first if first else ''}",
                  flush=True)

    with ThreadPoolExecutor(max_workers=opts.jobs) as pool:
        for name, fn in tests:
            pool.submit(run_one, name, fn)

    failed = [n for n, (s, _) in results.items() if s == "FAIL"]
    passed = sum(1 for s, _ in results.values() if s == "ok")
    for name in sorted(failed):
        print(f"\n--- FAIL {name}\n    " + results[name][1].replace("\n", "\n    "))
    if failed:
        print()
    if opts.keep or failed:
        print(f"# work dir kept: {workdir}")
    else:
        harness.remove_workdir(workdir)
    print(f"{passed} passed, {len(failed)} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
