"""Prometheus's HTTP query API over the agent's own store, in Prometheus's JSON shapes.

Grafana's Prometheus data source and existing scripts can read the agent
directly: ``/api/v1/query``, ``/api/v1/query_range``, ``/api/v1/series``,
``/api/v1/labels`` and ``/api/v1/label/<name>/values``, by GET or by a
form-encoded POST, with Prometheus's error types and HTTP statuses
(``bad_data`` 400, ``execution`` 422, ``timeout`` 503, ``internal`` 500) and its
limit of 11,000 points per series.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from agent.promql.floats import format_f
from agent.promql.nodes import VectorSel, parse_query
from agent.promql.value import Engine, Matrix, QueryError, QueryResult, Scalar, String, Vector
from agent.tsdb.base import Labels, Matcher, Queryable

MAX_POINTS_PER_SERIES = 11_000
_STATUS = {"bad_data": 400, "execution": 422, "canceled": 499, "timeout": 503, "internal": 500}
_MIN_TIME_MS = -(2**62) // 1000
_MAX_TIME_MS = 2**62 // 1000
_DURATION_RE = re.compile(r"^((\d+)y)?((\d+)w)?((\d+)d)?((\d+)h)?((\d+)m)?((\d+)s)?((\d+)ms)?$")
_UNITS_MS = (365 * 86_400_000, 7 * 86_400_000, 86_400_000, 3_600_000, 60_000, 1000, 1)


class QueryContext(Protocol):
    """What the query API needs from the agent."""

    @property
    def storage(self) -> Queryable: ...

    @property
    def engine(self) -> Engine: ...


class _BadParam(Exception):
    pass


def parse_time(text: str) -> int:
    """A Prometheus API time (Unix seconds, possibly fractional, or RFC 3339) in ms."""
    try:
        return round(float(text) * 1000)
    except ValueError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _BadParam(f'cannot parse "{text}" to a valid timestamp') from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return round(parsed.timestamp() * 1000)


def parse_duration_ms(text: str) -> int:
    """A Prometheus API duration (seconds as a float, or ``1m30s``) in ms."""
    try:
        seconds = float(text)
    except ValueError:
        m = _DURATION_RE.match(text)
        if not text or m is None:
            raise _BadParam(f'cannot parse "{text}" to a valid duration') from None
        groups = m.groups()[1::2]
        return sum(int(g) * u for g, u in zip(groups, _UNITS_MS, strict=True) if g)
    if math.isnan(seconds) or math.isinf(seconds):
        raise _BadParam(f'cannot parse "{text}" to a valid duration')
    return round(seconds * 1000)


def _ts(t_ms: int) -> float:
    return t_ms / 1000


def _metric(labels: Labels) -> dict[str, str]:
    return dict(labels)


def render_result(result: QueryResult) -> dict[str, Any]:
    """The ``data`` object of a successful query answer."""
    value = result.value
    if isinstance(value, Vector):
        return {
            "resultType": "vector",
            "result": [
                {"metric": _metric(s.labels), "value": [_ts(s.timestamp), format_f(s.value)]}
                for s in value.samples
            ],
        }
    if isinstance(value, Matrix):
        return {
            "resultType": "matrix",
            "result": [
                {
                    "metric": _metric(s.labels),
                    "values": [[_ts(t), format_f(v)] for t, v in s.points],
                }
                for s in value.series
            ],
        }
    if isinstance(value, Scalar):
        return {"resultType": "scalar", "result": [_ts(value.timestamp), format_f(value.value)]}
    assert isinstance(value, String)
    return {"resultType": "string", "result": [_ts(value.timestamp), value.value]}


def _success(data: Any, result: QueryResult | None = None) -> JSONResponse:
    body: dict[str, Any] = {"status": "success", "data": data}
    if result is not None and result.warnings:
        body["warnings"] = list(result.warnings)
    if result is not None and result.infos:
        body["infos"] = list(result.infos)
    return JSONResponse(body)


def _error(error_type: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"status": "error", "errorType": error_type, "error": message},
        status_code=_STATUS.get(error_type, 500),
    )


async def _params(request: Request) -> dict[str, list[str]]:
    params: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        params.setdefault(key, []).append(value)
    if request.method == "POST":
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("application/x-www-form-urlencoded"):
            body = (await request.body()).decode("utf-8", "replace")
            for key, values in parse_qs(body, keep_blank_values=True).items():
                params.setdefault(key, []).extend(values)
    return params


def _one(params: dict[str, list[str]], name: str, default: str | None = None) -> str | None:
    values = params.get(name)
    return values[-1] if values else default


def _selectors(params: dict[str, list[str]], required: bool) -> list[tuple[Matcher, ...]]:
    texts = params.get("match[]", [])
    if required and not texts:
        raise _BadParam("no match[] parameter provided")
    out: list[tuple[Matcher, ...]] = []
    for text in texts:
        node = parse_query(text)
        if not isinstance(node, VectorSel):
            raise _BadParam(f'invalid parameter "match[]": {text} is not a series selector')
        out.extend(node.matcher_sets)
    return out


def _time_range(params: dict[str, list[str]]) -> tuple[int, int]:
    start = _one(params, "start")
    end = _one(params, "end")
    return (
        parse_time(start) if start else _MIN_TIME_MS,
        parse_time(end) if end else _MAX_TIME_MS,
    )


Handler = Callable[[dict[str, list[str]]], JSONResponse]


def add_query_routes(
    app: FastAPI, ctx: QueryContext, clock: Callable[[], float] = time.time
) -> None:
    """Mount the query API on ``app``."""

    def query(params: dict[str, list[str]]) -> JSONResponse:
        text = _one(params, "query")
        if not text:
            raise _BadParam('invalid parameter "query": no query given')
        t = _one(params, "time")
        t_ms = parse_time(t) if t else round(clock() * 1000)
        result = ctx.engine.instant(ctx.storage, text, t_ms)
        return _success(render_result(result), result)

    def query_range(params: dict[str, list[str]]) -> JSONResponse:
        text = _one(params, "query")
        if not text:
            raise _BadParam('invalid parameter "query": no query given')
        start, end, step = (_one(params, k) for k in ("start", "end", "step"))
        if not start or not end or not step:
            missing = next(k for k, v in (("start", start), ("end", end), ("step", step)) if not v)
            raise _BadParam(f'invalid parameter "{missing}": missing')
        start_ms, end_ms, step_ms = parse_time(start), parse_time(end), parse_duration_ms(step)
        if end_ms < start_ms:
            raise _BadParam('invalid parameter "end": end timestamp must not be before start time')
        if step_ms <= 0:
            raise _BadParam(
                'invalid parameter "step": zero or negative query resolution step widths '
                "are not accepted. Try a positive integer"
            )
        if (end_ms - start_ms) // step_ms > MAX_POINTS_PER_SERIES:
            raise _BadParam(
                "exceeded maximum resolution of 11,000 points per timeseries. "
                "Try decreasing the query resolution (?step=XX)"
            )
        result = ctx.engine.range(ctx.storage, text, start_ms, end_ms, step_ms)
        return _success(render_result(result), result)

    def series(params: dict[str, list[str]]) -> JSONResponse:
        selectors = _selectors(params, required=True)
        start, end = _time_range(params)
        found: dict[Labels, None] = {}
        for matchers in selectors:
            for data in ctx.storage.select(matchers, start, end):
                found.setdefault(data.labels)
        return _success([_metric(labels) for labels in sorted(found)])

    def labels(params: dict[str, list[str]]) -> JSONResponse:
        names: set[str] = set()
        for matchers in _selectors(params, required=False) or [()]:
            names.update(ctx.storage.label_names(matchers))
        return _success(sorted(names))

    _route(app, "/api/v1/query", query)
    _route(app, "/api/v1/query_range", query_range)
    _route(app, "/api/v1/series", series)
    _route(app, "/api/v1/labels", labels)

    @app.get("/api/v1/label/{name}/values")
    async def label_values(name: str, request: Request) -> JSONResponse:
        params = await _params(request)

        def values(params: dict[str, list[str]]) -> JSONResponse:
            found: set[str] = set()
            for matchers in _selectors(params, required=False) or [()]:
                found.update(ctx.storage.label_values(name, matchers))
            return _success(sorted(found))

        return _guarded(values, params)


def _guarded(handler: Handler, params: dict[str, list[str]]) -> JSONResponse:
    try:
        return handler(params)
    except _BadParam as exc:
        return _error("bad_data", str(exc))
    except QueryError as exc:
        return _error(exc.error_type, str(exc))


def _route(app: FastAPI, path: str, handler: Handler) -> None:
    async def endpoint(request: Request) -> JSONResponse:
        return _guarded(handler, await _params(request))

    app.add_api_route(path, endpoint, methods=["GET", "POST"], name=path)
