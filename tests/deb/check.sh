#!/bin/bash
# tests/deb/check.sh OUTDIR: make check-deb (root), after make deb. The
# package that make deb left in OUTDIR must be lintian-clean (no error, no
# warning: the informational tags are printed), its binary must pass
# hardening-check, and it must install, serve mail, remove and purge in
# the booted Debian 12 of make check-systemd (tests/deb/container.py).
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:?usage: $0 OUTDIR}
say() { printf '%s\n' "$*"; }
die() {
	say "FAIL  $*"
	exit 1
}

[ "$(id -u)" -eq 0 ] || die "make check-deb must run as root"
"$top/tests/deb/deps.sh"
# One build's files (tests/deb/build.sh removes the previous ones).
deb=$(echo "$out"/pop3d_*_*.deb)
changes=$(echo "$out"/pop3d_*.changes)
dsc=$(echo "$out"/pop3d_*.dsc)
for f in "$deb" "$changes" "$dsc"; do
	[ -f "$f" ] || die "no single $f: run make deb"
done

# lintian as an ordinary user (it warns about root), over the binary
# build and the source package. -E --pedantic: every tag it knows.
lint=$(setpriv --reuid=nobody --regid=nogroup --clear-groups \
	env HOME=/tmp TMPDIR=/tmp lintian -I -E --pedantic \
	--tag-display-limit 0 "$changes" "$dsc" 2>&1) ||
	die "lintian: $lint"
[ -z "$lint" ] || printf '%s\n' "$lint" | sed 's/^/      /'
if printf '%s\n' "$lint" | grep -q '^[EW]:'; then
	die "lintian: errors or warnings (above)"
fi
say "ok    lintian: no error or warning ($(printf '%s\n' "$lint" |
	grep -c '^[IPX]:' || true) informational tags)"

# Control-flow protection is not asked for: bookworm's crt1.o carries no
# IBT/SHSTK note, so no binary linked on bookworm can have it (README).
x=$(mktemp -d)
trap 'rm -rf "$x"' EXIT
dpkg-deb -x "$deb" "$x"
hc=$(hardening-check --nocfprotection "$x/usr/sbin/pop3d") ||
	die "hardening-check: $hc"
printf '%s\n' "$hc" | sed 's/^/      /'
say "ok    hardening-check /usr/sbin/pop3d"

"$top/tests/systemd/run.sh" "$top/tests/deb/container.py" --deb "$deb"
