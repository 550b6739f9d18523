"""The agent's own metrics: check runs, scheduling lag, reloads, events, the process.

Names follow Prometheus's conventions for its own self-metrics
(``prometheus_config_last_reload_successful`` becomes
``agent_config_last_reload_successful``), so the same alerts carry over.

>>> from prometheus_client import CollectorRegistry
>>> metrics = AgentMetrics(CollectorRegistry(), version="0.1.0")
>>> metrics.config_reloaded(True, now=1700000000.0)
"""

from __future__ import annotations

import platform

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

from agent.model import CheckResult

LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class AgentMetrics:
    """Self-metrics of one agent, registered on an injected registry.

    >>> from prometheus_client import CollectorRegistry
    >>> registry = CollectorRegistry()
    >>> metrics = AgentMetrics(registry, version="0.1.0")
    >>> metrics.misfire("api")
    >>> registry.get_sample_value("agent_check_misfires_total", {"check": "api"})
    1.0
    """

    def __init__(self, registry: CollectorRegistry, *, version: str) -> None:
        self._runs = Counter(
            "agent_check_runs",
            "Check runs completed, by result.",
            ["check", "result"],
            registry=registry,
        )
        self._lag = Histogram(
            "agent_check_schedule_lag_seconds",
            "How late check runs started compared with their schedule.",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self._misfires = Counter(
            "agent_check_misfires",
            "Scheduled check runs skipped because the previous run was still going or too late.",
            ["check"],
            registry=registry,
        )
        build_info = Gauge(
            "agent_build_info",
            "A metric with a constant '1' value labeled by version and python_version.",
            ["version", "python_version"],
            registry=registry,
        )
        build_info.labels(version, platform.python_version()).set(1)
        self._reload_ok = Gauge(
            "agent_config_last_reload_successful",
            "Whether the last configuration reload attempt was successful.",
            registry=registry,
        )
        self._reload_ts = Gauge(
            "agent_config_last_reload_success_timestamp_seconds",
            "Timestamp of the last successful configuration reload.",
            registry=registry,
        )
        self._events = Counter(
            "agent_events_emitted",
            "Events handed to the event sink, by CloudEvents type.",
            ["type"],
            registry=registry,
        )
        self._sink_errors = Counter(
            "agent_event_sink_errors",
            "Events the event sink failed to accept.",
            registry=registry,
        )
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)

    def observe_result(self, result: CheckResult) -> None:
        """Count one finished run; both result series exist from the first run on."""
        success = self._runs.labels(result.check, "success")
        failure = self._runs.labels(result.check, "failure")
        (success if result.success else failure).inc()

    def observe_lag(self, check: str, seconds: float) -> None:
        # Not labelled by check: with a thousand checks that would be 14,000 series.
        self._lag.observe(max(0.0, seconds))

    def misfire(self, check: str) -> None:
        self._misfires.labels(check).inc()

    def config_reloaded(self, success: bool, now: float) -> None:
        """Record a reload attempt; the timestamp moves only when it succeeded."""
        self._reload_ok.set(1 if success else 0)
        if success:
            self._reload_ts.set(now)

    def event_emitted(self, type: str) -> None:
        self._events.labels(type).inc()

    def event_sink_error(self) -> None:
        self._sink_errors.inc()

    def forget_check(self, name: str) -> None:
        """Drop every series of a check that a reload removed."""
        for metric in (self._runs, self._misfires):
            metric.remove_by_labels({"check": name})
