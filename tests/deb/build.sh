#!/bin/sh
# tests/deb/build.sh OUTDIR: make deb. Builds the Debian package from a
# copy of the sources in OUTDIR/pop3d/ with dpkg-buildpackage -us -uc -b,
# which writes its results to the parent of the tree it builds: so they
# land in OUTDIR, not beside the checkout. The source package (.dsc, for
# lintian's source checks) is made from the same copy first. Prints the
# .deb's path.
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:?usage: $0 OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)

"$top/tests/deb/deps.sh" build

# The sources as a release tarball would have them: no .git, no build
# output (the copy itself lives under build/).
rm -rf "$out/pop3d" "$out"/pop3d[_-]*
mkdir "$out/pop3d"
tar -C "$top" --exclude=./.git --exclude='./build*' -cf - . |
	tar -C "$out/pop3d" -xf -
(cd "$out" && dpkg-source --build pop3d &&
	cd pop3d && dpkg-buildpackage -us -uc -b) >"$out/build.log" 2>&1 || {
	tail -30 "$out/build.log" >&2
	echo "make deb: dpkg-buildpackage failed; the whole log: $out/build.log" >&2
	exit 1
}
rm -rf "$out/pop3d"
ls "$out"/pop3d_*.deb
