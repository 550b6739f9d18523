"""The PromQL engine: selectors, modifiers, subqueries, range queries, operators, aggregations."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import pytest

from agent.promql.engine import PromQLEngine
from agent.promql.value import Engine, Matrix, QueryError, QueryResult, Scalar, String, Vector
from agent.tsdb.base import STALE_NAN, Labels, Matcher, SeriesData, labels_from

MIN = 60_000


class FakeStore:
    """A tiny in-memory Queryable: series are label dicts with (t_ms, value) points."""

    def __init__(self) -> None:
        self.series: dict[Labels, list[tuple[int, float]]] = {}
        self.selects = 0

    def add(self, labels: Mapping[str, str], points: Iterable[tuple[int, float]]) -> FakeStore:
        self.series.setdefault(labels_from(labels), []).extend(points)
        return self

    def select(
        self, matchers: Sequence[Matcher], mint_ms: int, maxt_ms: int
    ) -> Iterable[SeriesData]:
        self.selects += 1
        for labels, points in sorted(self.series.items()):
            pairs = dict(labels)
            if all(m.matches(pairs.get(m.name, "")) for m in matchers):
                kept = sorted(p for p in points if mint_ms <= p[0] <= maxt_ms)
                yield SeriesData(labels, [t for t, _ in kept], [v for _, v in kept])

    def label_names(self, matchers: Sequence[Matcher] = ()) -> list[str]:
        return []

    def label_values(self, name: str, matchers: Sequence[Matcher] = ()) -> list[str]:
        return []


def every(step_ms: int, *values: float, start: int = 0) -> list[tuple[int, float]]:
    """Points ``values`` at ``start``, ``start + step_ms``, …"""
    return [(start + i * step_ms, v) for i, v in enumerate(values)]


def http_store() -> FakeStore:
    store = FakeStore()
    for i, (job, inst) in enumerate([("api", "0"), ("api", "1"), ("web", "0")]):
        labels = {"__name__": "http_requests_total", "job": job, "instance": inst}
        store.add(labels, every(MIN, *[float(k * 10 * (i + 1)) for k in range(11)]))
    return store


def vector(result: QueryResult) -> dict[Labels, float]:
    assert isinstance(result.value, Vector)
    return {s.labels: s.value for s in result.value.samples}


def lb(**pairs: str) -> Labels:
    return labels_from(pairs)


ENGINE: Engine = PromQLEngine()


def instant(store: FakeStore, query: str, t_ms: int) -> dict[Labels, float]:
    return vector(ENGINE.instant(store, query, t_ms))


# -- selectors ------------------------------------------------------------------------


def test_instant_selector_takes_latest_sample_in_left_open_lookback_window() -> None:
    """A sample exactly lookback-delta old is out; the result carries the evaluation time."""
    store = FakeStore().add({"__name__": "x"}, [(0, 1.0), (60_000, 2.0)])
    result = ENGINE.instant(store, "x", 90_000)
    assert isinstance(result.value, Vector)
    assert [(s.value, s.timestamp) for s in result.value.samples] == [(2.0, 90_000)]
    assert instant(store, "x", 60_000 + 300_000) == {}
    assert instant(store, "x", 60_000 + 299_999) == {lb(__name__="x"): 2.0}


def test_stale_marker_hides_series_until_a_new_sample() -> None:
    """The latest sample being a stale marker makes the series absent."""
    store = FakeStore().add({"__name__": "x"}, [(0, 1.0), (MIN, STALE_NAN), (3 * MIN, 5.0)])
    assert instant(store, "x", 30_000) == {lb(__name__="x"): 1.0}
    assert instant(store, "x", 2 * MIN) == {}
    assert instant(store, "x", 3 * MIN) == {lb(__name__="x"): 5.0}


def test_range_selector_is_left_open_and_drops_stale_markers() -> None:
    """``x[2m]`` at 3m holds the samples in (1m, 3m], stale markers removed."""
    store = FakeStore().add({"__name__": "x"}, every(MIN, 1, 2, STALE_NAN, 4))
    result = ENGINE.instant(store, "x[2m]", 3 * MIN)
    assert isinstance(result.value, Matrix)
    assert [list(s.points) for s in result.value.series] == [[(3 * MIN, 4.0)]]


def test_offset_and_at_modifiers_shift_and_pin_evaluation_time() -> None:
    """``offset`` looks back, negative offset forward, ``@`` pins the time."""
    store = FakeStore().add({"__name__": "x"}, every(MIN, 0, 1, 2, 3, 4, 5))
    assert instant(store, "x offset 2m", 5 * MIN) == {lb(__name__="x"): 3.0}
    assert instant(store, "x offset -1m", 3 * MIN) == {lb(__name__="x"): 4.0}
    assert instant(store, "x @ 60", 5 * MIN) == {lb(__name__="x"): 1.0}
    assert instant(store, "x @ 120 offset 1m", 5 * MIN) == {lb(__name__="x"): 1.0}


def test_at_start_and_end_refer_to_the_range_query_bounds() -> None:
    """In a range query ``@ start()`` and ``@ end()`` pin every step to the bounds."""
    store = FakeStore().add({"__name__": "x"}, every(MIN, 0, 1, 2, 3, 4, 5))
    result = ENGINE.range(store, "x @ start() + x @ end()", MIN, 4 * MIN, MIN)
    assert isinstance(result.value, Matrix)
    assert [v for _, v in result.value.series[0].points] == [5.0, 5.0, 5.0, 5.0]


def test_regex_matchers_accept_go_inline_flags() -> None:
    """RE2's ``(?i)`` in the middle of a pattern works as in Prometheus."""
    store = FakeStore().add({"__name__": "x", "env": "Production"}, [(0, 1.0)])
    assert instant(store, 'x{env=~"((?i)PRO).*"}', 0) == {lb(__name__="x", env="Production"): 1.0}


