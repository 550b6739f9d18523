"""The PromQL test-file runner: notation, statement parsing, harness comparison rules, CLI.

Runs against a small fake store and a fake engine (plain selectors, literals and
``@``, over promql-parser), so it needs neither the real store nor the real engine.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import promql_parser
import pytest

from agent.promql import testfile
from agent.promql.testfile import FileResult, almost_equal, main, run_script
from agent.promql.testfile_at import at_modifier_variant
from agent.promql.testfile_parse import Clear, Eval, Invalid, Load, parse_script
from agent.promql.testfile_values import expand_values, parse_duration_ms, split_series, unquote
from agent.promql.value import (
    Matrix,
    QueryError,
    QueryResult,
    Sample,
    Scalar,
    Series,
    String,
    Value,
    Vector,
)
from agent.tsdb.base import (
    STALE_NAN,
    Labels,
    Matcher,
    Queryable,
    SeriesData,
    is_stale,
    labels_from,
)

LOOKBACK_MS = 5 * 60_000


class FakeStore:
    """An in-memory store: append in order per series, select by matchers and time."""

    def __init__(self) -> None:
        self.data: dict[Labels, list[tuple[int, float]]] = {}

    def append(self, labels: Labels, t_ms: int, value: float) -> bool:
        points = self.data.setdefault(labels, [])
        if points and points[-1][0] >= t_ms:
            return False
        points.append((t_ms, value))
        return True

    def select(
        self, matchers: Sequence[Matcher], mint_ms: int, maxt_ms: int
    ) -> Iterable[SeriesData]:
        for labels, points in sorted(self.data.items()):
            values = dict(labels)
            if all(m.matches(values.get(m.name, "")) for m in matchers):
                inside = [(t, v) for t, v in points if mint_ms <= t <= maxt_ms]
                yield SeriesData(labels, [t for t, _ in inside], [v for _, v in inside])

    def label_names(self, matchers: Sequence[Matcher] = ()) -> list[str]:
        return sorted({name for labels in self.data for name, _ in labels})

    def label_values(self, name: str, matchers: Sequence[Matcher] = ()) -> list[str]:
        return sorted({dict(labels).get(name, "") for labels in self.data} - {""})


Override = Callable[[str, int], QueryResult | None]


@dataclass
class FakeEngine:
    """Literals and plain vector selectors (5m lookback, ``@``); ``override`` can fake anything."""

    override: Override | None = None
    range_override: Callable[[str, int], QueryResult | None] | None = None
    calls: list[tuple[str, str, int]] = field(default_factory=list)

    def instant(self, storage: Queryable, query: str, t_ms: int) -> QueryResult:
        assert isinstance(storage, FakeStore)
        self.calls.append(("instant", query, t_ms))
        if self.override and (res := self.override(query, t_ms)) is not None:
            return res
        return QueryResult(self._eval(storage, query, t_ms))

    def range(
        self, storage: Queryable, query: str, start_ms: int, end_ms: int, step_ms: int
    ) -> QueryResult:
        assert isinstance(storage, FakeStore)
        self.calls.append(("range", query, start_ms))
        if self.range_override and (res := self.range_override(query, start_ms)) is not None:
            return res
        series: dict[Labels, list[tuple[int, float]]] = {}
        for t in range(start_ms, end_ms + 1, step_ms):
            value = self._eval(storage, query, t)
            if isinstance(value, String):
                raise QueryError("string in range query", "bad_data")
            if isinstance(value, Scalar):
                series.setdefault((), []).append((t, value.value))
            else:
                for s in value.samples:  # type: ignore[union-attr]
                    series.setdefault(s.labels, []).append((t, s.value))
        return QueryResult(Matrix([Series(k, v) for k, v in sorted(series.items())]))

    def _eval(self, storage: FakeStore, query: str, t_ms: int) -> Value:
        try:
            expr = promql_parser.parse(query)
        except ValueError as exc:
            raise QueryError(str(exc), "bad_data") from None
        if isinstance(expr, promql_parser.NumberLiteral):
            return Scalar(expr.val, t_ms)
        if isinstance(expr, promql_parser.StringLiteral):
            return String(expr.val, t_ms)
        if not isinstance(expr, promql_parser.VectorSelector):
            raise QueryError(f"fake engine cannot evaluate {query!r}")
        return self._select(storage, expr, t_ms)

    def _select(self, storage: FakeStore, expr: promql_parser.VectorSelector, t: int) -> Vector:
        if expr.at is not None and expr.at.type == promql_parser.AtModifierType.At:
            assert expr.at.at is not None
            t = round(expr.at.at.timestamp() * 1000)
        matchers = [Matcher("__name__", "=", expr.name)] if expr.name else []
        ops = {"Equal": "=", "NotEqual": "!=", "Re": "=~", "NotRe": "!~"}
        for m in expr.matchers.matchers:
            matchers.append(Matcher(m.name, ops[str(m.op).rsplit(".", 1)[-1]], m.value))  # type: ignore[arg-type]
        samples = []
        for data in storage.select(matchers, t - LOOKBACK_MS + 1, t):
            if data.values and not is_stale(data.values[-1]):
                samples.append(Sample(data.labels, data.values[-1], t))
        return Vector(samples)


def run(text: str, engine: FakeEngine | None = None) -> FileResult:
    return run_script(text, "t.test", engine=engine or FakeEngine(), new_store=FakeStore)


def only(result: FileResult) -> testfile.StatementResult:
    assert len(result.statements) == 1, result.statements
    return result.statements[0]


# --- value notation ------------------------------------------------------------------------


def test_expand_values_handles_every_form_of_the_notation() -> None:
    """Increments, decrements, repeats, gaps, stale and signed Inf/NaN expand as in Prometheus."""
    assert expand_values("1+2x3") == (1.0, 3.0, 5.0, 7.0)
    assert expand_values("1-1x3") == (1.0, 0.0, -1.0, -2.0)
    assert expand_values("1x5") == (1.0,) * 6
    assert expand_values("_ _x3 4") == (None, None, None, None, 4.0)
    assert expand_values("-2 +3 1.5e3 .5 -1x1") == (-2.0, 3.0, 1500.0, 0.5, -1.0, -1.0)
    values = [v for v in expand_values("stale Inf -Inf +Inf inf NaN") if v is not None]
    assert is_stale(values[0]) and values[1:5] == [math.inf, -math.inf, math.inf, math.inf]
    assert math.isnan(values[5]) and not is_stale(values[5])


def test_expand_values_accumulates_by_repeated_addition() -> None:
    """``a+bxN`` adds ``b`` step by step (float drift included), like the Go parser."""
    acc, expected = 0.1, []
    for _ in range(4):
        expected.append(acc)
        acc += 0.1
    assert expand_values("0.1+0.1x3") == tuple(expected)


@pytest.mark.parametrize("bad", ["1+", "abc", "1x", "1+2", "_x", "stalex2", "1++1x2"])
def test_expand_values_rejects_malformed_items(bad: str) -> None:
    """Malformed value items raise ValueError rather than loading something wrong."""
    with pytest.raises(ValueError):
        expand_values(bad)


def test_durations_follow_prometheus_syntax() -> None:
    """Durations combine units in order; a bare 0 is allowed, other bare numbers are not."""
    assert parse_duration_ms("1h30m") == 5_400_000
    assert parse_duration_ms("500ms") == 500
    assert parse_duration_ms("1m1s1ms") == 61_001
    assert parse_duration_ms("0") == 0
    assert parse_duration_ms("1y") == 365 * 86_400_000
    for bad in ("", "5", "-1m", "1m1h", "1.5m"):
        with pytest.raises(ValueError):
            parse_duration_ms(bad)


def test_split_series_reads_names_labels_and_quoting() -> None:
    """Metric names with colons, quoted UTF-8 names, escapes and all three quote styles parse."""
    labels, raw = split_series("a:b_c{x=\"1\", y='t\\n', z=`r\\w`,} 1 2")
    assert labels == (("__name__", "a:b_c"), ("x", "1"), ("y", "t\n"), ("z", "r\\w"))
    assert raw == "1 2"
    assert split_series('{"my.metric", "a.b"="}"}\t_')[0] == (
        ("__name__", "my.metric"),
        ("a.b", "}"),
    )
    assert split_series("{} 5") == ((), "5")
    for bad in ('m{a="1" 1', "m{a=1} 1", "m{a} 1", "m1"):
        with pytest.raises(ValueError):
            split_series(bad)


def test_unquote_handles_go_escapes() -> None:
    """Double and single quotes take Go escapes (hex, octal, unicode); backquotes are raw."""
    assert unquote(r'"a\x41\101\u00e9\"\\"') == 'aAAé"\\'
    assert unquote("'it\\'s'") == "it's"
    assert unquote("`a\\nb`") == "a\\nb"
    with pytest.raises(ValueError):
        unquote('"bad\\q"')


# --- statements ---------------------------------------------------------------------------


def test_load_and_clear_statements_parse() -> None:
    """A load block keeps its step and expanded series; a comment line ends the block."""
    stmts = parse_script("load 5m\n  up{job='a'} 1 _ stale\n  down 0+1x2\n# note\n  clear\nclear\n")
    load = stmts[0]
    assert isinstance(load, Load) and load.step_ms == 300_000 and load.line == 1
    assert [s.labels for s in load.series] == [
        (("__name__", "up"), ("job", "a")),
        (("__name__", "down"),),
    ]
    assert load.series[0].values[:2] == (1.0, None) and is_stale(load.series[0].values[2] or 0)
    assert isinstance(stmts[1], Clear) and isinstance(stmts[2], Clear) and stmts[2].line == 6


def test_load_marks_histograms_start_timestamps_and_nhcb_as_unsupported() -> None:
    """{{...}} series, @st blocks and load_with_nhcb's derived histograms are listed, not loaded."""
    hist, st, nhcb = parse_script(
        "load 1m\n  h {{schema:0 sum:1 count:1}}\n  f 1\n\n"
        "load 1m\n  c@st _ -1m\n  c 1 2\n\n"
        'load_with_nhcb 1m\n  r_bucket{le="1"} 1\n  r_count 1\n  r_sum 2\n  other 3\n'
    )
    assert isinstance(hist, Load) and [s.labels for s in hist.series] == [(("__name__", "f"),)]
    assert [u.reason for u in hist.unsupported] == ["native histogram samples"]
    assert isinstance(st, Load) and st.series == ()
    assert st.unsupported[0].labels == (("__name__", "c"),)
    assert isinstance(nhcb, Load) and len(nhcb.series) == 4
    assert {u.labels for u in nhcb.unsupported} == {(("__name__", "r"),)}


