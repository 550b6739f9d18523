"""Emitting events to the sink with the bookkeeping every producer needs.

A failing sink is logged and counted and never raises into the producer (a check
loop, a scrape listener): the producer's own work goes on.

>>> from agent.events.base import MemoryEventSink
>>> class Count:
...     def event_emitted(self, type: str) -> None: ...
...     def event_sink_error(self) -> None: ...
>>> emitter = CountingEmitter(MemoryEventSink(), Count())
"""

from __future__ import annotations

from typing import Protocol

import structlog

from agent.events.base import EventSink
from agent.model import Event

log = structlog.get_logger(__name__)


class EmitMetrics(Protocol):
    def event_emitted(self, type: str) -> None: ...

    def event_sink_error(self) -> None: ...


class CountingEmitter:
    """Sends events to a sink; counts what was delivered and what failed."""

    def __init__(self, sink: EventSink, metrics: EmitMetrics) -> None:
        self._sink = sink
        self._metrics = metrics

    async def emit(self, event: Event) -> bool:
        """Hand ``event`` to the sink; False (logged, counted) when the sink failed."""
        try:
            await self._sink.emit(event)
        except Exception:
            self._metrics.event_sink_error()
            log.exception("event_emit_failed", type=event.type, id=event.id)
            return False
        self._metrics.event_emitted(event.type)
        return True
