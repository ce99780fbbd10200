#!/bin/sh
# Run one libFuzzer harness as make fuzz does:
#   tests/fuzz/run.sh build-fuzz/fuzz_NAME SECONDS
# First every seed (tests/fuzz/corpus/NAME/) and every regression input
# (tests/fuzz/regressions/NAME/) is replayed once; then the harness fuzzes
# for SECONDS seconds, adding what it finds to <build>/corpus/NAME/ (the
# committed seeds are never written). Exits non-zero on any crash, leak,
# sanitizer report or timeout (FUZZ_TIMEOUT seconds for one input, default
# 10); the input is then in <build>/artifacts/NAME/. Extra libFuzzer flags
# may come in FUZZ_FLAGS.
set -eu

if [ $# -ne 2 ]; then
	echo "usage: $0 BUILD-DIR/fuzz_NAME SECONDS" >&2
	exit 2
fi
bin=$1
seconds=$2
name=$(basename "$bin")
here=$(cd "$(dirname "$0")" && pwd)
build=$(dirname "$bin")
seeds=$here/corpus/$name
regressions=$here/regressions/$name
work=$build/corpus/$name
artifacts=$build/artifacts/$name/
timeout=${FUZZ_TIMEOUT:-10}

case $name in
fuzz_session) dict=pop3.dict max_len=20000 ;;
fuzz_mbox) dict=mbox.dict max_len=8192 ;;
fuzz_uidl) dict=mbox.dict max_len=16384 ;;
fuzz_sasl) dict=sasl.dict max_len=2048 ;;
fuzz_records) dict=records.dict max_len=16400 ;;
fuzz_journal) dict=journal.dict max_len=24576 ;;
fuzz_dotstuff) dict=dotstuff.dict max_len=2048 ;;
fuzz_proxy) dict=proxy.dict max_len=1100 ;;
*)
	echo "$0: unknown harness $name" >&2
	exit 2
	;;
esac

# Leaks count (LeakSanitizer is on by default with ASan on Linux); UBSan
# stops at its first report (the code is also built with
# -fno-sanitize-recover=all).
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:detect_stack_use_after_return=1}
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export ASAN_OPTIONS UBSAN_OPTIONS

mkdir -p "$work" "$artifacts"

echo "== $name: replaying seeds and regression inputs"
if [ -d "$regressions" ] && [ -n "$(ls -A "$regressions")" ]; then
	dirs="$seeds $regressions"
else
	dirs=$seeds
fi
# -close_fd_mask=2: pop3d logs every session to stderr; libFuzzer and the
# sanitizers keep a copy of stderr for their own reports.
log=$build/replay-$name.log
status=0
# shellcheck disable=SC2086
find $dirs -type f ! -name 'README*' -exec "$bin" -timeout="$timeout" \
	-close_fd_mask=2 -detect_leaks=1 {} + >"$log" 2>&1 || status=$?
grep -v -e '^Running: ' -e '^Executed ' -e '^\*\*\*' "$log" || true
if [ "$status" -ne 0 ]; then
	echo "$name: FAILED on a seed or regression input (above)" >&2
	exit 1
fi

echo "== $name: fuzzing for $seconds s"
# shellcheck disable=SC2086
"$bin" -max_total_time="$seconds" -timeout="$timeout" -max_len="$max_len" \
	-dict="$here/$dict" -artifact_prefix="$artifacts" -close_fd_mask=2 \
	-detect_leaks=1 -rss_limit_mb=2048 -print_final_stats=1 \
	${FUZZ_FLAGS:-} "$work" "$seeds"
