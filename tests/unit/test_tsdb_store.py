"""The in-memory series store: appends, ranges, matchers, retention, and a model check."""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.tsdb.base import STALE_NAN, Labels, Matcher, SeriesData, is_stale, labels_from
from agent.tsdb.chunks import Chunk
from agent.tsdb.index import LabelIndex
from agent.tsdb.store import SeriesStore

UP_API = labels_from({"__name__": "up", "job": "api", "instance": "a:1"})
UP_WEB = labels_from({"__name__": "up", "job": "web", "instance": "b:1"})
REQS = labels_from({"__name__": "reqs_total", "job": "api", "instance": "a:1", "foo": "bar"})
APIX = labels_from({"__name__": "reqs_total", "job": "apix", "instance": "c:1"})


def _bits(v: float) -> bytes:
    return struct.pack("<d", v)


def _samples(data: SeriesData) -> list[tuple[int, bytes]]:
    return [(t, _bits(v)) for t, v in zip(data.timestamps, data.values, strict=True)]


def _store(*series: Labels, chunk_size: int = 120) -> SeriesStore:
    store = SeriesStore(chunk_size=chunk_size)
    for labels in series:
        assert store.append(labels, 1_000, 1.0)
    return store


def _names(store: SeriesStore, *matchers: Matcher) -> list[str]:
    found = store.select(list(matchers), 0, 10_000)
    return [dict(s.labels)["job"] + "/" + dict(s.labels)["__name__"] for s in found]


def test_round_trip_across_chunk_boundaries() -> None:
    """Samples spread over several chunks come back whole and in order, from any sub-range."""
    store = SeriesStore(chunk_size=4)
    expected = [(i * 15_000 + (i % 3), float(i) * 1.5) for i in range(11)]
    for t, v in expected:
        assert store.append(UP_API, t, v)
    assert store.stats().chunks == 3
    (whole,) = store.select([Matcher("__name__", "=", "up")], 0, 10**9)
    assert list(whole.timestamps) == [t for t, _ in expected]
    assert list(whole.values) == [v for _, v in expected]
    (part,) = store.select([], expected[2][0], expected[8][0])
    assert list(part.timestamps) == [t for t, _ in expected[2:9]]
    assert all(isinstance(v, float) for v in part.values)
    assert all(type(t) is int for t in part.timestamps)


def test_range_bounds_are_inclusive_and_empty_ranges_select_nothing() -> None:
    """Both ends of [mint, maxt] are included; a series with no sample in range is omitted."""
    store = SeriesStore(chunk_size=3)
    for t in (10, 20, 30, 40, 50):
        store.append(UP_API, t, float(t))
    (only,) = store.select([], 20, 40)
    assert list(only.timestamps) == [20, 30, 40]
    assert [list(s.timestamps) for s in store.select([], 40, 40)] == [[40]]
    assert store.select([], 41, 49) == []
    assert store.select([], 51, 100) == []
    assert store.select([], 40, 20) == []


def test_out_of_order_and_duplicate_samples_are_rejected_and_counted() -> None:
    """Older samples and same-timestamp samples are refused; exact repeats are counted apart."""
    store = _store(UP_API)
    assert store.append(UP_API, 2_000, 5.0)
    assert not store.append(UP_API, 1_500, 7.0)
    assert not store.append(UP_API, 2_000, 6.0)
    assert not store.append(UP_API, 2_000, 5.0)
    stats = store.stats()
    assert (stats.out_of_order, stats.duplicate_timestamp, stats.duplicates) == (1, 1, 1)
    assert stats.samples == 2
    (data,) = store.select([], 0, 10_000)
    assert list(data.values) == [1.0, 5.0]


def test_duplicates_compare_bits_not_equality() -> None:
    """A repeated NaN is an exact duplicate; 0.0 after -0.0 at the same time is not."""
    store = SeriesStore()
    assert store.append(UP_API, 1, math.nan)
    assert not store.append(UP_API, 1, math.nan)
    assert store.append(UP_API, 2, -0.0)
    assert not store.append(UP_API, 2, 0.0)
    stats = store.stats()
    assert (stats.duplicates, stats.duplicate_timestamp) == (1, 1)


def test_special_values_round_trip_bit_exact() -> None:
    """NaN, ±Inf, -0.0, huge and fractional values survive the integer-to-double widening."""
    values = [1.0, 2.0, 300.0, 70_000.0, -0.0, 2.0**40, math.inf, -math.inf, math.nan, 0.25]
    store = SeriesStore(chunk_size=4)
    for i, v in enumerate(values):
        assert store.append(UP_API, i * 1_000, v)
    (data,) = store.select([], 0, 10**6)
    assert [_bits(v) for v in data.values] == [_bits(v) for v in values]


