#!/bin/bash
# tests/systemd/run.sh: make check-systemd. Boots Debian 12 with systemd
# as PID 1 in a systemd-nspawn container and deploys pop3d in it exactly
# as INSTALL tells a sysadmin to, then drives it with real clients from
# the host (tests/systemd/check.py). Root only. Ports 110 and 995 of the
# host must be free: the container shares the host's network.
#
# The Debian root is built once and cached (tests/systemd/root.sh); each
# run unpacks a fresh copy in a directory of its own and removes it, and
# stops the container by its PID.
#
# run.sh [CHECK.py [ARGS...]]: another check in the same container (make
# check-deb: tests/deb/container.py), given --leader, --root and ARGS.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
say() { printf '%s\n' "$*"; }
die() {
	say "FAIL  $*"
	exit 1
}

[ "$(id -u)" -eq 0 ] || die "make check-systemd must run as root"
for port in 110 995; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		die "port $port is taken on this host; the container needs it"
	fi
done

"$top/tests/systemd/deps.sh"
tarball=$("$top/tests/systemd/root.sh")

work=$(mktemp -d /var/tmp/pop3d-systemd.XXXXXX)
root="$work/root"
nspawn_pid=""
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
		# nspawn turns SIGTERM into an orderly shutdown of the booted
		# system; one that will not stop within 20 s is killed.
		kill -TERM "$nspawn_pid" 2>/dev/null || true
		for _ in $(seq 1 100); do
			kill -0 "$nspawn_pid" 2>/dev/null || break
			sleep 0.2
		done
		kill -KILL "$nspawn_pid" 2>/dev/null || true
		wait "$nspawn_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

mkdir "$root"
tar -C "$root" -xf "$tarball"
# The checkout as a sysadmin would have it unpacked: sources only, no
# build output of the host.
mkdir -p "$root/usr/src/pop3d"
tar -C "$top" --exclude=./.git --exclude='./build*' -cf - . |
	tar -C "$root/usr/src/pop3d" -xf -
say "ok    Debian 12 root unpacked from $(basename "$tarball")"

start=$(date +%s)
systemd-nspawn --quiet --register=no --keep-unit --boot \
	--directory="$root" --machine=pop3d-test --console=pipe \
	</dev/null >"$work/console.log" 2>&1 &
nspawn_pid=$!

# The container's PID 1 is the child of systemd-nspawn that runs systemd;
# its manager answers once it is up, and --wait then waits for the boot.
leader=""
state=""
deadline=$(($(date +%s) + 120))
while [ "$(date +%s)" -lt "$deadline" ] && kill -0 "$nspawn_pid" 2>/dev/null; do
	for pid in $(pgrep -P "$nspawn_pid" || true); do
		[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = systemd ] && leader=$pid
	done
	if [ -n "$leader" ]; then
		state=$(timeout 120 nsenter -t "$leader" -a -- \
			systemctl is-system-running --wait 2>/dev/null || true)
		case "$state" in
		running | degraded) break ;;
		esac
	fi
	sleep 0.2
done
case "$state" in
running | degraded) ;;
*)
	tail -20 "$work/console.log"
	die "container did not boot (state: ${state:-none})"
	;;
esac
pid1=$(nsenter -t "$leader" -a -- cat /proc/1/comm)
say "ok    booted with $pid1 as PID 1 in $(($(date +%s) - start)) s" \
	"(state $state)"
if [ "$state" = degraded ]; then
	nsenter -t "$leader" -a -- systemctl --failed --no-legend --plain |
		sed 's/^/      failed at boot: /'
fi

check=${1:-$top/tests/systemd/check.py}
shift || true
/usr/bin/python3 -B "$check" --leader "$leader" --root "$root" "$@"
