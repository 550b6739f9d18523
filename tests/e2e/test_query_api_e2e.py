"""What /metrics showed over time is what /api/v1/query_range reads back from the store."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import SimulatorProcess
from tests.e2e.harness import AgentProcess, agent_config, probe_values, wait_until
from tests.support import free_port

pytestmark = pytest.mark.e2e


def test_query_range_matches_what_metrics_showed(
    sim: SimulatorProcess, agent_factory: Callable[[str], AgentProcess], tmp_path: Path
) -> None:
    """Every /metrics observation of a check equals the store's value at that moment."""
    agent = agent_factory(agent_config(sim, free_port(), tmp_path / "events.jsonl"))
    wait_until(lambda: agent.probe().get("api-health") == 1.0, 20, "api-health up")
    observations: list[tuple[int, int, float, float]] = []
    deadline = time.monotonic() + 7
    outage_at = time.monotonic() + 2.5
    injected = False
    while time.monotonic() < deadline:
        if not injected and time.monotonic() > outage_at:
            sim.set_faults(outage=True)
            injected = True
        before = int(time.time() * 1000)
        text = agent.metrics()
        after = int(time.time() * 1000)
        success = probe_values(text, "probe_success")["api-health"]
        duration = probe_values(text, "probe_duration_seconds")["api-health"]
        observations.append((before, after, success, duration))
        time.sleep(0.2)
    sim.clear_faults()

    start, end = observations[0][0], observations[-1][1]

    def series(query: str) -> dict[int, float]:
        r = httpx.post(
            f"{agent.url}/api/v1/query_range",
            data={"query": query, "start": start / 1000, "end": end / 1000, "step": "0.001"},
            timeout=10,
        )
        assert r.status_code == 200, r.text
        (result,) = r.json()["data"]["result"]
        return {round(t * 1000): float(v) for t, v in result["values"]}

    success_at = series('probe_success{check="api-health"}')
    duration_at = series('probe_duration_seconds{check="api-health", service="api"}')
    for before, after, success, duration in observations:
        assert success in (success_at.get(before), success_at.get(after))
        assert duration in (duration_at.get(before), duration_at.get(after))
    assert {s for _, _, s, _ in observations} == {0.0, 1.0}, "the outage must show in the data"