def test_a_repeated_series_line_replaces_the_earlier_one() -> None:
    """Within one load, the last line for a label set wins, as in the harness's map of series."""
    (load,) = parse_script("load 1m\n  m{a='1'} 1\n  m{a='2'} 2\n  m{a='1'} 3 4\n")
    assert isinstance(load, Load)
    assert [(dict(s.labels)["a"], s.values) for s in load.series] == [
        ("1", (3.0, 4.0)),
        ("2", (2.0,)),
    ]


def test_eval_instant_and_range_statements_parse() -> None:
    """Times, expressions, expected series with positions, scalars and ranges are read."""
    inst, rng, scalar = parse_script(
        'eval instant at 1m30s sum by (a) (x)\n  {a="1"} 3\n  {a="2"} 4\n\n'
        "eval range from 0 to 10m step 5m x\n  x 1 _ 3\n\n"
        "eval instant at 0 time()\n  0x10\n"
    )
    assert isinstance(inst, Eval) and not inst.is_range and inst.start_ms == 90_000
    assert inst.expr == "sum by (a) (x)"
    assert inst.expected == {(("a", "1"),): (1, (3.0,)), (("a", "2"),): (2, (4.0,))}
    assert isinstance(rng, Eval) and rng.is_range
    assert (rng.start_ms, rng.end_ms, rng.step_ms) == (0, 600_000, 300_000)
    assert rng.expected[(("__name__", "x"),)] == (1, (1.0, None, 3.0))
    assert isinstance(scalar, Eval) and scalar.expected_scalar == 16.0


