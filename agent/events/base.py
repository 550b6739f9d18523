"""The event sink contract. Check code emits through this and knows no transport.

>>> class ListSink:
...     def __init__(self) -> None:
...         self.events: list[Event] = []
...     async def emit(self, event: Event) -> None:
...         self.events.append(event)
...     async def aclose(self) -> None: ...
"""

from __future__ import annotations

from typing import Protocol

from agent.model import Event


class EventSink(Protocol):
    """Accepts events in order; ``aclose`` flushes what it holds and is idempotent."""

    async def emit(self, event: Event) -> None: ...

    async def aclose(self) -> None: ...


class MemoryEventSink:
    """Keeps events in a list: the fake for unit tests.

    >>> import asyncio
    >>> sink = MemoryEventSink()
    >>> asyncio.run(sink.emit(Event.new(type="t", source="s", subject=None, data={}, time=0)))
    >>> len(sink.events)
    1
    """

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.closed = False

    async def emit(self, event: Event) -> None:
        self.events.append(event)

    async def aclose(self) -> None:
        self.closed = True
