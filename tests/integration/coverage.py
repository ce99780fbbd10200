#!/usr/bin/python3
"""Which checklist IDs the integration tests cover, and whether every
reference in the tree resolves.

    coverage.py [-q] [CHECKLIST]   (default: docs/rfc-checklist.md)

Script tests declare their IDs in the "# " comment lines of NAME.in; Python
tests name them in their docstrings. Prints every in-scope ID (issue 2:
sections 2-7, 9, 13-22; issue 4: sections 1, 8, 11 and 12, TLS and SASL;
issue 16: section 25, the other capabilities)
with the tests that cover it; IDs that do not apply to pop3d are listed
apart with the reason. Then checks the references: every checklist ID
cited anywhere in the sources, tests and documentation must be defined in
the checklist, and every "design.md §N" (or "design.md section N") must
name a section of docs/design.md. Exits 1 if an in-scope ID is uncovered
or a reference does not resolve. -q prints only the problems and the
summary (make check runs it so).
"""

import re
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DOCS = REPO / "docs"
ID_RE = re.compile(r"\b(R\d{4}-\d+|DEC-\d+|PROXY-\d+)\b")
# "design.md §4", "design.md §4.2", "design.md section 4" (across a line
# break too).
DESIGN_REF_RE = re.compile(r"design\.md,?\s+(?:§\s*|section\s+)(\d+(?:\.\d+)?)")
# Where references are looked for: sources, tests, documentation.
REF_GLOBS = ["*.c", "*.h", "*.md", "*.8", "INSTALL", "Makefile", "docs/*.md",
             "units/**/*", "tests/**/*.c", "tests/**/*.h", "tests/**/*.py",
             "tests/**/*.sh", "tests/**/*.in", "tests/**/*.md", "tests/**/README",
             "bench/*.md", "bench/*.py", "bench/*.c", ".ci/run"]
SECTIONS = set(range(1, 10)) | set(range(11, 23)) | {25}
SECTIONS |= {27}  # the PROXY protocol (issue 15)
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
        for i in re.findall(r"\*\*(R\d{4}-\d+|DEC-\d+|PROXY-\d+)\*\*", line):
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


def defined_ids(checklist):
    return set(re.findall(r"\*\*(R\d{4}-\d+|DEC-\d+|PROXY-\d+)\*\*",
                          checklist.read_text()))


def design_sections(design):
    secs = set()
    for line in design.read_text().splitlines():
        m = re.match(r"#{2,3} (\d+(?:\.\d+)?)\.? ", line)
        if m:
            secs.add(m.group(1))
    return secs


def reference_problems(checklist, design):
    """Cited IDs the checklist does not define, and design.md sections
    that do not exist, as "file: reference" lines."""
    ids, secs = defined_ids(checklist), design_sections(design)
    problems = []
    files = sorted({p for g in REF_GLOBS for p in REPO.glob(g) if p.is_file()})
    for p in files:
        try:
            text = p.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        rel = p.relative_to(REPO)
        for i in sorted(set(ID_RE.findall(text)) - ids):
            problems.append(f"{rel}: {i} is not in {checklist.name}")
        for n in sorted(set(DESIGN_REF_RE.findall(text)) - secs):
            problems.append(f"{rel}: design.md §{n} does not exist")
    return problems


def main():
    args = sys.argv[1:]
    quiet = "-q" in args
    args = [a for a in args if a != "-q"]
    checklist = Path(args[0]) if args else DOCS / "rfc-checklist.md"
    cov = covered()
    missing = []
    for i, why in OUT_OF_SCOPE.items():
        if not quiet:
            print(f"{i:10} n/a: {why}")
    for i in in_scope(checklist):
        tests = sorted(cov.get(i, ()))
        if not quiet or not tests:
            print(f"{i:10} {', '.join(tests) if tests else 'NOT COVERED'}")
        if not tests:
            missing.append(i)
    print(f"{len(missing)} in-scope IDs not covered{': ' + ' '.join(missing) if missing else ''}")
    problems = reference_problems(checklist, DOCS / "design.md")
    for p in problems:
        print(p)
    cited = set()
    for g in REF_GLOBS:
        for p in REPO.glob(g):
            if p.is_file() and p.resolve() != checklist.resolve():
                try:
                    cited |= set(ID_RE.findall(p.read_text()))
                except (UnicodeDecodeError, OSError):
                    pass
    print(f"{len(defined_ids(checklist))} IDs in {checklist.name}, {len(cited)} cited in the "
          f"tree; {len(problems)} references that do not resolve")
    return 1 if missing or problems else 0


if __name__ == "__main__":
    sys.exit(main())