def test_legacy_eval_variants_parse() -> None:
    """eval_fail (with expected_fail_message/regexp), eval_ordered, eval_warn, eval_info."""
    stmts = parse_script(
        "eval_fail instant at 0 a\n  expected_fail_message boom\n\n"
        "eval_fail instant at 0 a\n  expected_fail_regexp bo+m\n\n"
        "eval_ordered instant at 0 a\n\neval_warn instant at 0 a\n\n"
        "eval_info range from 0 to 1m step 1m a\n"
    )
    fail_msg, fail_re, ordered, warn, info = stmts
    assert isinstance(fail_msg, Eval) and fail_msg.fail
    assert fail_msg.fail_checks[0].matches("boom") and not fail_msg.fail_checks[0].matches("x")
    assert isinstance(fail_re, Eval) and fail_re.fail_checks[0].matches("a booom!")
    assert isinstance(ordered, Eval) and ordered.ordered
    assert isinstance(warn, Eval) and warn.warn and not warn.info
    assert isinstance(info, Eval) and info.info and info.is_range


def test_expect_lines_parse() -> None:
    """Every v3 expect line sets its expectation; msg is exact, regex searches, bare matches all."""
    ev = parse_script(
        "eval instant at 0 a\n  expect ordered\n  expect warn msg: PromQL warning: w\n"
        "  expect warn regex: w+\n  expect no_info\n  expect fail regex: e.r\n"
    )[0]
    assert isinstance(ev, Eval) and ev.ordered and ev.no_info and ev.fail and not ev.no_warn
    assert ev.expect_warn[0].message == "PromQL warning: w"
    assert ev.expect_warn[1].matches("a ww b") and ev.fail_checks[0].matches("error")
    bare = parse_script("eval instant at 0 a\n  expect info\n  expect no_warn\n  expect fail\n")[0]
    assert isinstance(bare, Eval) and bare.expect_info[0].matches("anything") and bare.no_warn


