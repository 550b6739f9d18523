"""The disk spool: framing, torn tails, the size bound, the persisted cursor, order."""

from __future__ import annotations

import os
import tempfile
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.events.spool import CURSOR_FILE, Spool
from agent.events.spool_format import HEADER, segment_seqs

SEGMENT = 4096


def records(start: int, count: int, size: int = 100) -> list[bytes]:
    return [f"{i:08d}".encode().ljust(size, b"x") for i in range(start, start + count)]


def open_spool(directory: Path, *, max_bytes: int = 1 << 20, **kw: bool) -> Spool:
    spool = Spool(directory, max_bytes=max_bytes, segment_bytes=SEGMENT, **kw)
    spool.open()
    return spool


def drain(spool: Spool) -> list[bytes]:
    """Read and commit everything, 7 records at a time."""
    out: list[bytes] = []
    while True:
        got, end = spool.read(7)
        if not got:
            return out
        out += got
        spool.commit(end)


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    return tmp_path / "spool"


def test_records_come_back_in_order_across_segments(spool_dir: Path) -> None:
    """Records appended over many segments read back whole and in append order."""
    spool = open_spool(spool_dir)
    written = records(0, 200)
    assert spool.append(written[:50]) == 0
    assert spool.append(written[50:]) == 0
    assert len(segment_seqs(spool_dir)) > 3
    assert spool.pending == 200
    assert drain(spool) == written
    assert spool.pending == 0
    spool.close()


def test_reading_everything_leaves_one_empty_segment(spool_dir: Path) -> None:
    """Once all is committed, consumed segments are deleted and the spool holds no bytes."""
    spool = open_spool(spool_dir)
    spool.append(records(0, 120))
    drain(spool)
    assert spool.size_bytes == 0
    assert len(segment_seqs(spool_dir)) == 1
    spool.close()


def test_torn_tail_is_cut_and_never_misread(spool_dir: Path) -> None:
    """A half-written last record (a crash mid-write) is cut on open; appends go on after it."""
    spool = open_spool(spool_dir)
    spool.append(records(0, 10))
    spool.close()
    last = spool_dir / f"{segment_seqs(spool_dir)[-1]:020d}.seg"
    size = last.stat().st_size
    with last.open("ab") as f:
        f.write(HEADER.pack(100, 0) + b"half a rec")
    reopened = open_spool(spool_dir)
    assert last.stat().st_size == size
    reopened.append(records(10, 2))
    assert drain(reopened) == records(0, 12)
    reopened.close()


def test_corrupted_record_cuts_the_segment_there(spool_dir: Path) -> None:
    """A record whose CRC does not match ends the segment: the records before it survive."""
    spool = open_spool(spool_dir)
    spool.append(records(0, 5))
    spool.close()
    seg = spool_dir / f"{segment_seqs(spool_dir)[-1]:020d}.seg"
    data = bytearray(seg.read_bytes())
    frame_size = HEADER.size + 100
    data[3 * frame_size + HEADER.size + 20] ^= 0xFF
    seg.write_bytes(bytes(data))
    reopened = open_spool(spool_dir)
    assert reopened.pending == 3
    assert drain(reopened) == records(0, 3)
    reopened.close()


def test_full_spool_drops_oldest_segments_and_counts_them(spool_dir: Path) -> None:
    """Past max_bytes whole oldest segments go; the count returned equals what was lost,
    and what stays is the newest records, in order."""
    spool = open_spool(spool_dir, max_bytes=3 * SEGMENT)
    dropped = sum(spool.append([r]) for r in records(0, 300))
    assert dropped > 0
    assert spool.size_bytes <= 3 * SEGMENT
    kept = drain(spool)
    assert len(kept) + dropped == 300
    assert kept == records(300 - len(kept), len(kept))
    spool.close()


def test_dropping_the_segment_being_read_counts_only_unread_records(spool_dir: Path) -> None:
    """Records already committed from a dropped segment are not counted as dropped."""
    spool = open_spool(spool_dir, max_bytes=2 * SEGMENT)
    per_segment = SEGMENT // (HEADER.size + 100)
    spool.append(records(0, per_segment))
    spool.commit(spool.read(10)[1])
    dropped = spool.append(records(per_segment, 2 * per_segment))
    assert dropped == per_segment - 10
    assert drain(spool)[0] == records(per_segment, 1)[0]
    spool.close()


def test_cursor_survives_a_restart(spool_dir: Path) -> None:
    """After a restart reading resumes at the last commit; read-but-uncommitted records
    come again (at-least-once)."""
    spool = open_spool(spool_dir)
    spool.append(records(0, 100))
    spool.commit(spool.read(40)[1])
    spool.read(30)  # not committed
    spool.close()
    reopened = open_spool(spool_dir)
    assert reopened.pending == 60
    assert drain(reopened) == records(40, 60)
    reopened.close()


def test_damaged_cursor_file_replays_from_the_start(spool_dir: Path) -> None:
    """A cursor that fails its CRC is ignored: everything is read again, nothing lost."""
    spool = open_spool(spool_dir)
    spool.append(records(0, 20))
    spool.commit(spool.read(5)[1])
    spool.close()
    (spool_dir / CURSOR_FILE).write_bytes(b"\x00" * 20)
    reopened = open_spool(spool_dir)
    assert drain(reopened) == records(0, 20)
    reopened.close()


def test_fsync_every_write_when_asked(spool_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With fsync_always each append is synced; otherwise only sync() syncs."""
    calls: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    eager = open_spool(spool_dir / "eager", fsync_always=True)
    before = len(calls)
    eager.append(records(0, 1))
    eager.append(records(1, 1))
    assert len(calls) - before >= 2
    eager.close()
    lazy = open_spool(spool_dir / "lazy")
    lazy.sync()
    before = len(calls)
    lazy.append(records(0, 1))
    lazy.append(records(1, 1))
    assert len(calls) == before
    lazy.sync()
    assert len(calls) == before + 1
    lazy.close()


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(1, 60)),
        st.tuples(st.just("consume"), st.integers(1, 50)),
        st.tuples(st.just("peek"), st.integers(1, 50)),
        st.tuples(st.just("reopen"), st.just(0)),
    ),
    max_size=25,
)


def _temp_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


@settings(max_examples=40, deadline=None)
@given(ops=OPS)
def test_spool_behaves_like_a_queue(ops: list[tuple[str, int]]) -> None:
    """Any mix of appends, reads, commits and restarts reads exactly the committed-past
    records in order (compared with an in-memory queue)."""
    for directory in _temp_dir():
        spool = open_spool(directory)
        model: deque[bytes] = deque()
        counter = 0
        for op, n in ops:
            if op == "append":
                batch = records(counter, n, size=50)
                counter += n
                assert spool.append(batch) == 0
                model.extend(batch)
            elif op == "reopen":
                spool.close()
                spool = open_spool(directory)
            else:
                got, end = spool.read(n)
                assert got == list(model)[:n]
                if op == "consume":
                    spool.commit(end)
                    for _ in got:
                        model.popleft()
            assert spool.pending == len(model)
        spool.close()
