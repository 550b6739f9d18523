"""One query's evaluation: selectors, subqueries and dispatch to operators and functions.

An :class:`Evaluation` first walks the tree (:meth:`Evaluation.plan`) to learn
the time span each selector needs over the whole query, then fetches each
selector's series from storage once, on first use, and answers every step
from those arrays with binary search.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from math import isnan

from agent.promql import aggregations, binops, functions
from agent.promql.labels import drop_name
from agent.promql.nodes import (
    Aggregate,
    At,
    Binary,
    Call,
    MatrixSel,
    Node,
    NumberLit,
    StringLit,
    Subquery,
    Unary,
    VectorSel,
)
from agent.promql.value import QueryError, QueryResult
from agent.promql.value import Value as ResultValue
from agent.promql.vectors import (
    Annotations,
    CallContext,
    InstantVector,
    RangeVector,
    Value,
    checked,
)
from agent.tsdb.base import Labels, Queryable, SeriesData, is_stale

_Fetched = list[tuple[Labels, Sequence[int], Sequence[float]]]


@dataclass(frozen=True, slots=True)
class EvalOptions:
    lookback_ms: int
    default_step_ms: int
    max_samples: int | None


class Evaluation:
    """Evaluates one parsed query for one instant or range query."""

    def __init__(
        self, storage: Queryable, opts: EvalOptions, start_ms: int, end_ms: int, step_ms: int
    ) -> None:
        self.storage = storage
        self.opts = opts
        self.start_ms = start_ms
        self.end_ms = end_ms
        self.step_ms = step_ms
        self.range_query = step_ms > 0 and end_ms > start_ms
        self.annotations = Annotations()
        self._bounds: dict[int, tuple[int, int]] = {}
        self._fetched: dict[int, _Fetched] = {}
        self._memo: dict[tuple[int, int], InstantVector] = {}
        self._samples = 0
        self._dispatch: dict[type, Callable[[Node, int], Value]] = {
            NumberLit: self._number,
            StringLit: self._string,
            VectorSel: self._vector_sel,
            MatrixSel: self._matrix_sel,
            Subquery: self._subquery,
            Call: self._call,
            Aggregate: self._aggregate,
            Binary: self._binary,
            Unary: self._unary,
        }

    def result(self, value: ResultValue) -> QueryResult:
        """Wrap a final value with the collected annotations."""
        ann = self.annotations
        return QueryResult(value, tuple(ann.warnings), tuple(ann.infos))

    # -- planning -------------------------------------------------------------

    def plan(self, node: Node) -> None:
        """Record the sample time span each selector in ``node`` needs."""
        self._plan(node, self.start_ms, self.end_ms)

    def _pin(self, at: At | None, lo: int, hi: int) -> tuple[int, int]:
        if at is None:
            return lo, hi
        t = self._at_time(at)
        return t, t

    def _plan(self, node: Node, lo: int, hi: int) -> None:
        if isinstance(node, VectorSel):
            s, e = self._pin(node.at, lo, hi)
            self._widen(node, s - node.offset_ms - self.opts.lookback_ms + 1, e - node.offset_ms)
        elif isinstance(node, MatrixSel):
            vs = node.vs
            s, e = self._pin(vs.at, lo, hi)
            self._widen(vs, s - vs.offset_ms - node.range_ms + 1, e - vs.offset_ms)
        elif isinstance(node, Subquery):
            s, e = self._pin(node.at, lo, hi)
            self._plan(node.expr, s - node.offset_ms - node.range_ms, e - node.offset_ms)
        elif isinstance(node, Call):
            for arg in node.args:
                self._plan(arg, lo, hi)
        elif isinstance(node, Aggregate):
            if node.param is not None:
                self._plan(node.param, lo, hi)
            self._plan(node.expr, lo, hi)
        elif isinstance(node, Binary):
            self._plan(node.lhs, lo, hi)
            self._plan(node.rhs, lo, hi)
        elif isinstance(node, Unary):
            self._plan(node.expr, lo, hi)

    def _widen(self, vs: VectorSel, mint: int, maxt: int) -> None:
        old = self._bounds.get(id(vs))
        if old is not None:
            mint, maxt = min(mint, old[0]), max(maxt, old[1])
        self._bounds[id(vs)] = (mint, maxt)

    def _at_time(self, at: At) -> int:
        if at.kind == "start":
            return self.start_ms
        if at.kind == "end":
            return self.end_ms
        return at.t_ms

    # -- storage --------------------------------------------------------------

    def _fetch(self, vs: VectorSel, keep_stale: bool) -> _Fetched:
        found = self._fetched.get(id(vs))
        if found is not None:
            return found
        mint, maxt = self._bounds[id(vs)]
        sets = vs.matcher_sets
        datas: Iterable[SeriesData] = self.storage.select(sets[0], mint, maxt)
        if len(sets) > 1:
            union: dict[Labels, SeriesData] = {}
            for matchers in sets:
                for data in self.storage.select(matchers, mint, maxt):
                    union.setdefault(data.labels, data)
            datas = union.values()
        out: _Fetched = []
        total = 0
        for data in datas:
            times, values = data.timestamps, data.values
            if not keep_stale and any(map(isnan, values)):
                kept = [i for i, v in enumerate(values) if not is_stale(v)]
                times = [times[i] for i in kept]
                values = [values[i] for i in kept]
            total += len(values)
            out.append((data.labels, times, values))
        if not keep_stale:
            self._count(total)
        self._fetched[id(vs)] = out
        return out

    def _count(self, n: int) -> None:
        limit = self.opts.max_samples
        if limit is None:
            return
        self._samples += n
        if self._samples > limit:
            raise QueryError(
                "query processing would load too many samples into memory in query execution",
                "execution",
            )

    # -- evaluation -----------------------------------------------------------

    def eval(self, node: Node, t: int) -> Value:
        """The value of ``node`` at time ``t`` (milliseconds)."""
        return self._dispatch[type(node)](node, t)

    def _number(self, node: Node, t: int) -> Value:
        assert isinstance(node, NumberLit)
        return node.value

    def _string(self, node: Node, t: int) -> Value:
        assert isinstance(node, StringLit)
        return node.value

    def _vector_sel(self, node: Node, t: int) -> Value:
        assert isinstance(node, VectorSel)
        labels, values, _ = self.select_instant(node, t)
        return InstantVector(labels, values)

    def select_instant(self, vs: VectorSel, t: int) -> tuple[list[Labels], list[float], list[int]]:
        """The latest non-stale sample of each series in ``(t - lookback, t]``."""
        eff = (t if vs.at is None else self._at_time(vs.at)) - vs.offset_ms
        oldest = eff - self.opts.lookback_ms
        labels: list[Labels] = []
        values: list[float] = []
        times: list[int] = []
        for lb, ts, vals in self._fetch(vs, keep_stale=True):
            i = bisect_right(ts, eff) - 1
            if i < 0 or ts[i] <= oldest:
                continue
            v = vals[i]
            if v != v and is_stale(v):
                continue
            labels.append(lb)
            values.append(v)
            times.append(ts[i])
        self._count(len(values))
        return labels, values, times

    def _matrix_sel(self, node: Node, t: int) -> Value:
        assert isinstance(node, MatrixSel)
        vs = node.vs
        end = (t if vs.at is None else self._at_time(vs.at)) - vs.offset_ms
        start = end - node.range_ms
        out = RangeVector([], [], [], start, end, node.range_ms)
        for lb, ts, vals in self._fetch(vs, keep_stale=False):
            n = len(ts)
            if n and ts[0] > start and ts[-1] <= end:  # the whole series is in the window
                out.labels.append(lb)
                out.times.append(ts)
                out.values.append(vals)
                continue
            lo = bisect_right(ts, start)
            hi = bisect_right(ts, end, lo)
            if lo < hi:
                out.labels.append(lb)
                out.times.append(ts[lo:hi])
                out.values.append(vals[lo:hi])
        return out

    def _subquery(self, node: Node, t: int) -> Value:
        assert isinstance(node, Subquery)
        end = (t if node.at is None else self._at_time(node.at)) - node.offset_ms
        start = end - node.range_ms
        step = node.step_ms or self.opts.default_step_ms
        first = start - start % step + step
        series: dict[Labels, tuple[list[int], list[float]]] = {}
        for ti in range(first, end + 1, step):
            vec = self._memo_eval(node.expr, ti)
            for lb, v in zip(vec.labels, vec.values, strict=True):
                got = series.get(lb)
                if got is None:
                    series[lb] = ([ti], [v])
                else:
                    got[0].append(ti)
                    got[1].append(v)
        out = RangeVector([], [], [], start, end, node.range_ms)
        for lb, (ts, vs) in series.items():
            out.labels.append(lb)
            out.times.append(ts)
            out.values.append(vs)
        return out

    def _memo_eval(self, node: Node, t: int) -> InstantVector:
        key = (id(node), t)
        got = self._memo.get(key)
        if got is None:
            value = self.eval(node, t)
            if not isinstance(value, InstantVector):
                raise QueryError("subquery is only allowed on instant vector", "bad_data")
            got = self._memo[key] = value
        return got

    def _call(self, node: Node, t: int) -> Value:
        assert isinstance(node, Call)
        if node.name == "timestamp" and node.args and isinstance(node.args[0], VectorSel):
            labels, _, times = self.select_instant(node.args[0], t)
            return checked(
                InstantVector([drop_name(lb) for lb in labels], [ts / 1000 for ts in times])
            )
        args = [self.eval(arg, t) for arg in node.args]
        ctx = CallContext(
            t,
            self.annotations,
            node.args,
            self.range_query,
            self.start_ms,
            self.end_ms,
            self.step_ms,
        )
        return functions.call(node.name, args, ctx)

    def _aggregate(self, node: Node, t: int) -> Value:
        assert isinstance(node, Aggregate)
        param = None if node.param is None else self.eval(node.param, t)
        vec = self.eval(node.expr, t)
        assert isinstance(vec, InstantVector)
        return aggregations.aggregate(node, vec, param, self.annotations)

    def _binary(self, node: Node, t: int) -> Value:
        assert isinstance(node, Binary)
        lhs = self.eval(node.lhs, t)
        rhs = self.eval(node.rhs, t)
        return binops.binary(node, lhs, rhs)

    def _unary(self, node: Node, t: int) -> Value:
        assert isinstance(node, Unary)
        value = self.eval(node.expr, t)
        if isinstance(value, float):
            return -value
        assert isinstance(value, InstantVector)
        return checked(
            InstantVector([drop_name(lb) for lb in value.labels], [-v for v in value.values])
        )
