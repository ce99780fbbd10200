"""The name of a spool's recovery journal, as journal.c's journal_path
makes it: "spool-" and the 16 hex digits of hash.c's content hash of the
spool's path (design.md §4.8). The name does not depend on the device
number, which a reboot may change. content_hash is hash.c's, for tests
that forge or check journals (test_journal_dir.py, make-seeds.py)."""

import struct

_PRIME = 0x9e3779b97f4a7c15
_MASK = (1 << 64) - 1


def _mix(h, w):
    h = ((h ^ w) * _PRIME) & _MASK
    return h ^ (h >> 29)


def content_hash(data):
    lanes = [0, 0, 0, 0]
    full = len(data) & ~31
    blocks = data[:full] + data[full:].ljust(32, b"\0")
    for i in range(0, len(blocks), 32):
        for k, w in enumerate(struct.unpack("<4Q", blocks[i:i + 32])):
            lanes[k] = _mix(lanes[k], w)
    h = len(data)
    for lane in lanes:
        h = _mix(h, lane)
    return h


def journal_name(spool):
    return f"spool-{content_hash(str(spool).encode()):016x}"
