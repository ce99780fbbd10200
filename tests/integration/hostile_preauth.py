#!/usr/bin/python3
"""A compromised pre-login process, for test_hostile_preauth.py.

build/pop3d-test runs this in place of the pre-auth process when
POP3D_TEST_PREAUTH names it (test_hooks.h): the client is on fds 0/1, the
record socket to the real monitor on fd 3, the records' layout in
POP3D_TEST_LAYOUT. HOSTILE_STEPS (JSON) says what to send; what comes
back is reported on fd 1, one line each, for the test to read:

    sent N          step N went out
    verdict V T     a verdict record (V) T seconds after the start
    record N T      some other record of N octets
    eof T           the monitor closed the record socket
    error TEXT

Steps: {"login": {"user", "password", "authzid", "method", "tls"},
"pad": N, "cut": N, "unterminated": true} (N octets more or fewer, or
a user field without its NUL), {"peer": ADDRESS} (MSG_PEER: the client
a PROXY header named; "" for a health check), {"handoff": INPUT,
"fds": true}, {"log": TEXT, "priority": N}, {"verdict": V} (a verdict
sent the wrong way), {"junk": N} (N octets), {"recv": true} (wait for one
record or EOF; 20 s at most), {"sleep": S} (stay S seconds), {"pidfile":
PATH} (write this process's pid there, for the test to stop it). After a
handoff the program exits, as the real one does without TLS, unless the
handoff step has "linger": S (stay S seconds first, as a hostile one
would).
"""

import array
import json
import os
import select
import socket
import struct
import sys
import time

START = time.monotonic()
LAYOUT = dict(kv.split("=") for kv in os.environ["POP3D_TEST_LAYOUT"].split())
L = {k: int(v) for k, v in LAYOUT.items()}
SOCK = socket.socket(fileno=3)


def report(line):
    os.write(1, (line + "\n").encode())


def put(buf, off, size, data):
    data = data[:size]
    buf[off:off + len(data)] = data


def login_record(step, how):
    rec = bytearray(L["login"])
    struct.pack_into("<I", rec, 0, L["type_login"])
    field = L["field"]
    put(rec, L["user"], field, step.get("user", "alice").encode())
    put(rec, L["authzid"], field, step.get("authzid", "").encode())
    put(rec, L["password"], field, step.get("password", "wrong").encode())
    put(rec, L["method"], L["tls"] - L["method"], step.get("method", "USER").encode())
    rec[L["tls"]] = step.get("tls", 0)
    if how.get("unterminated"):
        for i in range(field):
            rec[L["user"] + i] = ord("u")
    rec += b"\0" * how.get("pad", 0)
    if how.get("cut"):
        rec = rec[:-how["cut"]]
    return bytes(rec)


def handoff_record(data):
    rec = bytearray(L["handoff"])
    struct.pack_into("<I", rec, 0, L["type_login"] + 2)
    struct.pack_into("<I", rec, L["handoff_tls"], 0)
    struct.pack_into("<I", rec, L["handoff_len"], len(data))
    put(rec, L["input"], L["input_size"], data)
    return bytes(rec)


def log_record(text, priority):
    rec = bytearray(L["log"])
    struct.pack_into("<Ii", rec, 0, L["type_login"] + 3, priority)
    put(rec, L["text"], L["text_size"] - 1, text)
    return bytes(rec)


def peer_record(addr):
    rec = bytearray(L["peer"])
    struct.pack_into("<I", rec, 0, L["type_login"] + 4)
    if addr:
        family = socket.AF_INET6 if ":" in addr else socket.AF_INET
        put(rec, L["peer_addr"], 16, socket.inet_pton(family, addr))
    else:
        family = socket.AF_UNSPEC
    struct.pack_into("<i", rec, L["peer_family"], family)
    return bytes(rec)


def receive():
    now = lambda: f"{time.monotonic() - START:.3f}"
    r, _, _ = select.select([SOCK], [], [], 20)
    if not r:
        report("error nothing from the monitor in 20 s")
        return
    try:
        data = SOCK.recv(L["union"] + 16)
    except OSError as e:
        report(f"eof {now()} {e.errno}")
        return
    if not data:
        report(f"eof {now()}")
    elif len(data) == L["verdict"]:
        report(f"verdict {struct.unpack_from('<i', data, 4)[0]} {now()}")
    else:
        report(f"record {len(data)} {now()}")


def main():
    steps = json.loads(os.environ["HOSTILE_STEPS"])
    for n, step in enumerate(steps):
        fds = []
        if "recv" in step:
            receive()
            continue
        if "sleep" in step:
            time.sleep(step["sleep"])
            continue
        if "pidfile" in step:
            with open(step["pidfile"], "w") as f:
                f.write(f"{os.getpid()}\n")
            continue
        if "login" in step:
            rec = login_record(step["login"], step)
        elif "handoff" in step:
            rec = handoff_record(step["handoff"].encode())
            fds = [0, 1] if step.get("fds", True) else []
        elif "log" in step:
            rec = log_record(step["log"].encode(), step.get("priority", 5))
        elif "peer" in step:
            rec = peer_record(step["peer"])
        elif "verdict" in step:
            rec = struct.pack("<Ii", L["type_login"] + 1, step["verdict"])
        else:
            rec = b"j" * step["junk"]
        try:
            if fds:
                SOCK.sendmsg([rec], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                      array.array("i", fds))])
            else:
                SOCK.send(rec)
        except OSError as e:
            report(f"error send {n}: {e}")
            return
        report(f"sent {n}")
        if "handoff" in step and fds:
            time.sleep(step.get("linger", 0))
            return


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # a report, never a traceback on pop3d's stderr
        report(f"error {type(e).__name__}: {e}")
    sys.exit(0)
