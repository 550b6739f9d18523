"""Scraping the simulator's pilot metrics: each change driven through its admin API is one
event with before/after values, and the new values answer /api/v1/query."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from agent.watch import watcher as watcher_module
from tests.conftest import SimulatorProcess
from tests.e2e.harness import AgentProcess, agent_config, read_events, wait_until
from tests.support import free_port

pytestmark = pytest.mark.e2e


def _watch_rules() -> list[dict[str, Any]]:
    """The shipped pilot watch list, with the stall threshold shortened for the test."""
    path = Path(watcher_module.__file__).with_name("pilot.yml")
    rules: list[dict[str, Any]] = yaml.safe_load(path.read_text())["rules"]
    for rule in rules:
        if "stale_timestamp" in rule:
            rule["stale_timestamp"]["max_age"] = "4s"
    return rules


def _query(agent: AgentProcess, expr: str) -> list[float]:
    r = httpx.get(f"{agent.url}/api/v1/query", params={"query": expr}, timeout=5)
    return [float(s["value"][1]) for s in r.json()["data"]["result"]]


def test_each_admin_change_is_exactly_one_event(
    sim: SimulatorProcess, agent_factory: Callable[[str], AgentProcess], tmp_path: Path
) -> None:
    """Flag flip, kill switch, stall, rollback and breaker open: one event each, queryable."""
    admin = f"{sim.url}/admin/pilot"
    httpx.delete(admin, timeout=5).raise_for_status()
    events = tmp_path / "events.jsonl"
    scrape = {
        "scrape_configs": [
            {
                "job_name": "pilot-backend",
                "scrape_interval": "1s",
                "static_configs": [{"targets": [sim.addr]}],
            }
        ],
        "watch": {"rules": _watch_rules(), "state_file": str(tmp_path / "watch.json")},
    }
    config = agent_config(sim, free_port(), events) + yaml.safe_dump(scrape)
    agent = agent_factory(config)
    wait_until(lambda: _query(agent, 'up{job="pilot-backend"}') == [1.0], 20, "target up")
    time.sleep(2.5)  # a couple of scrapes: every series has its baseline

    httpx.put(f"{admin}/flags/new_order_flow", json={"enabled": False}, timeout=5)
    httpx.put(f"{admin}/flags/route_optimisation", json={"kill_switch": True}, timeout=5)
    httpx.post(f"{admin}/migration/stall", timeout=5).raise_for_status()
    httpx.put(f"{admin}/breakers/sms", json={"state": "open"}, timeout=5).raise_for_status()
    wanted = {
        ("io.luckygas.pilot.flag.disabled", "flag/new_order_flow"),
        ("io.luckygas.pilot.flag.kill_switch_engaged", "flag/route_optimisation"),
        ("io.luckygas.pilot.breaker.state_changed", "breaker/sms"),
        ("io.luckygas.pilot.migration.stalled", "migration"),
    }

    def seen() -> Counter[tuple[str, str]]:
        return Counter((str(e["type"]), str(e["subject"])) for e in read_events(events))

    wait_until(lambda: wanted <= set(seen()), 20, "flag, kill switch, breaker, stall events")
    httpx.post(f"{admin}/migration/rollback/start", timeout=5).raise_for_status()
    started = ("io.luckygas.pilot.migration.rollback_started", "migration")
    wait_until(lambda: started in seen(), 10, "rollback event")
    time.sleep(2.5)  # more scrapes of the same state must not repeat any event

    counts = seen()
    for key in [*wanted, started]:
        assert counts[key] == 1, (key, counts)
    by_type = {str(e["type"]): e for e in read_events(events)}
    flag = by_type["io.luckygas.pilot.flag.disabled"]["data"]
    assert (flag["before"], flag["after"]) == (1.0, 0.0)  # type: ignore[index]
    breaker = by_type["io.luckygas.pilot.breaker.state_changed"]["data"]
    assert (breaker["before_name"], breaker["after_name"]) == ("closed", "open")  # type: ignore[index]
    assert _query(agent, 'feature_flag_enabled{flag="new_order_flow"}') == [0.0]
    assert _query(agent, 'feature_flag_kill_switch_engaged{flag="route_optimisation"}') == [1.0]
    assert _query(agent, 'circuit_breaker_state{dependency="sms"}') == [2.0]
    assert _query(agent, "migration_rollback_in_progress") == [1.0]
    assert agent.stop() == 0
