"""Runs every configured check on its interval, each on its own, none blocking another.

apscheduler 3.x fires the runs inside the asyncio loop. Each check gets a stable
phase offset inside its interval (a hash of its name, as Prometheus spreads its
scrapes), so checks sharing an interval do not fire in a burst. A run never
overlaps the previous run of the same check: a run due while the previous one
is still going is counted as a misfire, not queued. The whole run, connect
included, is bounded by the check's timeout, so a hanging target only delays
itself.

The runs themselves are tasks this scheduler owns: on close it stops firing,
lets in-flight runs finish within a grace period, then cancels the rest.

>>> scheduler = CheckScheduler(build=build_checker, on_result=pipeline.handle,
...                            metrics=metrics)                       # doctest: +SKIP
>>> async with scheduler:                                            # doctest: +SKIP
...     scheduler.apply(config.checks)
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import time
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from agent.checks.base import Checker, ProbeReport
from agent.config import CheckConfig
from agent.errors import CheckError, ComponentStateError
from agent.lifecycle import Component
from agent.model import CheckResult

log = structlog.get_logger(__name__)


class SchedulerMetrics(Protocol):
    def observe_lag(self, check: str, seconds: float) -> None: ...

    def misfire(self, check: str) -> None: ...


_START_MARGIN = 0.05
MISFIRE_LOG_EVERY = 60.0

ResultHandler = Callable[[CheckResult], Awaitable[None]]
CheckerFactory = Callable[[CheckConfig], Checker]


def phase_offset(name: str, interval: float) -> float:
    """A stable offset in [0, interval) for a check, derived from its name."""
    return (zlib.crc32(name.encode()) % 10_000) / 10_000 * interval


async def run_check(
    check: CheckConfig, checker: Checker, clock: Callable[[], float]
) -> CheckResult:
    """Run one check once, bounded by its timeout; never raises for a failed check."""
    report = ProbeReport()
    started_at = clock()
    t0 = time.perf_counter()
    reason: str | None = None
    try:
        async with asyncio.timeout(check.run_timeout):
            await checker.probe(report)
    except TimeoutError:
        reason = f"timeout after {check.run_timeout:g}s"
    except CheckError as exc:
        reason = str(exc) or type(exc).__name__
    except Exception as exc:  # a bug in a checker must not stop the loop
        log.exception("check_crashed", check=check.name)
        reason = f"internal error: {type(exc).__name__}"
    return CheckResult(
        check=check.name,
        kind=check.kind,
        success=reason is None,
        started_at=started_at,
        duration_seconds=time.perf_counter() - t0,
        reason=reason,
        status_code=report.status_code,
        phases=dict(report.phases),
        ssl_earliest_cert_expiry=report.ssl_earliest_cert_expiry,
        ssl_last_chain_expiry=report.ssl_last_chain_expiry,
        steps=tuple(report.steps),
    )


@dataclass(slots=True)
class _Scheduled:
    check: CheckConfig
    checker: Checker
    anchor: float  # Unix time of the first run; run k is due at anchor + k * interval
    running: asyncio.Task[None] | None = None


class CheckScheduler(Component):
    """Schedules configured checks; ``apply`` replaces the set on a config reload."""

    def __init__(
        self,
        *,
        build: CheckerFactory,
        on_result: ResultHandler,
        metrics: SchedulerMetrics,
        clock: Callable[[], float] = time.time,
        grace_seconds: float = 10.0,
        offset: Callable[[str, float], float] = phase_offset,
    ) -> None:
        self._build = build
        self._offset = offset
        self._on_result = on_result
        self._metrics = metrics
        self._clock = clock
        self._grace = grace_seconds
        self._checks: dict[str, _Scheduled] = {}
        self._inflight: set[asyncio.Task[None]] = set()
        self._closers: set[asyncio.Task[None]] = set()
        self._scheduler: AsyncIOScheduler | None = None
        self._misfire_logged_at: dict[str, float] = {}
        self._misfires_unlogged: dict[str, int] = {}

    name = "check scheduler"

    async def _on_start(self) -> None:
        sched = AsyncIOScheduler(event_loop=asyncio.get_running_loop(), timezone=dt.UTC)
        sched.add_listener(self._on_missed, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        sched.start()
        self._scheduler = sched

    @property
    def checks(self) -> list[CheckConfig]:
        return [s.check for s in self._checks.values()]

    def apply(self, checks: Sequence[CheckConfig]) -> None:
        """Make the scheduled set equal to ``checks``; unchanged checks keep their timing."""
        if self._scheduler is None or self._state != "running":
            raise ComponentStateError("scheduler is not running")
        wanted = {c.name: c for c in checks}
        for name in list(self._checks):
            if name not in wanted or wanted[name] != self._checks[name].check:
                self._unschedule(name)
        for name, check in wanted.items():
            if name not in self._checks:
                self._schedule(check)

    def _schedule(self, check: CheckConfig) -> None:
        assert self._scheduler is not None
        # apscheduler skips a start_date already past when the job is added: keep it ahead.
        anchor = self._clock() + _START_MARGIN + self._offset(check.name, check.interval)
        self._checks[check.name] = _Scheduled(check, self._build(check), anchor)
        self._scheduler.add_job(
            self._fire,
            IntervalTrigger(
                seconds=check.interval,
                start_date=dt.datetime.fromtimestamp(anchor, tz=dt.UTC),
                timezone=dt.UTC,
            ),
            args=(check.name,),
            id=check.name,
            name=check.name,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(check.interval)),
            replace_existing=True,
        )
        log.info("check_scheduled", check=check.name, kind=check.kind, interval=check.interval)

    def _unschedule(self, name: str) -> None:
        assert self._scheduler is not None
        scheduled = self._checks.pop(name)
        self._scheduler.remove_job(name)
        closer = asyncio.create_task(self._retire(scheduled), name=f"retire:{name}")
        self._closers.add(closer)
        closer.add_done_callback(self._closers.discard)
        log.info("check_unscheduled", check=name)

    async def _retire(self, scheduled: _Scheduled) -> None:
        """Close a removed check's checker once its in-flight run, if any, has ended."""
        if scheduled.running is not None:
            await asyncio.wait({scheduled.running}, timeout=self._grace)
        await _close_quietly(scheduled.checker)

    def _on_missed(self, event: JobEvent) -> None:
        self._metrics.misfire(event.job_id)
        # Counted every time; logged at most once a minute per check, so an overloaded
        # agent does not spend what it lacks on logging.
        now = time.monotonic()
        skipped = self._misfires_unlogged.get(event.job_id, 0) + 1
        if now - self._misfire_logged_at.get(event.job_id, -math.inf) >= MISFIRE_LOG_EVERY:
            log.warning("check_misfired", check=event.job_id, misfires=skipped)
            self._misfire_logged_at[event.job_id] = now
            skipped = 0
        self._misfires_unlogged[event.job_id] = skipped

    async def _fire(self, name: str) -> None:
        scheduled = self._checks.get(name)
        if scheduled is None:
            return
        now = self._clock()
        interval = scheduled.check.interval
        due = scheduled.anchor + max(0, (now - scheduled.anchor) // interval) * interval
        self._metrics.observe_lag(name, max(0.0, now - due))
        task = asyncio.create_task(self._run(scheduled), name=f"check:{name}")
        scheduled.running = task
        self._inflight.add(task)
        task.add_done_callback(self._task_done)
        # asyncio.wait never cancels the task it waits for, and never raises for its outcome:
        # apscheduler cancelling its own job future cannot cut the run short. This coroutine
        # only holds the job's instance slot, so its own cancellation ends it quietly
        # (apscheduler would log a CancelledError as a failed job).
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait({task})

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("check_task_crashed", task=task.get_name(), error=repr(task.exception()))

    async def _run(self, scheduled: _Scheduled) -> None:
        with structlog.contextvars.bound_contextvars(check=scheduled.check.name):
            result = await run_check(scheduled.check, scheduled.checker, self._clock)
            try:
                await self._on_result(result)
            except Exception:
                log.exception("result_handler_failed")

    async def run_now(self, name: str) -> CheckResult:
        """Run one check immediately, outside its schedule (for tests and the API)."""
        scheduled = self._checks[name]
        result = await run_check(scheduled.check, scheduled.checker, self._clock)
        await self._on_result(result)
        return result

    async def _on_close(self) -> None:
        """Stop firing, let in-flight runs finish within the grace period, close checkers."""
        if self._scheduler is not None:
            self._scheduler.pause()
        if self._inflight:
            _, pending = await asyncio.wait(set(self._inflight), timeout=self._grace)
            for task in pending:
                task.cancel()
            if pending:
                log.warning("checks_cancelled_at_shutdown", count=len(pending))
                await asyncio.gather(*pending, return_exceptions=True)
        if self._scheduler is not None:
            # Job futures finished with the runs they waited for: nothing left for it to cancel.
            await asyncio.sleep(0)
            self._scheduler.shutdown(wait=False)
        if self._closers:
            await asyncio.gather(*self._closers, return_exceptions=True)
        for scheduled in self._checks.values():
            await _close_quietly(scheduled.checker)
        self._checks.clear()


async def _close_quietly(checker: Checker) -> None:
    try:
        await checker.aclose()
    except Exception:
        log.exception("checker_close_failed", kind=checker.kind)
