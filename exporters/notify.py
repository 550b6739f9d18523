"""Alert delivery self-metrics: Prometheus's ``prometheus_notifications_*`` as ``agent_*``.

Every per-Alertmanager metric is labelled ``alertmanager`` with the full URL of
its alerts endpoint (``http://127.0.0.1:9093/api/v2/alerts``), as Prometheus
labels them. ``sent`` counts the alerts of every POST, failed ones included,
and ``errors`` those of failed POSTs, so ``sent - errors`` were delivered.

>>> from prometheus_client import CollectorRegistry
>>> metrics = NotifyMetricsExporter(CollectorRegistry())
>>> metrics.alertmanagers(["http://am:9093/api/v2/alerts"], capacity=10000)
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Summary

_AM = ["alertmanager"]


class NotifyMetricsExporter:
    """Implements the notifier's ``NotifyMetrics`` on an injected registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._sent = Counter(
            "agent_notifications_sent",
            "Total number of alerts sent.",
            _AM,
            registry=registry,
        )
        self._errors = Counter(
            "agent_notifications_errors",
            "Total number of sent alerts affected by errors.",
            _AM,
            registry=registry,
        )
        self._latency = Summary(
            "agent_notifications_latency_seconds",
            "Latency quantiles for sending alert notifications.",
            _AM,
            registry=registry,
        )
        self._dropped = Counter(
            "agent_notifications_dropped",
            "Total number of alerts dropped: queue overflow, or rejected by the Alertmanager.",
            _AM,
            registry=registry,
        )
        self._queue_length = Gauge(
            "agent_notifications_queue_length",
            "The number of alert notifications in the queue.",
            _AM,
            registry=registry,
        )
        self._queue_capacity = Gauge(
            "agent_notifications_queue_capacity",
            "The capacity of the alert notifications queue (per Alertmanager).",
            registry=registry,
        )
        self._discovered = Gauge(
            "agent_notifications_alertmanagers_discovered",
            "The number of alertmanagers discovered and active.",
            registry=registry,
        )

    def alertmanagers(self, urls: Sequence[str], capacity: int) -> None:
        self._discovered.set(len(urls))
        self._queue_capacity.set(capacity)
        for url in urls:  # every series exists from the start, at 0
            self._sent.labels(url)
            self._errors.labels(url)
            self._dropped.labels(url)
            self._queue_length.labels(url).set(0)

    def posted(self, url: str, count: int, seconds: float, *, ok: bool) -> None:
        self._sent.labels(url).inc(count)
        if not ok:
            self._errors.labels(url).inc(count)
        self._latency.labels(url).observe(seconds)

    def dropped(self, url: str, count: int) -> None:
        self._dropped.labels(url).inc(count)

    def queue_length(self, url: str, length: int) -> None:
        self._queue_length.labels(url).set(length)
