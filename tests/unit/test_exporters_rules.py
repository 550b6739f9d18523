"""Rule self-metrics and ALERTS on /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from agent.promql.engine import PromQLEngine
from agent.rules.group import GroupEvaluator, engine_query_func
from agent.rules.model import AlertingRule, RuleGroup
from agent.tsdb.base import labels_from
from agent.tsdb.store import SeriesStore
from exporters.rules import AlertsCollector, RuleMetricsExporter

KEY = "pilot.rules.yml;pilot"


def test_rule_metrics_follow_prometheus_names_and_go_away_with_the_group() -> None:
    """Group evaluations set Prometheus's rule-group metrics; removing the group drops them."""
    registry = CollectorRegistry()
    metrics = RuleMetricsExporter(registry)
    metrics.group_evaluated(KEY, 0.25, 1000.0)
    metrics.rules_evaluated(KEY, total=4, failures=1)
    metrics.iterations_missed(KEY, 2)
    metrics.alerts_by_state(KEY, {"pending": 1, "firing": 2, "inactive": 5})
    value = registry.get_sample_value
    group = {"rule_group": KEY}
    assert value("agent_rule_group_last_duration_seconds", group) == 0.25
    assert value("agent_rule_group_last_evaluation_timestamp_seconds", group) == 1000.0
    assert value("agent_rule_group_iterations_total", group) == 1
    assert value("agent_rule_group_iterations_missed_total", group) == 2
    assert value("agent_rule_evaluations_total", group) == 4
    assert value("agent_rule_evaluation_failures_total", group) == 1
    assert value("agent_alerts", {**group, "state": "firing"}) == 2
    assert value("agent_alerts", {**group, "state": "pending"}) == 1
    assert value("agent_rule_group_duration_seconds_count") == 1
    metrics.group_removed(KEY)
    assert value("agent_rule_group_last_duration_seconds", group) is None
    assert value("agent_alerts", {**group, "state": "firing"}) is None


def test_alerts_collector_exposes_pending_and_firing_like_prometheus() -> None:
    """ALERTS carries alertstate; ALERTS_FOR_STATE carries activeAt; both per alert."""
    store = SeriesStore()
    store.append(labels_from({"__name__": "probe_success", "check": "api"}), 1000, 0.0)
    rules = [
        AlertingRule("Down", "probe_success == 0", labels={"severity": "page"}),
        AlertingRule("DownLong", "probe_success == 0", for_seconds=60),
    ]
    evaluator = GroupEvaluator(
        RuleGroup("g", "f.yml", rules),
        query=engine_query_func(PromQLEngine(), store),
        appender=store,
    )
    evaluator.evaluate(2.0)
    registry = CollectorRegistry()
    registry.register(AlertsCollector(lambda: [evaluator]))
    value = registry.get_sample_value
    firing = {"alertname": "Down", "check": "api", "severity": "page"}
    assert value("ALERTS", {**firing, "alertstate": "firing"}) == 1.0
    assert value("ALERTS_FOR_STATE", firing) == 2.0
    pending = {"alertname": "DownLong", "check": "api", "alertstate": "pending"}
    assert value("ALERTS", pending) == 1.0