def test_expect_range_vector_and_string_parse() -> None:
    """``expect range vector`` moves the eval to its end; ``expect string`` unquotes."""
    rv, st = parse_script(
        "eval instant at 1m m[1m]\n  expect range vector from 10s to 1m step 10s\n"
        '  m 1 2 3 4 5 6\n\neval instant at 0 " a "\n  expect string ` a `\n'
    )
    assert isinstance(rv, Eval) and rv.range_vector and rv.exclude_from_range
    assert (rv.start_ms, rv.end_ms, rv.step_ms) == (10_000, 60_000, 10_000)
    assert isinstance(st, Eval) and st.expected_string == " a " and st.exclude_from_range


def test_histogram_expectations_mark_the_eval_unsupported() -> None:
    """An expected ``{{...}}`` value makes the eval unsupported instead of a parse error."""
    ev = parse_script("eval instant at 0 h\n  h {{count:1}}\n")[0]
    assert isinstance(ev, Eval) and ev.unsupported is not None


def test_bad_statements_become_invalid_and_parsing_goes_on() -> None:
    """Unknown commands, bad times, bad expects and multi-value instants are reported per line."""
    stmts = parse_script(
        "bogus 1\n\nload 5x\n  a 1\n\neval instant at 5x a\n\n"
        "eval instant at 0 a\n  a 1 2\n\neval instant at 0 a\n  expect info\n  expect no_info\n\n"
        "eval instant at 0 a\n  expect nonsense\n\nload 1m\n  a 1 oops\n\neval instant at 0 a\n"
    )
    invalid = [s for s in stmts if isinstance(s, Invalid)]
    assert [s.line for s in invalid] == [1, 3, 6, 8, 11, 15, 18]
    assert "line 19" in invalid[-1].error
    assert isinstance(stmts[-1], Eval) and stmts[-1].line == 21


def test_a_scalar_line_ends_the_eval_block() -> None:
    """As in the harness, lines after an expected scalar are read as new commands."""
    stmts = parse_script("eval instant at 0 1\n  1\n  2\n")
    assert isinstance(stmts[0], Eval) and isinstance(stmts[1], Invalid)


