"""One event stream into several sinks (the JSONL log and Kafka), each on its own.

Every sink gets every event, in order. A sink that fails is logged
(``event_sink_failed`` with the sink's name) and counted per sink
(``agent_event_sink_failures_total{sink}``); the other sinks still get the event.
``emit`` raises only when *every* sink failed, so the emitter's
``agent_event_sink_errors_total`` means "this event reached no sink at all".

>>> import asyncio
>>> from agent.events.base import MemoryEventSink
>>> a, b = MemoryEventSink(), MemoryEventSink()
>>> fanout = FanoutEventSink({"a": a, "b": b})
>>> asyncio.run(fanout.emit(Event.new(type="t", source="s", subject=None, data={}, time=0)))
>>> len(a.events), len(b.events)
(1, 1)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import structlog

from agent.errors import SinkError
from agent.events.base import EventSink
from agent.model import Event

log = structlog.get_logger(__name__)


class FanoutMetrics(Protocol):
    def sink_failed(self, sink: str) -> None: ...


class _NoMetrics:
    def sink_failed(self, sink: str) -> None:
        pass


class FanoutEventSink:
    """Emits to every named sink; raises :class:`SinkError` only if all of them failed."""

    def __init__(self, sinks: Mapping[str, EventSink], metrics: FanoutMetrics | None = None):
        if not sinks:
            raise ValueError("a fan-out needs at least one sink")
        self._sinks = dict(sinks)
        self._metrics = metrics or _NoMetrics()

    async def emit(self, event: Event) -> None:
        errors: list[Exception] = []
        for name, sink in self._sinks.items():
            try:
                await sink.emit(event)
            except Exception as exc:
                errors.append(exc)
                self._metrics.sink_failed(name)
                log.warning("event_sink_failed", sink=name, id=event.id, error=repr(exc))
        if len(errors) == len(self._sinks):
            raise SinkError(f"no event sink accepted event {event.id}") from errors[0]

    async def aclose(self) -> None:
        """Close every sink, even when one fails to close (that one is logged)."""
        for name, sink in self._sinks.items():
            try:
                await sink.aclose()
            except Exception as exc:
                log.error("event_sink_close_failed", sink=name, error=repr(exc))