def test_each_selector_is_fetched_from_storage_once_per_range_query() -> None:
    """A 20-step range query reads storage once per selector, not once per step."""
    store = http_store()
    ENGINE.range(store, "sum(rate(http_requests_total[5m]))", 0, 10 * MIN, 30_000)
    assert store.selects == 1


# -- subqueries and range queries ------------------------------------------------------


def test_subquery_evaluates_at_aligned_steps() -> None:
    """``x[5m:2m]`` at 7m evaluates x at 4m and 6m: multiples of 2m in (2m, 7m]."""
    store = FakeStore().add({"__name__": "x"}, every(MIN, *range(10)))
    assert instant(store, "count_over_time(x[5m:2m])", 7 * MIN) == {(): 2.0}
    assert instant(store, "sum_over_time(x[5m:2m])", 7 * MIN) == {(): 10.0}
    assert instant(store, "count_over_time(x[5m:])", 7 * MIN) == {(): 5.0}


def test_range_query_steps_are_sorted_and_gaps_absent() -> None:
    """Series are sorted by labels; steps without a value are simply missing."""
    store = FakeStore()
    store.add({"__name__": "x", "a": "2"}, [(0, 1.0)])
    store.add({"__name__": "x", "a": "1"}, every(MIN, 1, 2, 3, 4, 5, 6, 7, 8))
    result = ENGINE.range(store, "x", 0, 10 * MIN, 5 * MIN)
    assert isinstance(result.value, Matrix)
    assert [s.labels for s in result.value.series] == [
        lb(__name__="x", a="1"),
        lb(__name__="x", a="2"),
    ]
    assert list(result.value.series[0].points) == [(0, 1.0), (5 * MIN, 6.0), (10 * MIN, 8.0)]
    assert list(result.value.series[1].points) == [(0, 1.0)]


def test_range_query_of_a_scalar_is_one_unlabelled_series() -> None:
    """``time()`` over a range is one series ``{}`` with a point per step."""
    result = ENGINE.range(FakeStore(), "time()", 0, 2 * MIN, MIN)
    assert isinstance(result.value, Matrix)
    assert [(s.labels, list(s.points)) for s in result.value.series] == [
        ((), [(0, 0.0), (MIN, 60.0), (2 * MIN, 120.0)])
    ]


