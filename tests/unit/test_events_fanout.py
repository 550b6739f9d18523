"""FanoutEventSink: every sink gets every event; one failing sink stops no other."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from agent.errors import SinkError
from agent.events.base import MemoryEventSink
from agent.events.fanout import FanoutEventSink
from agent.model import Event
from exporters.events import EventDeliveryMetrics


class BrokenSink:
    def __init__(self) -> None:
        self.closed = False

    async def emit(self, event: Event) -> None:
        raise SinkError("disk full")

    async def aclose(self) -> None:
        self.closed = True
        raise OSError("close failed")


def event() -> Event:
    return Event.new(type="t", source="s", subject="a", data={}, time=0.0)


async def test_a_failing_sink_does_not_stop_the_others() -> None:
    """The healthy sink gets the event, emit does not raise, the failure is counted."""
    registry = CollectorRegistry()
    good = MemoryEventSink()
    fanout = FanoutEventSink({"jsonl": BrokenSink(), "kafka": good}, EventDeliveryMetrics(registry))
    await fanout.emit(event())
    assert len(good.events) == 1
    assert registry.get_sample_value("agent_event_sink_failures_total", {"sink": "jsonl"}) == 1.0


async def test_all_sinks_failing_raises_sink_error() -> None:
    """When no sink took the event, emit raises so the emitter counts a sink error."""
    fanout = FanoutEventSink({"a": BrokenSink(), "b": BrokenSink()})
    with pytest.raises(SinkError, match="no event sink accepted"):
        await fanout.emit(event())


async def test_close_reaches_every_sink_even_after_a_failure() -> None:
    """A sink that fails to close does not keep the next one open."""
    broken, good = BrokenSink(), MemoryEventSink()
    await FanoutEventSink({"broken": broken, "good": good}).aclose()
    assert broken.closed and good.closed


def test_a_fanout_needs_a_sink() -> None:
    """An empty fan-out is a programming error, caught at construction."""
    with pytest.raises(ValueError, match="at least one sink"):
        FanoutEventSink({})
