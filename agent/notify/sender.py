"""Delivery to one Alertmanager: its queue, its HTTP client and the task that posts.

The task takes batches of up to 64 alerts from the head of the queue and posts
each as one ``POST /api/v2/alerts``. A batch that fails for a reason that may go
away (connection refused, timeout, 5xx, 408, 429) stays at the head and is
retried after a capped exponential backoff; one that Alertmanager rejects
(any other 4xx) is dropped and counted. Each Alertmanager has its own task,
client and timeout, so a slow or dead one never delays the others.

>>> sender = AlertmanagerSender(target, client, capacity=10_000)   # doctest: +SKIP
>>> sender.enqueue(alerts); await sender.run()                      # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Sequence

import httpx
import structlog

from agent.notify.base import NoopNotifyMetrics, NotifyMetrics
from agent.notify.payload import encode
from agent.notify.queue import AlertQueue
from agent.notify.targets import AlertmanagerTarget
from agent.rules.model import OutgoingAlert

log = structlog.get_logger(__name__)

MAX_BATCH_SIZE = 64
"""Alerts per POST, as Prometheus's notifier sends them."""
_RETRIABLE_STATUS = frozenset({408, 429})


class Outcome(enum.Enum):
    SENT = "sent"
    RETRY = "retry"
    REJECTED = "rejected"


class AlertmanagerSender:
    """Queue and post loop of one Alertmanager (owned by the notifier, on its event loop)."""

    def __init__(
        self,
        target: AlertmanagerTarget,
        client: httpx.AsyncClient,
        *,
        capacity: int,
        metrics: NotifyMetrics | None = None,
        backoff: tuple[float, float] = (0.1, 5.0),
        batch_size: int = MAX_BATCH_SIZE,
    ) -> None:
        self.target = target
        self.url = target.url
        self.client = client
        self.queue: AlertQueue[OutgoingAlert] = AlertQueue(capacity)
        self._metrics: NotifyMetrics = metrics or NoopNotifyMetrics()
        self._backoff = backoff
        self._batch_size = batch_size
        server_name = target.config.tls_config.server_name
        self._extensions = {"sni_hostname": server_name} if server_name else {}
        self._log = log.bind(alertmanager=self.url)

    def enqueue(self, alerts: Sequence[OutgoingAlert]) -> None:
        """Queue ``alerts``; on overflow the oldest are dropped and counted."""
        dropped = self.queue.put(alerts)
        if dropped:
            self._metrics.dropped(self.url, dropped)
            self._log.warning(
                "alertmanager_queue_full", dropped=dropped, capacity=self.queue.capacity
            )
        self._metrics.queue_length(self.url, len(self.queue))

    async def run(self) -> None:
        """Post batches until cancelled, retrying failed ones with capped exponential backoff."""
        initial, ceiling = self._backoff
        delay = initial
        while True:
            await self.queue.wait()
            outcome = await self.post(self.queue.take(self._batch_size))
            if outcome is Outcome.RETRY:
                await asyncio.sleep(delay)
                delay = min(delay * 2, ceiling)
                continue
            delay = initial
            self._finish(outcome)

    async def flush(self) -> None:
        """One attempt at every queued batch; stops at the first that fails (used on close)."""
        while len(self.queue):
            outcome = await self.post(self.queue.take(self._batch_size))
            if outcome is Outcome.RETRY:
                return
            self._finish(outcome)

    def _finish(self, outcome: Outcome) -> None:
        count = self.queue.done()
        if outcome is Outcome.REJECTED:
            self._metrics.dropped(self.url, count)
        self._metrics.queue_length(self.url, len(self.queue))

    async def post(self, batch: Sequence[OutgoingAlert]) -> Outcome:
        """POST one batch; its outcome is measured, counted and, when it fails, logged."""
        body = encode(batch)
        start = time.perf_counter()
        status: int | None = None
        detail: str | None = None
        try:
            async with asyncio.timeout(self.target.config.timeout):
                response = await self.client.post(
                    self.url, content=body, extensions=self._extensions
                )
        except (httpx.HTTPError, OSError, TimeoutError) as exc:
            error, outcome = type(exc).__name__, Outcome.RETRY
        else:
            status = response.status_code
            error, outcome = _classify(status)
            if outcome is not Outcome.SENT:
                detail = response.text[:200]
        seconds = time.perf_counter() - start
        ok = outcome is Outcome.SENT
        self._metrics.posted(self.url, len(batch), seconds, ok=ok)
        if not ok:
            self._log.warning(
                "alertmanager_send_failed",
                count=len(batch),
                error=error,
                status=status,
                retry=outcome is Outcome.RETRY,
                detail=detail,
            )
        return outcome


def _classify(status: int) -> tuple[str, Outcome]:
    if 200 <= status < 300:
        return "", Outcome.SENT
    if 400 <= status < 500 and status not in _RETRIABLE_STATUS:
        return "HTTPStatusError", Outcome.REJECTED
    return "HTTPStatusError", Outcome.RETRY
