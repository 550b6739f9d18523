"""Exposes the latest result of every configured check as blackbox_exporter-style gauges.

Each check's series carry ``check`` plus the check's own labels, so dashboards and
alerts written for blackbox_exporter (``probe_success == 0``) work unchanged.
:meth:`ProbeCollector.collect` reads the in-memory :class:`CheckHistory` snapshot
synchronously; it never awaits and never does I/O.

>>> from prometheus_client import CollectorRegistry, generate_latest
>>> registry = CollectorRegistry()
>>> collector = ProbeCollector(CheckHistory(), checks=list, registry=registry)
>>> generate_latest(registry)
b''
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector, CollectorRegistry

from agent.checks.history import CheckHistory
from agent.checks.probe_series import probe_samples
from agent.config import CheckConfig

_HELP = {
    "probe_success": "Displays whether or not the probe was a success",
    "probe_duration_seconds": "Returns how long the probe took to complete in seconds",
    "probe_http_status_code": "Response HTTP status code",
    "probe_http_duration_seconds": "Duration of http request by phase, summed over all redirects",
    "probe_ssl_earliest_cert_expiry": "Returns earliest SSL cert expiry in unixtime",
    "probe_ssl_last_chain_expiry_timestamp_seconds": (
        "Returns last SSL chain expiry in timestamp seconds"
    ),
    "probe_step_success": "Displays whether or not each step of a flow probe was a success",
    "probe_step_duration_seconds": "Returns how long each step of a flow probe took in seconds",
}


class _Families:
    """One gauge family per metric name, created on first use, in a stable order."""

    def __init__(self) -> None:
        self._families = {name: Metric(name, doc, "gauge") for name, doc in _HELP.items()}

    def add(self, name: str, labels: dict[str, str], value: float) -> None:
        self._families[name].add_sample(name, labels, value)

    def nonempty(self) -> Iterator[Metric]:
        return (m for m in self._families.values() if m.samples)


class ProbeCollector(Collector):
    """Turns :class:`CheckHistory` into ``probe_*`` gauges at scrape time.

    Only checks that are configured *and* have a result are exposed, so a check
    removed by a reload disappears from ``/metrics`` at once.

    >>> from prometheus_client import CollectorRegistry
    >>> ProbeCollector(CheckHistory(), checks=list, registry=CollectorRegistry())
    ProbeCollector()
    """

    def __init__(
        self,
        history: CheckHistory,
        checks: Callable[[], Sequence[CheckConfig]],
        *,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._history = history
        self._checks = checks
        if registry is not None:
            registry.register(self)

    def __repr__(self) -> str:
        return "ProbeCollector()"

    def collect(self) -> Iterable[Metric]:
        families = _Families()
        for check in self._checks():
            status = self._history.get(check.name)
            if status is None:
                continue
            labels = {**check.labels, "check": check.name}
            for name, sample_labels, value in probe_samples(status.latest, labels):
                families.add(name, sample_labels, value)
        return list(families.nonempty())
