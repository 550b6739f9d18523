"""PromQL functions over instant vectors and scalars, and the function registry.

Range-vector functions live in :mod:`agent.promql.rangefuncs`, label
functions in :mod:`agent.promql.labelfuncs` and ``histogram_quantile`` in
:mod:`agent.promql.histogram`; :func:`call` dispatches to all of them.

>>> from agent.promql.vectors import Annotations, CallContext
>>> ctx = CallContext(0, Annotations(), ())
>>> call("abs", [InstantVector([(("__name__", "x"),)], [-2.0])], ctx).values
[2.0]
"""

from __future__ import annotations

import calendar
import datetime as _dt
import math
from collections.abc import Callable

from agent.promql import histogram, labelfuncs
from agent.promql.floats import go_max, go_min
from agent.promql.labels import drop_name
from agent.promql.nodes import MatrixSel, VectorSel
from agent.promql.rangefuncs import RANGE_FUNCTIONS
from agent.promql.value import QueryError
from agent.promql.vectors import CallContext, InstantVector, RangeVector, Value, checked
from agent.tsdb.base import Labels

NAN = math.nan
INF = math.inf

Function = Callable[[list[Value], CallContext], Value]


def call(name: str, args: list[Value], ctx: CallContext) -> Value:
    """Run function ``name`` on evaluated ``args``."""
    fn = FUNCTIONS.get(name)
    if fn is None:
        raise QueryError(f"function {name!r} is not supported", "bad_data")
    return fn(args, ctx)


def _map_values(fn: Callable[[float], float]) -> Function:
    def apply(args: list[Value], ctx: CallContext) -> Value:
        vec = args[0]
        assert isinstance(vec, InstantVector)
        labels = [drop_name(lb) for lb in vec.labels]
        return checked(InstantVector(labels, [fn(v) for v in vec.values]))

    return apply


def _guard(
    fn: Callable[[float], float], fallback: Callable[[float], float]
) -> Callable[[float], float]:
    def safe(x: float) -> float:
        try:
            return fn(x)
        except (ValueError, OverflowError):
            return fallback(x)

    return safe


def _log_fallback(x: float) -> float:
    return -INF if x == 0 else NAN


def _overflow_sign(x: float) -> float:
    return math.copysign(INF, x)


def _atanh_fallback(x: float) -> float:
    return math.copysign(INF, x) if abs(x) == 1 else NAN


def _ceil(x: float) -> float:
    return float(math.ceil(x)) if math.isfinite(x) else x


def _floor(x: float) -> float:
    return float(math.floor(x)) if math.isfinite(x) else x


def _sgn(x: float) -> float:
    if x > 0:
        return 1.0
    if x < 0:
        return -1.0
    return x


def _nan(x: float) -> float:
    return NAN


_MATH: dict[str, Callable[[float], float]] = {
    "abs": abs,
    "ceil": _ceil,
    "floor": _floor,
    "sgn": _sgn,
    "exp": _guard(math.exp, lambda x: INF),
    "sqrt": _guard(math.sqrt, _nan),
    "ln": _guard(math.log, _log_fallback),
    "log2": _guard(math.log2, _log_fallback),
    "log10": _guard(math.log10, _log_fallback),
    "sin": _guard(math.sin, _nan),
    "cos": _guard(math.cos, _nan),
    "tan": _guard(math.tan, _nan),
    "asin": _guard(math.asin, _nan),
    "acos": _guard(math.acos, _nan),
    "atan": math.atan,
    "sinh": _guard(math.sinh, _overflow_sign),
    "cosh": _guard(math.cosh, lambda x: INF),
    "tanh": math.tanh,
    "asinh": math.asinh,
    "acosh": _guard(math.acosh, _nan),
    "atanh": _guard(math.atanh, _atanh_fallback),
    "deg": lambda x: x * 180 / math.pi,
    "rad": lambda x: x * math.pi / 180,
}


def _round(args: list[Value], ctx: CallContext) -> Value:
    vec = args[0]
    assert isinstance(vec, InstantVector)
    to_nearest = args[1] if len(args) > 1 else 1.0
    assert isinstance(to_nearest, float)
    inverse = 1.0 / to_nearest if to_nearest != 0 else math.copysign(INF, to_nearest)

    def rnd(v: float) -> float:
        scaled = v * inverse + 0.5
        return _floor(scaled) / inverse

    return _map_values(rnd)([vec], ctx)


def _clamp(args: list[Value], ctx: CallContext) -> Value:
    vec, low, high = args
    assert isinstance(vec, InstantVector) and isinstance(low, float) and isinstance(high, float)
    if high < low:
        return InstantVector([], [])
    return _map_values(lambda v: go_max(low, go_min(high, v)))([vec], ctx)


def _clamp_min(args: list[Value], ctx: CallContext) -> Value:
    vec, low = args
    assert isinstance(vec, InstantVector) and isinstance(low, float)
    return _map_values(lambda v: go_max(low, v))([vec], ctx)


def _clamp_max(args: list[Value], ctx: CallContext) -> Value:
    vec, high = args
    assert isinstance(vec, InstantVector) and isinstance(high, float)
    return _map_values(lambda v: go_min(high, v))([vec], ctx)


