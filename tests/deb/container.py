"""The Debian package in a booted Debian 12 (make check-deb).

tests/systemd/run.sh boots the container of make check-systemd and runs
this on the host with --leader and --root; --deb names the .deb that make
deb built. The package is installed as a sysadmin would (apt-get, no
network: every dependency is already in the root), checked for what it
must and must not do at installation, used through pop3.socket and
through an inetd line added with update-inetd by a real client as real
users with pam_unix passwords, then removed and purged, each time
checking what is left. One line per step, as in tests/systemd/check.py,
whose helpers this reuses.
"""

import argparse
import os
import poplib
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "systemd"))
import check as sd  # noqa: E402  tests/systemd/check.py
from check import HOST, PASSWORD, expect, step  # noqa: E402

UNITS = ("pop3.socket", "pop3@.service", "pop3d.socket", "pop3d.service",
         "pop3s.socket", "pop3s@.service", "pop3d-recover.service")
SOCKETS = ("pop3.socket", "pop3d.socket", "pop3s.socket")
CONFFILE = "/etc/pam.d/pop3"
VARDIR = "/var/lib/pop3d"
# README.Debian's command, word for word.
INETD_LINE = r"pop3\tstream\ttcp\tnowait\troot\t/usr/sbin/pop3d\tpop3d"
DEB_IN_ROOT = "/root/debs"


def status(ct):
    """dpkg's two-letter state of pop3d ("ii", "rc"), "" if unknown."""
    p = ct.run("dpkg-query", "-W", "-f", "${db:Status-Abbrev}", "pop3d",
               check=False)
    return p.stdout.decode().strip() if p.returncode == 0 else ""


def files_of(ct):
    """The package's files (not directories), from dpkg's list."""
    out = ct.out("dpkg", "-L", "pop3d").split("\n")
    return [f for f in out if f and not ct.path(f).is_dir()]


def apt_install(ct, deb):
    """apt-get install of the .deb; every dependency must already be in
    the root (the tests must not need the network; apt-get's
    --no-download refuses local .debs in bookworm)."""
    p = ct.run("apt-get", "install", "-y", "--no-install-recommends",
               f"{DEB_IN_ROOT}/{Path(deb).name}", input=b"", timeout=300)
    expect(b"http" not in p.stdout, "apt-get downloaded: "
           + p.stdout.decode(errors="replace")[-600:])


def install(ct, deb):
    expect(ct.run("getent", "passwd", "pop3d", check=False).returncode != 0,
           "the root already has a pop3d user")
    Path(ct.path(DEB_IN_ROOT)).mkdir(exist_ok=True)
    shutil.copy(deb, ct.path(DEB_IN_ROOT))
    apt_install(ct, deb)
    expect(status(ct) == "ii", f"dpkg status {status(ct)!r}")
    ver = ct.out("/usr/sbin/pop3d", "--version").strip()
    expect(ver.startswith("pop3d "), f"--version printed {ver!r}")
    return ver


def installed_state(ct):
    for unit in UNITS:
        expect(ct.path(f"/lib/systemd/system/{unit}").is_file(),
               f"{unit} not in /lib/systemd/system")
        text = ct.path(f"/lib/systemd/system/{unit}").read_text()
        expect("/usr/local" not in text, f"{unit} names /usr/local")
    expect(ct.path("/usr/share/man/man8/pop3d.8.gz").is_file(),
           "no man page")
    conffiles = ct.out("dpkg-query", "-W", "-f", "${Conffiles}", "pop3d")
    expect(CONFFILE in conffiles, f"{CONFFILE} is not a conffile")
    # The sockets are the administrator's choice; the recovery unit is on.
    for sock in SOCKETS:
        state = ct.out("systemctl", "is-enabled", sock, check=False).strip()
        expect(state == "disabled", f"{sock} is {state}")
        active = ct.out("systemctl", "is-active", sock, check=False).strip()
        expect(active == "inactive", f"{sock} is {active}")
    state = ct.out("systemctl", "is-enabled", "pop3d-recover.service",
                   check=False).strip()
    expect(state == "enabled", f"pop3d-recover.service is {state}")
    sd.wait_port_free(110, timeout=2)
    sd.wait_port_free(995, timeout=2)
    return "units, man page, conffile; sockets disabled, port 110 free"


def user_and_dirs(ct):
    pw = ct.out("getent", "passwd", "pop3d").strip().split(":")
    expect(int(pw[2]) < 1000, f"pop3d has uid {pw[2]}, not a system uid")
    expect(pw[5] == "/nonexistent", f"home {pw[5]}")
    expect(pw[6] == "/usr/sbin/nologin", f"shell {pw[6]}")
    group = ct.out("id", "-gn", "pop3d").strip()
    expect(group == "pop3d", f"primary group {group}")
    for path, mode in ((VARDIR, "755"), (f"{VARDIR}/empty", "555"),
                       (f"{VARDIR}/journal", "711")):
        got = ct.out("stat", "-c", "%U:%G %a", path).strip()
        expect(got == f"root:root {mode}", f"{path} is {got}")
    expect(not any(ct.path(f"{VARDIR}/empty").iterdir()),
           "the pre-login chroot is not empty")
    return f"uid {pw[2]}, group pop3d, /nonexistent, nologin; 0555, 0711"