def test_at_modifier_variant_matches_the_harness_rewrite() -> None:
    """Top-level selectors/subqueries get @ t; numeric @ stays; start()/end() become t."""
    assert at_modifier_variant("sum(rate(x[5m] offset 1m))", 60_000) == (
        "sum(rate(x[5m] offset 1m @ 60.000))"
    )
    assert at_modifier_variant("a @ 10 + b @ end()", 1_500) == "a @ 10 + b @ 1.500"
    assert at_modifier_variant("max_over_time(rate(c[1m])[5m:1m])", 0) == (
        "max_over_time(rate(c[1m])[5m:1m] @ 0.000)"
    )
    assert at_modifier_variant('a{x="]"} + on(x) group_left fill(0) fill', 1000) == (
        'a{x="]"} @ 1.000 + on(x) group_left fill(0) fill @ 1.000'
    )
    assert at_modifier_variant("sum by (a) (x) / scalar(y)", 1000) == (
        "sum by (a) (x @ 1.000) / scalar(y @ 1.000)"
    )
    assert at_modifier_variant("1 + ", 1000) is None


# --- comparison rules -----------------------------------------------------------------------


def test_almost_equal_follows_prometheus() -> None:
    """Relative tolerance 1e-6 of |a|+|b|, NaN equals NaN, zero only equals near-zero."""
    assert almost_equal(1.0, 1.0) and almost_equal(math.nan, STALE_NAN)
    assert almost_equal(1e9, 1e9 + 1) and not almost_equal(1.0, 1.000003)
    assert almost_equal(100.0, 100.0001) and not almost_equal(100.0, 100.001)
    assert not almost_equal(0.0, 1e-300) and almost_equal(0.0, 1e-320)
    assert almost_equal(math.inf, math.inf) and not almost_equal(math.inf, -math.inf)
    assert not almost_equal(math.nan, 1.0) and not almost_equal(math.inf, 1e308)


LOADED = 'load 1m\n  m{a="1"} 1+1x10\n  m{a="2"} 10+10x10\n\n'


def test_vector_results_compare_as_sets_unless_ordered() -> None:
    """Order is ignored by default and enforced by eval_ordered / expect ordered."""
    unordered = run(LOADED + 'eval instant at 2m m\n  m{a="2"} 30\n  m{a="1"} 3\n')
    assert unordered.summary() == "1 passed, 0 failed, 0 skipped"
    ordered = run(LOADED + 'eval instant at 2m m\n  expect ordered\n  m{a="2"} 30\n  m{a="1"} 3\n')
    assert ordered.failed == 1 and "position" in only(ordered).message


def test_values_compare_with_tolerance() -> None:
    """A value within 1e-6 relative passes; one outside fails naming both values."""
    ok = run(LOADED + 'eval instant at 0 m\n  m{a="1"} 1.0000001\n  m{a="2"} 10\n')
    assert ok.passed == 1
    bad = only(run(LOADED + 'eval instant at 0 m\n  m{a="1"} 1.01\n  m{a="2"} 10\n'))
    assert bad.outcome == "failed" and "expected 1.01" in bad.message and "got 1" in bad.message
    assert 'm{a="1"} 1.01' in bad.expected and 'm{a="1"} 1' in bad.actual


def test_missing_and_unexpected_series_fail() -> None:
    """A series missing from, or extra in, the result fails; an empty expectation needs empty."""
    missing = only(run(LOADED + 'eval instant at 0 m\n  m{a="1"} 1\n  m{a="3"} 1\n'))
    assert "unexpected metric" in missing.message or "not found" in missing.message
    extra = only(run(LOADED + 'eval instant at 0 m\n  m{a="1"} 1\n'))
    assert 'unexpected metric m{a="2"}' in extra.message
    assert run(LOADED + "eval instant at 0 nothing\n").passed == 1


def test_scalar_and_string_results() -> None:
    """Scalars compare to a bare number line, strings to ``expect string``; kinds must match."""
    assert run("eval instant at 0 1.5\n  1.5\n").passed == 1
    assert run('eval instant at 0 "x"\n  expect string "x"\n').passed == 1
    assert run('eval instant at 0 "x"\n  expect string "y"\n').failed == 1
    assert "scalar" in only(run(LOADED + "eval instant at 0 m\n  1\n")).message
    assert only(run("eval instant at 0 NaN\n  NaN\n")).outcome == "passed"


