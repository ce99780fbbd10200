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
# build and the source package. -E --pedantic: every tag it knows. The
# files go to a directory nobody can read, and lintian runs there: the
# clone may sit in a directory only root can enter (CI's is 0700).
x=$(mktemp -d)
trap 'rm -rf "$x"' EXIT
mkdir "$x/lint"
find "$out" -maxdepth 1 -type f -exec cp {} "$x/lint/" \;
chmod 755 "$x" "$x/lint"
chmod 644 "$x/lint"/*
lint=$(cd "$x/lint" && setpriv --reuid=nobody --regid=nogroup --clear-groups \
	env HOME=/tmp TMPDIR=/tmp lintian -I -E --pedantic \
	--tag-display-limit 0 "$(basename "$changes")" "$(basename "$dsc")" 2>&1) ||
	die "lintian: $lint"
[ -z "$lint" ] || printf '%s\n' "$lint" | sed 's/^/      /'
if printf '%s\n' "$lint" | grep -q '^[EW]:'; then
	die "lintian: errors or warnings (above)"
fi
say "ok    lintian: no error or warning ($(printf '%s\n' "$lint" |
	grep -c '^[IPX]:' || true) informational tags)"

# Control-flow protection is not asked for: bookworm's crt1.o carries no
# IBT/SHSTK note, so no binary linked on bookworm can have it (README).
mkdir "$x/root"
dpkg-deb -x "$deb" "$x/root"
hc=$(hardening-check --nocfprotection "$x/root/usr/sbin/pop3d") ||
	die "hardening-check: $hc"
printf '%s\n' "$hc" | sed 's/^/      /'
say "ok    hardening-check /usr/sbin/pop3d"

# The relations dpkg and apt act on.
field() { dpkg-deb -f "$deb" "$1"; }
for f in Provides Conflicts Replaces; do
	[ "$(field $f)" = pop3-server ] || die "$f: $(field $f)"
done
# pop3d dlopen()s libpam.so.0 and libssl.so.3: not seen by dh_shlibdeps.
for dep in 'libpam0g (>= ' 'libssl3 (>= '; do
	field Depends | grep -qF "$dep" || die "Depends lacks $dep: $(field Depends)"
done
say "ok    Provides, Conflicts, Replaces pop3-server; Depends: $(field Depends)"

# Another pop3-server for the container test: Debian's popa3d, fetched
# once from the archive into the cache of tests/systemd/root.sh.
extra=${POP3D_SYSTEMD_CACHE:-/var/cache/pop3d-test}/deb-extra
mkdir -p "$extra"
popa3d=$(echo "$extra"/popa3d_*.deb)
if [ ! -f "$popa3d" ]; then
	(cd "$extra" && apt-get -o APT::Sandbox::User=root download popa3d >/dev/null) ||
		die "apt-get download popa3d failed"
	popa3d=$(echo "$extra"/popa3d_*.deb)
fi

"$top/tests/systemd/run.sh" "$top/tests/deb/container.py" --deb "$deb" \
	--popa3d "$popa3d"
