"""The whole `pilot-agent` process against the simulator: /metrics, events, reload, shutdown."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import SimulatorProcess
from tests.e2e.harness import (
    PILOT_AGENT,
    AgentProcess,
    agent_config,
    probe_values,
    read_events,
    wait_until,
)
from tests.support import free_port

pytestmark = pytest.mark.e2e


def test_outage_turns_probe_success_to_zero_and_back_with_events(
    sim: SimulatorProcess, agent_factory: Callable[[str], AgentProcess], tmp_path: Path
) -> None:
    """An injected outage drives probe_success 1 → 0 → 1 and writes the matching events."""
    events = tmp_path / "events.jsonl"
    agent = agent_factory(agent_config(sim, free_port(), events))
    wait_until(lambda: agent.probe().get("api-health") == 1.0, 20, "api-health up")
    wait_until(lambda: agent.probe().get("order-flow") == 1.0, 20, "order-flow up")
    steps = probe_values(agent.metrics(), "probe_step_success")
    assert steps  # per-step results are exported

    sim.set_faults(outage=True)
    wait_until(lambda: agent.probe().get("api-health") == 0.0, 15, "api-health down")
    wait_until(lambda: agent.probe().get("order-flow") == 0.0, 15, "order-flow down")
    sim.clear_faults()
    wait_until(lambda: agent.probe().get("api-health") == 1.0, 15, "api-health back up")

    assert agent.stop() == 0
    assert "Traceback" not in agent.stderr
    health = [e for e in read_events(events) if e["subject"] == "api-health"]
    kinds = [(e["type"].rsplit(".", 1)[1], e["data"].get("state")) for e in health]  # type: ignore[union-attr, index]
    first_fail = kinds.index(("state_changed", "failing"))
    assert kinds[0] == ("state_changed", "ok")
    assert ("failed", None) in kinds[first_fail:]
    assert ("state_changed", "ok") in kinds[first_fail:]
    failed = next(e for e in health if str(e["type"]).endswith(".failed"))
    assert "503" in str(failed["data"]["reason"])  # type: ignore[index]
    assert failed["specversion"] == "1.0" and failed["source"] == "pilot-agent"


def test_reload_keeps_running_config_on_bad_file_and_applies_good_one(
    sim: SimulatorProcess, agent_factory: Callable[[str], AgentProcess], tmp_path: Path
) -> None:
    """SIGHUP or /-/reload with a bad file keeps the old config; a good one adds checks."""
    events = tmp_path / "events.jsonl"
    port = free_port()
    agent = agent_factory(agent_config(sim, port, events))
    cfg = tmp_path / "agent-0.yml"
    wait_until(lambda: agent.probe().get("api-health") == 1.0, 20, "api-health up")

    cfg.write_text(cfg.read_text() + "  - name: broken\n    interval: nope\n")
    agent.proc.send_signal(signal.SIGHUP)
    reload_ok = "agent_config_last_reload_successful"
    wait_until(lambda: probe_values(agent.metrics(), reload_ok)[""] == 0.0, 10, "failed reload")
    resp = httpx.post(f"{agent.url}/-/reload", timeout=5)
    assert resp.status_code == 500 and "checks[2].interval" in resp.text
    assert agent.probe().get("api-health") is not None  # still running the old checks

    extra = f"  - name: sim-tcp\n    interval: 1s\n    tcp: {{target: {sim.addr}}}\n"
    cfg.write_text(agent_config(sim, port, events, extra))
    assert httpx.post(f"{agent.url}/-/reload", timeout=5).status_code == 200
    assert probe_values(agent.metrics(), reload_ok)[""] == 1.0
    wait_until(lambda: agent.probe().get("sim-tcp") == 1.0, 10, "new check runs")
    assert agent.stop() == 0


def test_check_config_reports_three_mistakes_and_exits_2(tmp_path: Path) -> None:
    """`pilot-agent check config` prints one located error per mistake and exits 2."""
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "checks:\n"
        "  - name: a\n    interval: 5x\n    http: {url: 'http://h/'}\n"
        "  - name: b\n    http: {url: 'ftp://h/'}\n"
        "  - name: c\n    tcp: {target: 'nohost'}\n"
    )
    out = subprocess.run(
        [*PILOT_AGENT, "check", "config", str(bad)], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 2
    lines = [line for line in out.stderr.splitlines() if line.startswith(str(bad))]
    assert [line.split(": ")[1] for line in lines] == [
        "checks[0].interval",
        "checks[1].http.url",
        "checks[2].tcp.target",
    ]
    assert f"{bad}:3:" in lines[0]
    run = subprocess.run(
        [*PILOT_AGENT, "run", "--config", str(bad)], capture_output=True, text=True, timeout=30
    )
    assert run.returncode == 2 and "checks[1].http.url" in run.stderr
    good = tmp_path / "good.yml"
    good.write_text("checks: [{name: a, tcp: {target: 'h:1'}}]\n")
    ok = subprocess.run(
        [*PILOT_AGENT, "check", "config", str(good)], capture_output=True, text=True, timeout=30
    )
    assert ok.returncode == 0, ok.stderr
