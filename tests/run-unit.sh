#!/bin/sh
# Run each unit test binary given as an argument (built from
# tests/unit/test_MODULE.c by make); check prints its own
# summary ("100%: Checks: N, Failures: 0, Errors: 0") and any failures.
# Exits non-zero if any binary fails, is missing, or dies.
# CK_VERBOSITY=verbose lists every test; CK_FORK=no helps a debugger.

if [ $# -eq 0 ]; then
	echo "usage: $0 TEST-BINARY..." >&2
	exit 2
fi

failed=
for t in "$@"; do
	echo "== $t"
	if [ ! -x "$t" ]; then
		echo "$t: not found or not executable" >&2
		failed="$failed $t"
		continue
	fi
	"$t"
	rc=$?
	if [ $rc -ne 0 ]; then
		echo "$t: FAILED (exit status $rc)" >&2
		failed="$failed $t"
	fi
done

if [ -n "$failed" ]; then
	echo "unit tests failed:$failed" >&2
	exit 1
fi
echo "all unit tests passed"