def test_range_results_compare_points_and_must_be_sorted() -> None:
    """Range evals check every point (``_`` = absent) and fail on results not sorted by labels."""
    text = LOADED + 'eval range from 0 to 2m step 1m m\n  m{a="1"} 1 2 3\n  m{a="2"} 10 20 30\n'
    assert run(text).passed == 1
    gaps = "load 1m\n  m 1 _x9 3\n\neval range from 0 to 10m step 5m m\n  m 1 _ 3\n"
    assert run(gaps).passed == 1
    reverse = Matrix(
        [Series(labels_from({"b": "2"}), [(0, 1.0)]), Series((("b", "1"),), [(0, 1.0)])]
    )
    engine = FakeEngine(range_override=lambda q, t: QueryResult(reverse))
    result = only(run('eval range from 0 to 0 step 1m x\n  {b="1"} 1\n  {b="2"} 1\n', engine))
    assert "sorted" in result.message


def test_error_expectations() -> None:
    """expect fail needs an error (matching msg/regex if given); an error without it fails."""
    assert run("eval instant at 0 sum(x)\n  expect fail\n").passed == 1
    assert run("eval_fail instant at 0 sum(x)\n  expected_fail_regexp cannot\n").passed == 1
    wrong = only(run("eval instant at 0 sum(x)\n  expect fail msg: other\n"))
    assert wrong.outcome == "failed" and "matching message 'other'" in wrong.message
    assert "got none" in only(run("eval instant at 0 1\n  expect fail\n")).message
    unexpected = only(run("eval instant at 0 sum(x)\n"))
    assert unexpected.outcome == "failed" and "cannot evaluate" in unexpected.actual


def _annotated(warnings: Sequence[str] = (), infos: Sequence[str] = ()) -> FakeEngine:
    def override(query: str, t: int) -> QueryResult:
        return QueryResult(Scalar(1.0, t), tuple(warnings), tuple(infos))

    def range_override(query: str, start: int) -> QueryResult:
        return QueryResult(Matrix([Series((), [(start + 60_000, 1.0)])]))

    return FakeEngine(override=override, range_override=range_override)


def test_annotation_expectations() -> None:
    """warn/info lines must each match an annotation and cover them all; no_* forbid them."""
    head = "eval instant at 0 1\n"
    w = _annotated(["PromQL warning: w1"])
    assert run(head + "  1\n", w).passed == 1  # plain eval ignores annotations
    assert run(head + "  expect warn\n  1\n", w).passed == 1
    assert run(head + "  expect warn msg: PromQL warning: w1\n  1\n", w).passed == 1
    assert run(head + "  expect warn msg: other\n  1\n", w).failed == 1
    assert run(head + "  expect warn regex: w2\n  expect warn\n  1\n", w).failed == 1
    assert run(head + "  expect no_warn\n  1\n", w).failed == 1
    assert run(head + "  expect info\n  1\n", w).failed == 1
    assert run("eval_warn instant at 0 1\n  1\n", _annotated()).failed == 1
    assert run(head + "  expect no_info\n  1\n", _annotated(infos=["i"])).failed == 1


def test_instant_evals_are_rerun_with_at_modifiers_and_in_range_mode() -> None:
    """Like the harness: @ t at -10t, 0, t/5, t, 10t, each also as a range query around t."""
    engine = FakeEngine()
    assert run(LOADED + 'eval instant at 2m m\n  m{a="1"} 3\n  m{a="2"} 30\n', engine).passed == 1
    instants = [(q, t) for kind, q, t in engine.calls if kind == "instant"]
    assert instants == [("m", 120_000)] + [
        ("m @ 120.000", t) for t in (-1_200_000, 0, 24_000, 120_000, 1_200_000)
    ]
    ranges = [t for kind, _, t in engine.calls if kind == "range"]
    assert ranges == [t - 60_000 for _, t in instants]


def test_time_zero_uses_the_harness_offsets_and_unsafe_functions_skip_at_runs() -> None:
    """At t=0 the @ runs are at -1s, 0 and 1s; time(), start() and friends get no @ runs."""
    engine = FakeEngine()
    run(LOADED + 'eval instant at 0 m\n  m{a="1"} 1\n  m{a="2"} 10\n', engine)
    assert [t for k, q, t in engine.calls if k == "instant" and "@" in q] == [-1000, 0, 1000]
    engine = FakeEngine(override=lambda q, t: QueryResult(Scalar(t / 1000, t)))
    run("eval instant at 1m time()\n  60\n", engine)
    assert [q for _, q, _ in engine.calls] == ["time()", "time()"]
    engine = FakeEngine(override=lambda q, t: QueryResult(Scalar(t / 1000, t)))
    run("eval instant at 1m start()\n  60\n", engine)
    assert [q for _, q, _ in engine.calls] == ["start()"]  # no @ runs, no range-mode run


