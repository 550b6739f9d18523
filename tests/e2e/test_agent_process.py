"""The whole `pilot-agent` process against the simulator: /metrics, events, reload, shutdown."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import SimulatorProcess
from tests.support import free_port, wait_for_port

pytestmark = pytest.mark.e2e

PILOT_AGENT = [sys.executable, "-m", "agent.cli"]


def _config(sim: SimulatorProcess, port: int, events: Path, extra_check: str = "") -> str:
    return f"""
global:
  external_labels: {{env: e2e}}
listen: 127.0.0.1:{port}
web:
  enable_lifecycle: true
events:
  jsonl: {{path: {events}}}
checks:
  - name: api-health
    interval: 1s
    timeout: 800ms
    labels: {{service: api}}
    http:
      url: {sim.url}/health
  - name: order-flow
    interval: 1s
    timeout: 900ms
    flow:
      steps:
        - name: login
          method: POST
          url: {sim.url}/api/v1/auth/login
          headers: {{Content-Type: application/json}}
          body: '{{"username": "pilot", "password": "pilot-demo"}}'
          capture: {{token: {{json: $.access_token}}}}
        - name: create
          method: POST
          url: {sim.url}/api/v1/orders
          headers: {{Authorization: "Bearer ${{token}}", Content-Type: application/json}}
          body: '{{"customer_id": "c-1", "cylinders": 2}}'
          expect: {{status: [201]}}
{extra_check}"""


def _probe_values(text: str, name: str) -> dict[str, float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                out[sample.labels.get("check", "")] = sample.value
    return out


def _wait_until(pred: Callable[[], bool], timeout: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if pred():
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class AgentProcess:
    def __init__(self, config: Path, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.stderr_path = config.with_suffix(".stderr")
        self._stderr = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(
            [*PILOT_AGENT, "run", "--config", str(config), "--log-format", "json"],
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def metrics(self) -> str:
        return httpx.get(f"{self.url}/metrics", timeout=5).text

    def probe(self, name: str = "probe_success") -> dict[str, float]:
        return _probe_values(self.metrics(), name)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()
        return self.proc.returncode

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()


@pytest.fixture
def agent_factory(tmp_path: Path) -> Iterator[Callable[[str], AgentProcess]]:
    started: list[AgentProcess] = []

    def start(config_text: str) -> AgentProcess:
        port = int(config_text.split("listen: 127.0.0.1:")[1].split()[0])
        cfg = tmp_path / f"agent-{len(started)}.yml"
        cfg.write_text(config_text)
        agent = AgentProcess(cfg, port)
        started.append(agent)
        wait_for_port(port, timeout=30)
        return agent

    yield start
    for agent in started:
        agent.stop()


def _events(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_outage_turns_probe_success_to_zero_and_back_with_events(
    sim: SimulatorProcess, agent_factory: Callable[[str], AgentProcess], tmp_path: Path
) -> None:
    """An injected outage drives probe_success 1 → 0 → 1 and writes the matching events."""
    events = tmp_path / "events.jsonl"
    agent = agent_factory(_config(sim, free_port(), events))
    _wait_until(lambda: agent.probe().get("api-health") == 1.0, 20, "api-health up")
    _wait_until(lambda: agent.probe().get("order-flow") == 1.0, 20, "order-flow up")
    steps = _probe_values(agent.metrics(), "probe_step_success")
    assert steps  # per-step results are exported

    sim.set_faults(outage=True)
    _wait_until(lambda: agent.probe().get("api-health") == 0.0, 15, "api-health down")
    _wait_until(lambda: agent.probe().get("order-flow") == 0.0, 15, "order-flow down")
    sim.clear_faults()
    _wait_until(lambda: agent.probe().get("api-health") == 1.0, 15, "api-health back up")

    assert agent.stop() == 0
    assert "Traceback" not in agent.stderr
    health = [e for e in _events(events) if e["subject"] == "api-health"]
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
    agent = agent_factory(_config(sim, port, events))
    cfg = tmp_path / "agent-0.yml"
    _wait_until(lambda: agent.probe().get("api-health") == 1.0, 20, "api-health up")

    cfg.write_text(cfg.read_text() + "  - name: broken\n    interval: nope\n")
    agent.proc.send_signal(signal.SIGHUP)
    reload_ok = "agent_config_last_reload_successful"
    _wait_until(lambda: _probe_values(agent.metrics(), reload_ok)[""] == 0.0, 10, "failed reload")
    resp = httpx.post(f"{agent.url}/-/reload", timeout=5)
    assert resp.status_code == 500 and "checks[2].interval" in resp.text
    assert agent.probe().get("api-health") is not None  # still running the old checks

    extra = f"  - name: sim-tcp\n    interval: 1s\n    tcp: {{target: {sim.addr}}}\n"
    cfg.write_text(_config(sim, port, events, extra))
    assert httpx.post(f"{agent.url}/-/reload", timeout=5).status_code == 200
    assert _probe_values(agent.metrics(), reload_ok)[""] == 1.0
    _wait_until(lambda: agent.probe().get("sim-tcp") == 1.0, 10, "new check runs")
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
