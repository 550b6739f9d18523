"""The agent's HTTP API: metrics, health, lifecycle, the checks API and the status page.

Endpoints follow Prometheus's own where they overlap (``/-/healthy``, ``/-/ready``,
``/-/reload``, ``/-/quit`` and their answers). The app knows the running agent only
through :class:`ApiContext`, so tests drive it with a small fake.

>>> from prometheus_client import CollectorRegistry
>>> class Ctx:
...     history = CheckHistory()
...     registry = CollectorRegistry()
...     web = WebConfig()
...     def checks(self): return []
...     def is_ready(self): return True
...     async def reload(self): ...
...     def request_shutdown(self): ...
>>> app = create_api(Ctx())
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import time
from collections.abc import Callable, Sequence
from typing import Literal, Protocol

import structlog
from fastapi import FastAPI, Request
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from pydantic import BaseModel, ConfigDict

from agent.api.auth import BasicAuthMiddleware
from agent.api.gate import GateContext, gate_routes
from agent.api.query import QueryContext, add_query_routes
from agent.api.rules import RulesContext, add_rules_routes
from agent.api.status_page import render_status_page
from agent.api.targets import TargetsContext, add_targets_routes
from agent.checks.history import CheckHistory, CheckStatus
from agent.config import CheckConfig, WebConfig
from agent.errors import ConfigError
from agent.model import StepResult

log = structlog.get_logger(__name__)

LIFECYCLE_DISABLED = "Lifecycle API is not enabled."


class ApiContext(QueryContext, RulesContext, TargetsContext, GateContext, Protocol):
    """What the API needs from the running agent."""

    history: CheckHistory
    registry: CollectorRegistry

    @property
    def web(self) -> WebConfig:
        """The running configuration's web section (read per request, so reloads apply)."""
        ...

    def checks(self) -> Sequence[CheckConfig]:
        """The running configuration's checks."""
        ...

    def is_ready(self) -> bool: ...

    async def reload(self) -> None:
        """Reload the configuration file; raise ConfigError and change nothing if it is bad."""
        ...

    def request_shutdown(self) -> None: ...


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StepOut(_Out):
    name: str
    success: bool
    duration_seconds: float
    status_code: int | None
    reason: str | None


class CheckOut(_Out):
    name: str
    kind: str
    labels: dict[str, str]
    interval_seconds: float
    timeout_seconds: float
    state: Literal["ok", "failing", "unknown"]
    last_run: str | None
    duration_seconds: float | None
    status_code: int | None
    reason: str | None
    last_failure_reason: str | None
    last_failure_time: str | None
    consecutive_failures: int
    steps: list[StepOut]


class ChecksOut(_Out):
    status: Literal["success"] = "success"
    data: list[CheckOut]


def create_api(ctx: ApiContext, *, clock: Callable[[], float] = time.time) -> FastAPI:
    """Build the FastAPI app; basic auth guards every route when users are configured."""
    app = FastAPI(title="pilot-agent", docs_url=None, redoc_url=None, openapi_url=None)
    # Added first so it runs inside auth: a 401 is never compressed, a scrape is.
    app.add_middleware(GZipMiddleware, minimum_size=1024)
    app.add_middleware(BasicAuthMiddleware, users=lambda: ctx.web.basic_auth_users)
    _add_probe_routes(app, ctx)
    _add_lifecycle_routes(app, ctx)
    _add_check_routes(app, ctx, clock)
    add_query_routes(app, ctx, clock)
    add_rules_routes(app, ctx)
    add_targets_routes(app, ctx)
    gate_routes(app, ctx)
    return app


def _add_probe_routes(app: FastAPI, ctx: ApiContext) -> None:
    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        # Collected on the event loop on purpose: collectors read in-memory state that
        # only the loop mutates, so a thread could see it change mid-iteration.
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(ctx.registry), headers={"Content-Type": content_type})

    @app.api_route("/-/healthy", methods=["GET", "HEAD"])
    async def healthy() -> PlainTextResponse:
        return PlainTextResponse("pilot-agent is Healthy.\n")

    @app.api_route("/-/ready", methods=["GET", "HEAD"])
    async def ready() -> PlainTextResponse:
        if ctx.is_ready():
            return PlainTextResponse("pilot-agent is Ready.\n")
        return PlainTextResponse("Service Unavailable", status_code=503)


def _add_lifecycle_routes(app: FastAPI, ctx: ApiContext) -> None:
    lock = asyncio.Lock()

    @app.api_route("/-/reload", methods=["POST", "PUT"])
    async def reload() -> PlainTextResponse:
        if not ctx.web.enable_lifecycle:
            return PlainTextResponse(LIFECYCLE_DISABLED, status_code=403)
        async with lock:
            try:
                await ctx.reload()
            except ConfigError as exc:
                log.warning("config_reload_rejected", problems=[str(p) for p in exc.problems])
                lines = "".join(f"{p}\n" for p in exc.problems)
                return PlainTextResponse(f"failed to reload config:\n{lines}", status_code=500)
        log.info("config_reloaded_via_api")
        return PlainTextResponse("configuration reloaded\n")

    @app.api_route("/-/quit", methods=["POST", "PUT"])
    async def quit_() -> PlainTextResponse:
        if not ctx.web.enable_lifecycle:
            return PlainTextResponse(LIFECYCLE_DISABLED, status_code=403)
        log.info("shutdown_requested_via_api")
        ctx.request_shutdown()
        return PlainTextResponse("Requesting termination... Goodbye!\n")

    @app.get("/-/reload")
    @app.get("/-/quit")
    async def wrong_method() -> PlainTextResponse:
        return PlainTextResponse(
            "Only POST or PUT requests allowed\n",
            status_code=405,
            headers={"Allow": "POST, PUT"},
        )


def _add_check_routes(app: FastAPI, ctx: ApiContext, clock: Callable[[], float]) -> None:
    @app.get("/api/v1/checks")
    async def checks() -> ChecksOut:
        return ChecksOut(data=[_check_out(c, ctx.history.get(c.name)) for c in ctx.checks()])

    @app.get("/", response_class=HTMLResponse)
    async def status_page() -> HTMLResponse:
        page = render_status_page(ctx.checks(), ctx.history, now=clock())
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})


def _check_out(check: CheckConfig, status: CheckStatus | None) -> CheckOut:
    latest = status.latest if status is not None else None
    failure = status.last_failure if status is not None else None
    return CheckOut(
        name=check.name,
        kind=check.kind,
        labels=dict(check.labels),
        interval_seconds=check.interval,
        timeout_seconds=check.run_timeout,
        state=status.state if status is not None else "unknown",
        last_run=rfc3339(latest.started_at) if latest else None,
        duration_seconds=latest.duration_seconds if latest else None,
        status_code=latest.status_code if latest else None,
        reason=latest.reason if latest else None,
        last_failure_reason=failure.reason if failure else None,
        last_failure_time=rfc3339(failure.started_at) if failure else None,
        consecutive_failures=status.consecutive_failures if status is not None else 0,
        steps=[_step_out(s) for s in latest.steps] if latest else [],
    )


def _step_out(step: StepResult) -> StepOut:
    return StepOut(
        name=step.name,
        success=step.success,
        duration_seconds=step.duration_seconds,
        status_code=step.status_code,
        reason=step.reason,
    )


def rfc3339(ts: float) -> str:
    """A Unix timestamp as RFC 3339 in UTC with milliseconds.

    >>> rfc3339(0.0)
    '1970-01-01T00:00:00.000Z'
    """
    when = _dt.datetime.fromtimestamp(ts, tz=_dt.UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
