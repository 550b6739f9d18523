"""A durable, bounded, append-only spool of opaque records, read in order by one reader.

Records go to numbered segment files in one directory, framed with length and
CRC32 (see :mod:`agent.events.spool_format`): a torn tail left by a crash is
found on open and cut, never misread. The read cursor is persisted on every
:meth:`Spool.commit`, so after a restart reading resumes where it stopped;
records read but not committed are read again (at-least-once).

The spool is bounded by ``max_bytes``: when an append would pass it, whole oldest
segments are deleted and their unread records are returned as dropped, for the
caller to count. ``fsync_always`` syncs every append; otherwise the owner calls
:meth:`Spool.sync` periodically. Pure, synchronous file I/O.

>>> import tempfile
>>> spool = Spool(Path(tempfile.mkdtemp()), max_bytes=1 << 20, segment_bytes=1 << 16)
>>> spool.open()
>>> spool.append([b"a", b"b"])
0
>>> records, end = spool.read(10)
>>> records
[b'a', b'b']
>>> spool.commit(end)
>>> spool.pending
0
>>> spool.close()
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from agent.events.spool_format import (
    HEADER,
    Position,
    frame,
    fsync_dir,
    parse,
    read_cursor,
    scan,
    segment_name,
    segment_seqs,
    write_cursor,
)

log = structlog.get_logger(__name__)

READ_CHUNK = 1 << 20
CURSOR_FILE = "cursor"


@dataclass(slots=True)
class _Segment:
    size: int
    records: int


class Spool:
    """Append-only segment files with a persisted read cursor; see the module docstring."""

    def __init__(
        self, directory: Path, *, max_bytes: int, segment_bytes: int, fsync_always: bool = False
    ) -> None:
        if max_bytes < 2 * segment_bytes:
            raise ValueError("max_bytes must be at least twice segment_bytes")
        self._dir = directory
        self._max_bytes = max_bytes
        self._segment_bytes = segment_bytes
        self._fsync_always = fsync_always
        self._segments: dict[int, _Segment] = {}
        self._cursor = Position(1, 0)
        self._fd: int | None = None
        self._dirty = False
        self._dir_dirty = False

    # ------------------------------------------------------------------ state
    @property
    def pending(self) -> int:
        """Records appended and not yet committed (or dropped)."""
        total = -self._cursor.index
        for seq, seg in self._segments.items():
            if seq >= self._cursor.seq:
                total += seg.records
        return total

    @property
    def size_bytes(self) -> int:
        """Bytes in the segment files."""
        return sum(seg.size for seg in self._segments.values())

    @property
    def _active(self) -> int:
        return next(reversed(self._segments))

    # ------------------------------------------------------------------ open/close
    def open(self) -> None:
        """Recover the directory: cut torn tails, restore the cursor, open the last segment."""
        self._dir.mkdir(parents=True, exist_ok=True)
        for seq in segment_seqs(self._dir):
            path = self._dir / segment_name(seq)
            data = path.read_bytes()
            starts, end = scan(data)
            if end < len(data):
                log.warning("spool_tail_truncated", segment=path.name, cut_bytes=len(data) - end)
                os.truncate(path, end)
            self._segments[seq] = _Segment(end, len(starts))
        self._restore_cursor(read_cursor(self._dir / CURSOR_FILE))
        if not self._segments:
            self._segments[self._cursor.seq] = _Segment(0, 0)
        self._fd = self._open_segment(self._active)

    def _restore_cursor(self, cursor: Position | None) -> None:
        seqs = list(self._segments)
        if cursor is None:
            cursor = Position(seqs[0] if seqs else 1, 0)
        for seq in seqs:
            if seq < cursor.seq:  # consumed before a crash, not yet deleted
                self._delete(seq)
        if cursor.seq in self._segments:
            starts, end = scan((self._dir / segment_name(cursor.seq)).read_bytes())
            boundaries = [*starts, end]
            index = bisect.bisect_left(boundaries, cursor.offset)
            if index == len(boundaries) or boundaries[index] != cursor.offset:
                index = 0  # not a record boundary: read the segment again from its start
            cursor = Position(cursor.seq, boundaries[index], index)
        elif self._segments:
            cursor = Position(next(iter(self._segments)), 0)
        self._cursor = cursor

    def _open_segment(self, seq: int) -> int:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        fd = os.open(self._dir / segment_name(seq), flags, 0o640)
        self._dir_dirty = True
        return fd

    def close(self) -> None:
        """Sync and close; idempotent."""
        if self._fd is None:
            return
        self.sync()
        os.close(self._fd)
        self._fd = None

    def sync(self) -> None:
        """fsync what was appended since the last sync (and new or deleted files)."""
        if self._fd is not None and self._dirty:
            os.fsync(self._fd)
            self._dirty = False
        if self._dir_dirty:
            fsync_dir(self._dir)
            self._dir_dirty = False

    # ------------------------------------------------------------------ writing
    def append(self, payloads: Sequence[bytes]) -> int:
        """Append records in order; return how many records were dropped to stay bounded."""
        dropped = 0
        chunk = bytearray()
        count = 0
        for payload in payloads:
            record = frame(payload)
            if len(record) > self._segment_bytes:
                log.error("spool_record_too_large", bytes=len(record))
                dropped += 1
                continue
            size = self._segments[self._active].size + len(chunk)
            if size and size + len(record) > self._segment_bytes:
                self._write(chunk, count)
                chunk, count = bytearray(), 0
                self._rotate()
            while self.size_bytes + len(chunk) + len(record) > self._max_bytes:
                dropped += self._drop_oldest()
            chunk += record
            count += 1
        self._write(chunk, count)
        if self._fsync_always:
            self.sync()
        return dropped

    def _write(self, chunk: bytearray, count: int) -> None:
        if not chunk:
            return
        assert self._fd is not None, "spool is not open"
        seg = self._segments[self._active]
        view = memoryview(chunk)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError:
            os.ftruncate(self._fd, seg.size)  # no half-written record stays behind
            raise
        seg.size += len(chunk)
        seg.records += count
        self._dirty = True

    def _rotate(self) -> None:
        assert self._fd is not None
        os.fsync(self._fd)
        os.close(self._fd)
        self._dirty = False
        seq = self._active + 1
        self._segments[seq] = _Segment(0, 0)
        self._fd = self._open_segment(seq)

    def _drop_oldest(self) -> int:
        """Delete the oldest segment (never the one being written); its unread records."""
        seq = next(iter(self._segments))
        if seq == self._active:
            raise AssertionError("the spool bound leaves room for the active segment")
        seg = self._segments[seq]
        unread = seg.records - (self._cursor.index if seq == self._cursor.seq else 0)
        if seq == self._cursor.seq:
            self._cursor = Position(seq + 1, 0)
            write_cursor(self._dir / CURSOR_FILE, self._cursor)
        self._delete(seq)
        log.warning("spool_segment_dropped", segment=segment_name(seq), events=unread)
        return unread

    def _delete(self, seq: int) -> None:
        del self._segments[seq]
        (self._dir / segment_name(seq)).unlink(missing_ok=True)
        self._dir_dirty = True

    # ------------------------------------------------------------------ reading
    def read(self, limit: int) -> tuple[list[bytes], Position]:
        """Up to ``limit`` records from the cursor on, and the position after them."""
        out: list[bytes] = []
        pos = self._cursor
        while len(out) < limit and pos.seq in self._segments:
            seg = self._segments[pos.seq]
            if pos.offset >= seg.size:
                later = [s for s in self._segments if s > pos.seq]
                if not later:
                    break
                pos = Position(later[0], 0)
                continue
            records, end = self._read_segment(pos, seg.size, limit - len(out))
            out += records
            pos = Position(pos.seq, end, pos.index + len(records))
        return out, pos

    def _read_segment(self, pos: Position, size: int, limit: int) -> tuple[list[bytes], int]:
        fd = os.open(self._dir / segment_name(pos.seq), os.O_RDONLY)
        try:
            data = os.pread(fd, min(size - pos.offset, READ_CHUNK), pos.offset)
            records, end = parse(data, 0, limit)
            if not records:  # one record larger than a chunk
                length, _crc = HEADER.unpack_from(data)
                data = os.pread(fd, HEADER.size + length, pos.offset)
                records, end = parse(data, 0, 1)
        finally:
            os.close(fd)
        return records, pos.offset + end

    def commit(self, position: Position) -> None:
        """Mark everything before ``position`` (from :meth:`read`) as delivered."""
        if position <= self._cursor or position.seq not in self._segments:
            return  # already committed, or its segment was dropped meanwhile
        self._cursor = position
        if self.pending == 0:
            self._roll_empty()
        write_cursor(self._dir / CURSOR_FILE, self._cursor)
        for seq in [s for s in self._segments if s < self._cursor.seq]:
            self._delete(seq)

    def _roll_empty(self) -> None:
        """Everything is read: start a fresh segment so the old ones can be deleted."""
        assert self._fd is not None
        os.close(self._fd)
        self._dirty = False
        seq = self._active + 1
        self._segments[seq] = _Segment(0, 0)
        self._fd = self._open_segment(seq)
        self._cursor = Position(seq, 0)