@pytest.mark.parametrize(
    ("query", "step", "message"),
    [
        ('"text"', MIN, 'invalid expression type "string"'),
        ("x[5m]", MIN, 'invalid expression type "range vector"'),
        ("x", 0, "zero or negative query resolution step"),
    ],
)
def test_range_query_rejects_bad_types_and_steps(query: str, step: int, message: str) -> None:
    """A range query of a string or range vector, or with step <= 0, is bad_data."""
    with pytest.raises(QueryError, match=message) as info:
        ENGINE.range(FakeStore(), query, 0, MIN, step)
    assert info.value.error_type == "bad_data"


def test_instant_query_returns_scalars_and_strings() -> None:
    """Literals come back as Scalar and String stamped with the evaluation time."""
    assert ENGINE.instant(FakeStore(), "1 + 2 * 3", 5).value == Scalar(7.0, 5)
    assert ENGINE.instant(FakeStore(), '"hi"', 5).value == String("hi", 5)


def test_parse_errors_are_bad_data() -> None:
    """Syntax and type errors found by the parser become QueryError bad_data."""
    for query in ("sum(", "rate(x)", "1 == 1"):
        with pytest.raises(QueryError) as info:
            ENGINE.instant(FakeStore(), query, 0)
        assert info.value.error_type == "bad_data"


def test_unexpected_storage_failure_becomes_internal_query_error() -> None:
    """Nothing but QueryError escapes the engine."""

    class Broken(FakeStore):
        def select(
            self, matchers: Sequence[Matcher], mint_ms: int, maxt_ms: int
        ) -> Iterable[SeriesData]:
            raise RuntimeError("disk on fire")

    with pytest.raises(QueryError) as info:
        ENGINE.instant(Broken(), "up", 0)
    assert info.value.error_type == "internal"
    assert "disk on fire" not in str(info.value)


def test_max_samples_guard() -> None:
    """A query loading more samples than ``max_samples`` fails with an execution error."""
    engine = PromQLEngine(max_samples=5)
    with pytest.raises(QueryError, match="too many samples"):
        engine.instant(http_store(), "http_requests_total[10m]", 10 * MIN)
    assert len(vector(engine.instant(http_store(), "http_requests_total", 10 * MIN))) == 3


# -- binary operators -------------------------------------------------------------------


def test_arithmetic_drops_name_comparison_filters_keep_it() -> None:
    """``x * 2`` drops __name__; ``x > 15`` filters and keeps it; ``bool`` yields 0/1."""
    store = FakeStore()
    store.add({"__name__": "x", "i": "a"}, [(0, 10.0)])
    store.add({"__name__": "x", "i": "b"}, [(0, 20.0)])
    assert instant(store, "x * 2", 0) == {lb(i="a"): 20.0, lb(i="b"): 40.0}
    assert instant(store, "x > 15", 0) == {lb(__name__="x", i="b"): 20.0}
    assert instant(store, "x > bool 15", 0) == {lb(i="a"): 0.0, lb(i="b"): 1.0}
    assert instant(store, "15 < x", 0) == {lb(__name__="x", i="b"): 20.0}
    assert instant(store, "1 - x", 0) == {lb(i="a"): -9.0, lb(i="b"): -19.0}


def test_go_float_semantics_for_division_modulo_and_power() -> None:
    """Division by zero, modulo by zero and overflowing powers give Inf/NaN, not errors."""
    store = FakeStore().add({"__name__": "x"}, [(0, 2.0)])
    assert instant(store, "x / 0", 0) == {(): math.inf}
    assert math.isnan(instant(store, "x % 0", 0)[()])
    assert instant(store, "x ^ 2000", 0) == {(): math.inf}
    assert instant(store, "-7 % 3 + x", 0) == {(): 1.0}


def test_one_to_one_matching_with_on_and_ignoring() -> None:
    """``on`` keeps only the listed labels; ``ignoring`` removes the ignored ones."""
    store = FakeStore()
    store.add({"__name__": "a", "job": "j", "x": "1"}, [(0, 3.0)])
    store.add({"__name__": "b", "job": "j", "y": "2"}, [(0, 4.0)])
    assert instant(store, "a + on(job) b", 0) == {lb(job="j"): 7.0}
    assert instant(store, "a + ignoring(x, y) b", 0) == {lb(job="j"): 7.0}
    assert instant(store, "a + b", 0) == {}


