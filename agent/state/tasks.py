"""Background-task helpers shared by the state store and the lease.

Their tasks are stopped by an event rather than cancelled: redis-py can swallow
a cancellation that arrives in the middle of a command (the pipeline's cleanup),
which would leave a cancelled loop running; :func:`stop_task` cancels only as a
last resort, after a grace period.

>>> import asyncio
>>> asyncio.run(wait_event(asyncio.Event(), 0.01))
False
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

log = structlog.get_logger(__name__)


async def wait_event(event: asyncio.Event, seconds: float) -> bool:
    """Wait up to ``seconds`` for ``event``; True if it is set."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
    return event.is_set()


async def stop_task(task: asyncio.Task[None], grace: float) -> None:
    """Wait up to ``grace`` seconds for a task told to stop, then cancel it."""
    done, _ = await asyncio.wait([task], timeout=grace)
    if not done:
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=grace)
    if not done:
        log.error("state_task_stuck", task=task.get_name())


def surface_crash(task: asyncio.Task[None]) -> None:
    """Done-callback: log a background task that ended with an exception."""
    if not task.cancelled() and task.exception() is not None:
        log.error("state_task_crashed", task=task.get_name(), error=repr(task.exception()))
