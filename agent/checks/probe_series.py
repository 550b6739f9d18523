"""The ``probe_*`` series one check result stands for, and writing them to the store.

One mapping serves both places that need it: the exporter (``/metrics``) and the
in-memory store (PromQL, rules). Names follow blackbox_exporter; every series
carries ``check`` plus the check's own labels.

>>> from agent.model import CheckResult
>>> r = CheckResult("api", "http", True, 0.0, 0.25, status_code=200)
>>> [(name, value) for name, _, value in probe_samples(r, {"check": "api"})]
[('probe_success', 1.0), ('probe_duration_seconds', 0.25), ('probe_http_status_code', 200.0)]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from agent.model import CheckResult
from agent.tsdb.base import Appender, Labels, labels_from, metric_name

HTTP_KINDS = frozenset({"http", "flow"})

Sample = tuple[str, dict[str, str], float]


def probe_samples(result: CheckResult, labels: Mapping[str, str]) -> Iterator[Sample]:
    """``(metric name, labels, value)`` for every series the result sets."""
    base = dict(labels)
    yield "probe_success", base, 1.0 if result.success else 0.0
    yield "probe_duration_seconds", base, result.duration_seconds
    if result.kind in HTTP_KINDS:
        yield "probe_http_status_code", base, float(result.status_code or 0)
    for phase, seconds in sorted(result.phases.items()):
        yield "probe_http_duration_seconds", {**base, "phase": phase}, seconds
    if result.ssl_earliest_cert_expiry is not None:
        yield "probe_ssl_earliest_cert_expiry", base, result.ssl_earliest_cert_expiry
    if result.ssl_last_chain_expiry is not None:
        yield "probe_ssl_last_chain_expiry_timestamp_seconds", base, result.ssl_last_chain_expiry
    for step in result.steps:
        step_labels = {**base, "step": step.name}
        yield "probe_step_success", step_labels, 1.0 if step.success else 0.0
        yield "probe_step_duration_seconds", step_labels, step.duration_seconds


class ProbeSeriesWriter:
    """Appends each result's ``probe_*`` samples to the store, with staleness.

    A series a check set last time but not this time (a flow step that did not
    run, a phase not measured) gets a stale marker, as Prometheus writes one
    when a series disappears from a scrape; so does every series of a check a
    reload removed (:meth:`forget`).

    >>> from agent.tsdb.store import SeriesStore
    >>> store = SeriesStore()
    >>> writer = ProbeSeriesWriter(store, labels_of=lambda name: {"service": "api"})
    >>> sorted(writer.record(CheckResult("api", "tcp", True, 10.0, 0.5)))
    ['probe_duration_seconds', 'probe_success']
    >>> store.label_values("__name__")
    ['probe_duration_seconds', 'probe_success']
    """

    def __init__(
        self, appender: Appender, *, labels_of: Callable[[str], Mapping[str, str]]
    ) -> None:
        self._appender = appender
        self._labels_of = labels_of
        self._written: dict[str, set[Labels]] = {}

    def record(self, result: CheckResult) -> frozenset[str]:
        """Write the result's samples; returns the metric names written (for rule triggers)."""
        t_ms = round((result.started_at + result.duration_seconds) * 1000)
        labels = {**self._labels_of(result.check), "check": result.check}
        current: set[Labels] = set()
        names: set[str] = set()
        for name, sample_labels, value in probe_samples(result, labels):
            series = labels_from({**sample_labels, "__name__": name})
            self._appender.append(series, t_ms, value)
            current.add(series)
            names.add(name)
        for gone in self._written.get(result.check, set()) - current:
            self._appender.append_stale(gone, t_ms)
            names.add(metric_name(gone))
        self._written[result.check] = current
        return frozenset(names)

    def forget(self, check: str, t_ms: int) -> None:
        """Mark every series of a check that no longer runs stale."""
        for series in self._written.pop(check, set()):
            self._appender.append_stale(series, t_ms)
