"""Functions over range vectors: the rate family and the ``*_over_time`` functions.

Each works on one series' window (parallel timestamp and value sequences) and
returns one float, or ``None`` when the series yields no output sample.

>>> extrapolated_delta([0, 60_000], [0.0, 60.0], -60_000, 60_000, counter=True, per_second=True)
0.5
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from itertools import islice, pairwise
from operator import gt

from agent.promql.floats import format_g, kahan_inc, kahan_sum, kahan_terms
from agent.promql.labels import NAME, drop_name, metric_name
from agent.promql.value import QueryError
from agent.promql.vectors import CallContext, InstantVector, RangeVector, Value, checked

NAN = math.nan
_COUNTER_SUFFIXES = ("_total", "_sum", "_count", "_bucket")

WindowFn = Callable[[Sequence[int], Sequence[float]], float | None]


def per_series(rv: RangeVector, fn: WindowFn, keep_name: bool = False) -> InstantVector:
    """Apply ``fn`` to every series' window; drop ``__name__`` unless ``keep_name``."""
    labels = []
    values = []
    for lb, ts, vs in zip(rv.labels, rv.times, rv.values, strict=True):
        out = fn(ts, vs)
        if out is None:
            continue
        labels.append(lb if keep_name else drop_name(lb))
        values.append(out)
    return checked(InstantVector(labels, values))


def extrapolated_delta(
    ts: Sequence[int],
    vs: Sequence[float],
    start: int,
    end: int,
    *,
    counter: bool,
    per_second: bool,
) -> float | None:
    """``rate``, ``increase`` or ``delta`` of one window ``(start, end]``, extrapolated."""
    n = len(vs)
    if n < 2:
        return None
    first, last = vs[0], vs[-1]
    result = last - first
    if counter and any(map(gt, vs, islice(vs, 1, None))):
        result += sum(prev for prev, cur in pairwise(vs) if cur < prev)
    sampled = (ts[-1] - ts[0]) / 1000
    to_start = (ts[0] - start) / 1000
    to_end = (end - ts[-1]) / 1000
    average = sampled / (n - 1)
    threshold = average * 1.1
    if to_start >= threshold:
        to_start = average / 2
    if counter and result > 0 and first >= 0:
        to_zero = sampled * (first / result)
        if to_zero < to_start:
            to_start = to_zero
    if to_end >= threshold:
        to_end = average / 2
    factor = (sampled + to_start + to_end) / sampled
    if per_second:
        factor /= (end - start) / 1000
    return result * factor


def _rate_like(counter: bool, per_second: bool) -> Callable[[list[Value], CallContext], Value]:
    def fn(args: list[Value], ctx: CallContext) -> Value:
        rv = args[0]
        assert isinstance(rv, RangeVector)
        if counter:
            _warn_not_counter(rv, ctx)
        start, end = rv.end_ms - rv.range_ms, rv.end_ms

        def window(ts: Sequence[int], vs: Sequence[float]) -> float | None:
            return extrapolated_delta(ts, vs, start, end, counter=counter, per_second=per_second)

        return per_series(rv, window)

    return fn


def _warn_not_counter(rv: RangeVector, ctx: CallContext) -> None:
    names = {lb[0][1] if lb and lb[0][0] == NAME else metric_name(lb) for lb in rv.labels}
    for name in sorted(names):
        if name and not name.endswith(_COUNTER_SUFFIXES):
            ctx.annotations.info(
                "metric might not be a counter, name does not end in "
                f'_total/_sum/_count/_bucket: "{name}"'
            )


def _instant_delta(per_second: bool) -> Callable[[list[Value], CallContext], Value]:
    def window(ts: Sequence[int], vs: Sequence[float]) -> float | None:
        if len(vs) < 2:
            return None
        last, prev = vs[-1], vs[-2]
        interval = ts[-1] - ts[-2]
        if interval == 0:
            return None
        if not per_second:
            return last - prev
        result = last if last < prev else last - prev
        return result / (interval / 1000)

    def fn(args: list[Value], ctx: CallContext) -> Value:
        rv = args[0]
        assert isinstance(rv, RangeVector)
        return per_series(rv, window)

    return fn


