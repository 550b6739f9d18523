"""`pilot-agent demo` runs the simulator and agent, injects an outage, recovers, exits 0."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import free_port

pytestmark = pytest.mark.e2e


def test_demo_shows_where_to_look_and_records_outage_and_recovery(tmp_path: Path) -> None:
    """The demo prints its URLs, its checks fail during the outage and recover after it."""
    env = {
        **os.environ,
        "PILOT_DEMO_LISTEN": f"127.0.0.1:{free_port()}",
        "PILOT_DEMO_SIM": f"127.0.0.1:{free_port()}",
        "PILOT_DEMO_SIM_TLS": f"127.0.0.1:{free_port()}",
        "PYTHONUNBUFFERED": "1",
    }
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent.cli",
            "demo",
            "--dir",
            str(tmp_path),
            "--outage-after",
            "6",
            "--outage-for",
            "16",
            "--duration",
            "34",
            "--log-format",
            "json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=90,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"http://{env['PILOT_DEMO_LISTEN']}/" in out.stdout
    assert "Outage injected" in out.stdout and "Outage over" in out.stdout
    assert "Traceback" not in out.stderr
    events = [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]
    health = [
        e["data"]["state"]
        for e in events
        if e["subject"] == "api-health" and e["type"].endswith("state_changed")
    ]
    assert health == ["ok", "failing", "ok"]
    checks = {e["subject"] for e in events}
    assert {"api-health", "api-ready", "order-flow", "api-tcp", "websocket", "api-tls"} <= checks
    logged = [json.loads(x) for x in out.stderr.splitlines() if x.startswith("{")]
    fired = {e["alertname"] for e in logged if e["event"] == "alert_firing"}
    resolved = {e["alertname"] for e in logged if e["event"] == "alert_resolved"}
    assert "PilotApiDown" in fired and "PilotApiDown" in resolved
