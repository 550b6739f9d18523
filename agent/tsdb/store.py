"""The in-memory series store: append-only float samples per series, with retention.

Layout (see :mod:`agent.tsdb.chunks` and :mod:`agent.tsdb.index`):

* ``dict[Labels, _Series]``: one entry per series; the key is the series' own
  label tuple, built from pairs interned by the index.
* ``_Series.chunks``: a list of :class:`~agent.tsdb.chunks.Chunk` objects of at
  most ``chunk_size`` (default 120, as Prometheus) samples, oldest first. Only
  the last one (the head) grows; full chunks are frozen at their exact size.
  A chunk keeps timestamps as delta-of-delta in ``array('b')`` (widened to
  ``h``/``i``/``q`` when jitter needs it) and values in ``array('b'|'h'|'i')``
  while they are small integers, ``array('d')`` otherwise.
* an inverted index ``name → value → [series]`` so that ``{__name__="x"}``
  reads one postings list instead of scanning.

Measured with ``benchmarks/tsdb_memory.py`` (tracemalloc, everything the store
holds included; 1,000,000 samples over 10,000 series, 100 samples 15 s apart
with up to 25 ms of jitter, so all in head chunks): **12.2 bytes/sample** with a
realistic mix of integer and float series, **15.7** when every value is a random
double. Of that, about 560 bytes per series (5.6 bytes/sample here) are the
label tuple, dict entry, postings and chunk objects. With 1,440 samples per
series (6 h at 15 s, twelve frozen chunks) random doubles cost 12.1 bytes/sample.
A chunk object with its two arrays and ints costs about 330 bytes, which is why
chunks are not smaller (64-sample chunks: 16.4 bytes/sample in the mixed run).

Queries bisect on chunk boundaries, decode only the chunks that overlap the
range, and return copies (a list of ints and an ``array('d')``), so a
:class:`~agent.tsdb.base.SeriesData` stays valid while appends go on.

>>> from agent.tsdb.base import Matcher, labels_from
>>> store = SeriesStore()
>>> up = labels_from({"__name__": "up", "job": "api"})
>>> store.append(up, 15_000, 1.0), store.append(up, 30_000, 0.0), store.append(up, 30_000, 1.0)
(True, True, False)
>>> [(s.timestamps, list(s.values)) for s in store.select([Matcher("job", "=", "api")], 0, 30_000)]
[([15000, 30000], [1.0, 0.0])]
"""

from __future__ import annotations

import struct
import sys
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from operator import attrgetter

from agent.tsdb.base import STALE_NAN, Labels, Matcher, SeriesData, is_stale
from agent.tsdb.chunks import Chunk
from agent.tsdb.index import LabelIndex, label_value, matches_all

DEFAULT_RETENTION_MS = 6 * 3600 * 1000
DEFAULT_CHUNK_SIZE = 120

_chunk_maxt = attrgetter("maxt")
_by_labels = attrgetter("labels")
_DOUBLE = struct.Struct("<d")


class _Series:
    __slots__ = ("chunks", "labels")

    def __init__(self, labels: Labels, first: Chunk) -> None:
        self.labels = labels
        self.chunks = [first]


@dataclass(frozen=True, slots=True)
class StoreStats:
    """Counters and sizes of a :class:`SeriesStore`.

    ``out_of_order`` counts samples older than the series' last one,
    ``duplicate_timestamp`` samples at the last timestamp with another value
    (both rejected), ``duplicates`` exact repeats (same timestamp, same value
    bits: silently ignored, as in Prometheus).

    >>> SeriesStore().stats().series
    0
    """

    series: int
    samples: int
    chunks: int
    out_of_order: int
    duplicate_timestamp: int
    duplicates: int
    bytes_estimate: int


def _same_bits(a: float, b: float) -> bool:
    return _DOUBLE.pack(a) == _DOUBLE.pack(b)


def _chunks_in(chunks: list[Chunk], mint_ms: int, maxt_ms: int) -> Iterable[Chunk]:
    """The chunks overlapping ``[mint_ms, maxt_ms]``, found by bisection."""
    i = bisect_left(chunks, mint_ms, key=_chunk_maxt)
    while i < len(chunks) and chunks[i].mint <= maxt_ms:
        yield chunks[i]
        i += 1


def _range(
    chunks: list[Chunk], mint_ms: int, maxt_ms: int
) -> tuple[list[int], array[float]] | None:
    """Timestamps and values of the samples in ``[mint_ms, maxt_ms]``, or None."""
    times: list[int] | None = None
    values: array[float] = array("d")
    for chunk in _chunks_in(chunks, mint_ms, maxt_ms):
        ts, vs = chunk.slice(mint_ms, maxt_ms)
        if times is None:
            times, values = ts, vs
        else:
            times.extend(ts)
            values.extend(vs)
    if not times:
        return None
    return times, values


