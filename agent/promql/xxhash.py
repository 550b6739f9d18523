"""XXH64, the hash Prometheus uses for label sets (``labels.Hash()``).

``limit_ratio`` keeps a series when its label hash, scaled to [0, 1], falls
under the ratio; hashing exactly as Prometheus does (its default
``stringlabels`` encoding: each name and value prefixed by its uvarint
length) makes it keep the same series.

>>> hex(xxh64(b"abc"))
'0x44bc2cf5ad770999'
"""

from __future__ import annotations

from agent.tsdb.base import Labels

_MASK = (1 << 64) - 1
_P1 = 0x9E3779B185EBCA87
_P2 = 0xC2B2AE3D27D4EB4F
_P3 = 0x165667B19E3779F9
_P4 = 0x85EBCA77C2B2AE63
_P5 = 0x27D4EB2F165667C5


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _MASK


def _round(acc: int, lane: int) -> int:
    return (_rotl((acc + lane * _P2) & _MASK, 31) * _P1) & _MASK


def _lane(data: bytes, i: int, width: int = 8) -> int:
    return int.from_bytes(data[i : i + width], "little")


def _stripes(data: bytes, seed: int) -> tuple[int, int]:
    """Hash the 32-byte stripes; returns the accumulator and the bytes consumed."""
    acc = [(seed + _P1 + _P2) & _MASK, (seed + _P2) & _MASK, seed, (seed - _P1) & _MASK]
    i = 0
    while i + 32 <= len(data):
        acc = [_round(a, _lane(data, i + 8 * k)) for k, a in enumerate(acc)]
        i += 32
    h = (_rotl(acc[0], 1) + _rotl(acc[1], 7) + _rotl(acc[2], 12) + _rotl(acc[3], 18)) & _MASK
    for a in acc:
        h = ((h ^ _round(0, a)) * _P1 + _P4) & _MASK
    return h, i


def xxh64(data: bytes, seed: int = 0) -> int:
    """The 64-bit XXH64 digest of ``data``."""
    n = len(data)
    h, i = _stripes(data, seed) if n >= 32 else ((seed + _P5) & _MASK, 0)
    h = (h + n) & _MASK
    while i + 8 <= n:
        h ^= _round(0, _lane(data, i))
        h = (_rotl(h, 27) * _P1 + _P4) & _MASK
        i += 8
    if i + 4 <= n:
        h ^= (_lane(data, i, 4) * _P1) & _MASK
        h = (_rotl(h, 23) * _P2 + _P3) & _MASK
        i += 4
    for byte in data[i:]:
        h ^= (byte * _P5) & _MASK
        h = (_rotl(h, 11) * _P1) & _MASK
    h ^= h >> 33
    h = (h * _P2) & _MASK
    h ^= h >> 29
    h = (h * _P3) & _MASK
    return h ^ (h >> 32)


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def labels_hash(labels: Labels) -> int:
    """Prometheus's ``labels.Hash()`` of a label set."""
    parts = []
    for name, value in labels:
        raw_name = name.encode("utf-8", "surrogateescape")
        raw_value = value.encode("utf-8", "surrogateescape")
        parts += [_uvarint(len(raw_name)), raw_name, _uvarint(len(raw_value)), raw_value]
    return xxh64(b"".join(parts))
