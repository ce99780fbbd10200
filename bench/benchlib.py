"""Shared pieces of bench/run.py (make bench) and bench/peers.py (make
bench-peers): the machine description, spools, servers on loopback, the
client, statistics and markdown tables.

Standard library only. Every process started here is started in its own
session and stopped by its pid; every socket is on 127.0.0.1.
"""

import datetime
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import time
from pathlib import Path

TOP = Path(__file__).resolve().parents[1]

# The spool sets of the issue: messages, bytes, name.
SETS = {
    "10M": (1000, 10_000_000),
    "100M": (10_000, 100_000_000),
    "1G": (100_000, 1_000_000_000),
}
TINY = (10, 50_000)  # for login cost and connections per second

SCENARIOS = ["stat", "list", "top", "retr", "dele-first", "dele-half",
             "dele-all", "dele-last"]
DESTRUCTIVE = {"dele-first", "dele-half", "dele-all", "dele-last"}
LABELS = {
    "stat": "login + STAT",
    "list": "LIST + UIDL",
    "top": "TOP n 0, all",
    "retr": "RETR all",
    "dele-first": "DELE first + QUIT",
    "dele-half": "DELE every other + QUIT",
    "dele-all": "DELE all + QUIT",
    "dele-last": "DELE last + QUIT",
}


# The targets of issues 12 and 13, pop3d's time over popa3d's in
# make bench-peers (100 MB and 1 GB spools, same run): scenario -> limit.
PEER_TARGETS = {
    "stat": (0.8, "issue 12"),
    "list": (0.6, "issue 12"),
    "top": (0.5, "issue 12"),
    "retr": (0.5, "issue 12"),
    "dele-half": (1.0, "issue 13"),
    "dele-first": (1.5, "issue 13"),
    "dele-all": (0.3, "issue 13"),
    "dele-last": (0.3, "issue 13"),
}
# Issue 13: the UPDATE of DELE 1 + QUIT within this factor of dd moving
# the same bytes in place with one fdatasync.
DD_FACTOR = 2.0


def first_message_length(spool):
    """Octets of the first message of a generated spool (its From_ line
    to the blank line before the second one, inclusive)."""
    with open(spool, "rb") as f:
        head = f.read(64 << 20)
    i = head.find(b"\n\nFrom ")
    return i + 2


def dd_move(spool, first_len, nbytes):
    """The floor for DELE 1 + QUIT: dd moving everything after the first
    message down in place (conv=notrunc), one fdatasync at the end
    (conv=fdatasync), then the truncate. Returns its wall time."""
    t = time.monotonic()
    subprocess.run(["dd", f"if={spool}", f"of={spool}", "bs=1M",
                    "iflag=skip_bytes,fullblock", "oflag=seek_bytes",
                    f"skip={first_len}", "seek=0",
                    "conv=notrunc,fdatasync"],
                   check=True, capture_output=True)
    os.truncate(spool, nbytes - first_len)
    return time.monotonic() - t


def saved_move(movefloor, spool, first_len, savefile):
    """The floor of a crash-safe DELE 1 + QUIT: the same move by saved
    windows (bench/movefloor.c), the input/output of UPDATE's journal
    without its bookkeeping. Returns its wall time."""
    t = time.monotonic()
    subprocess.run([str(movefloor), str(spool), str(first_len),
                    str(savefile)], check=True, capture_output=True)
    return time.monotonic() - t


def log(*a):
    print(*a, flush=True)


def machine():
    """One paragraph on the machine, for the results."""
    model, mhz, cores = "?", "?", os.cpu_count()
    flags = ""
    cache = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            k, _, v = line.partition(":")
            k, v = k.strip(), v.strip()
            if k == "model name":
                model = v
            elif k == "cpu MHz":
                mhz = v
            elif k == "cache size":
                cache = v
            elif k == "flags":
                flags = v
    except OSError:
        pass
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1048576:.0f} GiB"
    except OSError:
        pass
    fam = []
    for f in ("avx2", "avx512f", "sha_ni", "aes"):
        if f" {f} " in f" {flags} ":
            fam.append(f)
    virt = "virtual machine" if " hypervisor " in f" {flags} " else "bare metal"
    return (f"{cores} cores of {model} at {mhz} MHz ({virt}; {', '.join(fam)}; "
            f"{cache} cache reported), {mem} RAM, Linux {platform.release()}, "
            f"{datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}")


def commit():
    """The commit measured, and whether the tree differs from it."""
    r = subprocess.run(["git", "-C", str(TOP), "describe", "--always",
                        "--dirty", "--exclude", "*"], capture_output=True,
                       check=False)
    return r.stdout.decode().strip() or "unknown"


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run_client(popbench, args, env_pairs=(), command=None, log_path=None,
               timeout=900):
    """Run the client once; return its key=value line as a dict."""
    argv = [str(popbench)]
    for pair in env_pairs:
        argv += ["-E", pair]
    if log_path is not None:
        argv += ["-L", str(log_path)]
    argv += list(args)
    if command is not None:
        argv += ["--"] + [str(c) for c in command]
    res = subprocess.run(argv, capture_output=True, timeout=timeout,
                         check=False)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:12])} ...: "
                           + res.stderr.decode(errors="replace").strip())
    out = {}
    for item in res.stdout.decode().split():
        k, _, v = item.partition("=")
        try:
            out[k] = float(v) if "." in v else int(v)
        except ValueError:
            out[k] = v
    return out


