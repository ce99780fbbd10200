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

# All at once: most are quick, but test_lock waits out real lock
# timeouts (about 15 s) and test_journal kills compactions; side by side
# they cost the longest one, not the sum. Output is shown in order.
out=$(mktemp -d "${TMPDIR:-/tmp}/pop3d-unit.XXXXXX")
trap 'rm -rf "$out"' EXIT
i=0
for t in "$@"; do
	i=$((i + 1))
	if [ -x "$t" ]; then
		("$t" >"$out/$i.log" 2>&1
		echo $? >"$out/$i.rc") &
	fi
done
wait

failed=
i=0
for t in "$@"; do
	i=$((i + 1))
	echo "== $t"
	if [ ! -x "$t" ]; then
		echo "$t: not found or not executable" >&2
		failed="$failed $t"
		continue
	fi
	cat "$out/$i.log"
	rc=$(cat "$out/$i.rc" 2>/dev/null || echo 127)
	if [ "$rc" -ne 0 ]; then
		echo "$t: FAILED (exit status $rc)" >&2
		failed="$failed $t"
	fi
done

if [ -n "$failed" ]; then
	echo "unit tests failed:$failed" >&2
	exit 1
fi
echo "all unit tests passed"
