"""The probe collector and the agent's self-metrics, read back through the text format."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families

from agent.checks.history import CheckHistory
from agent.config import CheckConfig
from agent.model import CheckResult, StepResult
from exporters.agent import AgentMetrics
from exporters.probe import ProbeCollector


def _check(name: str, kind: str = "http", **labels: str) -> CheckConfig:
    specs: dict[str, Any] = {
        "http": {"url": "http://api.example/health"},
        "flow": {"steps": [{"name": "login", "url": "http://api.example/login"}]},
        "tls": {"target": "api.example:443"},
        "tcp": {"target": "db.example:5432"},
    }
    return CheckConfig.model_validate({"name": name, "labels": labels, kind: specs[kind]})


def _families(registry: CollectorRegistry) -> dict[str, Metric]:
    text = generate_latest(registry).decode()
    return {m.name: m for m in text_string_to_metric_families(text)}


def _samples(family: Metric) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples}


def _probe(checks: Sequence[CheckConfig], *results: CheckResult) -> CollectorRegistry:
    history = CheckHistory()
    for result in results:
        history.record(result)
    registry = CollectorRegistry()
    ProbeCollector(history, lambda: checks, registry=registry)
    return registry


HTTP_OK = CheckResult(
    check="api",
    kind="http",
    success=True,
    started_at=1_700_000_000.0,
    duration_seconds=0.125,
    status_code=200,
    phases={"resolve": 0.001, "connect": 0.002, "tls": 0.01, "processing": 0.1, "transfer": 0.012},
    ssl_earliest_cert_expiry=1_800_000_000.0,
    ssl_last_chain_expiry=1_800_000_000.0,
)


def test_http_result_becomes_blackbox_gauges() -> None:
    """An http result gives probe_success, duration, status code, phases and TLS expiry."""
    registry = _probe([_check("api", service="api", env="pilot")], HTTP_OK)
    fams = _families(registry)
    base = (("check", "api"), ("env", "pilot"), ("service", "api"))
    assert _samples(fams["probe_success"]) == {base: 1.0}
    assert _samples(fams["probe_duration_seconds"]) == {base: 0.125}
    assert _samples(fams["probe_http_status_code"]) == {base: 200.0}
    phases = _samples(fams["probe_http_duration_seconds"])
    assert phases[(*base[:2], ("phase", "processing"), base[2])] == 0.1
    assert len(phases) == 5
    assert _samples(fams["probe_ssl_earliest_cert_expiry"]) == {base: 1_800_000_000.0}
    assert _samples(fams["probe_ssl_last_chain_expiry_timestamp_seconds"]) == {
        base: 1_800_000_000.0
    }
    assert fams["probe_success"].type == "gauge"
    assert fams["probe_success"].documentation == "Displays whether or not the probe was a success"


def test_flow_result_exposes_each_step() -> None:
    """A flow result gives per-step success and duration series labelled with the step."""
    result = CheckResult(
        check="order",
        kind="flow",
        success=False,
        started_at=1.0,
        duration_seconds=0.5,
        status_code=500,
        reason="step checkout: status 500",
        steps=(
            StepResult("login", True, 0.1, 200),
            StepResult("checkout", False, 0.4, 500, reason="status 500"),
        ),
    )
    fams = _families(_probe([_check("order", "flow")], result))
    steps = {s.labels["step"]: s.value for s in fams["probe_step_success"].samples}
    assert steps == {"login": 1.0, "checkout": 0.0}
    durations = {s.labels["step"]: s.value for s in fams["probe_step_duration_seconds"].samples}
    assert durations == {"login": 0.1, "checkout": 0.4}
    assert _samples(fams["probe_success"]) == {(("check", "order"),): 0.0}
    assert _samples(fams["probe_http_status_code"]) == {(("check", "order"),): 500.0}


def test_unknown_status_code_is_zero_and_non_http_kinds_have_none() -> None:
    """An http run without an answer reports status 0; tls and tcp checks report no status."""
    refused = CheckResult("api", "http", False, 1.0, 0.01, reason="connection refused")
    cert = CheckResult("cert", "tls", True, 1.0, 0.02, ssl_earliest_cert_expiry=2e9)
    port = CheckResult("db", "tcp", True, 1.0, 0.003)
    checks = [_check("api"), _check("cert", "tls"), _check("db", "tcp")]
    fams = _families(_probe(checks, refused, cert, port))
    assert _samples(fams["probe_http_status_code"]) == {(("check", "api"),): 0.0}
    assert _samples(fams["probe_ssl_earliest_cert_expiry"]) == {(("check", "cert"),): 2e9}
    assert "probe_ssl_last_chain_expiry_timestamp_seconds" not in fams
    assert "probe_http_duration_seconds" not in fams
    assert len(fams["probe_success"].samples) == 3


def test_checks_with_different_label_sets_give_valid_text_and_openmetrics() -> None:
    """Each sample carries its own label set, and both formats parse back intact."""
    checks = [_check("a", team="pay"), _check("b", region="eu", tier="1"), _check("c")]
    results = [CheckResult(c.name, "http", True, 1.0, 0.01, status_code=204) for c in checks]
    registry = _probe(checks, *results)
    fams = _families(registry)
    assert {tuple(sorted(s.labels)) for s in fams["probe_success"].samples} == {
        ("check", "team"),
        ("check", "region", "tier"),
        ("check",),
    }
    text = generate_openmetrics(registry).decode()  # type: ignore[no-untyped-call]
    om = {m.name: m for m in parse_openmetrics(text)}  # type: ignore[no-untyped-call]
    assert len(om["probe_success"].samples) == 3


def test_only_configured_checks_with_results_are_exposed() -> None:
    """A check without a result yet, or one a reload removed, has no series."""
    gone = CheckResult("removed", "http", True, 1.0, 0.01, status_code=200)
    registry = _probe([_check("api"), _check("new")], HTTP_OK, gone)
    checks = {s.labels["check"] for s in _families(registry)["probe_success"].samples}
    assert checks == {"api"}
    assert generate_latest(_probe([])) == b""


def test_collector_uses_only_the_injected_registry() -> None:
    """Nothing lands on prometheus_client's global registry."""
    _probe([_check("api")], HTTP_OK)
    AgentMetrics(CollectorRegistry(), version="9.9.9")
    assert REGISTRY.get_sample_value("probe_success", {"check": "api"}) is None
    assert REGISTRY.get_sample_value("agent_build_info", {"version": "9.9.9"}) is None


