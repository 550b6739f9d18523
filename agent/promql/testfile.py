"""Run Prometheus's PromQL test scripts (``.test`` files) against our engine.

The runner follows Prometheus's harness (``promql/promqltest/test.go``): ``load``
writes into a fresh store, ``clear`` starts a new one, and every ``eval`` runs its
query and compares the result: values with a relative tolerance of 1e-6 (NaN equals
NaN), order only for ``eval_ordered``/``expect ordered``, range results by labels,
which must come sorted. Each instant eval is also run with ``@ <t>`` on its
selectors at other evaluation times, and as a range query around ``t`` whose middle
step must agree, as the harness does.

Counts are of eval statements; a ``load``, ``clear`` or unknown command only counts
when it cannot be parsed (a failure). An eval is *skipped*, never passed, when it
needs what we do not have: native histograms, ``load_with_nhcb``, ``@st`` start
timestamps, or syntax promql-parser cannot read.

>>> from agent.promql.testfile import run_script
>>> result = run_script("eval instant at 0 1 + 1\\n  2\\n", engine=my_engine)  # doctest: +SKIP
>>> result.passed, result.failed, result.skipped  # doctest: +SKIP
(1, 0, 0)

``pilot-agent promqltest FILE...`` is :func:`main`.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import math
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import promql_parser

from agent.promql.testfile_parse import (
    Clear,
    Eval,
    Expectation,
    Invalid,
    Load,
    Statement,
    Values,
    at_modifier_variant,
    parse_script,
)
from agent.promql.value import (
    Engine,
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
from agent.tsdb.base import Labels, Matcher, MatchOp, Queryable, is_stale

EPSILON = 1e-6
_MIN_NORMAL = 2.2250738585072014e-308
_CONTEXT_FUNCS = re.compile(r"(start|end|range|step)\(\)")
_AT_UNSAFE = frozenset({"days_in_month", "day_of_month", "day_of_week", "day_of_year", "hour"})
_AT_UNSAFE |= {"minute", "month", "year", "predict_linear", "time", "timestamp"}
# v3.14's query-context functions: its data (``eval instant at 0s start()`` = 0) only
# passes if, as for time(), no @ reruns at other times are made for them.
_AT_UNSAFE |= {"start", "end", "range", "step"}
_OPS: dict[str, MatchOp] = {"Equal": "=", "NotEqual": "!=", "Re": "=~", "NotRe": "!~"}
_SHOWN_SERIES = 8

Outcome = Literal["passed", "failed", "skipped"]


class TestStorage(Queryable, Protocol):
    """What the runner loads into and the engine reads: a fresh one per ``clear``.

    Only ``append`` is needed for writing (``stale`` is written as STALE_NAN).
    """

    def append(self, labels: Labels, t_ms: int, value: float) -> bool: ...


def default_engine() -> Engine:
    """The real engine, imported lazily so this module loads before it exists."""
    from agent.promql.engine import PromQLEngine

    return PromQLEngine()


def default_store() -> TestStorage:
    """A new, empty real series store."""
    from agent.tsdb.store import SeriesStore

    return SeriesStore()


def almost_equal(a: float, b: float, epsilon: float = EPSILON) -> bool:
    """Prometheus's ``almost.Equal``: equal, both NaN, or within ``epsilon`` of |a|+|b|.

    >>> almost_equal(1.0, 1.0000001), almost_equal(1.0, 1.00001), almost_equal(0.0, 1e-300)
    (True, False, False)
    """
    if math.isnan(a) and math.isnan(b):
        return True
    if a == b:
        return True
    abs_sum, diff = abs(a) + abs(b), abs(a - b)
    if a == 0 or b == 0 or abs_sum < _MIN_NORMAL:
        return diff < epsilon * _MIN_NORMAL
    return diff / min(abs_sum, sys.float_info.max) < epsilon


# --- results ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatementResult:
    """The outcome of one statement; ``message`` is the failure or the skip reason."""

    line: int
    kind: str
    expr: str
    outcome: Outcome
    message: str = ""
    category: str = ""
    expected: str = ""
    actual: str = ""


@dataclass(frozen=True, slots=True)
class FileResult:
    """Every counted statement of one script, plus notes (checks the runner could not do)."""

    name: str
    statements: tuple[StatementResult, ...]
    notes: tuple[str, ...] = ()

    def count(self, outcome: Outcome) -> int:
        return sum(1 for s in self.statements if s.outcome == outcome)

    @property
    def passed(self) -> int:
        return self.count("passed")

    @property
    def failed(self) -> int:
        return self.count("failed")

    @property
    def skipped(self) -> int:
        return self.count("skipped")

    def summary(self) -> str:
        return f"{self.passed} passed, {self.failed} failed, {self.skipped} skipped"


@dataclass(frozen=True, slots=True)
class _Failure:
    message: str
    actual: str = ""


# --- the expression checks done with promql-parser ---------------------------------------


@functools.lru_cache(maxsize=4096)
def _expr_info(expr: str) -> _ExprInfo | str:
    """What promql-parser makes of ``expr``, or its error (a Rust panic included)."""
    try:
        ast = promql_parser.parse(expr)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return _inspect(ast)


@dataclass(slots=True)
class _ExprInfo:
    """What the runner needs to know about a parsed expression."""

    selectors: list[list[Matcher]] = field(default_factory=list)
    shape: list[str] = field(default_factory=list)
    at_unsafe: bool = False
    top_level_at_ok: bool = True


def _inspect(expr: promql_parser.Expr) -> _ExprInfo:
    info, depth = _ExprInfo(), [0]

    def pre(node: promql_parser.Expr) -> None:
        info.shape.append(type(node).__name__)
        if isinstance(node, promql_parser.VectorSelector):
            info.selectors += _matcher_groups(node)
        if depth[0] == 0:
            if isinstance(node, promql_parser.VectorSelector | promql_parser.SubqueryExpr):
                at = node.at
                ok = at is not None and at.type == promql_parser.AtModifierType.At
                info.top_level_at_ok = info.top_level_at_ok and ok
            if isinstance(node, promql_parser.Call) and node.func.name in _AT_UNSAFE:
                info.at_unsafe = True
        if isinstance(node, promql_parser.SubqueryExpr):
            depth[0] += 1

    def post(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.SubqueryExpr):
            depth[0] -= 1

    promql_parser.walk(expr, pre, post)
    return info


def _matcher_groups(node: promql_parser.VectorSelector) -> list[list[Matcher]]:
    base = [Matcher("__name__", "=", node.name)] if node.name else []
    groups = node.matchers.or_matchers or [node.matchers.matchers]
    out = []
    for group in groups:
        try:
            out.append(
                base + [Matcher(m.name, _OPS[str(m.op).rsplit(".", 1)[-1]], m.value) for m in group]
            )
        except re.error:
            out.append([])  # a regex Python cannot read: assume it may match anything
    return out


def _reads(info: _ExprInfo, labels: Labels) -> bool:
    values = dict(labels)
    return any(all(m.matches(values.get(m.name, "")) for m in g) for g in info.selectors)


# --- running a script -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Taint:
    labels: Labels
    reason: str
    line: int


class ScriptRunner:
    """Runs parsed scripts against an engine, with a fresh store from ``new_store`` per clear.

    >>> runner = ScriptRunner(PromQLEngine(), new_store=SeriesStore)  # doctest: +SKIP
    >>> script = parse_script(Path("selectors.test").read_text())  # doctest: +SKIP
    >>> runner.run(script, "selectors.test").summary()  # doctest: +SKIP
    '28 passed, 3 failed, 0 skipped'
    """

    def __init__(self, engine: Engine, new_store: Callable[[], TestStorage]) -> None:
        _expr_info.cache_clear()  # promql-parser's function registry is global; the engine may add
        self.engine = engine
        self.new_store = new_store
        self._store: TestStorage = new_store()
        self._taints: list[_Taint] = []
        self._broken_load = 0
        self._notes: list[str] = []

    def run(self, statements: Iterable[Statement], name: str = "<script>") -> FileResult:
        self._reset()
        self._notes = []
        results: list[StatementResult] = []
        for stmt in statements:
            if isinstance(stmt, Clear):
                self._reset()
            elif isinstance(stmt, Load):
                self._load(stmt)
            elif isinstance(stmt, Invalid):
                kind = stmt.text.split(None, 1)[0]
                if kind.startswith("load"):
                    self._broken_load = stmt.line
                results.append(
                    StatementResult(stmt.line, kind, stmt.text, "failed", stmt.error, "parse")
                )
            else:
                results.append(self._eval(stmt))
        return FileResult(name, tuple(results), tuple(self._notes))

    def _reset(self) -> None:
        self._store = self.new_store()
        self._taints = []
        self._broken_load = 0

    def _load(self, load: Load) -> None:
        rejected = 0
        for series in load.series:
            for i, value in enumerate(series.values):
                if value is not None and not self._store.append(
                    series.labels, i * load.step_ms, value
                ):
                    rejected += 1
        if rejected:
            self._notes.append(f"line {load.line}: the store rejected {rejected} samples")
        self._taints += [_Taint(u.labels, u.reason, load.line) for u in load.unsupported]

    def _eval(self, ev: Eval) -> StatementResult:
        skip = self._skip_reason(ev)
        if skip is not None:
            category, message = skip
            return StatementResult(ev.line, ev.kind, ev.expr, "skipped", message, category)
        try:
            failure = self._exec_range(ev) if ev.is_range else self._exec_instant(ev)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # an engine bug must not stop the file
            failure = _Failure(f"engine raised {type(exc).__name__}: {exc}")
        if failure is None:
            return StatementResult(ev.line, ev.kind, ev.expr, "passed")
        return StatementResult(
            ev.line,
            ev.kind,
            ev.expr,
            "failed",
            failure.message,
            "eval",
            _render_expected(ev),
            failure.actual,
        )

    def _skip_reason(self, ev: Eval) -> tuple[str, str] | None:
        if ev.unsupported is not None:
            return ev.unsupported, ev.unsupported
        if self._broken_load:
            reason = "follows a load that could not be parsed"
            return reason, f"{reason} (line {self._broken_load})"
        info = _expr_info(ev.expr)
        if isinstance(info, str):
            return "promql-parser cannot parse the expression", f"promql-parser: {info}"
        for taint in self._taints:
            if _reads(info, taint.labels):
                return taint.reason, f"reads {taint.reason} loaded at line {taint.line}"
        return None

    # -- range evals

    def _exec_range(self, ev: Eval) -> _Failure | None:
        try:
            res = self.engine.range(self._store, ev.expr, ev.start_ms, ev.end_ms, ev.step_ms)
        except QueryError as exc:
            if ev.fail:
                return _check_failure(ev, exc)
            return _Failure(f"error evaluating query: {exc}", f"error: {exc}")
        if ev.fail:
            return _Failure(
                "expected an error evaluating the query but got none", _render(res.value)
            )
        return _check_annotations(ev, res) or _compare(ev, res.value)

    # -- instant evals, with the harness's extra runs

    def _exec_instant(self, ev: Eval) -> _Failure | None:
        t = ev.end_ms if ev.range_vector else ev.start_ms
        for query, at in [(ev.expr, t), *self._at_variants(ev, t)]:
            failure = self._run_instant(ev, query, at)
            if failure is not None:
                if query != ev.expr or at != t:
                    failure = _Failure(
                        f"{failure.message} [run as {query!r} at {at}ms]", failure.actual
                    )
                return failure
        return None

    def _at_variants(self, ev: Eval, t: int) -> list[tuple[str, int]]:
        info = _expr_info(ev.expr)
        if isinstance(info, str) or info.at_unsafe:
            return []
        variant = at_modifier_variant(ev.expr, t) or ""
        check = _expr_info(variant) if variant else "unreadable"
        if isinstance(check, str) or check.shape != info.shape or not check.top_level_at_ok:
            self._notes.append(f"line {ev.line}: could not add @ modifiers; those runs skipped")
            return []
        times = [-1000, 0, 1000] if t == 0 else [-10 * t, 0, t // 5, t, 10 * t]
        return [(variant, at) for at in times]

    def _run_instant(self, ev: Eval, query: str, t: int) -> _Failure | None:
        try:
            res = self.engine.instant(self._store, query, t)
        except QueryError as exc:
            if ev.fail:
                return _check_failure(ev, exc)
            return _Failure(f"error evaluating query: {exc}", f"error: {exc}")
        if ev.fail:
            return _Failure(
                "expected an error evaluating the query but got none", _render(res.value)
            )
        failure = _check_annotations(ev, res) or _compare(ev, res.value)
        if failure is not None or ev.exclude_from_range or _CONTEXT_FUNCS.search(query):
            return failure
        return self._range_mode(ev, query, t, res.value)

    def _range_mode(self, ev: Eval, query: str, t: int, instant: Value) -> _Failure | None:
        """The instant result must equal the middle step of a range query around ``t``."""
        try:
            res = self.engine.range(self._store, query, t - 60_000, t + 60_000, 60_000)
        except QueryError as exc:
            return _Failure(f"error evaluating query in range mode: {exc}", f"error: {exc}")
        if ev.ordered:
            return None
        if not isinstance(res.value, Matrix):
            return _Failure("range mode: result is not a matrix", _render(res.value))
        failure = _assert_sorted(res.value.series)
        samples = [(s.labels, v) for s in res.value.series for ts, v in s.points if ts == t]
        if failure is None and isinstance(instant, Scalar):
            if not samples:
                return _Failure("range mode: no point at the evaluation time", _render(res.value))
            failure = _compare(ev, Scalar(samples[0][1], t))
        elif failure is None:
            failure = _compare(ev, Vector([Sample(lbl, v, t) for lbl, v in samples]))
        if failure is None:
            return None
        return _Failure(f"range mode: {failure.message}", failure.actual or _render(res.value))


# --- comparing results like the harness --------------------------------------------------


def _check_failure(ev: Eval, exc: QueryError) -> _Failure | None:
    for check in ev.fail_checks:
        if not check.matches(str(exc)):
            return _Failure(f"expected an error matching {check.describe()}", f"error: {exc}")
    return None


def _check_annotations(ev: Eval, res: QueryResult) -> _Failure | None:
    warnings, infos = list(res.warnings), list(res.infos)
    shown = "; ".join([*warnings, *infos]) or "no annotations"
    if ev.warn and not warnings:
        return _Failure("expected warnings but got none", shown)
    if ev.info and not infos:
        return _Failure("expected info annotations but got none", shown)
    for kind, expected, actual in (
        ("warn", ev.expect_warn, warnings),
        ("info", ev.expect_info, infos),
    ):
        message = _annotation_mismatch(kind, expected, actual)
        if message:
            return _Failure(message, shown)
    if ev.no_warn and warnings:
        return _Failure("unexpected warning annotations", shown)
    if ev.no_info and infos:
        return _Failure("unexpected info annotations", shown)
    return None


def _annotation_mismatch(kind: str, expected: list[Expectation], actual: list[str]) -> str:
    """Every ``expect`` line must match an annotation, and every annotation a line."""
    if not expected:
        return ""
    if not actual:
        return f"expected {kind} annotations but none were found"
    for exp in expected:
        if not any(exp.matches(a) for a in actual):
            return f"expected {kind} annotation matching {exp.describe()} but found none"
    for anno in actual:
        if not any(exp.matches(anno) for exp in expected):
            return f"unexpected {kind} annotation {anno!r}"
    return ""


def _compare(ev: Eval, value: Value) -> _Failure | None:
    if isinstance(value, Matrix):
        message = _compare_matrix(ev, value)
    elif isinstance(value, Vector):
        message = _compare_vector(ev, value)
    elif isinstance(value, Scalar):
        if ev.expected_scalar is None:
            message = "expected a vector or matrix result, but got a scalar"
        elif not almost_equal(ev.expected_scalar, value.value):
            message = f"expected scalar {_fmt(ev.expected_scalar)} but got {_fmt(value.value)}"
        else:
            message = ""
    else:
        message = (
            ""
            if ev.expected_string == value.value
            else (f"expected string {ev.expected_string!r} but got {value.value!r}")
        )
    return _Failure(message, _render(value)) if message else None


def _compare_vector(ev: Eval, vector: Vector) -> str:
    if ev.expected_scalar is not None:
        return "expected a scalar result, but got a vector"
    seen = set()
    for pos, sample in enumerate(vector.samples, start=1):
        if sample.labels not in ev.expected:
            return f"unexpected metric {_fmt_labels(sample.labels)} = {_fmt(sample.value)}"
        position, values = ev.expected[sample.labels]
        if ev.ordered and position != pos:
            return (
                f"expected {_fmt_labels(sample.labels)} at position {position} but it was at {pos}"
            )
        want = values[0] if values and values[0] is not None else 0.0
        if not almost_equal(want, sample.value):
            name = _fmt_labels(sample.labels)
            return f"expected {_fmt(want)} for {name} but got {_fmt(sample.value)}"
        seen.add(sample.labels)
    missing = [labels for labels in ev.expected if labels not in seen]
    return f"expected metric {_fmt_labels(missing[0])} not found" if missing else ""


def _assert_sorted(series: Sequence[Series]) -> _Failure | None:
    for before, after in itertools.pairwise(series):
        if before.labels > after.labels:
            return _Failure(
                f"matrix results must be sorted by labels, but {_fmt_labels(after.labels)} "
                f"comes after {_fmt_labels(before.labels)}"
            )
    return None


def _compare_matrix(ev: Eval, matrix: Matrix) -> str:
    if ev.ordered:
        return "expected an ordered result, but the query returned a matrix"
    if ev.expected_scalar is not None:
        return "expected a scalar result, but got a matrix"
    unsorted = _assert_sorted(matrix.series)
    if unsorted is not None:
        return unsorted.message
    seen = set()
    for series in matrix.series:
        name = _fmt_labels(series.labels)
        if series.labels not in ev.expected:
            return f"unexpected metric {name} in result, with {_fmt_points(series.points)}"
        seen.add(series.labels)
        expected = _expected_points(ev, ev.expected[series.labels][1])
        if expected is None:
            return f"expected more points for {name} than the query time range can return"
        message = _compare_points(name, expected, series.points)
        if message:
            return message
    missing = [labels for labels in ev.expected if labels not in seen]
    return f"expected metric {_fmt_labels(missing[0])} not found" if missing else ""


def _expected_points(ev: Eval, values: Values) -> list[tuple[int, float]] | None:
    if not ev.is_range and not ev.range_vector:
        return None if values else []
    points = []
    for i, value in enumerate(values):
        t = ev.start_ms + i * ev.step_ms
        if t > ev.end_ms:
            return None
        if value is not None:
            points.append((t, value))
    return points


def _compare_points(
    name: str, expected: list[tuple[int, float]], actual: Sequence[tuple[int, float]]
) -> str:
    if len(expected) != len(actual):
        return f"expected {len(expected)} points for {name}, but got {_fmt_points(actual)}"
    for i, ((want_t, want), (got_t, got)) in enumerate(zip(expected, actual, strict=True)):
        if want_t != got_t:
            return f"expected point {i} of {name} at t={want_t} but it is at t={got_t}"
        if not almost_equal(want, got):
            return f"expected {_fmt(want)} at t={got_t} for {name} but got {_fmt(got)}"
    return ""


# --- rendering ---------------------------------------------------------------------------


def _fmt(value: float) -> str:
    if is_stale(value):
        return "stale"
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return (
        repr(value).removesuffix(".0") if value.is_integer() and abs(value) < 1e15 else repr(value)
    )


def _fmt_labels(labels: Labels) -> str:
    values = dict(labels)
    name = values.pop("__name__", "")
    inner = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in values.items())
    return f"{name}{{{inner}}}"


def _fmt_points(points: Sequence[tuple[int, float]]) -> str:
    shown = " ".join(f"{_fmt(v)}@{t}" for t, v in points[:10])
    return f"{len(points)} points [{shown}{' ...' if len(points) > 10 else ''}]"


def _clip(lines: list[str]) -> str:
    if len(lines) > _SHOWN_SERIES:
        lines = [*lines[:_SHOWN_SERIES], f"... ({len(lines) - _SHOWN_SERIES} more)"]
    return "\n".join(lines)


def _render(value: Value) -> str:
    if isinstance(value, Scalar):
        return f"scalar {_fmt(value.value)}"
    if isinstance(value, String):
        return f"string {value.value!r}"
    if isinstance(value, Vector):
        lines = [f"{_fmt_labels(s.labels)} {_fmt(s.value)}" for s in value.samples]
    else:
        lines = [f"{_fmt_labels(s.labels)} {_fmt_points(s.points)}" for s in value.series]
    return _clip(lines) or "(empty result)"


def _render_expected(ev: Eval) -> str:
    if ev.fail:
        return "an error"
    if ev.expected_scalar is not None:
        return f"scalar {_fmt(ev.expected_scalar)}"
    lines = []
    for labels, (_, values) in ev.expected.items():
        shown = " ".join("_" if v is None else _fmt(v) for v in values)
        lines.append(f"{_fmt_labels(labels)} {shown}")
    if not lines and ev.expected_string:
        return f"string {ev.expected_string!r}"
    return _clip(lines) or "(empty result)"


# --- entry points ------------------------------------------------------------------------


def run_script(
    text: str,
    name: str = "<script>",
    *,
    engine: Engine | None = None,
    new_store: Callable[[], TestStorage] | None = None,
) -> FileResult:
    """Parse and run one script; the real engine and store unless others are given."""
    runner = ScriptRunner(engine or default_engine(), new_store or default_store)
    return runner.run(parse_script(text), name)


def run_file(
    path: str | Path,
    *,
    engine: Engine | None = None,
    new_store: Callable[[], TestStorage] | None = None,
) -> FileResult:
    """Run one ``.test`` file; an unreadable file is one failed statement."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        failure = StatementResult(0, "file", str(path), "failed", f"cannot read: {exc}", "file")
        return FileResult(str(path), (failure,))
    return run_script(text, str(path), engine=engine, new_store=new_store)


