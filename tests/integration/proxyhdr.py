"""PROXY protocol headers (HAProxy's doc/proxy-protocol.txt) as a balancer
sends them, for the tests of --proxy-from: test_proxy.py here and the
HAProxy suite in tests/proxy/."""

import ipaddress
import struct

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(src, dst=None, sport=40000, dport=110):
    fam = "TCP6" if ":" in src else "TCP4"
    if dst is None:
        dst = "::1" if ":" in src else "127.0.0.1"
    return f"PROXY {fam} {src} {dst} {sport} {dport}\r\n".encode()


def v2(src, dst=None, sport=40000, dport=110, tlvs=b"", command=1):
    a = ipaddress.ip_address(src)
    if dst is None:
        dst = "::1" if a.version == 6 else "127.0.0.1"
    d = ipaddress.ip_address(dst)
    fam = 0x21 if a.version == 6 else 0x11
    block = a.packed + d.packed + struct.pack(">HH", sport, dport) + tlvs
    return V2_SIG + bytes([0x20 | command, fam]) + struct.pack(">H", len(block)) + block


def v2_local(block=b""):
    return V2_SIG + b"\x20\x00" + struct.pack(">H", len(block)) + block


def tlv(kind, value):
    return bytes([kind]) + struct.pack(">H", len(value)) + value
