"""PromQL functions with hand-computed values, and the Go-compatibility helpers behind them."""

from __future__ import annotations

import math
import re

import pytest

from agent.promql.engine import PromQLEngine
from agent.promql.floats import format_f, format_g, go_pow, parse_go_float
from agent.promql.labelfuncs import expand_template, natural_less
from agent.promql.regex import go_regex
from agent.promql.value import QueryError, Vector
from agent.promql.xxhash import labels_hash, xxh64
from tests.unit.test_promql_engine import MIN, FakeStore, every, instant, lb

ENGINE = PromQLEngine()


def counter_store(*values: float, name: str = "c_total", step: int = MIN) -> FakeStore:
    return FakeStore().add({"__name__": name, "job": "j"}, every(step, *values))


J = lb(job="j")


# -- rate family -----------------------------------------------------------------------


def test_rate_extrapolates_to_window_boundaries() -> None:
    """Samples at 1m..5m (+10/min) in (0, 5m]: 40 observed, extrapolated by 30s to the start."""
    store = FakeStore().add({"__name__": "c_total"}, every(MIN, 10, 20, 30, 40, 50, start=MIN))
    # observed 4 min; start gap 1 min >= 1.1 * avg is false, so extrapolate the full minute,
    # but not beyond the counter's zero point (10 / (40 / 240 s) = 60 s): 40 * 300 / 240 = 50.
    assert instant(store, "increase(c_total[5m])", 5 * MIN) == {(): 50.0}
    assert instant(store, "rate(c_total[5m])", 5 * MIN) == {(): 50.0 / 300}


def test_rate_limits_extrapolation_to_half_an_interval() -> None:
    """A series starting well inside the window is extrapolated by half an interval only."""
    store = FakeStore().add({"__name__": "c_total"}, every(MIN, 100, 110, 120, start=3 * MIN))
    # samples at 3m, 4m, 5m in (0, 5m]: 20 observed over 120 s, +30 s at the start.
    assert instant(store, "increase(c_total[5m])", 5 * MIN) == {(): 25.0}


def test_rate_handles_counter_resets_and_needs_two_samples() -> None:
    """A drop counts as a reset; a single sample gives no rate."""
    store = counter_store(0, 10, 20, 5, 15)
    # increase 10+10+5+10 = 35 over 4 min, window (0, 4m]: first sample at 0 is outside.
    assert instant(store, "increase(c_total[4m])", 4 * MIN) == {J: pytest.approx(25.0 * 4 / 3)}
    assert instant(store, "resets(c_total[10m])", 4 * MIN) == {J: 1.0}
    assert instant(store, "rate(c_total[1m])", 4 * MIN) == {}


def test_irate_idelta_and_delta() -> None:
    """irate/idelta use the last two samples; delta extrapolates without reset handling."""
    store = counter_store(0, 10, 20, 5, name="g")
    assert instant(store, "irate(g[5m])", 3 * MIN) == {J: 5.0 / 60}
    assert instant(store, "idelta(g[5m])", 3 * MIN) == {J: -15.0}
    assert instant(store, "delta(g[3m])", 3 * MIN) == {J: (5.0 - 10.0) * 180 / 120}


def test_rate_on_non_counter_name_adds_info() -> None:
    """rate() of a metric not named like a counter carries Prometheus's info annotation."""
    result = ENGINE.instant(counter_store(0, 1, 2, name="temp"), "rate(temp[5m])", 2 * MIN)
    assert result.infos == (
        "PromQL info: metric might not be a counter, name does not end in "
        '_total/_sum/_count/_bucket: "temp"',
    )
    assert ENGINE.instant(counter_store(0, 1, 2), "rate(c_total[5m])", 2 * MIN).infos == ()


def test_deriv_and_predict_linear() -> None:
    """A perfect line has slope 1/s; predict_linear extrapolates from the evaluation time."""
    store = counter_store(0, 60, 120, 180, name="g")
    assert instant(store, "deriv(g[5m])", 3 * MIN) == {J: 1.0}
    assert instant(store, "predict_linear(g[5m], 60)", 3 * MIN) == {J: 240.0}


def test_double_exponential_smoothing_validates_factors() -> None:
    """Smoothing factors outside (0, 1) are an execution error; a line is reproduced."""
    store = counter_store(1, 2, 3, 4, name="g")
    assert instant(store, "double_exponential_smoothing(g[5m], 0.5, 0.5)", 3 * MIN) == {J: 4.0}
    with pytest.raises(QueryError, match=r"invalid smoothing factor\. Expected: 0 < sf < 1"):
        ENGINE.instant(store, "double_exponential_smoothing(g[5m], 1, 0.5)", 3 * MIN)


# -- *_over_time ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("func", "expected"),
    [
        ("avg_over_time", 3.0),
        ("sum_over_time", 12.0),
        ("count_over_time", 4.0),
        ("min_over_time", 1.0),
        ("max_over_time", 5.0),
        ("stdvar_over_time", 2.5),
        ("present_over_time", 1.0),
        ("changes", 3.0),
        ("mad_over_time", 1.5),
    ],
)
def test_over_time_functions(func: str, expected: float) -> None:
    """Values 1, 2, 5, 4 in the window give hand-computed results."""
    store = counter_store(1, 2, 5, 4, name="g")
    assert instant(store, f"{func}(g[5m])", 3 * MIN) == {J: expected}