def _arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pilot-agent promqltest",
        description="Run Prometheus PromQL test scripts (.test files) against the engine.",
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--verbose", "-v", action="store_true", help="list every failure and note")
    p.add_argument("--json", action="store_true", help="print per-file counts as JSON")
    p.add_argument("--write-floor", metavar="PATH", help="record passing counts per file in PATH")
    p.add_argument("--max-failures", type=int, default=20, help=argparse.SUPPRESS)
    return p


def _indent(label: str, text: str) -> str:
    pad = " " * (6 + len(label))
    return f"    {label}: " + text.replace("\n", "\n" + pad)


def _print_report(results: list[FileResult], verbose: bool, limit: int) -> None:
    for r in results:
        print(f"{r.name}: {r.summary()}")
    failures = [(r.name, s) for r in results for s in r.statements if s.outcome == "failed"]
    shown = failures if verbose else failures[:limit]
    if shown:
        print(f"\nFailures (showing {len(shown)} of {len(failures)}):")
    for name, s in shown:
        print(f"{name}:{s.line}: {s.kind} {s.expr}")
        print(_indent("error", s.message))
        if s.expected or s.actual:
            print(_indent("expected", s.expected))
            print(_indent("actual", s.actual))
    reasons = Counter(s.category for r in results for s in r.statements if s.outcome == "skipped")
    if reasons:
        print("\nSkipped, by reason:")
        for reason, n in reasons.most_common():
            print(f"  {n:6d}  {reason}")
    notes = [f"{r.name}: {note}" for r in results for note in r.notes]
    if notes:
        print(f"\nNotes: {len(notes)}" + ("" if verbose else " (--verbose lists them)"))
        for note in notes if verbose else []:
            print(f"  {note}")
    total = FileResult("total", tuple(s for r in results for s in r.statements))
    print(("\n" if len(results) > 1 or shown or reasons else "") + total.summary())


