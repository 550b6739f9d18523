"""Judging a query result the way Prometheus's harness does, and showing it.

Values compare with a relative tolerance of 1e-6 (NaN equals NaN), vectors as sets
unless the eval is ordered, matrices by labels (they must come sorted) and then
point by point. Each check returns a :class:`Failure` (the message and the result
as shown to the user) or None.

>>> almost_equal(1.0, 1.0000001), almost_equal(1.0, 1.00001)
(True, False)
"""

from __future__ import annotations

import itertools
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from agent.promql.testfile_parse import Eval, Expectation
from agent.promql.testfile_values import Values
from agent.promql.value import (
    Matrix,
    QueryError,
    QueryResult,
    Scalar,
    Series,
    String,
    Value,
    Vector,
)
from agent.tsdb.base import Labels, is_stale

EPSILON = 1e-6
_MIN_NORMAL = 2.2250738585072014e-308
_SHOWN_SERIES = 8


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


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a result does not match, and the result as shown to the user."""

    message: str
    actual: str = ""


# --- comparing results like the harness --------------------------------------------------


def check_failure(ev: Eval, exc: QueryError) -> Failure | None:
    """The query failed as ``eval_fail`` wanted: every ``expect fail`` line matches."""
    for check in ev.fail_checks:
        if not check.matches(str(exc)):
            return Failure(f"expected an error matching {check.describe()}", f"error: {exc}")
    return None


def check_annotations(ev: Eval, res: QueryResult) -> Failure | None:
    """Warnings and info annotations against ``eval_warn``/``eval_info`` and ``expect`` lines."""
    warnings, infos = list(res.warnings), list(res.infos)
    shown = "; ".join([*warnings, *infos]) or "no annotations"
    if ev.warn and not warnings:
        return Failure("expected warnings but got none", shown)
    if ev.info and not infos:
        return Failure("expected info annotations but got none", shown)
    for kind, expected, actual in (
        ("warn", ev.expect_warn, warnings),
        ("info", ev.expect_info, infos),
    ):
        message = _annotation_mismatch(kind, expected, actual)
        if message:
            return Failure(message, shown)
    if ev.no_warn and warnings:
        return Failure("unexpected warning annotations", shown)
    if ev.no_info and infos:
        return Failure("unexpected info annotations", shown)
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


def compare(ev: Eval, value: Value) -> Failure | None:
    """The query's value against the expected scalar, string, series or points."""
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
    return Failure(message, render(value)) if message else None


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


def assert_sorted(series: Sequence[Series]) -> Failure | None:
    """A matrix must come sorted by labels."""
    for before, after in itertools.pairwise(series):
        if before.labels > after.labels:
            return Failure(
                f"matrix results must be sorted by labels, but {_fmt_labels(after.labels)} "
                f"comes after {_fmt_labels(before.labels)}"
            )
    return None


def _compare_matrix(ev: Eval, matrix: Matrix) -> str:
    if ev.ordered:
        return "expected an ordered result, but the query returned a matrix"
    if ev.expected_scalar is not None:
        return "expected a scalar result, but got a matrix"
    unsorted = assert_sorted(matrix.series)
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


def render(value: Value) -> str:
    """A query value as shown in a failure report (at most a few series)."""
    if isinstance(value, Scalar):
        return f"scalar {_fmt(value.value)}"
    if isinstance(value, String):
        return f"string {value.value!r}"
    if isinstance(value, Vector):
        lines = [f"{_fmt_labels(s.labels)} {_fmt(s.value)}" for s in value.samples]
    else:
        lines = [f"{_fmt_labels(s.labels)} {_fmt_points(s.points)}" for s in value.series]
    return _clip(lines) or "(empty result)"


def render_expected(ev: Eval) -> str:
    """What the eval expects, shown like :func:`render` shows a value."""
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