class Listener:
    """systemd-socket-activate on 127.0.0.1:port, in its own session;
    stopped by its pid. accept=True: --inetd --accept (one process per
    connection, the connection on stdin/stdout); False: the listening
    socket is passed as fd 3 (Accept=no)."""

    def __init__(self, command, logfile, env_pairs=(), accept=True):
        self.port = free_port()
        argv = ["systemd-socket-activate", f"--listen=127.0.0.1:{self.port}"]
        if accept:
            argv += ["--inetd", "--accept"]
        for pair in env_pairs:
            argv += ["-E", pair]
        argv += [str(c) for c in command]
        self.logfile = Path(logfile)
        self.log = open(self.logfile, "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log,
                                     start_new_session=True)
        deadline = time.monotonic() + 10
        # It says "Listening on 127.0.0.1:PORT as 3." once bound; a probe
        # connection would start a session.
        while time.monotonic() < deadline:
            if b"Listening on" in self.logfile.read_bytes():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.01)
        self.stop()
        raise RuntimeError("systemd-socket-activate did not start: "
                           + self.logfile.read_text(errors="replace"))

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


class RusageFile:
    """What `popbench wrap FILE` appends, one line per finished session."""

    def __init__(self, path):
        self.path = Path(path)
        self.path.write_text("")
        self.seen = 0

    def next(self, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            lines = self.path.read_text().splitlines()
            if len(lines) > self.seen:
                line = lines[self.seen]
                self.seen += 1
                return {k: float(v) if "." in v else int(v)
                        for k, _, v in (i.partition("=") for i in line.split())}
            if time.monotonic() > deadline:
                raise RuntimeError(f"no rusage line in {self.path}")
            time.sleep(0.002)


def restore(master, spool, owner=None):
    """A fresh copy of the pristine spool, flushed to disk so that the
    server's own fsync at UPDATE does not pay for our copy, and dated an
    hour back: popa3d waits a second before it serves a spool modified
    in the current second (its changes are noticed by mtime), and mail
    seldom arrives the moment before a session."""
    tmp = spool.with_name(spool.name + ".restore")
    shutil.copyfile(master, tmp)
    os.chmod(tmp, 0o600)
    past = time.time() - 3600
    os.utime(tmp, (past, past))
    if owner is not None:
        os.chown(tmp, *owner)
    fd = os.open(tmp, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    os.rename(tmp, spool)


def stats(values):
    v = sorted(values)
    return {"median": statistics.median(v), "min": v[0], "max": v[-1],
            "n": len(v)}


def fmt_s(x):
    if x >= 10:
        return f"{x:.1f}"
    if x >= 1:
        return f"{x:.2f}"
    if x >= 0.01:
        return f"{x:.3f}"
    return f"{x * 1000:.2f} ms"


def fmt_spread(st):
    """min-max as a percentage of the median."""
    if st["median"] <= 0:
        return "-"
    lo = (st["min"] - st["median"]) / st["median"] * 100
    hi = (st["max"] - st["median"]) / st["median"] * 100
    return f"{lo:+.0f}/{hi:+.0f} %"


def table(header, rows):
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(out)


def tool(build, name):
    p = Path(build) / "bench" / name
    if not p.exists():
        raise SystemExit(f"bench: {p} missing (make bench builds it)")
    return p.resolve()


def make_cert(workdir):
    """A throwaway self-signed certificate and key (P-256)."""
    cert = Path(workdir) / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-keyout", str(cert), "-out",
                    str(cert)], check=True, capture_output=True)
    os.chmod(cert, 0o600)
    return cert


class LoadMeter:
    """CPU used on the machine by others while the benchmark ran: all
    busy time in /proc/stat minus our own and our children's."""

    def __init__(self):
        self.t0 = time.monotonic()
        self.busy0, self.steal0 = self._busy()
        self.own0 = self._own()

    @staticmethod
    def _busy():
        f = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0]
             .split()[1:]]
        hz = os.sysconf("SC_CLK_TCK")
        # user nice system idle iowait irq softirq steal
        return (f[0] + f[1] + f[2] + f[5] + f[6]) / hz, f[7] / hz

    @staticmethod
    def _own():
        import resource
        s = resource.getrusage(resource.RUSAGE_SELF)
        c = resource.getrusage(resource.RUSAGE_CHILDREN)
        return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime

    def report(self):
        wall = time.monotonic() - self.t0
        busy, steal = self._busy()
        other = max(0.0, busy - self.busy0 - (self._own() - self.own0))
        return (f"while it ran ({wall:.0f} s), other processes used "
                f"{other:.0f} CPU-seconds ({other / wall * 100:.0f} % of one "
                f"core) and the hypervisor stole {steal - self.steal0:.1f} s; "
                f"load average at the end: "
                f"{Path('/proc/loadavg').read_text().split()[0]}")
