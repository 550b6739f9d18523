"""A periodic background job that its owner starts and stops; calling onto a loop.

>>> task = PeriodicTask("compact", 60.0, lambda: store.compact(now_ms()))   # doctest: +SKIP
>>> async with task: ...                                                   # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TypeVar

import structlog

from agent.lifecycle import Component

log = structlog.get_logger(__name__)

T = TypeVar("T")


def call_on_loop(loop: asyncio.AbstractEventLoop, fn: Callable[[T], object], arg: T) -> bool:
    """Run ``fn(arg)`` on ``loop``: now when called on it, else soon from its thread.

    False when ``loop`` is closed (the caller counts what is lost).
    """
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        fn(arg)
        return True
    try:
        loop.call_soon_threadsafe(fn, arg)
    except RuntimeError:
        return False
    return True


class PeriodicTask(Component):
    """Calls ``fn`` every ``interval`` seconds; a failing call is logged and the loop goes on."""

    def __init__(self, name: str, interval: float, fn: Callable[[], object]) -> None:
        self._name = name
        self._interval = interval
        self._fn = fn
        self._task: asyncio.Task[None] | None = None

    async def _on_start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self._name)
        self._task.add_done_callback(self._done)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                self._fn()
            except Exception:
                log.exception("periodic_task_failed", task=self._name)

    def _done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("periodic_task_crashed", task=self._name, error=repr(task.exception()))

    async def _on_close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def cancel_and_wait(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait for it; re-raise only a cancellation aimed at the caller."""
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        if not task.cancelled():
            raise
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
