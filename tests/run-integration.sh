#!/bin/sh
# Integration tests of pop3d: tests/run-integration.sh BINARY [run.py options]
# e.g. tests/run-integration.sh build/pop3d, or build-asan/pop3d.
# Prints one line per test and a final "N passed, N failed"; exits non-zero
# on any failure. Needs Debian's python3 (stdlib only) and the cwrap
# packages libuid-wrapper, libnss-wrapper, libpam-wrapper.
set -eu
if [ $# -lt 1 ]; then
	echo "usage: $0 BINARY [-j JOBS] [-k NAME-SUBSTRING]..." >&2
	exit 2
fi
here=$(dirname "$0")
# Debian's python3 on purpose, not whatever pyenv/venv python is on PATH:
# the suite uses only its standard library.
exec /usr/bin/python3 -B "$here/integration/run.py" "$@"
