"""The embedded-default notifier: each alert transition, logged readably.

Without any Alertmanager configured, alerts go to the log: one ``alert_firing``
line when an alert starts firing and one ``alert_resolved`` line when it
resolves. Re-sends of an unchanged alert stay quiet (debug level).

>>> notifier = ConsoleNotifier(clock=lambda: 100.0)
>>> notifier.send([])
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import structlog

from agent.rules.model import OutgoingAlert
from agent.tsdb.base import Labels

log = structlog.get_logger(__name__)


class ConsoleNotifier:
    """Logs alert transitions; safe to call from the rule manager's worker thread."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._firing: dict[Labels, float] = {}
        self._lock = threading.Lock()

    def send(self, alerts: Sequence[OutgoingAlert]) -> None:
        now = self._clock()
        with self._lock:
            for alert in alerts:
                self._one(alert, now)

    def _one(self, alert: OutgoingAlert, now: float) -> None:
        labels = dict(alert.labels)
        name = labels.pop("alertname", "?")
        summary = alert.annotations.get("summary") or alert.annotations.get("description", "")
        resolved = alert.ends_at <= now
        if resolved:
            if self._firing.pop(alert.labels, None) is not None:
                log.warning("alert_resolved", alertname=name, labels=labels, summary=summary)
        elif alert.labels not in self._firing:
            self._firing[alert.labels] = alert.starts_at
            log.warning("alert_firing", alertname=name, labels=labels, summary=summary)
        else:
            log.debug("alert_resent", alertname=name, labels=labels)