def test_an_engine_ignoring_at_fails_the_extra_runs() -> None:
    """A result that changes under ``@ t`` at another time is a failure naming the run."""

    def ignore_at(query: str, t: int) -> QueryResult | None:
        if "@" in query:
            return QueryResult(Vector([]))
        return None

    result = only(
        run(
            LOADED + 'eval instant at 0 m\n  m{a="1"} 1\n  m{a="2"} 10\n',
            FakeEngine(override=ignore_at),
        )
    )
    assert result.outcome == "failed" and "run as 'm @ 0.000' at -1000ms" in result.message


def test_range_mode_disagreement_fails() -> None:
    """The middle step of the range run must equal the instant result."""
    other = Matrix([Series((("__name__", "m"), ("a", "1")), [(0, 99.0)])])
    engine = FakeEngine(range_override=lambda q, t: QueryResult(other))
    result = only(run(LOADED + 'eval instant at 0 m{a="1"}\n  m{a="1"} 1\n', engine))
    assert result.outcome == "failed" and result.message.startswith("range mode:")


def test_load_writes_at_step_multiples_skips_gaps_and_writes_stale_markers() -> None:
    """``load 5m`` samples land at 0, 5m, 10m...; ``_`` writes nothing; ``stale`` a stale NaN."""
    stores: list[FakeStore] = []

    def new_store() -> FakeStore:
        stores.append(FakeStore())
        return stores[-1]

    run_script("load 5m\n  m 1 _ stale 4\n\nclear\n", engine=FakeEngine(), new_store=new_store)
    loaded = [s for s in stores if s.data]
    assert len(loaded) == 1 and len(stores) >= 2
    points = loaded[0].data[(("__name__", "m"),)]
    assert [t for t, _ in points] == [0, 600_000, 900_000] and is_stale(points[1][1])


def test_clear_starts_from_an_empty_store() -> None:
    """After ``clear`` earlier series are gone."""
    result = run(LOADED + "clear\n\neval instant at 0 m\n")
    assert result.passed == 1


# --- skipping -------------------------------------------------------------------------------


def test_evals_reading_unsupported_series_are_skipped_with_the_reason() -> None:
    """Histogram, @st and NHCB series skip the evals whose selectors could read them, only those."""
    text = (
        'load 1m\n  h{a="1"} {{schema:0 sum:1 count:1}}\n  f 1\n\n'
        "eval instant at 0 f\n  f 1\n\n"
        'eval instant at 0 {__name__=~".+"}\n  f 1\n\n'
        'eval instant at 0 h{a!="2"}\n\n'
        'load_with_nhcb 1m\n  r_bucket{le="1"} 1\n\neval instant at 0 r\n'
    )
    result = run(text)
    outcomes = [(s.outcome, s.category) for s in result.statements]
    assert outcomes[0] == ("passed", "")
    assert outcomes[1] == ("skipped", "native histogram samples")
    assert outcomes[2] == ("skipped", "native histogram samples")
    assert outcomes[3] == ("skipped", "native histograms with custom buckets (load_with_nhcb)")
    assert "loaded at line 1" in result.statements[1].message


def test_unparseable_expressions_and_histogram_expectations_are_skipped() -> None:
    """Syntax promql-parser rejects and {{...}} expectations are skipped, never passed."""
    result = run("eval instant at 0 foo[5m] anchored\n\neval instant at 0 h\n  h {{count:1}}\n")
    assert [s.outcome for s in result.statements] == ["skipped", "skipped"]
    assert result.statements[0].category == "promql-parser cannot parse the expression"