class SeriesStore:
    """Append-only in-memory store of float samples, one series per label set.

    Implements :class:`~agent.tsdb.base.Queryable` and
    :class:`~agent.tsdb.base.Appender`. Time is always an argument: retention
    runs when :meth:`compact` is called with the current time.

    >>> from agent.tsdb.base import Matcher, labels_from
    >>> store = SeriesStore(retention_ms=60_000)
    >>> store.append(labels_from({"__name__": "up", "job": "api"}), 0, 1.0)
    True
    >>> store.label_values("job"), store.compact(now_ms=120_000), store.stats().series
    (['api'], 1, 0)
    """

    def __init__(
        self, *, retention_ms: int = DEFAULT_RETENTION_MS, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> None:
        if chunk_size < 2:
            raise ValueError("chunk_size must be at least 2")
        self.retention_ms = retention_ms
        self.chunk_size = chunk_size
        self._series: dict[Labels, _Series] = {}
        self._index: LabelIndex[_Series] = LabelIndex()
        self._samples = 0
        self._out_of_order = 0
        self._duplicate_timestamp = 0
        self._duplicates = 0

    def __len__(self) -> int:
        return len(self._series)

    # -- writing -----------------------------------------------------------------

    def append(self, labels: Labels, t_ms: int, value: float) -> bool:
        """Add a sample; False (and counted) when it is out of order or a duplicate."""
        value = float(value)
        series = self._series.get(labels)
        if series is None:
            self._create(labels, Chunk(t_ms, value))
            self._samples += 1
            return True
        head = series.chunks[-1]
        if t_ms <= head.maxt:
            return self._reject(head, t_ms, value)
        if len(head) >= self.chunk_size:
            series.chunks.append(Chunk(t_ms, value))
        else:
            head.append(t_ms, value)
            if len(head) >= self.chunk_size:
                head.freeze()
        self._samples += 1
        return True

    def append_stale(self, labels: Labels, t_ms: int) -> bool:
        """Write a stale marker, if the series exists and is not already stale."""
        series = self._series.get(labels)
        if series is None or is_stale(series.chunks[-1].last_value()):
            return False
        return self.append(labels, t_ms, STALE_NAN)

    def _create(self, labels: Labels, first: Chunk) -> None:
        series = _Series(self._index.canonical(labels), first)
        self._series[series.labels] = series
        self._index.add(series)

    def _reject(self, head: Chunk, t_ms: int, value: float) -> bool:
        if t_ms < head.maxt:
            self._out_of_order += 1
        elif _same_bits(value, head.last_value()):
            self._duplicates += 1
        else:
            self._duplicate_timestamp += 1
        return False

    # -- reading -----------------------------------------------------------------

    def _matching(self, matchers: Sequence[Matcher]) -> list[_Series]:
        candidates = self._index.candidates(matchers)
        pool: Iterable[_Series] = self._series.values() if candidates is None else candidates
        return [s for s in pool if matches_all(s.labels, matchers)]

    def select(self, matchers: Sequence[Matcher], mint_ms: int, maxt_ms: int) -> list[SeriesData]:
        """Series with samples in ``[mint_ms, maxt_ms]`` (both inclusive), sorted by labels.

        No matchers selects every series.
        """
        out: list[SeriesData] = []
        for series in self._matching(matchers):
            data = _range(series.chunks, mint_ms, maxt_ms)
            if data is not None:
                out.append(SeriesData(series.labels, *data))
        out.sort(key=_by_labels)
        return out

    def series(self, matchers: Sequence[Matcher], mint_ms: int, maxt_ms: int) -> list[Labels]:
        """Label sets of the series with samples in ``[mint_ms, maxt_ms]``, sorted."""
        found = [
            s.labels
            for s in self._matching(matchers)
            if any(
                c.has_sample_in(mint_ms, maxt_ms) for c in _chunks_in(s.chunks, mint_ms, maxt_ms)
            )
        ]
        found.sort()
        return found

    def label_names(self, matchers: Sequence[Matcher] = ()) -> list[str]:
        """Label names of the series the matchers select (all series when none), sorted."""
        if not matchers:
            return sorted(self._index.names())
        return sorted({name for s in self._matching(matchers) for name, _ in s.labels})

    def label_values(self, name: str, matchers: Sequence[Matcher] = ()) -> list[str]:
        """Values of label ``name`` among the series the matchers select, sorted."""
        if not matchers:
            return sorted(self._index.values(name))
        found = {label_value(s.labels, name) for s in self._matching(matchers)}
        found.discard("")
        return sorted(found)

    # -- retention -----------------------------------------------------------------

    def truncate(self, before_ms: int) -> int:
        """Drop chunks whose samples are all older than ``before_ms``, then empty series.

        Returns the number of samples dropped.
        """
        dropped = 0
        dead: list[_Series] = []
        for series in self._series.values():
            chunks = series.chunks
            if chunks[0].maxt >= before_ms:
                continue
            k = bisect_left(chunks, before_ms, key=_chunk_maxt)
            dropped += sum(len(c) for c in chunks[:k])
            del chunks[:k]
            if not chunks:
                dead.append(series)
        for series in dead:
            del self._series[series.labels]
        self._index.discard(dead)
        self._samples -= dropped
        return dropped

    def compact(self, now_ms: int) -> int:
        """Apply retention: :meth:`truncate` everything older than ``now_ms - retention_ms``."""
        return self.truncate(now_ms - self.retention_ms)

    def clear(self) -> None:
        """Drop every series and reset the counters."""
        self._series = {}
        self._index.clear()
        self._samples = 0
        self._out_of_order = self._duplicate_timestamp = self._duplicates = 0

    def stats(self) -> StoreStats:
        """Counts and an estimate of the heap bytes held (walks every chunk)."""
        size = sys.getsizeof(self._series) + self._index.nbytes()
        chunks = 0
        for series in self._series.values():
            chunks += len(series.chunks)
            size += sys.getsizeof(series) + sys.getsizeof(series.chunks)
            size += sys.getsizeof(series.labels)
            size += sum(c.nbytes() for c in series.chunks)
        return StoreStats(
            series=len(self._series),
            samples=self._samples,
            chunks=chunks,
            out_of_order=self._out_of_order,
            duplicate_timestamp=self._duplicate_timestamp,
            duplicates=self._duplicates,
            bytes_estimate=size,
        )
