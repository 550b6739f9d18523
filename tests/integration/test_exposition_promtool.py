"""The agent's exposition passes `promtool check metrics`, lint warnings included."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from agent.checks.history import CheckHistory
from agent.config import CheckConfig
from agent.model import CheckResult, StepResult
from agent.promql.engine import PromQLEngine
from agent.rules.group import GroupEvaluator, engine_query_func
from agent.rules.model import AlertingRule, RuleGroup
from agent.tsdb.base import labels_from
from agent.tsdb.store import SeriesStore
from exporters.agent import AgentMetrics
from exporters.probe import ProbeCollector
from exporters.rules import AlertsCollector, RuleMetricsExporter
from tests.support import require_binary

pytestmark = pytest.mark.integration

T0 = 1_700_000_000.0


def _checks() -> list[CheckConfig]:
    raw: list[dict[str, Any]] = [
        {"name": "api-health", "labels": {"service": "api"}, "http": {"url": "https://a.example/"}},
        {
            "name": "order-flow",
            "labels": {"service": "shop", "team": "orders"},
            "flow": {
                "steps": [
                    {"name": "login", "url": "https://a.example/login"},
                    {"name": "checkout", "url": "https://a.example/checkout"},
                ]
            },
        },
        {"name": "api-cert", "tls": {"target": "a.example:443"}},
        {"name": "db", "labels": {"service": "db"}, "tcp": {"target": "db.example:5432"}},
    ]
    return [CheckConfig.model_validate(c) for c in raw]


def _results() -> list[CheckResult]:
    phases = {"resolve": 0.002, "connect": 0.004, "tls": 0.02, "processing": 0.08, "transfer": 0.01}
    steps = (
        StepResult("login", True, 0.06, 200),
        StepResult("checkout", False, 0.3, 503, reason="status 503"),
    )
    return [
        CheckResult(
            "api-health", "http", True, T0, 0.116, status_code=200, phases=phases,
            ssl_earliest_cert_expiry=T0 + 86400 * 60, ssl_last_chain_expiry=T0 + 86400 * 60,
        ),
        CheckResult(
            "order-flow", "flow", False, T0, 0.36, reason="step checkout: status 503",
            status_code=503, steps=steps,
        ),
        CheckResult(
            "api-cert", "tls", True, T0, 0.03,
            ssl_earliest_cert_expiry=T0 + 86400 * 60, ssl_last_chain_expiry=T0 + 86400 * 90,
        ),
        CheckResult("db", "tcp", False, T0, 5.0, reason="connect timeout"),
    ]  # fmt: skip


def _add_rules(registry: CollectorRegistry) -> None:
    """A rule group with a firing alert, exported as the agent does."""
    store = SeriesStore()
    store.append(labels_from({"__name__": "probe_success", "check": "db"}), 1000, 0.0)
    group = RuleGroup("pilot", "pilot.rules.yml", [AlertingRule("ApiDown", "probe_success == 0")])
    evaluator = GroupEvaluator(
        group, query=engine_query_func(PromQLEngine(), store), appender=store
    )
    evaluator.evaluate(2.0)
    rule_metrics = RuleMetricsExporter(registry)
    rule_metrics.group_evaluated("pilot.rules.yml;pilot", 0.002, 2.0)
    rule_metrics.rules_evaluated("pilot.rules.yml;pilot", total=1, failures=0)
    rule_metrics.iterations_missed("pilot.rules.yml;pilot", 0)
    rule_metrics.alerts_by_state("pilot.rules.yml;pilot", {"firing": 1})
    registry.register(AlertsCollector(lambda: [evaluator]))


def test_exposition_passes_promtool_lint() -> None:
    """A registry with self-metrics and realistic probe results lints clean: exit 0, no output."""
    promtool = require_binary("promtool")
    registry = CollectorRegistry()
    metrics = AgentMetrics(registry, version="0.1.0")
    history = CheckHistory()
    checks = _checks()
    ProbeCollector(history, lambda: checks, registry=registry)
    for result in _results():
        history.record(result)
        metrics.observe_result(result)
        metrics.observe_lag(result.check, 0.004)
    metrics.misfire("db")
    metrics.config_reloaded(True, now=T0)
    metrics.event_emitted("io.luckygas.pilot.check.failed")
    metrics.event_sink_error()
    _add_rules(registry)
    text = generate_latest(registry)
    assert b"probe_step_success" in text
    assert b'ALERTS{alertname="ApiDown"' in text and b"agent_rule_group_last_duration" in text
    done = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, timeout=30, check=False
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")
