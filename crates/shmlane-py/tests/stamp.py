"""Self-checking messages, the same bytes as shmlane_cli::stamp (crates/shmlane-cli/src/stamp.rs),
so Python checks the Rust examples' messages and the Rust examples check Python's."""

import struct
import time

K1 = 0x9E3779B97F4A7C15
K2 = 0xC2B2AE3D27D4EB4F
M = (1 << 64) - 1


def _rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & M


def _filler(seq, n):
    words = (n + 7) // 8
    out = b"".join(struct.pack("<Q", ((seq * K1) ^ (i * K2)) & M) for i in range(words))
    return out[:n]


def _checksum(h0, b):
    lanes = [h0, h0 ^ K1, h0 ^ K2, _rotl(h0, 32)]
    blocks = len(b) // 32
    for k in range(blocks):
        for j in range(4):
            (w,) = struct.unpack_from("<Q", b, k * 32 + j * 8)
            lanes[j] = ((_rotl(lanes[j], 23) ^ w) * K1) & M
    h = len(b)
    for lane in lanes:
        h = _rotl(((h ^ lane) * K2) & M, 29)
    for x in b[blocks * 32 :]:
        h = ((h ^ x) * K1) & M
    return h ^ (h >> 31)


def _fold(h):
    a = 0
    for i in range(8):
        a ^= (h >> (8 * i)) & 0xFF
    return a


def write(size, seq, sent_ns=None):
    """Message `seq` of `size` bytes (at least 8)."""
    sent_ns = time.monotonic_ns() if sent_ns is None else sent_ns
    if size >= 24:
        head = struct.pack("<QQ", seq, sent_ns)
        filler = _filler(seq, size - 24)
        return head + struct.pack("<Q", _checksum(_checksum(0, head), filler)) + filler
    head = struct.pack("<I", seq & 0xFFFFFFFF) + ((sent_ns // 1000) & 0xFFFFFF).to_bytes(3, "little")
    filler = _filler(seq & 0xFFFFFFFF, size - 8)
    return head + bytes([_fold(_checksum(_checksum(0, head), filler))]) + filler


def check(msg):
    """The sequence number of `msg` (its low 32 bits for short messages); raises ValueError."""
    msg = bytes(msg)
    if len(msg) < 8:
        raise ValueError("shorter than 8 bytes")
    if len(msg) >= 24:
        if _checksum(_checksum(0, msg[:16]), msg[24:]) != struct.unpack_from("<Q", msg, 16)[0]:
            raise ValueError("checksum mismatch")
        seq, head = struct.unpack_from("<Q", msg, 0)[0], 24
    else:
        if msg[7] != _fold(_checksum(_checksum(0, msg[:7]), msg[8:])):
            raise ValueError("checksum mismatch")
        seq, head = struct.unpack_from("<I", msg, 0)[0], 8
    if msg[head:] != _filler(seq, len(msg) - head):
        raise ValueError("filler does not match the sequence number")
    return seq