@pytest.fixture
def metrics() -> tuple[AgentMetrics, CollectorRegistry]:
    registry = CollectorRegistry()
    return AgentMetrics(registry, version="1.2.3"), registry


def test_check_runs_are_counted_by_result(metrics: tuple[AgentMetrics, CollectorRegistry]) -> None:
    """Both result series exist from the first run, and each run increments its own."""
    agent, registry = metrics
    agent.observe_result(HTTP_OK)
    value = registry.get_sample_value
    assert value("agent_check_runs_total", {"check": "api", "result": "success"}) == 1.0
    assert value("agent_check_runs_total", {"check": "api", "result": "failure"}) == 0.0
    agent.observe_result(CheckResult("api", "http", False, 2.0, 0.1, reason="timeout"))
    assert value("agent_check_runs_total", {"check": "api", "result": "failure"}) == 1.0


def test_lag_misfires_events_and_sink_errors(
    metrics: tuple[AgentMetrics, CollectorRegistry],
) -> None:
    """Lag lands in 1 ms..5 s buckets; misfires, events and sink errors are counted."""
    agent, registry = metrics
    agent.observe_lag("api", 0.003)
    agent.observe_lag("api", 7.0)
    value = registry.get_sample_value
    lag: dict[str, str] = {}
    assert value("agent_check_schedule_lag_seconds_bucket", {"le": "0.001"}) == 0.0
    assert value("agent_check_schedule_lag_seconds_bucket", {"le": "0.005"}) == 1.0
    assert value("agent_check_schedule_lag_seconds_bucket", {"le": "5.0"}) == 1.0
    assert value("agent_check_schedule_lag_seconds_count", lag) == 2.0
    lag = {"check": "api"}
    agent.misfire("api")
    agent.event_emitted("io.luckygas.pilot.check.failed")
    agent.event_sink_error()
    assert value("agent_check_misfires_total", lag) == 1.0
    assert value("agent_events_emitted_total", {"type": "io.luckygas.pilot.check.failed"}) == 1.0
    assert value("agent_event_sink_errors_total") == 1.0


def test_config_reload_gauges_follow_prometheus_semantics(
    metrics: tuple[AgentMetrics, CollectorRegistry],
) -> None:
    """A failed reload clears the success flag but keeps the last success timestamp."""
    agent, registry = metrics
    agent.config_reloaded(True, now=1000.0)
    agent.config_reloaded(False, now=2000.0)
    value = registry.get_sample_value
    assert value("agent_config_last_reload_successful") == 0.0
    assert value("agent_config_last_reload_success_timestamp_seconds") == 1000.0
    agent.config_reloaded(True, now=3000.0)
    assert value("agent_config_last_reload_successful") == 1.0
    assert value("agent_config_last_reload_success_timestamp_seconds") == 3000.0


def test_build_info_and_process_metrics(metrics: tuple[AgentMetrics, CollectorRegistry]) -> None:
    """agent_build_info is a constant 1 gauge, and process and python metrics are present."""
    _, registry = metrics
    fams = _families(registry)
    (info,) = fams["agent_build_info"].samples
    assert info.value == 1.0
    assert info.labels["version"] == "1.2.3"
    assert info.labels["python_version"].count(".") == 2
    assert fams["agent_build_info"].type == "gauge"
    assert "process_cpu_seconds" in fams
    assert "python_info" in fams


def test_forget_check_removes_only_that_checks_series(
    metrics: tuple[AgentMetrics, CollectorRegistry],
) -> None:
    """After a reload removed a check, its labelled series are gone and others stay."""
    agent, registry = metrics
    for name in ("api", "db"):
        agent.observe_result(CheckResult(name, "http", True, 1.0, 0.01))
        agent.observe_lag(name, 0.01)
        agent.misfire(name)
    agent.forget_check("api")
    text = generate_latest(registry).decode()
    assert 'check="api"' not in text
    assert text.count('check="db"') > 3
