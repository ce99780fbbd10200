#!/usr/bin/python3
"""pop3d behind Debian's HAProxy (issue 15, design.md §13): make check-proxy.

    run.py BINARY [-k NAME]...

The test_* functions of test_haproxy.py, one after another, in the
integration tests' cwrap environment (tests/integration/harness.py):
HAProxy in mode tcp with send-proxy and send-proxy-v2 and its health
checks in front of pop3d's Accept=no listener, clients on other loopback
addresses, implicit TLS passed through, and a client in another network
namespace. Needs root (network namespaces) and haproxy. One line per test,
then "N passed, N failed"; exit status 1 if any failed.
"""

import argparse
import shutil
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))
sys.path.insert(0, str(HERE))
sys.dont_write_bytecode = True

import harness  # noqa: E402
import test_haproxy  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binary")
    ap.add_argument("-k", "--filter", action="append", default=[])
    opts = ap.parse_args()
    if shutil.which("haproxy") is None:
        print("run.py: no haproxy (Debian: apt-get install haproxy)", file=sys.stderr)
        return 2
    tests = [(n, getattr(test_haproxy, n)) for n in sorted(dir(test_haproxy))
             if n.startswith("test_") and callable(getattr(test_haproxy, n))]
    if opts.filter:
        tests = [t for t in tests if any(f in t[0] for f in opts.filter)]
    workdir = harness.make_workdir()
    env = harness.Environment(opts.binary, workdir)
    print(f"# {opts.binary}, {test_haproxy.haproxy_version()}, {len(tests)} tests, "
          f"work dir {workdir}", flush=True)
    failed, passed = [], 0
    for name, fn in tests:
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
        first = detail.splitlines()[0] if detail else ""
        print(f"{status:4} {name} ({time.monotonic() - start:.1f}s)"
              f"{': ' + first if first else ''}", flush=True)
        if status == "FAIL":
            failed.append((name, detail))
        passed += status == "ok"
    for name, detail in failed:
        print(f"\n--- FAIL {name}\n    " + detail.replace("\n", "\n    "))
    if failed:
        print(f"\n# work dir kept: {workdir}")
    else:
        harness.remove_workdir(workdir)
    print(f"{passed} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
