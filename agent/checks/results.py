"""What happens to each check result: history, self-metrics, events, listeners.

Events are emitted for every change of a check's state (including its first
result) and for every failed run, as CloudEvents:

- ``io.luckygas.pilot.check.state_changed``: data has ``previous_state`` (null on
  the first result) and ``state``;
- ``io.luckygas.pilot.check.failed``: one per failed run, with the reason.

A sink that fails is logged and counted; it never stops the check loop. Failure
reasons pass through the secret scrubber before anything records them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import structlog

from agent.checks.history import CheckHistory, Transition
from agent.events.base import EventSink
from agent.events.emitter import CountingEmitter
from agent.model import CheckResult, Event

log = structlog.get_logger(__name__)

EVENT_STATE_CHANGED = "io.luckygas.pilot.check.state_changed"
EVENT_FAILED = "io.luckygas.pilot.check.failed"


class ResultMetrics(Protocol):
    def observe_result(self, result: CheckResult) -> None: ...

    def event_emitted(self, type: str) -> None: ...

    def event_sink_error(self) -> None: ...


def _result_data(result: CheckResult, labels: Mapping[str, str]) -> dict[str, Any]:
    data: dict[str, Any] = {
        "check": result.check,
        "kind": result.kind,
        "labels": dict(labels),
        "success": result.success,
        "duration_seconds": round(result.duration_seconds, 6),
        "reason": result.reason,
        "status_code": result.status_code,
    }
    if result.steps:
        data["steps"] = [
            {
                "name": s.name,
                "success": s.success,
                "duration_seconds": round(s.duration_seconds, 6),
                "status_code": s.status_code,
                "reason": s.reason,
            }
            for s in result.steps
        ]
    return data


def scrub_result(result: CheckResult, scrub: Callable[[str], str]) -> CheckResult:
    """The result with its failure reasons (and its steps') passed through ``scrub``."""
    if result.reason is None:
        return result
    steps = tuple(
        dataclasses.replace(s, reason=scrub(s.reason)) if s.reason else s for s in result.steps
    )
    return dataclasses.replace(result, reason=scrub(result.reason), steps=steps)


def check_events(
    result: CheckResult,
    transition: Transition,
    *,
    labels: Mapping[str, str],
    consecutive_failures: int,
    source: str,
    now: float,
) -> list[Event]:
    """The events one recorded result gives rise to (zero, one or two)."""
    events = []
    data = _result_data(result, labels)
    if transition.changed:
        changed = {**data, "previous_state": transition.previous, "state": transition.current}
        events.append(
            Event.new(
                type=EVENT_STATE_CHANGED,
                source=source,
                subject=result.check,
                data=changed,
                time=now,
            )
        )
    if not result.success:
        failed = {**data, "consecutive_failures": consecutive_failures}
        events.append(
            Event.new(type=EVENT_FAILED, source=source, subject=result.check, data=failed, time=now)
        )
    return events


class ResultPipeline:
    """Records each result and tells everyone who needs to know."""

    def __init__(
        self,
        *,
        history: CheckHistory,
        metrics: ResultMetrics,
        sink: EventSink,
        labels_of: Callable[[str], Mapping[str, str]],
        source: str,
        clock: Callable[[], float],
        listeners: Sequence[Callable[[CheckResult], None]] = (),
        scrub: Callable[[str], str] | None = None,
    ) -> None:
        self._scrub = scrub
        self._history = history
        self._metrics = metrics
        self._emitter = CountingEmitter(sink, metrics)
        self._labels_of = labels_of
        self._source = source
        self._clock = clock
        self._listeners = list(listeners)

    def add_listener(self, listener: Callable[[CheckResult], None]) -> None:
        self._listeners.append(listener)

    async def handle(self, result: CheckResult) -> None:
        if self._scrub is not None:
            # Checkers keep secrets out of reasons; this is the second line of defence
            # for everything downstream (history, API, status page, events).
            result = scrub_result(result, self._scrub)
        transition = self._history.record(result)
        self._metrics.observe_result(result)
        if result.success:
            log.debug("check_succeeded", check=result.check, duration=result.duration_seconds)
        else:
            log.warning("check_failed", check=result.check, reason=result.reason)
        if transition.changed:
            log.info(
                "check_state_changed",
                check=result.check,
                previous=transition.previous,
                state=transition.current,
            )
        status = self._history.get(result.check)
        events = check_events(
            result,
            transition,
            labels=self._labels_of(result.check),
            consecutive_failures=status.consecutive_failures if status else 0,
            source=self._source,
            now=self._clock(),
        )
        for event in events:
            await self._emitter.emit(event)
        for listener in self._listeners:
            try:
                listener(result)
            except Exception:
                log.exception("result_listener_failed", check=result.check)