def _json_report(results: list[FileResult]) -> str:
    files = []
    for r in results:
        skipped = Counter(s.category for s in r.statements if s.outcome == "skipped")
        failures = [
            {"line": s.line, "expr": s.expr, "message": s.message}
            for s in r.statements
            if s.outcome == "failed"
        ]
        files.append(
            {
                "file": r.name,
                "passed": r.passed,
                "failed": r.failed,
                "skipped": r.skipped,
                "skip_reasons": dict(skipped),
                "failures": failures,
            }
        )
    totals = {k: sum(int(f[k]) for f in files) for k in ("passed", "failed", "skipped")}  # type: ignore[call-overload]
    return json.dumps({"files": files, **totals}, indent=2)


def write_floor(path: str | Path, results: list[FileResult]) -> dict[str, int]:
    """Merge each file's passing count into the JSON floor at ``path`` (keyed by file name)."""
    target = Path(path)
    floor: dict[str, int] = json.loads(target.read_text()) if target.exists() else {}
    floor.update({Path(r.name).name: r.passed for r in results})
    target.write_text(json.dumps(dict(sorted(floor.items())), indent=2) + "\n")
    return floor


def main(
    argv: list[str] | None = None,
    *,
    engine: Engine | None = None,
    new_store: Callable[[], TestStorage] | None = None,
) -> int:
    """``pilot-agent promqltest FILE...``: 0 when nothing failed, 1 otherwise, 2 on bad usage."""
    args = _arg_parser().parse_args(argv)
    try:
        engine = engine or default_engine()
    except ImportError as exc:
        print(f"promqltest: the PromQL engine is not available: {exc}", file=sys.stderr)
        return 2
    results = [run_file(f, engine=engine, new_store=new_store) for f in args.files]
    if args.json:
        print(_json_report(results))
    else:
        _print_report(results, args.verbose, args.max_failures)
    if args.write_floor:
        write_floor(args.write_floor, results)
        print(f"floor written to {args.write_floor}", file=sys.stderr)
        return 0
    return 1 if any(r.failed for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