def test_last_over_time_keeps_the_name_and_quantile_over_time_interpolates() -> None:
    """last_over_time is the only aggregation over time that keeps __name__."""
    store = counter_store(1, 2, 5, 4, name="g")
    assert instant(store, "last_over_time(g[5m])", 3 * MIN) == {lb(__name__="g", job="j"): 4.0}
    assert instant(store, "quantile_over_time(0.5, g[5m])", 3 * MIN) == {J: 3.0}


def test_absent_and_absent_over_time_take_labels_from_equality_matchers() -> None:
    """absent() of a missing series yields 1 labelled by its ``=`` matchers."""
    store = counter_store(1)
    assert instant(store, 'absent(nope{job="x", env=~"p.*"})', 0) == {lb(job="x"): 1.0}
    assert instant(store, 'absent_over_time(nope{job="x"}[1m])', 0) == {lb(job="x"): 1.0}
    assert instant(store, "absent(c_total)", 0) == {}
    assert instant(store, "absent(sum(nope))", 0) == {(): 1.0}


# -- histogram_quantile ------------------------------------------------------------------------


def bucket_store(counts: dict[str, float]) -> FakeStore:
    store = FakeStore()
    for le, count in counts.items():
        store.add({"__name__": "h_bucket", "le": le}, [(0, count)])
    return store


def test_histogram_quantile_interpolates_within_bucket() -> None:
    """Rank 0.5 * 100 = 50 lies in (0.1, 0.5] holding 40..80: 0.1 + 0.4 * 10/40."""
    store = bucket_store({"0.1": 40, "0.5": 80, "1": 95, "+Inf": 100})
    assert instant(store, "histogram_quantile(0.5, h_bucket)", 0) == {(): 0.2}
    assert instant(store, "histogram_quantile(0.99, h_bucket)", 0) == {(): 1.0}
    assert instant(store, "histogram_quantile(0, h_bucket)", 0) == {(): 0.0}


def test_histogram_quantile_fixes_monotonicity_and_reports_bad_buckets() -> None:
    """Decreasing buckets are forced up with an info; a bad ``le`` is skipped with a warning."""
    store = bucket_store({"1": 10, "2": 5, "3": 20, "+Inf": 20, "oops": 3})
    result = ENGINE.instant(store, "histogram_quantile(0.5, h_bucket)", 0)
    assert isinstance(result.value, Vector)
    assert [s.value for s in result.value.samples] == [1.0]
    assert result.infos[0].startswith("PromQL info: input to histogram_quantile needed to be fixed")
    assert result.warnings == (
        'PromQL warning: bucket label "le" is missing or has a malformed value of "oops" '
        'for metric name "h_bucket"',
    )


def test_histogram_quantile_without_inf_bucket_is_nan() -> None:
    """Without a +Inf bucket the quantile is undefined."""
    store = bucket_store({"1": 10, "2": 20})
    assert math.isnan(instant(store, "histogram_quantile(0.5, h_bucket)", 0)[()])


def test_histogram_fraction_over_classic_buckets() -> None:
    """Between 0 and 0.3: 40 full + half of the (0.1, 0.5] bucket's 40 = 60 of 100."""
    store = bucket_store({"0.1": 40, "0.5": 80, "1": 95, "+Inf": 100})
    assert instant(store, "histogram_fraction(0, 0.3, h_bucket)", 0) == {(): 0.6}


# -- instant-vector functions --------------------------------------------------------------------


def test_math_functions_follow_go_semantics() -> None:
    """ln(0) is -Inf, sqrt(-1) NaN, clamp/round/sgn as Prometheus."""
    store = FakeStore()
    store.add({"__name__": "x", "i": "a"}, [(0, 0.0)])
    store.add({"__name__": "x", "i": "b"}, [(0, -2.5)])
    assert instant(store, "ln(x)", 0)[lb(i="a")] == -math.inf
    assert math.isnan(instant(store, "sqrt(x)", 0)[lb(i="b")])
    assert instant(store, "clamp(x, -1, 1)", 0) == {lb(i="a"): 0.0, lb(i="b"): -1.0}
    assert instant(store, "clamp(x, 1, -1)", 0) == {}
    assert instant(store, "round(x)", 0) == {lb(i="a"): 0.0, lb(i="b"): -2.0}
    assert instant(store, "round(x, 2)", 0)[lb(i="b")] == -2.0
    assert instant(store, "sgn(x)", 0) == {lb(i="a"): 0.0, lb(i="b"): -1.0}


def test_date_functions_use_utc() -> None:
    """1970-01-01 was a Thursday; February 2024 has 29 days."""
    feb = 1_707_000_000  # 2024-02-03T22:40:00Z
    assert instant(FakeStore(), "day_of_week(vector(0))", 0) == {(): 4.0}
    assert instant(FakeStore(), f"days_in_month(vector({feb}))", 0) == {(): 29.0}
    assert instant(FakeStore(), f"hour(vector({feb}))", 0) == {(): 22.0}
    assert instant(FakeStore(), "year()", 0) == {(): 1970.0}