def test_stale_markers_are_stored_and_told_apart_from_nan() -> None:
    """append_stale writes Prometheus's stale NaN once, never for unknown series."""
    store = _store(UP_API)
    assert not store.append_stale(UP_WEB, 2_000)
    assert store.append(UP_API, 2_000, math.nan)
    assert store.append_stale(UP_API, 3_000)
    assert not store.append_stale(UP_API, 4_000)
    assert store.append(UP_API, 5_000, 1.0)
    assert store.append_stale(UP_API, 6_000)
    (data,) = store.select([], 0, 10_000)
    assert [is_stale(v) for v in data.values] == [False, False, True, False, True]
    assert math.isnan(data.values[1]) and not is_stale(data.values[1])
    assert _bits(data.values[2]) == _bits(STALE_NAN)


@pytest.mark.parametrize(
    ("matchers", "expected"),
    [
        ([Matcher("__name__", "=", "up")], ["api/up", "web/up"]),
        ([Matcher("__name__", "=", "nope")], []),
        ([Matcher("job", "=", "api")], ["api/reqs_total", "api/up"]),
        ([Matcher("job", "!=", "api")], ["apix/reqs_total", "web/up"]),
        ([Matcher("job", "=~", "ap")], []),
        ([Matcher("job", "=~", "api")], ["api/reqs_total", "api/up"]),
        ([Matcher("job", "=~", "api.*")], ["api/reqs_total", "apix/reqs_total", "api/up"]),
        ([Matcher("job", "!~", "api|web")], ["apix/reqs_total"]),
        ([Matcher("job", "!~", "a.*")], ["web/up"]),
        ([Matcher("foo", "=", "")], ["apix/reqs_total", "api/up", "web/up"]),
        ([Matcher("foo", "!=", "")], ["api/reqs_total"]),
        ([Matcher("foo", "=~", ".*")], ["api/reqs_total", "apix/reqs_total", "api/up", "web/up"]),
        ([Matcher("foo", "=~", ".+")], ["api/reqs_total"]),
        ([Matcher("foo", "!~", ".+")], ["apix/reqs_total", "api/up", "web/up"]),
        ([Matcher("job", "!=", "x")], ["api/reqs_total", "apix/reqs_total", "api/up", "web/up"]),
        ([Matcher("__name__", "=", "up"), Matcher("job", "=~", "w.*")], ["web/up"]),
        ([Matcher("__name__", "=", "up"), Matcher("job", "=", "apix")], []),
    ],
)
def test_matchers_select_the_right_series(matchers: list[Matcher], expected: list[str]) -> None:
    """Each matcher type, anchored regexes and missing-label-as-empty semantics select as PromQL."""
    store = _store(UP_WEB, REQS, UP_API, APIX)
    assert _names(store, *matchers) == expected


def test_select_sorts_series_by_labels() -> None:
    """Series come back ordered by their label sets whatever the order they were created in."""
    store = _store(UP_WEB, REQS, UP_API, APIX)
    labels = [s.labels for s in store.select([], 0, 10_000)]
    assert labels == sorted([UP_WEB, REQS, UP_API, APIX])


def test_index_narrows_candidates_without_scanning() -> None:
    """An equality matcher reads one postings list; only empty-matching selectors scan."""
    empty: LabelIndex[SeriesData] = LabelIndex()
    assert empty.candidates([Matcher("job", "!=", "x")]) is None
    assert empty.candidates([Matcher("job", "=", "api")]) == []
    store = _store(UP_WEB, REQS, UP_API, APIX)
    candidates = store._index.candidates([Matcher("__name__", "=", "up")])
    assert candidates is not None and len(candidates) == 2
    regex = store._index.candidates([Matcher("job", "=~", "api.*")])
    assert regex is not None and len(regex) == 3
    assert store._index.candidates([Matcher("foo", "=", "")]) is None


def test_label_names_and_values() -> None:
    """Names and values are sorted, from all series or only those the matchers select."""
    store = _store(UP_WEB, REQS, UP_API, APIX)
    assert store.label_names() == ["__name__", "foo", "instance", "job"]
    assert store.label_names([Matcher("__name__", "=", "up")]) == ["__name__", "instance", "job"]
    assert store.label_values("job") == ["api", "apix", "web"]
    assert store.label_values("job", [Matcher("__name__", "=", "reqs_total")]) == ["api", "apix"]
    assert store.label_values("foo", [Matcher("__name__", "=", "up")]) == []
    assert store.label_values("missing") == []


def test_series_lists_label_sets_with_samples_in_range() -> None:
    """/api/v1/series semantics: a series counts only if a sample falls inside the range."""
    store = SeriesStore()
    store.append(UP_API, 0, 1.0)
    store.append(UP_API, 30, 1.0)
    store.append(UP_WEB, 15, 1.0)
    up = [Matcher("__name__", "=", "up")]
    assert store.series(up, 10, 20) == [UP_WEB]
    assert store.series(up, 0, 30) == sorted([UP_API, UP_WEB])
    assert store.series(up, 31, 40) == []


def test_truncate_drops_whole_chunks_then_empty_series() -> None:
    """Retention removes chunks entirely older than the cut, and series left without any."""
    store = SeriesStore(chunk_size=3, retention_ms=25)
    for t in range(10):
        store.append(UP_API, t, float(t))
    store.append(UP_WEB, 2, 1.0)
    assert store.truncate(4) == 4
    (api,) = store.select([Matcher("job", "=", "api")], 0, 100)
    assert list(api.timestamps) == [3, 4, 5, 6, 7, 8, 9]
    assert store.label_values("job") == ["api"]
    assert store.stats().series == 1 and store.stats().samples == 7
    assert store.compact(now_ms=35) == 7
    assert store.stats().samples == 0 and store.label_names() == []
    assert store.append(UP_API, 1, 1.0)


