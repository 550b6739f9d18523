"""Driving the simulator's pilot state: the ``/admin/pilot`` API and the ticking clock.

:class:`PilotAdmin` holds the actions a demo or a test can take (flip a flag,
stall or roll back the migration, grow the dual-write lag, open a breaker and
fail over); :func:`add_pilot_routes` serves them; :class:`PilotTicker` is an app
lifespan that advances the state every second while the simulator serves.
Admin routes sit under ``/admin``, so injected faults never reach them.

>>> admin = PilotAdmin(PilotState(clock=lambda: 5.0))
>>> flag_view(admin.state, "realtime_tracking")["exposure"]
0.5
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import structlog
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict, Field, model_validator

from agent.demo.pilot_state import (
    DEPENDENCIES,
    FLAGS,
    BreakerState,
    Dependency,
    FlagName,
    PilotState,
)
from agent.tasks import cancel_and_wait

log = structlog.get_logger(__name__)


class PilotTransitionError(ValueError):
    """An admin action that the pilot's current state does not allow."""


class FlagUpdate(BaseModel):
    """Body of ``PUT /admin/pilot/flags/{flag}``: any subset of the flag's settings."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool | None = None
    rollout_percent: float | None = Field(default=None, ge=0, le=100)
    kill_switch: bool | None = None
    pilot_customers: int | None = Field(default=None, ge=0, le=1_000_000)
    error_rate: float | None = Field(default=None, ge=0, le=1)
    evaluation_error_rate: float | None = Field(default=None, ge=0, le=1)


class DualWriteUpdate(BaseModel):
    """Body of ``PUT /admin/pilot/dual-write``: targets the sync drifts to, and conflicts."""

    model_config = ConfigDict(extra="forbid")

    lag_seconds: float | None = Field(default=None, ge=0, le=86_400)
    queue_depth: int | None = Field(default=None, ge=0, le=10_000_000)
    unresolved_conflicts: int | None = Field(default=None, ge=0, le=1_000_000)
    failure_rate: float | None = Field(default=None, ge=0, le=1)


class BreakerUpdate(BaseModel):
    """Body of ``PUT /admin/pilot/breakers/{dependency}``; ``switch_seconds`` needs ``failover``."""

    model_config = ConfigDict(extra="forbid")

    state: BreakerState | None = None
    failover: bool | None = None
    switch_seconds: float | None = Field(default=None, gt=0, le=600)

    @model_validator(mode="after")
    def _switch_needs_failover(self) -> BreakerUpdate:
        if self.switch_seconds is not None and self.failover is None:
            raise ValueError("switch_seconds is only meaningful with failover")
        return self


class PilotAdmin:
    """The admin actions on a :class:`PilotState`; each returns the part it changed.

    >>> admin = PilotAdmin(PilotState(clock=lambda: 0.0))
    >>> breaker_view(admin.state, "sms")
    {'state': 'closed', 'failover': False, 'switches': 0}
    """

    def __init__(self, state: PilotState) -> None:
        self.state = state

    def update_flag(self, name: FlagName, **changes: Any) -> dict[str, Any]:
        """Apply flag settings; a real change moves the flag's last-change time to now."""
        flag = self.state.flags[name]
        changed = False
        for key, value in changes.items():
            changed |= getattr(flag, key) != value
            setattr(flag, key, value)
        if changed:
            flag.changed_at = self.state.clock()
            log.info("simulator_pilot_flag_changed", flag=name, **changes)
        return flag_view(self.state, name)

    def stall(self) -> dict[str, Any]:
        """Stop migration batches until ``resume``."""
        self.state.migration.stalled = True
        log.info("simulator_pilot_migration_stalled")
        return migration_view(self.state)

    def resume(self) -> dict[str, Any]:
        """Let migration batches run again; refused during a rollback."""
        if self.state.migration.rollback_in_progress:
            raise PilotTransitionError("finish the rollback before resuming")
        self.state.migration.stalled = False
        log.info("simulator_pilot_migration_resumed")
        return migration_view(self.state)

    def start_rollback(self) -> dict[str, Any]:
        """Stop migrating; move customers back to the legacy system, a batch at a time."""
        migration = self.state.migration
        if migration.rollback_in_progress:
            raise PilotTransitionError("a rollback is already in progress")
        migration.rollback_in_progress = True
        migration.carry = 0.0
        log.info("simulator_pilot_rollback_started")
        return migration_view(self.state)

    def finish_rollback(self) -> dict[str, Any]:
        """Roll back every remaining customer at once; the migration stays stalled."""
        migration = self.state.migration
        if not migration.rollback_in_progress:
            raise PilotTransitionError("no rollback in progress")
        self.state.roll_back(self.state.plan.customers)
        migration.rollback_in_progress = False
        migration.stalled = True
        log.info("simulator_pilot_rollback_finished")
        return migration_view(self.state)

    def update_dual_write(self, change: DualWriteUpdate) -> dict[str, Any]:
        """Set the lag and queue targets and the failure rate; set unresolved conflicts.

        Raising the unresolved conflicts counts the new ones as ``manual`` conflicts.
        """
        dw = self.state.dual_write
        if change.lag_seconds is not None:
            dw.target_lag = change.lag_seconds
        if change.queue_depth is not None:
            dw.target_queue = change.queue_depth
        if change.failure_rate is not None:
            dw.failure_rate = change.failure_rate
        if change.unresolved_conflicts is not None:
            dw.conflicts["manual"] += max(0, change.unresolved_conflicts - dw.unresolved)
            dw.unresolved = change.unresolved_conflicts
        log.info("simulator_pilot_dual_write_changed", **change.model_dump(exclude_none=True))
        return dual_write_view(self.state)

    def update_breaker(
        self,
        dependency: Dependency,
        *,
        state: BreakerState | None = None,
        failover: bool | None = None,
        switch_seconds: float | None = None,
    ) -> dict[str, Any]:
        """Move a breaker; a change of ``failover`` is one switch taking ``switch_seconds``.

        Without ``switch_seconds`` the switch takes a random time around 0.8 s.
        """
        breaker = self.state.breakers[dependency]
        breaker.state = breaker.state if state is None else state
        if failover is not None and failover != breaker.failover:
            breaker.failover = failover
            if switch_seconds is None:
                switch_seconds = 0.8 * self.state.rng.lognormvariate(0.0, 0.5)
            breaker.record_switch(switch_seconds)
        log.info(
            "simulator_pilot_breaker_changed",
            dependency=dependency,
            state=breaker.state,
            failover=breaker.failover,
        )
        return breaker_view(self.state, dependency)


