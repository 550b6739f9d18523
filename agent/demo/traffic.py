"""Request metrics for the pilot simulator, from real requests and synthetic background traffic.

Real requests are timed by :class:`MetricsMiddleware`, labelled with the route
template (``/api/v1/orders/{id}``), never the raw path. :class:`TrafficGenerator`
adds a steady trickle of synthetic requests so that the demo's dashboards and
rules see production-like rates and latencies, shifted by the active faults.

>>> metrics = RequestMetrics(CollectorRegistry())
>>> metrics.observe("/health", "GET", 200, 0.004)
>>> metrics.registry.get_sample_value(
...     "http_requests_total", {"handler": "/health", "method": "GET", "status": "200"})
1.0
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import structlog
from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent.demo.faults import FaultSettings
from agent.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED_HANDLER = "none"


class RequestMetrics:
    """The simulator's request histogram and counter, on an injected registry.

    >>> RequestMetrics(CollectorRegistry()).observe("/api/v1/orders", "POST", 201, 0.05)
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        labels = ("handler", "method", "status")
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time spent answering HTTP requests.",
            labels,
            buckets=BUCKETS,
            registry=registry,
        )
        self.requests = Counter(
            "http_requests_total", "HTTP requests answered.", labels, registry=registry
        )

    def observe(self, handler: str, method: str, status: int, seconds: float) -> None:
        """Record one answered request."""
        self.duration.labels(handler, method, str(status)).observe(seconds)
        self.requests.labels(handler, method, str(status)).inc()


def add_metrics_route(app: FastAPI, metrics: RequestMetrics) -> None:
    """Serve ``metrics.registry`` in the Prometheus text format at ``/metrics``."""

    async def metrics_page() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.add_api_route("/metrics", metrics_page, methods=["GET"], include_in_schema=False)


def route_template(routes: Sequence[BaseRoute], scope: Scope) -> str:
    """The path template of the route that ``scope`` matches, or ``"none"``."""
    partial: str | None = None
    for route in routes:
        match, _ = route.matches(scope)
        path = getattr(route, "path", None)
        if match is Match.FULL and isinstance(path, str):
            return path
        if match is Match.PARTIAL and partial is None and isinstance(path, str):
            partial = path
    return partial if partial is not None else UNMATCHED_HANDLER


class MetricsMiddleware:
    """ASGI middleware that times every HTTP request into :class:`RequestMetrics`.

    WebSocket connections are long-lived and are not counted as requests.
    """

    def __init__(
        self, app: ASGIApp, *, metrics: RequestMetrics, routes: Sequence[BaseRoute]
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        handler = route_template(self.routes, scope)
        status = 500
        started = time.perf_counter()

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.observe(handler, scope["method"], status, elapsed)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One kind of synthetic request: its labels, share of traffic and median latency."""

    handler: str
    method: str
    weight: float
    status: int
    median_seconds: float


ENDPOINTS = (
    Endpoint("/api/v1/orders", "GET", 0.25, 200, 0.045),
    Endpoint("/api/v1/orders", "POST", 0.15, 201, 0.060),
    Endpoint("/api/v1/orders/{id}", "GET", 0.15, 200, 0.040),
    Endpoint("/api/v1/routes", "GET", 0.25, 200, 0.055),
    Endpoint("/api/v1/customers", "GET", 0.20, 200, 0.042),
)
BASELINE_ERROR_RATE = 0.0005


class TrafficGenerator:
    """Records synthetic requests at ``rate`` per second, one batch per ``interval``.

    ``tick`` is synchronous and takes the elapsed time, so tests drive it without
    sleeping; ``start`` runs it in a background task that ``aclose`` cancels.

    >>> gen = TrafficGenerator(RequestMetrics(CollectorRegistry()), FaultSettings,
    ...                        rng=random.Random(1))
    >>> gen.tick(1.0)
    20
    """

    def __init__(
        self,
        metrics: RequestMetrics,
        faults: Callable[[], FaultSettings],
        *,
        rng: random.Random | None = None,
        rate: float = 20.0,
        interval: float = 0.25,
    ) -> None:
        self.metrics = metrics
        self.faults = faults
        self.rate = rate
        self.interval = interval
        self._rng = rng if rng is not None else random.Random()
        self._carry = 0.0
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def tick(self, elapsed: float) -> int:
        """Record the synthetic requests due after ``elapsed`` seconds; return how many."""
        self._carry += self.rate * elapsed
        count = math.floor(self._carry)
        self._carry -= count
        if count <= 0:
            return 0
        faults = self.faults()
        weights = [e.weight for e in ENDPOINTS]
        for endpoint in self._rng.choices(ENDPOINTS, weights, k=count):
            status, seconds = self._outcome(endpoint, faults)
            self.metrics.observe(endpoint.handler, endpoint.method, status, seconds)
        return count

    def _outcome(self, endpoint: Endpoint, faults: FaultSettings) -> tuple[int, float]:
        rng = self._rng
        if faults.outage:
            return 503, 0.002 * rng.lognormvariate(0.0, 0.3)
        seconds = endpoint.median_seconds * rng.lognormvariate(0.0, 0.4)
        seconds += faults.latency_ms / 1000
        error_rate = BASELINE_ERROR_RATE + faults.error_rate * (1 - BASELINE_ERROR_RATE)
        status = 500 if rng.random() < error_rate else endpoint.status
        return status, seconds

    def start(self) -> None:
        """Start the background task; a closed or running generator refuses."""
        if self._closed or self._task is not None:
            raise RuntimeError("traffic generator cannot be started twice")
        self._task = asyncio.create_task(self._run(), name="simulator-traffic")
        self._task.add_done_callback(_report_crash)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(self.interval)
            now = loop.time()
            self.tick(now - last)
            last = now

    async def aclose(self) -> None:
        """Cancel and await the background task; idempotent."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("simulator_traffic_crashed", exc_info=task.exception())


class TrafficLifespan:
    """An app lifespan that runs one traffic generator while any server serves the app.

    The plain and TLS servers share one app, so both enter its lifespan; only the
    first entry starts a generator (a fresh one from ``make``), the last exit stops it.

    >>> lifespan = TrafficLifespan(lambda: TrafficGenerator(
    ...     RequestMetrics(CollectorRegistry()), FaultSettings))
    """

    def __init__(self, make: Callable[[], TrafficGenerator]) -> None:
        self._make = make
        self._users = 0
        self._generator: TrafficGenerator | None = None

    @contextlib.asynccontextmanager
    async def __call__(self, _app: object) -> AsyncIterator[None]:
        if self._users == 0:
            self._generator = self._make()
            self._generator.start()
        self._users += 1
        try:
            yield
        finally:
            self._users -= 1
            if self._users == 0 and self._generator is not None:
                generator, self._generator = self._generator, None
                await generator.aclose()
