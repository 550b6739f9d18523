"""Writing to the store from a worker thread: every write is handed to the loop's thread.

>>> appender = LoopAppender(store, asyncio.get_running_loop())   # doctest: +SKIP
"""

from __future__ import annotations

import asyncio

from agent.tsdb.base import Appender, Labels


class LoopAppender:
    """An :class:`~agent.tsdb.base.Appender` safe to call from any thread.

    Writes are applied in order on the event loop's thread (the only one that
    touches the store); the returned value is True (accepted for writing).
    """

    def __init__(self, target: Appender, loop: asyncio.AbstractEventLoop) -> None:
        self._target = target
        self._loop = loop

    def append(self, labels: Labels, t_ms: int, value: float) -> bool:
        self._loop.call_soon_threadsafe(self._target.append, labels, t_ms, value)
        return True

    def append_stale(self, labels: Labels, t_ms: int) -> bool:
        self._loop.call_soon_threadsafe(self._target.append_stale, labels, t_ms)
        return True