def test_a_broken_load_fails_and_skips_what_follows_until_clear() -> None:
    """A load that cannot be parsed is a failure; later evals are skipped until ``clear``."""
    result = run("load 1m\n  m 1 x\n\neval instant at 0 m\n\nclear\n\neval instant at 0 1\n  1\n")
    assert [s.outcome for s in result.statements] == ["failed", "skipped", "passed"]


def test_an_engine_crash_is_a_failure_not_a_crash() -> None:
    """Exceptions other than QueryError are reported on the statement."""

    def crash(query: str, t: int) -> QueryResult:
        raise ZeroDivisionError("oops")

    result = only(run("eval instant at 0 1\n  1\n", FakeEngine(override=crash)))
    assert result.outcome == "failed" and "ZeroDivisionError: oops" in result.message


# --- CLI ------------------------------------------------------------------------------------


@pytest.fixture
def scripts(tmp_path: Path) -> dict[str, Path]:
    good = tmp_path / "good.test"
    good.write_text(LOADED + 'eval instant at 0 m{a="1"}\n  m{a="1"} 1\n')
    bad = tmp_path / "bad.test"
    bad.write_text(
        LOADED + 'eval instant at 0 m{a="1"}\n  m{a="1"} 2\n\n'
        "eval instant at 0 h\n  h {{count:1}}\n\neval instant at 0 1\n  1\n"
    )
    return {"good": good, "bad": bad}


def cli(argv: list[str]) -> int:
    return main(argv, engine=FakeEngine(), new_store=FakeStore)


def test_cli_reports_per_file_failures_skips_and_totals(
    scripts: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """One line per file, failures with line/expr/expected/actual, skip reasons, then totals."""
    code = cli([str(scripts["good"]), str(scripts["bad"])])
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert out[0] == f"{scripts['good']}: 1 passed, 0 failed, 0 skipped"
    assert out[1] == f"{scripts['bad']}: 1 passed, 1 failed, 1 skipped"
    assert f'{scripts["bad"]}:5: eval instant m{{a="1"}}' in out
    assert '    expected: m{a="1"} 2' in out and '    actual: m{a="1"} 1' in out
    assert "       1  native histogram values in the expected result" in out
    assert out[-1] == "2 passed, 1 failed, 1 skipped"


def test_cli_exits_zero_when_nothing_fails(
    scripts: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """All passing (skips allowed) exits 0 and ends with the totals line."""
    assert cli([str(scripts["good"])]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1 passed, 0 failed, 0 skipped"


def test_cli_limits_failures_unless_verbose(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only the first 20 failures are shown; --verbose shows all."""
    many = tmp_path / "many.test"
    many.write_text("".join(f"eval instant at 0 {i}\n  -1\n\n" for i in range(25)))
    cli([str(many)])
    assert "Failures (showing 20 of 25):" in capsys.readouterr().out
    cli([str(many), "--verbose"])
    assert "Failures (showing 25 of 25):" in capsys.readouterr().out


def test_cli_json_output(scripts: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """--json prints per-file counts, skip reasons, failures and totals."""
    assert cli([str(scripts["bad"]), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    (entry,) = report["files"]
    assert (entry["passed"], entry["failed"], entry["skipped"]) == (1, 1, 1)
    assert entry["failures"][0]["line"] == 5
    assert report["failed"] == 1


def test_cli_write_floor_merges_passing_counts(
    scripts: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--write-floor records passed counts by file name, keeping other files' entries."""
    floor = tmp_path / "floor.json"
    floor.write_text('{"other.test": 7}')
    assert cli(["--write-floor", str(floor), str(scripts["bad"])]) == 0
    assert json.loads(floor.read_text()) == {"bad.test": 1, "other.test": 7}


def test_cli_unreadable_file_is_a_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing file counts as one failure, and the run goes on."""
    assert cli([str(tmp_path / "nope.test")]) == 1
    assert "0 passed, 1 failed, 0 skipped" in capsys.readouterr().out


def test_cli_without_an_engine_exits_2(
    monkeypatch: pytest.MonkeyPatch, scripts: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """When the engine cannot be imported, the command says so and exits 2."""

    def missing() -> None:
        raise ImportError("no engine")

    monkeypatch.setattr(testfile, "default_engine", missing)
    assert main([str(scripts["good"])]) == 2
    assert "engine is not available" in capsys.readouterr().err
