"""The spool's on-disk format: framed records in segment files, and the read cursor.

A record is ``length (u32) | crc32(payload) (u32) | payload``, little-endian. A
reader stops at the first frame that is incomplete, longer than allowed or fails
its CRC: that is a torn tail left by a crash, and everything from there on is cut.

The cursor file holds ``segment (u64) | offset (u64) | crc32 of those 16 bytes``
and is replaced atomically (write a temporary file, fsync, rename, fsync the
directory), so it is always either the old or the new position.

>>> frame(b"hi")[:4]
b'\\x02\\x00\\x00\\x00'
>>> scan(frame(b"a") + frame(b"bc") + b"\\x05\\x00")
([0, 9], 19)
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

HEADER = struct.Struct("<II")
CURSOR = struct.Struct("<QQ")
MAX_RECORD = 64 * 1024 * 1024
SUFFIX = ".seg"


def frame(payload: bytes) -> bytes:
    """One record as written to a segment."""
    return HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def scan(data: bytes) -> tuple[list[int], int]:
    """Start offsets of the valid records in ``data`` and the offset where they end."""
    starts: list[int] = []
    pos, end = 0, len(data)
    while pos + HEADER.size <= end:
        length, crc = HEADER.unpack_from(data, pos)
        body = pos + HEADER.size
        if length > MAX_RECORD or body + length > end:
            break
        if zlib.crc32(data[body : body + length]) != crc:
            break
        starts.append(pos)
        pos = body + length
    return starts, pos


def parse(data: bytes, offset: int, limit: int) -> tuple[list[bytes], int]:
    """Up to ``limit`` payloads framed in ``data`` from ``offset`` (already validated)."""
    out: list[bytes] = []
    pos, end = offset, len(data)
    while len(out) < limit and pos + HEADER.size <= end:
        length, _crc = HEADER.unpack_from(data, pos)
        body = pos + HEADER.size
        if body + length > end:
            break
        out.append(data[body : body + length])
        pos = body + length
    return out, pos


def segment_name(seq: int) -> str:
    return f"{seq:020d}{SUFFIX}"


def segment_seqs(directory: Path) -> list[int]:
    """Sequence numbers of the segment files in ``directory``, oldest first."""
    seqs = []
    for path in directory.iterdir():
        if path.suffix == SUFFIX and path.stem.isdigit():
            seqs.append(int(path.stem))
    return sorted(seqs)


@dataclass(frozen=True, order=True, slots=True)
class Position:
    """A place in the spool: segment sequence number and byte offset in it.

    ``index`` (records before ``offset`` in the segment) is bookkeeping, not identity.
    """

    seq: int
    offset: int
    index: int = field(default=0, compare=False)


def read_cursor(path: Path) -> Position | None:
    """The stored cursor, or None when the file is missing or damaged."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    if len(data) != CURSOR.size + 4:
        return None
    body = data[: CURSOR.size]
    if zlib.crc32(body).to_bytes(4, "little") != data[CURSOR.size :]:
        return None
    seq, offset = CURSOR.unpack(body)
    return Position(seq, offset)


def write_cursor(path: Path, position: Position) -> None:
    """Replace the cursor file atomically and durably."""
    body = CURSOR.pack(position.seq, position.offset)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    try:
        os.write(fd, body + zlib.crc32(body).to_bytes(4, "little"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """Make file creations, renames and deletions in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