def linear_regression(
    ts: Sequence[int], vs: Sequence[float], origin_ms: int
) -> tuple[float, float]:
    """Least-squares ``(slope, intercept)`` of the window, time measured from ``origin_ms``."""
    first = vs[0]
    if all(v == first for v in vs):
        if math.isinf(first):
            return NAN, NAN
        return 0.0, first
    n = float(len(vs))
    sx = cx = sy = cy = sxy = cxy = sxx = cxx = 0.0
    for t, v in zip(ts, vs, strict=True):
        x = (t - origin_ms) / 1000
        sx, cx = kahan_inc(x, sx, cx)
        sy, cy = kahan_inc(v, sy, cy)
        sxy, cxy = kahan_inc(x * v, sxy, cxy)
        sxx, cxx = kahan_inc(x * x, sxx, cxx)
    sx += cx
    sy += cy
    sxy += cxy
    sxx += cxx
    cov = sxy - sx * sy / n
    var = sxx - sx * sx / n
    slope = cov / var if var != 0 else (NAN if cov == 0 else math.copysign(math.inf, cov))
    return slope, sy / n - slope * sx / n


def _deriv(args: list[Value], ctx: CallContext) -> Value:
    rv = args[0]
    assert isinstance(rv, RangeVector)

    def window(ts: Sequence[int], vs: Sequence[float]) -> float | None:
        if len(vs) < 2:
            return None
        return linear_regression(ts, vs, ts[0])[0]

    return per_series(rv, window)


def _predict_linear(args: list[Value], ctx: CallContext) -> Value:
    rv, duration = args[0], args[1]
    assert isinstance(rv, RangeVector) and isinstance(duration, float)

    def window(ts: Sequence[int], vs: Sequence[float]) -> float | None:
        if len(vs) < 2:
            return None
        slope, intercept = linear_regression(ts, vs, ctx.t_ms)
        return slope * duration + intercept

    return per_series(rv, window)


def _double_exp_smoothing(args: list[Value], ctx: CallContext) -> Value:
    rv, sf, tf = args[0], args[1], args[2]
    assert isinstance(rv, RangeVector) and isinstance(sf, float) and isinstance(tf, float)
    if not 0 < sf < 1:
        raise QueryError(f"invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:f}")
    if not 0 < tf < 1:
        raise QueryError(f"invalid trend factor. Expected: 0 < tf < 1, got: {tf:f}")

    def window(ts: Sequence[int], vs: Sequence[float]) -> float | None:
        if len(vs) < 2:
            return None
        s0, s1 = 0.0, vs[0]
        trend = vs[1] - vs[0]
        for i in range(1, len(vs)):
            if i > 1:
                trend = tf * (s1 - s0) + (1 - tf) * trend
            s0, s1 = s1, sf * vs[i] + (1 - sf) * (s1 + trend)
        return s1

    return per_series(rv, window)


def _changes(ts: Sequence[int], vs: Sequence[float]) -> float:
    return float(sum(1 for p, c in pairwise(vs) if c != p and not (c != c and p != p)))


def _resets(ts: Sequence[int], vs: Sequence[float]) -> float:
    return float(sum(1 for p, c in pairwise(vs) if c < p))


def _avg(ts: Sequence[int], vs: Sequence[float]) -> float:
    return mean(vs)


def mean(vs: Sequence[float]) -> float:
    """The mean; on overflow or infinities, Prometheus's incremental mean."""
    total, comp = kahan_terms(vs)
    if math.isfinite(total):
        n = len(vs)
        return total / n + comp / n
    return _incremental_mean(vs)


def _incremental_mean(vs: Sequence[float]) -> float:
    """Compensated sum of the values, switching to an incremental mean once it overflows."""
    total, comp = vs[0], 0.0
    avg = 0.0
    incremental = False
    count = 1.0
    for v in vs[1:]:
        count += 1
        if not incremental:
            new, new_c = kahan_inc(v, total, comp)
            if not math.isinf(new):
                total, comp = new, new_c
                continue
            incremental = True
            avg = total / (count - 1)
            comp /= count - 1
        if math.isinf(avg):
            if math.isinf(v) and (avg > 0) != (v > 0):
                avg = NAN
            elif not math.isnan(v):
                continue
        q = (count - 1) / count
        avg, comp = kahan_inc(v / count, q * avg, q * comp)
    if incremental:
        return avg + comp
    return total / count + comp / count


def _max(ts: Sequence[int], vs: Sequence[float]) -> float:
    best = vs[0]
    for v in vs:
        if v > best or best != best:
            best = v
    return best


