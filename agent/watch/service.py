"""Runs the change watcher on scrape reports, in order, on one task it owns.

Scrape loops call :meth:`WatchService.submit` (a ``ScrapeListener``: synchronous,
never blocking); a consumer task feeds the reports to the watcher one at a time,
emits the resulting events in order and persists the watcher's state. The
watcher's last-seen state is restored before the first report is looked at, so
one change gives one event across restarts too. A queue that overflows (the
sink stalled) drops the oldest report, logged and counted, never silently.

>>> service = WatchService(watcher, emit=emitter.emit)        # doctest: +SKIP
>>> async with service: ...                                   # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

from agent.lifecycle import Component
from agent.model import Event
from agent.scrape.base import ScrapeReport
from agent.watch.watcher import ChangeWatcher

log = structlog.get_logger(__name__)


class WatchService(Component):
    """Feeds scrape reports to a :class:`ChangeWatcher` and emits its events."""

    def __init__(
        self,
        watcher: ChangeWatcher,
        *,
        emit: Callable[[Event], Awaitable[object]],
        max_pending: int = 1000,
    ) -> None:
        self._watcher = watcher
        self._emit = emit
        self._queue: asyncio.Queue[ScrapeReport | None] = asyncio.Queue()
        self._max_pending = max_pending
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    name = "watch service"

    async def _on_start(self) -> None:
        await self._watcher.restore()
        self._task = asyncio.create_task(self._consume(), name="change-watcher")
        self._task.add_done_callback(self._done)

    def submit(self, report: ScrapeReport) -> None:
        """Queue a scrape report (called by the scrape loops)."""
        if self._state != "running":
            return
        if self._queue.qsize() >= self._max_pending:
            with contextlib.suppress(asyncio.QueueEmpty):
                self._queue.get_nowait()
                self.dropped += 1
                log.error("watch_report_dropped", job=report.job, dropped_total=self.dropped)
        self._queue.put_nowait(report)

    async def _consume(self) -> None:
        while (report := await self._queue.get()) is not None:
            try:
                events = self._watcher.observe(report)
                for event in events:
                    await self._emit(event)
                # Baselines too: a change made while the agent is down must be found later.
                await self._watcher.persist()
            except Exception:
                log.exception("watch_report_failed", job=report.job, instance=report.instance)

    def _done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("watch_service_crashed", error=repr(task.exception()))

    async def _on_close(self) -> None:
        """Process what is queued, persist, stop."""
        if self._task is None:
            return
        self._queue.put_nowait(None)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(self._task), timeout=10)
        if not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self._watcher.persist()