def journal_dir_used(ct, user):
    uid = ct.out("id", "-u", user).strip()
    got = ct.out("stat", "-c", "%U %a", f"{VARDIR}/journal/{uid}").strip()
    expect(got == f"{user} 700", f"journal/{uid} is {got}")
    return f"{VARDIR}/journal/{uid} {got}"


def inetd(ct, user):
    ct.run("update-inetd", "--group", "MAIL", "--add", INETD_LINE)
    ct.systemctl("start", "inetd.service")
    try:
        sd.wait_port(110)
        sd.poplib_session(ct, user)
    finally:
        ct.systemctl("stop", "inetd.service")
        sd.wait_port_free(110)
    line = [li for li in ct.path("/etc/inetd.conf").read_text().splitlines()
            if "/usr/sbin/pop3d" in li]
    expect(len(line) == 1 and line[0].startswith("pop3\t"),
           f"inetd.conf has {line}")
    return "update-inetd --add, then poplib login, RETR, DELE + QUIT"


def upgrade(ct, deb, user):
    """apt-get install --reinstall runs the upgrade path of every script:
    the socket the administrator enabled stays enabled and listening, the
    others stay off, and the user's journal directory is kept."""
    uid = ct.out("id", "-u", user).strip()
    ct.run("apt-get", "install", "-y", "--reinstall",
           f"{DEB_IN_ROOT}/{Path(deb).name}", input=b"", timeout=300)
    for sock, want in (("pop3.socket", "enabled active"),
                       ("pop3d.socket", "disabled inactive"),
                       ("pop3s.socket", "disabled inactive")):
        got = (ct.out("systemctl", "is-enabled", sock, check=False).strip()
               + " "
               + ct.out("systemctl", "is-active", sock, check=False).strip())
        expect(got == want, f"{sock} is {got} after the upgrade")
    expect(ct.path(f"{VARDIR}/journal/{uid}").is_dir(),
           "the user's journal directory is gone")
    user_and_dirs(ct)
    sd.poplib_session(ct, user)
    return "pop3.socket still on, the others off; a session after it"


def open_session(ct, user):
    """A logged-in session that has not said QUIT, for remove to end."""
    msgs = [sd.make_message(user, i) for i in range(1, 3)]
    sd.deliver(ct, user, msgs)
    pop = poplib.POP3(HOST, 110, timeout=30)
    pop.user(user)
    pop.pass_(PASSWORD)
    pop.dele(1)  # never committed: the session will not reach UPDATE
    # The session and its dotlock keeper (keeper.c), both the user's.
    expect(len(sd.session_pids(ct, user)) == 2, "no session process and keeper")
    return pop, msgs


def remove(ct, pop, msgs, user, files):
    # --login-delay's record (state, not mail): removed without a word;
    # the warning about kept journals was given for it too before round 13.
    uid = ct.out("id", "-u", user).strip()
    ct.run("touch", f"{VARDIR}/journal/{uid}/last-login")
    p = ct.run("apt-get", "remove", "-y", "pop3d", input=b"", timeout=300)
    expect(b"keeps journals" not in p.stdout + p.stderr,
           "remove warned of journals where there was only last-login")
    expect(status(ct) == "rc", f"dpkg status {status(ct)!r} after remove")
    # The running session was stopped: its client sees the end.
    try:
        pop.noop()
        raise sd.Fail("the session still answers after remove")
    except (poplib.error_proto, OSError, EOFError):
        pass
    expect(ct.run("pgrep", "-x", "pop3d", check=False).returncode != 0,
           "a pop3d process is left")
    expect(sd.spool(ct, user) == b"".join(msgs),
           "the spool changed without a QUIT")
    for sock in SOCKETS:
        active = ct.out("systemctl", "is-active", sock, check=False).strip()
        expect(active == "inactive", f"{sock} is {active}")
    sd.wait_port_free(110, timeout=5)
    left = [f for f in files if ct.path(f).exists() or ct.path(f).is_symlink()]
    expect(left == [CONFFILE], f"left after remove: {left}")
    expect(not ct.path(VARDIR).exists(), f"{VARDIR} left after remove")
    # The administrator's inetd line now points at nothing: commented out.
    conf = ct.path("/etc/inetd.conf").read_text()
    expect("#<off># pop3\t" in conf and "\npop3\t" not in conf,
           "the inetd line was not disabled")
    expect(ct.run("getent", "passwd", "pop3d", check=False).returncode == 0,
           "remove deleted the pop3d user")
    return "session ended, nothing but /etc/pam.d/pop3, inetd line off"


