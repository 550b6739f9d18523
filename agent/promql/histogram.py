"""Classic-histogram functions: histogram_quantile(s) and histogram_fraction over ``le`` buckets.

Buckets are grouped by all labels except ``le``; bucket counts are made
monotonic (small floating-point wobbles are ignored silently, real
decreases produce an info annotation), as Prometheus does.

>>> bucket_quantile(0.5, [(1.0, 5.0), (2.0, 10.0), (math.inf, 10.0)])[0]
1.0
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable

from agent.promql.floats import format_g, go_div, parse_go_float
from agent.promql.labels import get, metric_name, quote, with_label, without
from agent.promql.rangefuncs import warn_quantile
from agent.promql.value import QueryError
from agent.promql.vectors import CallContext, InstantVector, Value, checked
from agent.tsdb.base import Labels

NAN = math.nan
_MIN_NORMAL = 2.2250738585072014e-308
_TOLERANCE = 1e-12
_EXCLUDED = ("__name__", "le")

Buckets = list[tuple[float, float]]


def _almost_equal(a: float, b: float, epsilon: float) -> bool:
    if a == b:
        return True
    total = abs(a) + abs(b)
    diff = abs(a - b)
    if a == 0 or b == 0 or total < _MIN_NORMAL:
        return diff < epsilon * _MIN_NORMAL
    return diff / min(total, 1.7976931348623157e308) < epsilon


def _prepare(buckets: Buckets) -> tuple[Buckets, bool] | None:
    """Sorted, coalesced, monotonic buckets and whether counts had to be forced up."""
    ordered = sorted(buckets, key=lambda b: b[0])
    if not ordered or ordered[-1][0] != math.inf:
        return None
    merged: Buckets = []
    for ub, count in ordered:
        if merged and merged[-1][0] == ub:
            merged[-1] = (ub, merged[-1][1] + count)
        else:
            merged.append((ub, count))
    forced = False
    prev = merged[0][1]
    for i in range(1, len(merged)):
        ub, cur = merged[i]
        if cur == prev:
            continue
        if _almost_equal(prev, cur, _TOLERANCE) or cur < prev:
            forced = forced or not _almost_equal(prev, cur, _TOLERANCE)
            merged[i] = (ub, prev)
            continue
        prev = cur
    return merged, forced


def bucket_quantile(q: float, buckets: Buckets) -> tuple[float, bool]:
    """The ``q`` quantile of cumulative ``(upper_bound, count)`` buckets; True if forced up."""
    if q != q:
        return NAN, False
    if q < 0:
        return -math.inf, False
    if q > 1:
        return math.inf, False
    prepared = _prepare(buckets)
    if prepared is None:
        return NAN, False
    merged, forced = prepared
    if len(merged) < 2:
        return NAN, forced
    total = merged[-1][1]
    if total == 0 or total != total:
        return NAN, forced
    rank = q * total
    counts = [c for _, c in merged[:-1]]
    b = bisect_left(counts, rank)
    if b == len(merged) - 1:
        return merged[-2][0], forced
    if b == 0 and merged[0][0] <= 0:
        return merged[0][0], forced
    start = 0.0
    end, count = merged[b]
    if b > 0:
        start = merged[b - 1][0]
        count -= merged[b - 1][1]
        rank -= merged[b - 1][1]
    return start + (end - start) * go_div(rank, count), forced


def bucket_fraction(lower: float, upper: float, buckets: Buckets) -> float:
    """The estimated fraction of observations between ``lower`` and ``upper``.

    Inside a finite bucket observations are spread evenly; inside a bucket of
    infinite width they are assumed to sit at its infinite end.
    """
    prepared = _prepare(buckets)
    if prepared is None:
        return NAN
    merged, _ = prepared
    total = merged[-1][1]
    if total == 0 or lower != lower or upper != upper:
        return NAN
    if lower >= upper:
        return 0.0
    return (_rank(upper, merged) - _rank(lower, merged)) / total


def _rank(x: float, merged: Buckets) -> float:
    """Estimated number of observations at or below ``x``."""
    if x == math.inf:
        return merged[-1][1]
    if x == -math.inf:
        return 0.0
    prev_ub, prev_count = (0.0 if merged[0][0] > 0 else -math.inf), 0.0
    for ub, count in merged:
        if x <= ub:
            if math.isinf(prev_ub):
                return count
            if math.isinf(ub):
                return prev_count
            if x <= prev_ub:
                return prev_count
            return prev_count + (count - prev_count) * (x - prev_ub) / (ub - prev_ub)
        prev_ub, prev_count = ub, count
    return merged[-1][1]


def _group(vec: InstantVector, ctx: CallContext) -> list[tuple[Labels, str, Buckets]]:
    groups: dict[Labels, tuple[Labels, str, Buckets]] = {}
    for lb, v in zip(vec.labels, vec.values, strict=True):
        le = get(lb, "le")
        try:
            ub = parse_go_float(le)
        except ValueError:
            ctx.annotations.warn(
                'bucket label "le" is missing or has a malformed value of '
                f"{quote(le)} for metric name {quote(metric_name(lb))}"
            )
            continue
        key = without(lb, ("le",))
        got = groups.get(key)
        if got is None:
            got = groups[key] = (without(lb, _EXCLUDED), metric_name(lb), [])
        got[2].append((ub, v))
    return list(groups.values())


def _forced_info(name: str, ctx: CallContext) -> None:
    ctx.annotations.info(
        "input to histogram_quantile needed to be fixed for monotonicity (see "
        "https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) "
        f"for metric name {quote(name)}"
    )


def histogram_quantile(args: list[Value], ctx: CallContext) -> Value:
    q, vec = args
    assert isinstance(q, float) and isinstance(vec, InstantVector)
    warn_quantile(q, ctx)
    out = InstantVector([], [])
    for labels, name, buckets in _group(vec, ctx):
        value, forced = bucket_quantile(q, buckets)
        if forced:
            _forced_info(name, ctx)
        out.labels.append(labels)
        out.values.append(value)
    return checked(out)


def quantile_label(q: float) -> str:
    """The quantile as a label value: OpenMetrics style, ``1`` becomes ``1.0``."""
    text = format_g(q)
    if text.lstrip("-").isdigit():
        text += ".0"
    return text


def histogram_quantiles(args: list[Value], ctx: CallContext) -> Value:
    vec, label, *qs = args
    assert isinstance(vec, InstantVector) and isinstance(label, str)
    quantiles = [q for q in qs if isinstance(q, float)]
    for q in quantiles:
        warn_quantile(q, ctx)
    out = InstantVector([], [])
    for labels, name, buckets in _group(vec, ctx):
        if get(labels, label) != "":
            raise QueryError(f"label {quote(label)} already exists in the input vector")
        for q in quantiles:
            value, forced = bucket_quantile(q, buckets)
            if forced:
                _forced_info(name, ctx)
            out.labels.append(with_label(labels, label, quantile_label(q)))
            out.values.append(value)
    return checked(out)


def histogram_fraction(args: list[Value], ctx: CallContext) -> Value:
    lower, upper, vec = args
    assert isinstance(lower, float) and isinstance(upper, float)
    assert isinstance(vec, InstantVector)
    out = InstantVector([], [])
    for labels, _, buckets in _group(vec, ctx):
        out.labels.append(labels)
        out.values.append(bucket_fraction(lower, upper, buckets))
    return checked(out)


HISTOGRAM_FUNCTIONS: dict[str, Callable[[list[Value], CallContext], Value]] = {
    "histogram_quantile": histogram_quantile,
    "histogram_quantiles": histogram_quantiles,
    "histogram_fraction": histogram_fraction,
}