def flag_view(state: PilotState, name: FlagName) -> dict[str, Any]:
    """One flag's settings, exposure and last change, as JSON-ready data."""
    f = state.flags[name]
    return {
        "enabled": f.enabled,
        "rollout_percent": f.rollout_percent,
        "kill_switch": f.kill_switch,
        "pilot_customers": f.pilot_customers,
        "error_rate": f.error_rate,
        "evaluation_error_rate": f.evaluation_error_rate,
        "exposure": f.exposure(state.plan.customers),
        "last_change_timestamp": f.changed_at,
    }


def migration_view(state: PilotState) -> dict[str, Any]:
    """The migration's customers, batches and controls, as JSON-ready data."""
    m = state.migration
    return {
        "customers": dict(m.customers),
        "batches": dict(m.batches),
        "last_batch_timestamp": m.last_batch_at,
        "stalled": m.stalled,
        "rollback_in_progress": m.rollback_in_progress,
    }


def dual_write_view(state: PilotState) -> dict[str, Any]:
    """The dual-write sync's current values and targets, as JSON-ready data."""
    dw = state.dual_write
    return {
        "lag_seconds": dw.lag_seconds,
        "target_lag_seconds": dw.target_lag,
        "queue_depth": dw.queue_depth,
        "target_queue_depth": dw.target_queue,
        "unresolved_conflicts": dw.unresolved,
        "failure_rate": dw.failure_rate,
    }


