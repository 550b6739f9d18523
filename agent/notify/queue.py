"""The bounded queue of alerts waiting for one Alertmanager.

A full queue drops its *oldest* alerts, as Prometheus's notifier does: a newer
alert carries the newer state of the same alert, and the rule manager re-sends
every firing alert each ``resend_delay`` anyway. The batch being sent is held
at the head of the queue until :meth:`AlertQueue.done`, so a failed POST is
retried with the same alerts and an interrupted one is not lost; it counts
towards the capacity (and is the first to go on overflow) like any queued alert.

Used on the event loop only; the notifier hops there before it enqueues.

>>> q = AlertQueue(capacity=3)
>>> q.put(["a", "b", "c", "d"]), q.take(2), len(q)
(1, ['b', 'c'], 3)
>>> q.done(), q.take(2)
(2, ['d'])
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class AlertQueue(Generic[T]):
    """FIFO with a capacity; overflow drops the oldest; the batch in flight stays held."""

    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self._held: list[T] = []
        self._queued: deque[T] = deque()
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._held) + len(self._queued)

    def put(self, items: Sequence[T]) -> int:
        """Append ``items``; returns how many of the oldest alerts were dropped to fit them."""
        excess = len(self) + len(items) - self.capacity
        dropped = max(excess, 0)
        if excess > 0:
            from_held = min(excess, len(self._held))
            del self._held[:from_held]
            excess -= from_held
            for _ in range(min(excess, len(self._queued))):
                self._queued.popleft()
                excess -= 1
            items = items[excess:] if excess > 0 else items
        self._queued.extend(items)
        if len(self):
            self._ready.set()
        return dropped

    def take(self, limit: int) -> list[T]:
        """The batch to send: the held one again, else up to ``limit`` from the head."""
        if not self._held:
            for _ in range(min(limit, len(self._queued))):
                self._held.append(self._queued.popleft())
        return list(self._held)

    def done(self) -> int:
        """The held batch is finished with (sent, or given up); returns how many it held."""
        count = len(self._held)
        self._held = []
        if not len(self):
            self._ready.clear()
        return count

    async def wait(self) -> None:
        """Return once the queue holds at least one alert."""
        while not len(self):
            await self._ready.wait()