def _min(ts: Sequence[int], vs: Sequence[float]) -> float:
    best = vs[0]
    for v in vs:
        if v < best or best != best:
            best = v
    return best


def variance(vs: Sequence[float]) -> float:
    """Population variance (Welford with compensated sums)."""
    count = 0.0
    avg = c_avg = aux = c_aux = 0.0
    for v in vs:
        count += 1
        delta = v - (avg + c_avg)
        avg, c_avg = kahan_inc(delta / count, avg, c_avg)
        aux, c_aux = kahan_inc(delta * (v - (avg + c_avg)), aux, c_aux)
    return (aux + c_aux) / count


def quantile(q: float, values: Sequence[float]) -> float:
    """Prometheus's ``quantile``: linear interpolation between closest ranks, NaN sorted first."""
    if not values or q != q:
        return NAN
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = sorted(values, key=_nan_first)
    n = len(ordered)
    rank = q * (n - 1)
    lower = max(0, math.floor(rank))
    upper = min(n - 1, lower + 1)
    weight = rank - math.floor(rank)
    return ordered[lower] * (1 - weight) + ordered[upper] * weight


def _nan_first(v: float) -> tuple[int, float]:
    return (0, 0.0) if v != v else (1, v)


def _mad(ts: Sequence[int], vs: Sequence[float]) -> float:
    if any(v != v for v in vs):
        return NAN
    median = quantile(0.5, vs)
    return quantile(0.5, [abs(v - median) for v in vs])


def warn_quantile(q: float, ctx: CallContext) -> None:
    """The warning Prometheus attaches to a quantile outside [0, 1]."""
    if not 0 <= q <= 1:
        ctx.annotations.warn(f"quantile value should be between 0 and 1, got {format_g(q)}")


def _quantile_over_time(args: list[Value], ctx: CallContext) -> Value:
    q, rv = args[0], args[1]
    assert isinstance(q, float) and isinstance(rv, RangeVector)
    warn_quantile(q, ctx)
    return per_series(rv, lambda ts, vs: quantile(q, vs))


def _ts_of(pick: str) -> WindowFn:
    def window(ts: Sequence[int], vs: Sequence[float]) -> float:
        if pick == "last":
            return ts[-1] / 1000
        if pick == "first":
            return ts[0] / 1000
        best_i = 0
        for i, v in enumerate(vs):
            b = vs[best_i]
            better = v > b if pick == "max" else v < b
            if better or b != b or (v == b and i > best_i):
                best_i = i
        return ts[best_i] / 1000

    return window


def _simple(fn: WindowFn, keep_name: bool = False) -> Callable[[list[Value], CallContext], Value]:
    def call(args: list[Value], ctx: CallContext) -> Value:
        rv = args[0]
        assert isinstance(rv, RangeVector)
        return per_series(rv, fn, keep_name)

    return call


RANGE_FUNCTIONS: dict[str, Callable[[list[Value], CallContext], Value]] = {
    "rate": _rate_like(counter=True, per_second=True),
    "increase": _rate_like(counter=True, per_second=False),
    "delta": _rate_like(counter=False, per_second=False),
    "irate": _instant_delta(per_second=True),
    "idelta": _instant_delta(per_second=False),
    "deriv": _deriv,
    "predict_linear": _predict_linear,
    "double_exponential_smoothing": _double_exp_smoothing,
    "changes": _simple(_changes),
    "resets": _simple(_resets),
    "avg_over_time": _simple(_avg),
    "sum_over_time": _simple(lambda ts, vs: kahan_sum(vs)),
    "count_over_time": _simple(lambda ts, vs: float(len(vs))),
    "min_over_time": _simple(_min),
    "max_over_time": _simple(_max),
    "last_over_time": _simple(lambda ts, vs: vs[-1], keep_name=True),
    "first_over_time": _simple(lambda ts, vs: vs[0], keep_name=True),
    "present_over_time": _simple(lambda ts, vs: 1.0),
    "stdvar_over_time": _simple(lambda ts, vs: variance(vs)),
    "stddev_over_time": _simple(lambda ts, vs: math.sqrt(variance(vs))),
    "mad_over_time": _simple(_mad),
    "quantile_over_time": _quantile_over_time,
    "ts_of_last_over_time": _simple(_ts_of("last")),
    "ts_of_first_over_time": _simple(_ts_of("first")),
    "ts_of_max_over_time": _simple(_ts_of("max")),
    "ts_of_min_over_time": _simple(_ts_of("min")),
}
