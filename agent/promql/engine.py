"""The PromQL engine: instant and range queries over a :class:`Queryable`.

Queries are parsed once (and cached) into :mod:`agent.promql.nodes`; each
query then runs in an :class:`~agent.promql.evaluator.Evaluation`, which
fetches every selector's series from storage once and evaluates the tree at
each step.

>>> from agent.tsdb.base import SeriesData
>>> class Store:
...     def select(self, matchers, mint_ms, maxt_ms):
...         return [SeriesData((("__name__", "up"),), [0, 15_000], [1.0, 1.0])]
...     def label_names(self, matchers=()): return []
...     def label_values(self, name, matchers=()): return []
>>> engine = PromQLEngine()
>>> engine.instant(Store(), "sum(up) * 2", 30_000).value.samples[0].value
2.0
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

from agent.promql.evaluator import EvalOptions, Evaluation
from agent.promql.nodes import MatrixSel, Node, StringLit, Subquery, parse_query
from agent.promql.value import (
    Matrix,
    QueryError,
    QueryResult,
    Sample,
    Scalar,
    Series,
    String,
    Vector,
)
from agent.promql.vectors import InstantVector, RangeVector
from agent.tsdb.base import Labels, Queryable

log = logging.getLogger(__name__)


class PromQLEngine:
    """Evaluates PromQL with Prometheus 3.x semantics (float samples only).

    ``lookback_delta_ms`` is how far back an instant selector looks for a
    sample; ``default_step_ms`` is the step of subqueries written without one;
    ``max_samples`` (optional) bounds the samples one query may hold: every
    sample a range selector loads plus every sample an instant selector returns
    at each step. Parsed queries are cached (``parse_cache_size`` entries), so
    re-evaluating a rule does not parse it again.

    >>> PromQLEngine(lookback_delta_ms=60_000).lookback_delta_ms
    60000
    """

    def __init__(
        self,
        lookback_delta_ms: int = 300_000,
        default_step_ms: int = 60_000,
        max_samples: int | None = None,
        parse_cache_size: int = 512,
    ) -> None:
        if lookback_delta_ms <= 0 or default_step_ms <= 0:
            raise ValueError("lookback_delta_ms and default_step_ms must be positive")
        self.lookback_delta_ms = lookback_delta_ms
        self.default_step_ms = default_step_ms
        self.max_samples = max_samples
        self._cache_size = parse_cache_size
        self._parsed: OrderedDict[str, Node] = OrderedDict()
        self._lock = threading.Lock()

    def instant(self, storage: Queryable, query: str, t_ms: int) -> QueryResult:
        """Evaluate ``query`` at ``t_ms``: a Vector, Scalar, String or (for ``x[5m]``) Matrix."""
        with _only_query_errors():
            node = self._parse(query)
            ev = self._evaluation(storage, t_ms, t_ms, 0)
            return _instant_result(ev, node, t_ms)

    def range(
        self, storage: Queryable, query: str, start_ms: int, end_ms: int, step_ms: int
    ) -> QueryResult:
        """Evaluate ``query`` at ``start_ms, start_ms + step_ms, …, end_ms`` into a Matrix."""
        if step_ms <= 0:
            raise QueryError(
                "zero or negative query resolution step widths are not accepted. "
                "Try a positive integer",
                "bad_data",
            )
        if end_ms < start_ms:
            raise QueryError("end timestamp must not be before start time", "bad_data")
        with _only_query_errors():
            node = self._parse(query)
            _check_range_type(node)
            ev = self._evaluation(storage, start_ms, end_ms, step_ms)
            return _range_result(ev, node, start_ms, end_ms, step_ms)

    def _evaluation(self, storage: Queryable, start: int, end: int, step: int) -> Evaluation:
        opts = EvalOptions(self.lookback_delta_ms, self.default_step_ms, self.max_samples)
        return Evaluation(storage, opts, start, end, step)

    def _parse(self, query: str) -> Node:
        with self._lock:
            node = self._parsed.get(query)
            if node is not None:
                self._parsed.move_to_end(query)
                return node
        node = parse_query(query)
        with self._lock:
            self._parsed[query] = node
            if len(self._parsed) > self._cache_size:
                self._parsed.popitem(last=False)
        return node


@contextmanager
def _only_query_errors() -> Iterator[None]:
    """Let QueryError through; turn anything else into an ``internal`` QueryError.

    Only the exception's type and where it was raised are logged: its message
    could carry label values or other data from the store.
    """
    try:
        yield
    except QueryError:
        raise
    except RecursionError as exc:
        raise QueryError("query is too deeply nested", "execution") from exc
    except Exception as exc:
        frames = traceback.extract_tb(exc.__traceback__)
        where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
        log.error("promql_internal_error error_type=%s at=%s", type(exc).__name__, where)
        raise QueryError(f"internal error: {type(exc).__name__}", "internal") from exc


def _check_range_type(node: Node) -> None:
    kind = None
    if isinstance(node, MatrixSel | Subquery):
        kind = "range vector"
    elif isinstance(node, StringLit):
        kind = "string"
    if kind is not None:
        raise QueryError(
            f'invalid expression type "{kind}" for range query, must be Scalar or instant Vector',
            "bad_data",
        )


def _instant_result(ev: Evaluation, node: Node, t_ms: int) -> QueryResult:
    ev.plan(node)
    value = ev.eval(node, t_ms)
    out: Vector | Scalar | String | Matrix
    if isinstance(value, InstantVector):
        out = Vector(
            [Sample(lb, v, t_ms) for lb, v in zip(value.labels, value.values, strict=True)]
        )
    elif isinstance(value, RangeVector):
        out = Matrix(
            [
                Series(lb, list(zip(ts, vs, strict=True)))
                for lb, ts, vs in zip(value.labels, value.times, value.values, strict=True)
            ]
        )
    elif isinstance(value, str):
        out = String(value, t_ms)
    else:
        out = Scalar(value, t_ms)
    return ev.result(out)


def _range_result(ev: Evaluation, node: Node, start: int, end: int, step: int) -> QueryResult:
    ev.plan(node)
    series: dict[Labels, list[tuple[int, float]]] = {}
    for t in range(start, end + 1, step):
        value = ev.eval(node, t)
        if isinstance(value, InstantVector):
            for lb, v in zip(value.labels, value.values, strict=True):
                points = series.get(lb)
                if points is None:
                    series[lb] = [(t, v)]
                else:
                    points.append((t, v))
        elif isinstance(value, float):
            series.setdefault((), []).append((t, value))
        else:  # pragma: no cover - rejected by _check_range_type
            raise QueryError("invalid expression type for range query", "bad_data")
    ordered = sorted(series.items())
    return ev.result(Matrix([Series(lb, pts) for lb, pts in ordered]))