def test_group_left_copies_labels_from_the_one_side() -> None:
    """Many-to-one matching keeps the many side's labels plus the listed ones."""
    store = FakeStore()
    store.add({"__name__": "req", "inst": "a", "code": "200"}, [(0, 10.0)])
    store.add({"__name__": "req", "inst": "a", "code": "500"}, [(0, 2.0)])
    store.add({"__name__": "info", "inst": "a", "version": "v1"}, [(0, 1.0)])
    got = instant(store, "req * on(inst) group_left(version) info", 0)
    assert got == {
        lb(inst="a", code="200", version="v1"): 10.0,
        lb(inst="a", code="500", version="v1"): 2.0,
    }
    got = instant(store, "info * on(inst) group_right(version) req", 0)
    assert set(got) == {
        lb(inst="a", code="200", version="v1"),
        lb(inst="a", code="500", version="v1"),
    }


def test_fill_modifiers_stand_in_for_missing_samples() -> None:
    """``fill(0)`` pairs unmatched samples with 0; fill_right only fills the right side."""
    store = FakeStore()
    store.add({"__name__": "l", "k": "a"}, [(0, 1.0)])
    store.add({"__name__": "l", "k": "b"}, [(0, 2.0)])
    store.add({"__name__": "r", "k": "a"}, [(0, 10.0)])
    store.add({"__name__": "r", "k": "c"}, [(0, 30.0)])
    assert instant(store, "l + fill(0) r", 0) == {lb(k="a"): 11.0, lb(k="b"): 2.0, lb(k="c"): 30.0}
    assert instant(store, "l + fill_right(5) r", 0) == {lb(k="a"): 11.0, lb(k="b"): 7.0}
    assert instant(store, "l == bool fill(2) r", 0) == {
        lb(k="a"): 0.0,
        lb(k="b"): 1.0,
        lb(k="c"): 0.0,
    }


def test_set_operators_match_on_all_labels_but_name() -> None:
    """and/or/unless keep left samples by signature; ``or`` adds unmatched right samples."""
    store = FakeStore()
    for name, insts in (("a", "12"), ("b", "23")):
        for inst in insts:
            store.add({"__name__": name, "i": inst}, [(0, float(inst))])
    assert set(instant(store, "a and b", 0)) == {lb(__name__="a", i="2")}
    assert set(instant(store, "a unless b", 0)) == {lb(__name__="a", i="1")}
    assert set(instant(store, "a or b", 0)) == {
        lb(__name__="a", i="1"),
        lb(__name__="a", i="2"),
        lb(__name__="b", i="3"),
    }
    assert set(instant(store, "a and on() b", 0)) == {
        lb(__name__="a", i="1"),
        lb(__name__="a", i="2"),
    }


def test_many_to_many_matching_is_an_execution_error() -> None:
    """Duplicate series on the 'one' side fail with Prometheus's message."""
    store = http_store()
    with pytest.raises(QueryError, match="many-to-many matching not allowed") as info:
        ENGINE.instant(store, "http_requests_total + on(job) http_requests_total", 0)
    assert info.value.error_type == "execution"
    assert 'found duplicate series for the match group {job="api"}' in str(info.value)


def test_one_to_one_with_duplicate_many_side_requires_group_modifier() -> None:
    """Two left series matching one right series need group_left."""
    store = http_store().add({"__name__": "limit", "job": "api"}, [(0, 1.0)])
    with pytest.raises(QueryError, match="many-to-one matching must be explicit"):
        ENGINE.instant(store, "http_requests_total > on(job) limit", 0)


def test_group_left_needs_unique_result_labels() -> None:
    """group_left whose result labels collide is an error."""
    store = http_store().add({"__name__": "limit", "job": "api"}, [(0, 1.0)])
    query = "sum by (job, instance) (http_requests_total) / on(job) group_left limit"
    assert len(instant(store, query, 0)) == 2
    store.add({"__name__": "other", "job": "api", "instance": "0"}, [(0, 1.0)])
    query = '{__name__=~"http_requests_total|other", instance="0"} * on() group_left limit'
    with pytest.raises(QueryError, match="grouping labels must ensure unique matches"):
        ENGINE.instant(store, query, 0)


