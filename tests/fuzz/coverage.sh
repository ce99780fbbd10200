#!/bin/sh
# Line coverage of the fuzz corpora (make fuzz-coverage):
#   tests/fuzz/coverage.sh BUILD-COV-DIR
# Runs each coverage-instrumented harness in BUILD-COV-DIR once over its
# seeds and over what make fuzz collected in build-fuzz/corpus/<harness>/
# (not the regression inputs: until fixed they abort), then prints
# llvm-cov's report for the sources that harness is about. HTML:
# llvm-cov show BIN -instr-profile=BUILD-COV-DIR/<harness>.profdata
# -format=html -output-dir=DIR.
set -eu

if [ $# -lt 1 ]; then
	echo "usage: $0 BUILD-COV-DIR" >&2
	exit 2
fi
cov=$1
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
work=${FUZZ_CORPUS_DIR:-$top/build-fuzz/corpus}
profdata=$(command -v llvm-profdata || command -v llvm-profdata-14)
llvmcov=$(command -v llvm-cov || command -v llvm-cov-14)

for h in fuzz_session fuzz_mbox fuzz_sasl fuzz_records fuzz_uidl; do
	case $h in
	fuzz_session)
		src="session.c session_auth.c session_trans.c command.c netio.c
		     maildrop.c mbox.c uidl.c dotstuff.c journal.c sasl.c" ;;
	fuzz_mbox) src="maildrop.c mbox.c uidl.c dotstuff.c journal.c" ;;
	fuzz_sasl) src="sasl.c" ;;
	fuzz_records) src="monitor.c" ;;
	fuzz_uidl) src="mbox.c uidl.c maildrop.c" ;;
	esac
	rm -f "$cov/$h".*.profraw
	dirs=$here/corpus/$h
	[ -d "$work/$h" ] && dirs="$dirs $work/$h"
	# shellcheck disable=SC2086
	echo "== $h ($(find $dirs -type f | wc -l) inputs)"
	# shellcheck disable=SC2086
	LLVM_PROFILE_FILE="$cov/$h.%p.profraw" "$cov/$h" -runs=0 $dirs \
		>"$cov/$h.log" 2>&1
	"$profdata" merge -sparse -o "$cov/$h.profdata" "$cov/$h".*.profraw
	# shellcheck disable=SC2086
	(cd "$top" && "$llvmcov" report "$cov/$h" \
		-instr-profile="$cov/$h.profdata" $src)
	if [ "$h" = fuzz_records ]; then
		(cd "$top" && "$llvmcov" report "$cov/$h" \
			-instr-profile="$cov/$h.profdata" -show-functions \
			monitor.c | grep -E 'Name|privsep_check_record|valid_request')
	fi
done