def _date(fn: Callable[[_dt.datetime], float]) -> Function:
    def apply(args: list[Value], ctx: CallContext) -> Value:
        if not args:
            when = _utc(ctx.t_ms // 1000)
            return InstantVector([()], [fn(when) if when is not None else NAN])
        vec = args[0]
        assert isinstance(vec, InstantVector)
        labels: list[Labels] = []
        values: list[float] = []
        for lb, v in zip(vec.labels, vec.values, strict=True):
            when = _utc(int(v)) if math.isfinite(v) else None
            labels.append(drop_name(lb))
            values.append(fn(when) if when is not None else NAN)
        return checked(InstantVector(labels, values))

    return apply


def _utc(seconds: int) -> _dt.datetime | None:
    try:
        return _dt.datetime.fromtimestamp(seconds, tz=_dt.UTC)
    except (OverflowError, ValueError, OSError):
        return None


_DATES: dict[str, Callable[[_dt.datetime], float]] = {
    "day_of_month": lambda d: float(d.day),
    "day_of_week": lambda d: float(d.isoweekday() % 7),
    "day_of_year": lambda d: float(d.timetuple().tm_yday),
    "days_in_month": lambda d: float(calendar.monthrange(d.year, d.month)[1]),
    "hour": lambda d: float(d.hour),
    "minute": lambda d: float(d.minute),
    "month": lambda d: float(d.month),
    "year": lambda d: float(d.year),
}


def _timestamp(args: list[Value], ctx: CallContext) -> Value:
    vec = args[0]
    assert isinstance(vec, InstantVector)
    labels = [drop_name(lb) for lb in vec.labels]
    return checked(InstantVector(labels, [ctx.t_ms / 1000] * len(labels)))


def _time(args: list[Value], ctx: CallContext) -> Value:
    return ctx.t_ms / 1000


def _pi(args: list[Value], ctx: CallContext) -> Value:
    return math.pi


def _query_time(pick: Callable[[CallContext], int]) -> Function:
    def apply(args: list[Value], ctx: CallContext) -> Value:
        return pick(ctx) / 1000

    return apply


def _scalar_pair(pick: Callable[[float, float], float]) -> Function:
    def apply(args: list[Value], ctx: CallContext) -> Value:
        a, b = args
        assert isinstance(a, float) and isinstance(b, float)
        return pick(a, b)

    return apply


def _vector(args: list[Value], ctx: CallContext) -> Value:
    value = args[0]
    assert isinstance(value, float)
    return InstantVector([()], [value])


def _scalar(args: list[Value], ctx: CallContext) -> Value:
    vec = args[0]
    assert isinstance(vec, InstantVector)
    return vec.values[0] if len(vec) == 1 else NAN


def _absent_labels(node: object) -> Labels:
    if isinstance(node, MatrixSel):
        node = node.vs
    if not isinstance(node, VectorSel) or len(node.matcher_sets) != 1:
        return ()
    out: dict[str, str] = {}
    seen: set[str] = set()
    for m in node.matcher_sets[0]:
        if m.name == "__name__":
            continue
        if m.op == "=" and m.name not in seen:
            out[m.name] = m.value
            seen.add(m.name)
        else:
            out.pop(m.name, None)
            seen.add(m.name)
    return tuple(sorted((k, v) for k, v in out.items() if v != ""))


def _absent(args: list[Value], ctx: CallContext) -> Value:
    value = args[0]
    assert isinstance(value, InstantVector | RangeVector)
    if len(value):
        return InstantVector([], [])
    return InstantVector([_absent_labels(ctx.arg_nodes[0])], [1.0])


def _sort(descending: bool) -> Function:
    def apply(args: list[Value], ctx: CallContext) -> Value:
        vec = args[0]
        assert isinstance(vec, InstantVector)
        if ctx.range_query:
            ctx.annotations.warn(
                "sort is ineffective for range queries since results are always ordered by labels"
            )
        order = sorted(
            range(len(vec)),
            key=lambda i: _sort_key(vec.values[i], descending),
        )
        return InstantVector([vec.labels[i] for i in order], [vec.values[i] for i in order])

    return apply


def _sort_key(v: float, descending: bool) -> tuple[int, float]:
    if v != v:
        return (1, 0.0)
    return (0, -v if descending else v)


def _histogram_ignored(args: list[Value], ctx: CallContext) -> Value:
    """Native-histogram functions: float samples produce no output."""
    return InstantVector([], [])


FUNCTIONS: dict[str, Function] = {
    **{name: _map_values(fn) for name, fn in _MATH.items()},
    **{name: _date(fn) for name, fn in _DATES.items()},
    **RANGE_FUNCTIONS,
    **labelfuncs.LABEL_FUNCTIONS,
    "round": _round,
    "clamp": _clamp,
    "clamp_min": _clamp_min,
    "clamp_max": _clamp_max,
    "timestamp": _timestamp,
    "time": _time,
    "pi": _pi,
    "start": _query_time(lambda ctx: ctx.start_ms),
    "end": _query_time(lambda ctx: ctx.end_ms),
    "step": _query_time(lambda ctx: ctx.step_ms),
    "range": _query_time(lambda ctx: ctx.end_ms - ctx.start_ms),
    "min_of": _scalar_pair(go_min),
    "max_of": _scalar_pair(go_max),
    "vector": _vector,
    "scalar": _scalar,
    "absent": _absent,
    "absent_over_time": _absent,
    "sort": _sort(descending=False),
    "sort_desc": _sort(descending=True),
    **histogram.HISTOGRAM_FUNCTIONS,
    "histogram_count": _histogram_ignored,
    "histogram_sum": _histogram_ignored,
    "histogram_avg": _histogram_ignored,
    "histogram_stddev": _histogram_ignored,
    "histogram_stdvar": _histogram_ignored,
}
