"""Running the whole `pilot-agent` process in end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import SimulatorProcess

PILOT_AGENT = [sys.executable, "-m", "agent.cli"]


def agent_config(sim: SimulatorProcess, port: int, events: Path, extra_check: str = "") -> str:
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


def probe_values(text: str, name: str) -> dict[str, float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                out[sample.labels.get("check", "")] = sample.value
    return out


def wait_until(pred: Callable[[], bool], timeout: float, what: str) -> float:
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
        return probe_values(self.metrics(), name)

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


def read_events(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]