def test_scalar_vector_time_and_timestamp() -> None:
    """scalar() of one sample is its value, else NaN; timestamp() is the sample's own time."""
    store = counter_store(1, 2, name="g")
    assert ENGINE.instant(store, "scalar(g)", 90_000).value.value == 2.0  # type: ignore[union-attr]
    assert instant(store, "timestamp(g)", 90_000) == {J: 60.0}
    assert instant(store, "vector(time())", 90_000) == {(): 90.0}


def test_label_replace_and_label_join() -> None:
    """label_replace expands Go templates when the anchored regex matches; join concatenates."""
    store = FakeStore().add({"__name__": "x", "a": "foo-1", "b": "bar"}, [(0, 1.0)])
    got = instant(store, 'label_replace(x, "n", "${2}_$1", "a", "(\\\\w+)-(\\\\d)")', 0)
    assert got == {lb(__name__="x", a="foo-1", b="bar", n="1_foo"): 1.0}
    got = instant(store, 'label_replace(x, "n", "$2_$1", "a", "(\\\\w+)-(\\\\d)")', 0)
    assert got == {lb(__name__="x", a="foo-1", b="bar", n="foo"): 1.0}  # Go reads "$2_" as a name
    unchanged = instant(store, 'label_replace(x, "n", "$1", "a", "oo")', 0)
    assert unchanged == {lb(__name__="x", a="foo-1", b="bar"): 1.0}
    got = instant(store, 'label_join(x, "j", ",", "a", "b", "none")', 0)
    assert got == {lb(__name__="x", a="foo-1", b="bar", j="foo-1,bar,"): 1.0}
    with pytest.raises(QueryError, match="invalid regular expression in label_replace"):
        ENGINE.instant(store, 'label_replace(x, "n", "", "a", "(")', 0)


def test_sort_functions_order_results() -> None:
    """sort puts NaN last; sort_by_label orders label values naturally."""
    store = FakeStore()
    for name, v in (("x10", 1.0), ("x9", math.nan), ("x2", 3.0)):
        store.add({"__name__": "m", "i": name}, [(0, v)])

    def order(query: str) -> list[str]:
        result = ENGINE.instant(store, query, 0)
        assert isinstance(result.value, Vector)
        return [dict(s.labels)["i"] for s in result.value.samples]

    assert order("sort(m)") == ["x10", "x2", "x9"]
    assert order("sort_desc(m)") == ["x2", "x10", "x9"]
    assert order('sort_by_label(m, "i")') == ["x2", "x9", "x10"]
    assert order('sort_by_label_desc(m, "i")') == ["x10", "x9", "x2"]


# -- helpers ---------------------------------------------------------------------------------------


def test_go_float_formatting_and_parsing() -> None:
    """%g switches to exponents at 1e6 and 1e-5; 'f' never does; ParseFloat takes +Inf."""
    assert [format_g(v) for v in (1e6, 123456.0, 1e-5, 0.25, math.nan, -math.inf)] == [
        "1e+06",
        "123456",
        "1e-05",
        "0.25",
        "NaN",
        "-Inf",
    ]
    assert format_f(1e21) == "1000000000000000000000"
    assert format_f(2.0) == "2"
    assert parse_go_float("+Inf") == math.inf
    with pytest.raises(ValueError):
        parse_go_float(" 1")
    assert go_pow(-8.0, 1 / 3) != go_pow(-8.0, 1 / 3)  # NaN, not an exception


def test_go_regex_translation() -> None:
    """RE2-only syntax is rewritten into equivalent Python patterns."""
    assert re.fullmatch(go_regex("a(?i)b|c"), "aB")
    assert re.fullmatch(go_regex("a(?i)b|c"), "C")
    assert not re.fullmatch(go_regex("a(?i)b|c"), "A")
    assert re.fullmatch(go_regex("[[:alpha:]]+\\d\\z"), "abc1")
    assert re.fullmatch(go_regex("\\Qa.b\\E"), "a.b")
    assert not re.fullmatch(go_regex("\\d"), "٣")  # RE2's \d is ASCII only


def test_xxh64_matches_reference_vectors() -> None:
    """limit_ratio hashes label sets with XXH64 as Prometheus does."""
    assert xxh64(b"") == 0xEF46DB3751D8E999
    assert xxh64(b"abc") == 0x44BC2CF5AD770999
    assert xxh64(b"Nobody inspects the spammish repetition") == 0xFBCEA83C8A378BF1
    assert labels_hash((("a", "b"),)) == xxh64(b"\x01a\x01b")


def test_template_expansion_and_natural_order() -> None:
    """Unknown groups expand to nothing, ``$$`` is a dollar; digits compare as numbers."""
    match = re.fullmatch(r"(?P<x>a)(b)", "ab")
    assert match is not None
    assert expand_template("$x-$2-$3-$$-$1x-${1}x", match) == "a-b--$--ax"
    assert natural_less("node2", "node10")
    assert not natural_less("node10", "node2")