def purge(ct):
    # A journal that remove had to keep (a spool it could not finish).
    uid = ct.out("id", "-u", "alice").strip()
    ct.run("install", "-d", "-o", "alice", "-m", "0700",
           f"{VARDIR}/journal/{uid}")
    ct.run("touch", f"{VARDIR}/journal/{uid}/pending")
    ct.run("apt-get", "purge", "-y", "pop3d", input=b"", timeout=300)
    expect(status(ct) in ("", "un"), f"dpkg status {status(ct)!r}")
    expect(not ct.path(CONFFILE).exists(), f"{CONFFILE} left after purge")
    expect(not ct.path(VARDIR).exists(), f"{VARDIR} left after purge")
    expect("/usr/sbin/pop3d" not in ct.path("/etc/inetd.conf").read_text(),
           "an inetd line is left after purge")
    links = ct.out("find", "/etc/systemd/system", "-name", "pop3*").split()
    expect(not links, f"unit links left: {links}")
    expect(ct.run("getent", "passwd", "pop3d", check=False).returncode == 0,
           "purge deleted the pop3d user (Debian keeps system users)")
    return ("conffile, /var/lib/pop3d with a kept journal, inetd line, "
            "unit links gone; user kept")


def reinstall_over_popa3d(ct, deb, popa3d):
    """Debian's popa3d conflicts with pop3-server: installing pop3d, which
    provides it, must take popa3d's place (and the pop3d user a purge
    left must do)."""
    shutil.copy(popa3d, ct.path(DEB_IN_ROOT))
    ct.run("apt-get", "install", "-y", "--no-install-recommends",
           f"{DEB_IN_ROOT}/{Path(popa3d).name}", input=b"", timeout=300)
    apt_install(ct, deb)
    expect(status(ct) == "ii", f"pop3d is {status(ct)!r}")
    p = ct.run("dpkg-query", "-W", "-f", "${db:Status-Abbrev}", "popa3d")
    expect(p.stdout.decode().strip() == "rc",
           f"popa3d is {p.stdout.decode().strip()!r}, not removed")
    user_and_dirs(ct)
    ct.run("apt-get", "purge", "-y", "pop3d", "popa3d", input=b"",
           timeout=300)
    expect(status(ct) in ("", "un"), f"dpkg status {status(ct)!r}")
    return "popa3d removed for it; then purged"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--leader", type=int, required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--deb", required=True)
    ap.add_argument("--popa3d", required=True,
                    help="Debian's popa3d .deb, another pop3-server")
    args = ap.parse_args()
    ct = sd.Container(args.leader, args.root)
    deb = os.path.abspath(args.deb)

    if not step(f"apt-get install {Path(deb).name} (no download)")(
            install, ct, deb):
        return 1
    step("installed: units, man page, conffile; no socket enabled")(
        installed_state, ct)
    step("postinst: system user pop3d, /var/lib/pop3d as pop3d demands")(
        user_and_dirs, ct)
    step("users with pam_unix passwords")(sd.users, ct, ["alice", "bob"])
    step("systemctl enable --now pop3.socket")(sd.enable, ct, "pop3.socket")
    step("pop3.socket: poplib login, RETR, DELE, QUIT moves mail")(
        sd.poplib_session, ct, "alice")
    step("pop3.socket: curl RETR byte-exact and DELE")(sd.curl_retr, ct, "bob")
    step("the journal directory handed to the user")(
        journal_dir_used, ct, "alice")
    sd.disable(ct, "pop3.socket")
    sd.wait_port_free(110)
    step("inetd: README.Debian's update-inetd line, openbsd-inetd")(
        inetd, ct, "bob")
    files = files_of(ct)
    sd.enable(ct, "pop3.socket")
    step("apt-get install --reinstall with pop3.socket enabled (upgrade)")(
        upgrade, ct, deb, "alice")
    session = [None]

    def start():
        session[0] = open_session(ct, "alice")
        return "alice logged in, DELE 1, no QUIT"

    if step("a session open over pop3.socket")(start):
        pop, msgs = session[0]
        step("apt-get remove: session and sockets stopped, conffile kept")(
            remove, ct, pop, msgs, "alice", files)
    step("apt-get purge: everything gone but the pop3d user")(purge, ct)
    step("apt-get install over Debian's popa3d (pop3-server), after purge")(
        reinstall_over_popa3d, ct, deb, args.popa3d)

    print(f"{sd.failures} failed" if sd.failures else "all steps passed")
    return 1 if sd.failures else 0


if __name__ == "__main__":
    sys.exit(main())