def breaker_view(state: PilotState, dependency: Dependency) -> dict[str, Any]:
    """One breaker's state, failover and switch count, as JSON-ready data."""
    b = state.breakers[dependency]
    return {"state": b.state, "failover": b.failover, "switches": b.switches}


def pilot_view(state: PilotState) -> dict[str, Any]:
    """The whole pilot state, as JSON-ready data."""
    return {
        "flags": {name: flag_view(state, name) for name in FLAGS},
        "migration": migration_view(state),
        "dual_write": dual_write_view(state),
        "breakers": {dep: breaker_view(state, dep) for dep in DEPENDENCIES},
    }


def _transition(action: Callable[[], dict[str, Any]]) -> Callable[[], Awaitable[dict[str, Any]]]:
    async def endpoint() -> dict[str, Any]:
        try:
            return action()
        except PilotTransitionError as exc:
            raise HTTPException(409, str(exc)) from exc

    return endpoint


def add_pilot_routes(app: FastAPI, admin: PilotAdmin) -> None:
    """Add the ``/admin/pilot`` endpoints, straight onto the app like the fault routes."""
    state = admin.state

    async def get_pilot() -> dict[str, Any]:
        return pilot_view(state)

    async def reset_pilot() -> dict[str, Any]:
        state.reset()
        log.info("simulator_pilot_reset")
        return pilot_view(state)

    async def put_flag(flag: FlagName, change: FlagUpdate) -> dict[str, Any]:
        return admin.update_flag(flag, **change.model_dump(exclude_none=True))

    async def put_dual_write(change: DualWriteUpdate) -> dict[str, Any]:
        return admin.update_dual_write(change)

    async def put_breaker(dependency: Dependency, change: BreakerUpdate) -> dict[str, Any]:
        return admin.update_breaker(dependency, **change.model_dump(exclude_none=True))

    app.add_api_route("/admin/pilot", get_pilot, methods=["GET"])
    app.add_api_route("/admin/pilot", reset_pilot, methods=["DELETE"])
    app.add_api_route("/admin/pilot/flags/{flag}", put_flag, methods=["PUT"])
    app.add_api_route("/admin/pilot/dual-write", put_dual_write, methods=["PUT"])
    app.add_api_route("/admin/pilot/breakers/{dependency}", put_breaker, methods=["PUT"])
    migration = {
        "stall": admin.stall,
        "resume": admin.resume,
        "rollback/start": admin.start_rollback,
        "rollback/finish": admin.finish_rollback,
    }
    for path, action in migration.items():
        name = "migration_" + path.replace("/", "_")
        route = f"/admin/pilot/migration/{path}"
        app.add_api_route(route, _transition(action), methods=["POST"], name=name)


class PilotTicker:
    """An app lifespan that advances a :class:`PilotState` while any server serves the app.

    The plain and TLS servers share one app, so both enter its lifespan; the
    first entry starts the ticking task, the last exit cancels and awaits it.
    A tick that fails is logged and the next one runs.

    >>> ticker = PilotTicker(PilotState(), interval=1.0)
    """

    def __init__(self, state: PilotState, *, interval: float = 1.0) -> None:
        self.state = state
        self.interval = interval
        self._users = 0
        self._task: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def __call__(self, _app: object) -> AsyncIterator[None]:
        if self._users == 0:
            self._task = asyncio.create_task(self._run(), name="simulator-pilot")
            self._task.add_done_callback(_report_crash)
        self._users += 1
        try:
            yield
        finally:
            self._users -= 1
            if self._users == 0 and self._task is not None:
                task, self._task = self._task, None
                await cancel_and_wait(task)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.state.advance(self.state.clock())
            except Exception:
                log.exception("simulator_pilot_tick_failed")


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("simulator_pilot_ticker_crashed", exc_info=task.exception())
