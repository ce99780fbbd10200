#!/usr/bin/python3
"""Which checklist IDs the integration tests cover.

    coverage.py [CHECKLIST]   (default: ../shared/rfc-checklist.md from the repo)

Script tests declare their IDs in the "# " comment lines of NAME.in; Python
tests name them in their docstrings. Prints every in-scope ID (issue 2:
sections 2-7, 9, 13-22; issue 4: sections 1, 8, 11 and 12, TLS and SASL)
with the tests that cover it, and exits 1 if any is uncovered. IDs that
do not apply to pop3d are listed apart with the reason.
"""

import re
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
ID_RE = re.compile(r"\b(R\d{4}-\d+|DEC-\d+)\b")
SECTIONS = set(range(1, 10)) | set(range(11, 23))
# In those sections but not applicable to pop3d, with the reason.
OUT_OF_SCOPE = {
    "R2595-04": "obsolete: the RFC 2595 mandatory cipher is not to be enabled",
    "R6856-06": "UTF8 (RFC 6856) is not implemented yet",
    "R5034-17": "no mechanism offered has a security layer (PLAIN, LOGIN)",
    "R5034-21": "NOT IMPLEMENTED: no GSSAPI or SCRAM mechanism (SHOULD)",
}


def in_scope(checklist):
    ids, sec = [], None
    for line in checklist.read_text().splitlines():
        m = re.match(r"## (\d+)\.", line)
        if m:
            sec = int(m.group(1))
        for i in re.findall(r"\*\*(R\d{4}-\d+|DEC-\d+)\*\*", line):
            if sec in SECTIONS and i not in OUT_OF_SCOPE:
                ids.append(i)
    return ids


def covered():
    cov = defaultdict(set)
    for p in sorted((HERE.parent / "scripts").glob("*.in")):
        for line in p.read_text().splitlines():
            if line.startswith("# "):
                for i in ID_RE.findall(line):
                    cov[i].add("scripts/" + p.stem)
    for p in sorted(HERE.glob("test_*.py")):
        for i in ID_RE.findall(p.read_text()):
            cov[i].add(p.stem)
    return cov


def main():
    checklist = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "shared" / "rfc-checklist.md"
    cov = covered()
    missing = []
    for i, why in OUT_OF_SCOPE.items():
        print(f"{i:10} n/a: {why}")
    for i in in_scope(checklist):
        tests = sorted(cov.get(i, ()))
        print(f"{i:10} {', '.join(tests) if tests else 'NOT COVERED'}")
        if not tests:
            missing.append(i)
    print(f"{len(missing)} in-scope IDs not covered{': ' + ' '.join(missing) if missing else ''}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