def test_select_results_stay_valid_after_later_appends() -> None:
    """A SeriesData taken from the open head chunk does not change when the head grows."""
    store = SeriesStore(chunk_size=4)
    for t in range(6):
        store.append(UP_API, t, 1.0)
    (before,) = store.select([], 0, 100)
    snapshot = (list(before.timestamps), list(before.values))
    for t in range(6, 12):
        store.append(UP_API, t, 300.5)
    assert (list(before.timestamps), list(before.values)) == snapshot


def test_clear_and_stats() -> None:
    """clear() empties the store and its counters; stats estimate a positive size."""
    store = _store(UP_API, UP_WEB)
    store.append(UP_API, 0, 1.0)
    stats = store.stats()
    assert (stats.series, stats.samples, stats.out_of_order) == (2, 2, 1)
    assert stats.bytes_estimate > 0
    store.clear()
    assert store.stats().series == 0 and store.stats().out_of_order == 0
    assert store.select([], 0, 10**9) == [] and store.label_names() == []


def test_chunk_widens_timestamps_and_values() -> None:
    """Large gaps widen the delta-of-delta array; a fraction turns integer values into doubles."""
    chunk = Chunk(0, 1.0)
    for t, v in ((15_000, 2.0), (30_001, 3.0), (10**12, 40_000.0), (10**12 + 1, 0.5)):
        chunk.append(t, v)
    assert chunk.dods.typecode == "q" and chunk.values.typecode == "d"
    assert chunk.times() == [0, 15_000, 30_001, 10**12, 10**12 + 1]
    assert list(chunk.values) == [1.0, 2.0, 3.0, 40_000.0, 0.5]


# --- the store against a naive model --------------------------------------------------

VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**40), 2**40).map(float),
    st.sampled_from([0.0, -0.0, 127.0, 128.0, -129.0, 32_768.0, 2.0**31, STALE_NAN]),
)
STEPS = st.one_of(st.integers(-3, 20), st.integers(2**14, 2**40))
OPS = st.lists(st.tuples(st.integers(0, 2), STEPS, VALUES), max_size=80)
SERIES = [UP_API, UP_WEB, REQS]


def _apply(
    store: SeriesStore, ops: Sequence[tuple[int, int, float]]
) -> list[list[tuple[int, bytes]]]:
    model: list[list[tuple[int, bytes]]] = [[] for _ in SERIES]
    cursor = [0] * len(SERIES)
    for idx, step, value in ops:
        cursor[idx] += step
        t, kept = cursor[idx], model[idx]
        accept = not kept or t > kept[-1][0]
        assert store.append(SERIES[idx], t, value) is accept
        if accept:
            kept.append((t, _bits(value)))
    return model


@settings(max_examples=150, deadline=None)
@given(OPS, st.integers(2, 6), st.lists(st.tuples(st.integers(-50, 400), st.integers(0, 400))))
def test_select_matches_a_naive_model(
    ops: list[tuple[int, int, float]], chunk_size: int, ranges: list[tuple[int, int]]
) -> None:
    """For random appends and ranges, select returns exactly the samples a list model holds."""
    store = SeriesStore(chunk_size=chunk_size)
    model = _apply(store, ops)
    everything = [t for kept in model for t, _ in kept]
    edges = [(t, t) for t in everything] + [(min(everything, default=0), 2**41)]
    for mint, width in [*ranges, *edges]:
        maxt = mint + width
        got = {s.labels: _samples(s) for s in store.select([], mint, maxt)}
        want = {
            SERIES[i]: [(t, b) for t, b in kept if mint <= t <= maxt]
            for i, kept in enumerate(model)
        }
        assert got == {k: v for k, v in want.items() if v}
        assert store.series([], mint, maxt) == sorted(got)
    assert store.stats().samples == sum(len(kept) for kept in model)


@settings(max_examples=100, deadline=None)
@given(OPS, st.integers(2, 6), st.integers(-10, 500))
def test_truncate_keeps_every_recent_sample_and_drops_a_prefix(
    ops: list[tuple[int, int, float]], chunk_size: int, before: int
) -> None:
    """After truncate(before) each series keeps all samples at or after before, a suffix."""
    store = SeriesStore(chunk_size=chunk_size)
    model = _apply(store, ops)
    dropped = store.truncate(before)
    got = {s.labels: _samples(s) for s in store.select([], -(2**62), 2**62)}
    for labels, kept in zip(SERIES, model, strict=True):
        remaining = got.get(labels, [])
        assert remaining == kept[len(kept) - len(remaining) :]
        assert all(s in remaining for s in kept if s[0] >= before)
    assert dropped == sum(map(len, model)) - sum(map(len, got.values()))
    assert store.label_names() == sorted({n for labels in got for n, _ in labels})