def test_dropping_the_name_must_not_merge_series() -> None:
    """Two series differing only by name collide after ``abs``."""
    store = FakeStore()
    store.add({"__name__": "a", "x": "1"}, [(0, 1.0)])
    store.add({"__name__": "b", "x": "1"}, [(0, 1.0)])
    with pytest.raises(QueryError, match="vector cannot contain metrics with the same labelset"):
        ENGINE.instant(store, 'abs({__name__=~"a|b"})', 0)


# -- aggregations -------------------------------------------------------------------------


def test_basic_aggregations_by_and_without() -> None:
    """sum/avg/count/min/max group by the listed labels; without drops them and the name."""
    store = http_store()
    t = 10 * MIN
    assert instant(store, "sum by (job) (http_requests_total)", t) == {
        lb(job="api"): 300.0,
        lb(job="web"): 300.0,
    }
    assert instant(store, "avg without (instance) (http_requests_total)", t) == {
        lb(job="api"): 150.0,
        lb(job="web"): 300.0,
    }
    assert instant(store, "count(http_requests_total)", t) == {(): 3.0}
    assert instant(store, "max(http_requests_total)", t) == {(): 300.0}
    assert instant(store, "min by (instance) (http_requests_total)", t) == {
        lb(instance="0"): 100.0,
        lb(instance="1"): 200.0,
    }
    assert instant(store, "group by (job) (http_requests_total)", t) == {
        lb(job="api"): 1.0,
        lb(job="web"): 1.0,
    }
    assert instant(store, "sum(nothing)", t) == {}


def test_stddev_quantile_and_count_values() -> None:
    """stddev/stdvar are population statistics; quantile interpolates; count_values counts."""
    store = FakeStore()
    for i, v in enumerate([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]):
        store.add({"__name__": "x", "i": str(i)}, [(0, v)])
    assert instant(store, "stddev(x)", 0) == {(): 2.0}
    assert instant(store, "stdvar(x)", 0) == {(): 4.0}
    assert instant(store, "quantile(0.5, x)", 0) == {(): 4.5}
    assert instant(store, 'count_values("v", x)', 0)[lb(v="4")] == 3.0
    result = ENGINE.instant(store, "quantile(2, x)", 0)
    assert vector(result) == {(): math.inf}
    assert result.warnings == ("PromQL warning: quantile value should be between 0 and 1, got 2",)


def test_topk_and_bottomk_keep_labels_order_values_and_put_nan_last() -> None:
    """topk returns the k largest (descending), NaN sorted last; bottomk the smallest."""
    store = FakeStore()
    for i, v in enumerate([1.0, math.nan, 3.0, 2.0]):
        store.add({"__name__": "x", "i": str(i)}, [(0, v)])
    result = ENGINE.instant(store, "topk(2, x)", 0)
    assert isinstance(result.value, Vector)
    assert [s.labels for s in result.value.samples] == [
        lb(__name__="x", i="2"),
        lb(__name__="x", i="3"),
    ]
    result = ENGINE.instant(store, "bottomk(4, x)", 0)
    assert isinstance(result.value, Vector)
    assert [dict(s.labels)["i"] for s in result.value.samples] == ["0", "3", "2", "1"]
    assert instant(store, "topk(0, x)", 0) == {}
    with pytest.raises(QueryError, match="Parameter value is NaN"):
        ENGINE.instant(store, "topk(NaN, x)", 0)


def test_limitk_and_limit_ratio_select_subsets() -> None:
    """limitk keeps k series per group; limit_ratio(1) keeps all and (-1) too."""
    store = http_store()
    assert len(instant(store, "limitk(2, http_requests_total)", 0)) == 2
    assert len(instant(store, "limit_ratio(1, http_requests_total)", 0)) == 3
    some = instant(store, "limit_ratio(0.5, http_requests_total)", 0)
    rest = instant(store, "limit_ratio(-0.5, http_requests_total)", 0)
    assert set(some).isdisjoint(rest) and len(some) + len(rest) == 3
