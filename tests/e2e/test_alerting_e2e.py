"""A simulator outage drives an alert pending → firing → resolved, right after the data."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import SimulatorProcess
from tests.e2e.harness import AgentProcess, agent_config, read_events, wait_until
from tests.support import free_port

pytestmark = pytest.mark.e2e

RULES = """
groups:
  - name: pilot-api
    interval: 30s
    rules:
      - alert: ApiDown
        expr: probe_success{check="api-health"} == 0
        for: 10s
        labels: {severity: critical}
        annotations:
          summary: "{{ $labels.check }} is down"
"""


def _alerts(agent: AgentProcess) -> list[dict[str, object]]:
    body = httpx.get(f"{agent.url}/api/v1/alerts", timeout=5).json()
    return list(body["data"]["alerts"])


def _alert_series(agent: AgentProcess) -> set[str]:
    return {
        line.split("alertstate=")[1].split('"')[1]
        for line in agent.metrics().splitlines()
        if line.startswith("ALERTS{") and 'alertname="ApiDown"' in line
    }


def _log_time(agent: AgentProcess, event: str) -> float:
    for line in agent.stderr.splitlines():
        if line.startswith("{") and json.loads(line).get("event") == event:
            return dt.datetime.fromisoformat(json.loads(line)["timestamp"]).timestamp()
    raise AssertionError(f"no {event} in the agent's log")


def test_outage_fires_alert_right_after_for_and_resolves(
    sim: SimulatorProcess, agent_factory: Callable[[str], AgentProcess], tmp_path: Path
) -> None:
    """pending, then firing within 1 s past `for` of the failed result, then resolved."""
    (tmp_path / "pilot.rules.yml").write_text(RULES)
    events = tmp_path / "events.jsonl"
    config = agent_config(sim, free_port(), events).replace(
        "global:\n", "rule_files: [pilot.rules.yml]\nglobal:\n  evaluation_interval: 30s\n"
    )
    agent = agent_factory(config)
    wait_until(lambda: agent.probe().get("api-health") == 1.0, 20, "api-health up")

    def rule_health() -> list[tuple[str, str]]:
        groups = httpx.get(f"{agent.url}/api/v1/rules", timeout=5).json()["data"]["groups"]
        return [(r["name"], r["health"]) for g in groups for r in g["rules"]]

    # Rules start once every check has a first result (the warm-up), then evaluate at once.
    wait_until(lambda: rule_health() == [("ApiDown", "ok")], 10, "the rule evaluated")

    sim.set_faults(outage=True)
    wait_until(lambda: [a["state"] for a in _alerts(agent)] == ["pending"], 10, "pending")
    assert _alert_series(agent) == {"pending"}
    wait_until(lambda: [a["state"] for a in _alerts(agent)] == ["firing"], 15, "firing")
    assert _alert_series(agent) == {"firing"}
    (alert,) = _alerts(agent)
    assert alert["labels"] == {
        "alertname": "ApiDown",
        "check": "api-health",
        "service": "api",
        "severity": "critical",
    }
    assert alert["annotations"] == {"summary": "api-health is down"}

    failed = next(
        e
        for e in read_events(events)
        if e["subject"] == "api-health" and str(e["type"]).endswith(".failed")
    )
    failed_at = dt.datetime.fromisoformat(str(failed["time"])).timestamp()
    beyond_for = _log_time(agent, "alert_firing") - failed_at - 10.0
    print(f"failed check result → firing alert: for (10 s) + {beyond_for * 1000:.0f} ms")
    assert 0.0 <= beyond_for < 1.0

    sim.clear_faults()
    wait_until(lambda: _alerts(agent) == [], 15, "alert resolved")
    assert _alert_series(agent) == set()
    assert _log_time(agent, "alert_resolved") > _log_time(agent, "alert_firing")
    assert agent.stop() == 0
