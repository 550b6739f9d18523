"""Alert delivery to Alertmanager, as Prometheus's notifier does it.

:meth:`AlertmanagerNotifier.send` is the rule manager's ``NotifyFunc``. It never
blocks: it adds ``global.external_labels`` (the alert's own labels win), applies
``alert_relabel_configs`` (an alert relabelled to nothing is dropped) and hands
the alerts to the event loop, which appends them to one bounded queue per
Alertmanager. Each Alertmanager has its own sender task posting batches of up
to 64 alerts to ``/api/v2/alerts`` and retrying failures with backoff
(:mod:`agent.notify.sender`); a full queue drops its oldest alerts.

On close, whatever is still queued gets one last attempt within
``close_deadline`` seconds, then the tasks and clients are closed.

Example (the composition root)::

    notifier = AlertmanagerNotifier(
        cfg.alerting,
        external_labels=cfg.global_.external_labels,
        metrics=NotifyMetricsExporter(registry),
    )
    async with notifier:
        rules = RuleManager(notify=notifier.send, resend_delay=cfg.alerting.resend_delay, ...)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence

import httpx
import structlog

from agent.config.alerting import AlertingConfig, AlertmanagerConfig
from agent.lifecycle import Component
from agent.notify.base import NoopNotifyMetrics, NotifyMetrics
from agent.notify.payload import with_labels
from agent.notify.sender import MAX_BATCH_SIZE, AlertmanagerSender
from agent.notify.targets import alertmanager_client, resolve_targets
from agent.rules.model import OutgoingAlert
from agent.tasks import call_on_loop

log = structlog.get_logger(__name__)

ClientFactory = Callable[[AlertmanagerConfig], httpx.AsyncClient]


class AlertmanagerNotifier(Component):
    """Sends alerts to every configured Alertmanager; ``send`` is safe from any thread.

    ``client_factory`` builds the HTTP client of each Alertmanager set (tests pass
    one with an ``httpx.MockTransport``); ``backoff`` is the first and the longest
    wait between retries of a failed batch, in seconds.
    """

    name = "alertmanager-notifier"

    def __init__(
        self,
        config: AlertingConfig,
        *,
        external_labels: Mapping[str, str] | None = None,
        metrics: NotifyMetrics | None = None,
        client_factory: ClientFactory = alertmanager_client,
        backoff: tuple[float, float] = (0.1, 5.0),
        close_deadline: float = 2.0,
        batch_size: int = MAX_BATCH_SIZE,
    ) -> None:
        self._config = config
        self._external_labels = dict(external_labels or {})
        self._relabel = list(config.alert_relabel_configs)
        self._metrics: NotifyMetrics = metrics or NoopNotifyMetrics()
        self._client_factory = client_factory
        self._backoff = backoff
        self._close_deadline = close_deadline
        self._batch_size = batch_size
        self._targets = resolve_targets(config)
        self._senders: list[AlertmanagerSender] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def urls(self) -> list[str]:
        """The alerts endpoint of every Alertmanager, as the metrics label them."""
        return [t.url for t in self._targets]

    def queue_lengths(self) -> dict[str, int]:
        """Alerts waiting per Alertmanager (the batch being sent included)."""
        return {s.url: len(s.queue) for s in self._senders}

    # -- the NotifyFunc ----------------------------------------------------------------

    def send(self, alerts: Sequence[OutgoingAlert]) -> None:
        """Queue ``alerts`` for every Alertmanager; returns at once, from any thread."""
        loop = self._loop
        if self._state != "running" or loop is None or not self._targets or not alerts:
            return
        prepared = with_labels(alerts, self._external_labels, self._relabel)
        if not prepared:
            return
        if not call_on_loop(loop, self._enqueue, prepared):  # closed: the agent is stopping
            log.debug("alertmanager_notifier_stopped", count=len(prepared))

    def _enqueue(self, alerts: list[OutgoingAlert]) -> None:
        if self._state != "running":
            return
        for sender in self._senders:
            sender.enqueue(alerts)

    # -- lifecycle ---------------------------------------------------------------------

    async def _on_start(self) -> None:
        self._loop = asyncio.get_running_loop()
        capacity = self._config.notification_queue_capacity
        clients: dict[int, httpx.AsyncClient] = {}
        for target in self._targets:
            key = id(target.config)
            if key not in clients:
                clients[key] = self._client_factory(target.config)
            sender = AlertmanagerSender(
                target,
                clients[key],
                capacity=capacity,
                metrics=self._metrics,
                backoff=self._backoff,
                batch_size=self._batch_size,
            )
            self._senders.append(sender)
        self._metrics.alertmanagers(self.urls, capacity)
        for sender in self._senders:
            task = asyncio.create_task(sender.run(), name=f"alertmanager-sender {sender.url}")
            task.add_done_callback(_surface_crash)
            self._tasks.append(task)
        log.info("alertmanager_notifier_started", alertmanagers=self.urls)

    async def _on_close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self._flush()
        clients = {id(s.client): s.client for s in self._senders}
        for client in clients.values():
            await client.aclose()

    async def _flush(self) -> None:
        """One last attempt at what is queued, all Alertmanagers at once, under the deadline."""
        pending = [s for s in self._senders if len(s.queue)]
        if not pending:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._close_deadline):
                await asyncio.gather(*(s.flush() for s in pending))
        for sender in pending:
            if len(sender.queue):
                log.warning(
                    "alertmanager_flush_incomplete",
                    alertmanager=sender.url,
                    count=len(sender.queue),
                )


def _surface_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("alertmanager_sender_crashed", task=task.get_name(), error=repr(task.exception()))
