"""What the notifier reports about itself: :class:`NotifyMetrics` and a no-op.

``exporters.notify.NotifyMetricsExporter`` implements it with Prometheus's
``prometheus_notifications_*`` metrics under the ``agent_`` prefix; every call
names the Alertmanager by the full URL of its alerts endpoint.

>>> NoopNotifyMetrics().posted("http://am:9093/api/v2/alerts", 3, 0.01, ok=True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class NotifyMetrics(Protocol):
    """Called by the notifier on the event loop; implementations must not block."""

    def alertmanagers(self, urls: Sequence[str], capacity: int) -> None:
        """The Alertmanagers in use and the capacity of each one's queue."""

    def posted(self, url: str, count: int, seconds: float, *, ok: bool) -> None:
        """One POST of ``count`` alerts took ``seconds``; ``ok`` False when it failed."""

    def dropped(self, url: str, count: int) -> None:
        """``count`` alerts for ``url`` were dropped (queue overflow, or rejected by it)."""

    def queue_length(self, url: str, length: int) -> None:
        """``url``'s queue now holds ``length`` alerts (the batch being sent included)."""


class NoopNotifyMetrics:
    """Discards every report (tests and tools that need no metrics)."""

    def alertmanagers(self, urls: Sequence[str], capacity: int) -> None:
        pass

    def posted(self, url: str, count: int, seconds: float, *, ok: bool) -> None:
        pass

    def dropped(self, url: str, count: int) -> None:
        pass

    def queue_length(self, url: str, length: int) -> None:
        pass
