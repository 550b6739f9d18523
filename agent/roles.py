"""Leader-only work: started when this agent becomes the leader, stopped when it is not.

With leader election (two agents on one Redis), only the leader runs checks,
evaluates rules, notifies Alertmanager and emits events; the standby keeps the
rest (HTTP server, scrapes, its store) warm. :class:`LeaderRole` owns the
leader-only components in an ``AsyncExitStack`` that ``enter`` fills; ``promote``
and ``demote`` may be called any number of times, in any order, from lease
callbacks. Promotion runs as a task of its own, so a demotion or shutdown during
a slow start (the rule warm-up waits for first check results) cancels it instead
of waiting for it.

>>> import asyncio
>>> async def demo() -> list[str]:
...     seen: list[str] = []
...     async def enter(stack: AsyncExitStack) -> None:
...         seen.append("started")
...         stack.callback(seen.append, "stopped")
...     async with LeaderRole(enter) as role:
...         await role.promote()
...         await role.demote()
...     return seen
>>> asyncio.run(demo())
['started', 'stopped']
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from typing import Any

import structlog

from agent.lifecycle import Component

log = structlog.get_logger(__name__)

EnterFunc = Callable[[AsyncExitStack], Coroutine[Any, Any, None]]


class LeaderRole(Component):
    """Runs what ``enter`` puts on a stack while promoted; closes that stack on demotion."""

    def __init__(self, enter: EnterFunc) -> None:
        super().__init__()
        self._enter = enter
        self._stack: AsyncExitStack | None = None
        self._starting: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @property
    def active(self) -> bool:
        """Whether leader-only work is running (or starting)."""
        return self._stack is not None

    async def promote(self) -> None:
        """Start the leader-only work unless it runs already; returns when it has started."""
        async with self._lock:
            if self._stack is not None:
                return
            self._stack = AsyncExitStack()
            starting = asyncio.create_task(self._enter(self._stack), name="leader-start")
            self._starting = starting
        try:
            await asyncio.shield(starting)
        except asyncio.CancelledError:
            if starting.cancelled():
                return  # demoted (or shut down) while starting
            raise
        except Exception:
            log.exception("leader_start_failed")
            await self.demote()
            raise

    async def demote(self) -> None:
        """Stop the leader-only work (cancelling a start in progress); idempotent."""
        async with self._lock:
            starting, self._starting = self._starting, None
            stack, self._stack = self._stack, None
            if starting is not None and not starting.done():
                starting.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await starting
            if stack is not None:
                await stack.aclose()

    async def _on_close(self) -> None:
        await self.demote()
