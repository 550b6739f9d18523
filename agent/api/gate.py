"""``GET /api/v1/pilot/gate?stage=<name>``: may the rollout move on to that stage?

The answer comes in the Prometheus API envelope; the decision is in ``data``
(docs/gate.md). It is HTTP 200 for both go and no-go, 400 without a stage and
404 for a stage the configuration does not know, both with Prometheus's error
shape. Every answer is also emitted as an ``io.luckygas.pilot.gate.evaluated``
event whose ``subject`` is the stage and whose ``data`` is the answer's ``data``.

>>> from agent.promql.engine import PromQLEngine
>>> from agent.tsdb.store import SeriesStore
>>> class Ctx:                                       # what the agent provides
...     storage = SeriesStore()
...     engine = PromQLEngine()
...     config = AgentConfig()
...     clock = staticmethod(lambda: 0.0)
...     emit_event = None
>>> app = FastAPI()
>>> gate_routes(app, Ctx())
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from agent.config import AgentConfig
from agent.gate import evaluate_gate, stage_policy
from agent.model import Event
from agent.promql.value import Engine
from agent.rules.group import engine_query_func
from agent.tsdb.base import Queryable

log = structlog.get_logger(__name__)

GATE_PATH = "/api/v1/pilot/gate"
GATE_EVALUATED = "io.luckygas.pilot.gate.evaluated"
"""CloudEvents type of the event emitted with every gate answer."""

EmitEvent = Callable[[Event], Awaitable[object]]

__all__ = ["GATE_EVALUATED", "GATE_PATH", "EmitEvent", "GateContext", "gate_event", "gate_routes"]


class GateContext(Protocol):
    """What the gate needs from the agent (the agent's ``Agent`` provides all of it)."""

    @property
    def storage(self) -> Queryable: ...

    @property
    def engine(self) -> Engine: ...

    @property
    def config(self) -> AgentConfig:
        """The running configuration (read per request, so reloads apply)."""
        ...

    @property
    def clock(self) -> Callable[[], float]:
        """The agent's clock (Unix seconds)."""
        ...

    @property
    def emit_event(self) -> EmitEvent | None:
        """Where gate events go (``CountingEmitter.emit``); None until the sink is open."""
        ...


def _error(status: int, message: str) -> JSONResponse:
    body = {"status": "error", "errorType": "bad_data", "error": message}
    return JSONResponse(body, status_code=status)


def gate_routes(app: FastAPI, ctx: GateContext) -> None:
    """Mount ``GET /api/v1/pilot/gate`` on ``app``."""

    @app.get(GATE_PATH)
    async def gate(request: Request) -> JSONResponse:
        stages = request.query_params.getlist("stage")
        if not stages or not stages[-1]:
            return _error(400, 'invalid parameter "stage": no stage given')
        config = ctx.config
        policy = stage_policy(config.pilot_gate, stages[-1])
        if policy is None:
            known = ", ".join(s.name for s in config.pilot_gate.stages)
            return _error(404, f'unknown stage "{stages[-1]}" (stages: {known})')
        now = ctx.clock()
        decision = evaluate_gate(policy, engine_query_func(ctx.engine, ctx.storage), now)
        data = decision.to_dict()
        log.info(
            "gate_evaluated",
            stage=policy.stage,
            decision=data["decision"],
            reasons=[r.kind for r in decision.reasons],
        )
        await _emit(ctx.emit_event, config.events.source, data, now)
        return JSONResponse({"status": "success", "data": data})


def gate_event(data: dict[str, Any], *, source: str, now: float) -> Event:
    """The ``io.luckygas.pilot.gate.evaluated`` event of one answer's ``data``."""
    return Event.new(type=GATE_EVALUATED, source=source, subject=data["stage"], data=data, time=now)


async def _emit(emit: EmitEvent | None, source: str, data: dict[str, Any], now: float) -> None:
    """Emit the answer as an event; a failing sink never fails the answer."""
    if emit is None:
        return
    event = gate_event(data, source=source, now=now)
    try:
        await emit(event)
    except Exception:
        log.exception("gate_event_emit_failed", stage=data["stage"], id=event.id)
