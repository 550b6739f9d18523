"""Rule-engine self-metrics and the ``ALERTS`` series on /metrics.

Self-metrics carry Prometheus's names with the ``agent_`` prefix
(``prometheus_rule_group_last_duration_seconds`` becomes
``agent_rule_group_last_duration_seconds``), labelled ``rule_group="file;name"``,
so the same dashboards and alerts carry over. :class:`AlertsCollector` exposes
every pending and firing alert as ``ALERTS`` and ``ALERTS_FOR_STATE`` exactly
as Prometheus writes them to its own TSDB.

>>> from prometheus_client import CollectorRegistry
>>> metrics = RuleMetricsExporter(CollectorRegistry())
>>> metrics.rules_evaluated("rules.yml;api", total=3, failures=1)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Summary
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from agent.rules.group import GroupEvaluator
from agent.rules.model import AlertState

_STATES = ("pending", "firing")


class RuleMetricsExporter:
    """Implements the rule manager's ``RuleMetrics`` on an injected registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        group = ["rule_group"]
        self._duration = Summary(
            "agent_rule_group_duration_seconds",
            "The duration of rule group evaluations.",
            registry=registry,
        )
        self._last_duration = Gauge(
            "agent_rule_group_last_duration_seconds",
            "The duration of the last rule group evaluation.",
            group,
            registry=registry,
        )
        self._last_eval = Gauge(
            "agent_rule_group_last_evaluation_timestamp_seconds",
            "The timestamp of the last rule group evaluation in seconds.",
            group,
            registry=registry,
        )
        self._iterations = Counter(
            "agent_rule_group_iterations",
            "The number of scheduled or triggered evaluations of a rule group.",
            group,
            registry=registry,
        )
        self._missed = Counter(
            "agent_rule_group_iterations_missed",
            "The number of rule group evaluations missed due to slow rule group evaluation.",
            group,
            registry=registry,
        )
        self._evaluations = Counter(
            "agent_rule_evaluations",
            "The total number of rule evaluations.",
            group,
            registry=registry,
        )
        self._failures = Counter(
            "agent_rule_evaluation_failures",
            "The total number of rule evaluation failures.",
            group,
            registry=registry,
        )
        self._alerts = Gauge(
            "agent_alerts",
            "The number of alerts of a rule group, by state.",
            ["rule_group", "state"],
            registry=registry,
        )
        self._metrics = (
            self._last_duration,
            self._last_eval,
            self._iterations,
            self._missed,
            self._evaluations,
            self._failures,
        )

    def group_evaluated(self, group_key: str, duration_seconds: float, timestamp: float) -> None:
        self._duration.observe(duration_seconds)
        self._last_duration.labels(group_key).set(duration_seconds)
        self._last_eval.labels(group_key).set(timestamp)
        self._iterations.labels(group_key).inc()

    def rules_evaluated(self, group_key: str, total: int, failures: int) -> None:
        self._evaluations.labels(group_key).inc(total)
        self._failures.labels(group_key).inc(failures)

    def iterations_missed(self, group_key: str, count: int) -> None:
        self._missed.labels(group_key).inc(count)

    def alerts_by_state(self, group_key: str, counts: Mapping[str, int]) -> None:
        for state in _STATES:
            self._alerts.labels(group_key, state).set(counts.get(state, 0))

    def group_removed(self, group_key: str) -> None:
        for metric in self._metrics:
            metric.remove_by_labels({"rule_group": group_key})
        self._alerts.remove_by_labels({"rule_group": group_key})


class AlertsCollector(Collector):
    """``ALERTS`` and ``ALERTS_FOR_STATE`` for every pending and firing alert, at scrape time."""

    def __init__(self, evaluators: Callable[[], Sequence[GroupEvaluator]]) -> None:
        self._evaluators = evaluators

    def collect(self) -> Iterable[Metric]:
        alerts = Metric("ALERTS", "Alerts of the agent's alerting rules.", "gauge")
        for_state = Metric(
            "ALERTS_FOR_STATE", "When each alert became active, in Unix seconds.", "gauge"
        )
        for evaluator in self._evaluators():
            for _, alert in evaluator.active_alerts():
                if alert.state is AlertState.INACTIVE:
                    continue
                labels = dict(alert.labels)
                alerts.add_sample("ALERTS", {**labels, "alertstate": alert.state.value}, 1.0)
                for_state.add_sample("ALERTS_FOR_STATE", labels, alert.active_at)
        return [m for m in (alerts, for_state) if m.samples]
