"""Fault injection for the pilot simulator: state, ASGI middleware and admin API.

Faults apply to every API endpoint and to ``/ws``; ``/metrics`` and ``/admin``
are never affected, so the demo can always observe and heal the simulator.

>>> injector = FaultInjector()
>>> injector.settings = FaultSettings(outage=True)
>>> injector.injected_status(websocket=False)
503
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from dataclasses import dataclass
from typing import Any

import structlog
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

log = structlog.get_logger(__name__)

_EXEMPT_PREFIXES = ("/metrics", "/admin")
_WS_POLICY_VIOLATION = 1008


@dataclass(frozen=True, slots=True)
class FaultSettings:
    """The faults currently injected; the default injects nothing."""

    latency_ms: float = 0.0
    error_rate: float = 0.0
    outage: bool = False
    ws_refuse: bool = False


class FaultsUpdate(BaseModel):
    """Body of ``PUT /admin/faults``: any subset of the settings to change."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: float | None = Field(default=None, ge=0, le=600_000)
    error_rate: float | None = Field(default=None, ge=0, le=1)
    outage: bool | None = None
    ws_refuse: bool | None = None


class FaultInjector:
    """Holds the active :class:`FaultSettings` and decides each request's fate.

    >>> FaultInjector().injected_status(websocket=True) is None
    True
    """

    def __init__(self, *, rng: random.Random | None = None) -> None:
        self._rng = rng if rng is not None else random.Random()
        self.settings = FaultSettings()

    def update(self, change: FaultsUpdate) -> FaultSettings:
        """Apply the fields set in ``change`` and return the new settings."""
        fields = change.model_dump(exclude_unset=True, exclude_none=True)
        self.settings = dataclasses.replace(self.settings, **fields)
        log.info("simulator_faults_updated", **dataclasses.asdict(self.settings))
        return self.settings

    def reset(self) -> FaultSettings:
        """Remove every fault."""
        self.settings = FaultSettings()
        log.info("simulator_faults_reset")
        return self.settings

    def injected_status(self, *, websocket: bool) -> int | None:
        """The status a request must answer instead of being handled, or ``None``."""
        s = self.settings
        if s.outage:
            return 503
        if websocket and s.ws_refuse:
            return 403
        if s.error_rate > 0 and self._rng.random() < s.error_rate:
            return 500
        return None


def is_exempt(path: str) -> bool:
    """Whether ``path`` is out of reach of injected faults (metrics, admin)."""
    return any(path == p or path.startswith(p + "/") for p in _EXEMPT_PREFIXES)


class FaultMiddleware:
    """ASGI middleware that applies the injector's faults to HTTP and WebSocket requests.

    An outage answers 503 at once; otherwise ``latency_ms`` is slept first, then
    ``error_rate`` decides between a 500 and the wrapped app.
    """

    def __init__(self, app: ASGIApp, *, injector: FaultInjector) -> None:
        self.app = app
        self.injector = injector

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket") or is_exempt(scope["path"]):
            await self.app(scope, receive, send)
            return
        settings = self.injector.settings
        if not settings.outage and settings.latency_ms > 0:
            await asyncio.sleep(settings.latency_ms / 1000)
        status = self.injector.injected_status(websocket=kind == "websocket")
        if status is None:
            await self.app(scope, receive, send)
        elif kind == "http":
            await JSONResponse({"detail": "injected fault"}, status)(scope, receive, send)
        else:
            await _refuse_websocket(receive, send)


async def _refuse_websocket(receive: Receive, send: Send) -> None:
    """Refuse a handshake by closing before accept, which servers answer with HTTP 403.

    A denial response (``websocket.http.response``) could carry the 503 instead,
    but uvicorn's websockets-sansio protocol logs a spurious ERROR after each one
    (Kludex/uvicorn#3138), which would look like a simulator bug in the demo.
    """
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close", "code": _WS_POLICY_VIOLATION})


def add_fault_routes(app: FastAPI, injector: FaultInjector) -> None:
    """Add the ``/admin/faults`` endpoints that read, change and reset the injector.

    Routes go straight onto the app (no included router) so that metrics can
    resolve every request's route template.
    """

    async def get_faults() -> dict[str, Any]:
        return dataclasses.asdict(injector.settings)

    async def put_faults(change: FaultsUpdate) -> dict[str, Any]:
        return dataclasses.asdict(injector.update(change))

    async def delete_faults() -> dict[str, Any]:
        return dataclasses.asdict(injector.reset())

    app.add_api_route("/admin/faults", get_faults, methods=["GET"])
    app.add_api_route("/admin/faults", put_faults, methods=["PUT"])
    app.add_api_route("/admin/faults", delete_faults, methods=["DELETE"])
