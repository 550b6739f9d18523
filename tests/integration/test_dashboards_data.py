"""Every dashboard query returns data from an agent scraping and probing the pilot simulator.

The committed dashboards/json/*.json are read as Grafana imports them. An
in-process :class:`agent.app.Agent` scrapes the simulator, its own ``/metrics``
(job ``pilot-agent``) and a dead target, runs the demo's checks against the
simulator and evaluates the shipped rules/*.rules.yml, all every second. Faults
are injected through the simulator's admin API so that the breaker, conflict,
rollback and kill-switch panels and the alert annotations have something to
show. Then each panel query goes to the agent's ``/api/v1/query_range`` (and
each instant one also to ``/api/v1/query``) the way Grafana's Prometheus data
source sends it, with Grafana's step and its ``$__rate_interval`` /
``$__interval`` / ``$__range`` for a 1-minute range.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.app import Agent
from agent.loading import load_all
from dashboards.layout import Query, queries
from tests.conftest import SimulatorProcess
from tests.support import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "dashboards" / "json"
INTERVAL = 1.0
"""The agent's scrape, check and evaluation interval, also the data source's scrape interval."""
RANGE = 60.0
MAX_DATA_POINTS = 1000
DEADLINE = 45.0

EXCUSED = {
    ("pilot-agent-health", "Notifications to Alertmanager"): (
        "agent_notifications_* are per Alertmanager; none is configured here"
    ),
    ("pilot-agent-health", "Notification queue", "A"): (
        "agent_notifications_queue_length is per Alertmanager; none is configured here"
    ),
    ("pilot-agent-health", "Notification latency"): (
        "agent_notifications_latency_seconds is per Alertmanager; none is configured here"
    ),
    ("pilot-agent-health", "Events", "B"): "agent_events_delivered_total: no Kafka sink here",
    ("pilot-agent-health", "Events", "C"): "agent_events_dropped_total: no spool here",
    ("pilot-agent-health", "Events spooled"): "agent_events_spooled: no spool here",
    ("pilot-agent-health", "State store"): "agent_state_store_up: no Redis state store here",
    ("pilot-agent-health", "Leaders"): "agent_leader: no leader election here",
    ("pilot-agent-health", "Check misfires (10m)"): (
        "agent_check_misfires_total{check} appears with a check's first misfire; none here"
    ),
}
"""Queries allowed to return nothing, and why (by dashboard and panel, or panel and refId)."""

PENDING_ONLY = {
    "pilot-synthetic-checks": "every synthetic alert waits 1m or more (`for`) before firing",
    "pilot-agent-health": "every agent alert waits 5m or more (`for`) before firing",
}
"""Dashboards whose alerts cannot fire within the test: their annotation must match the
same alerts while pending instead."""


def _config(sim: SimulatorProcess, port: int, dead: int, tmp: Path) -> str:
    return f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
listen: 127.0.0.1:{port}
events: {{jsonl: {{path: {tmp / "events.jsonl"}}}}}
rule_files: ["{ROOT / "rules"}/*.rules.yml"]
scrape_configs:
  - job_name: pilot
    static_configs: [{{targets: ["{sim.addr}"]}}]
  - job_name: pilot-agent
    static_configs: [{{targets: ["127.0.0.1:{port}"]}}]
  - job_name: gone
    static_configs: [{{targets: ["127.0.0.1:{dead}"]}}]
checks:
  - {{name: api-health, interval: 1s, http: {{url: "{sim.url}/health"}}}}
  - name: order-flow
    interval: 1s
    flow:
      steps:
        - name: login
          method: POST
          url: {sim.url}/api/v1/auth/login
          headers: {{Content-Type: application/json}}
          body: '{{"username": "pilot", "password": "pilot-demo"}}'
          capture: {{token: {{json: $.access_token}}}}
        - name: create-order
          method: POST
          url: {sim.url}/api/v1/orders
          headers: {{Authorization: "Bearer ${{token}}", Content-Type: application/json}}
          body: '{{"customer_id": "c-1", "cylinders": 2}}'
          expect: {{status: [201]}}
  - {{name: api-tcp, interval: 1s, tcp: {{target: "{sim.addr}"}}}}
  - name: websocket
    interval: 1s
    websocket: {{url: "ws://{sim.addr}/ws", send: ping, expect: ^pong$}}
  - name: api-tls
    interval: 1s
    tls: {{target: "127.0.0.1:{sim.tls_port}", tls_config: {{insecure_skip_verify: true}}}}
"""


def _grafana_request(query: Query, now: float) -> dict[str, str]:
    """Parameters of the range query Grafana sends for the last minute."""
    interval = max(RANGE / MAX_DATA_POINTS, INTERVAL)
    step = float(query.step.removesuffix("s")) if query.step else interval
    rate_interval = max(interval + INTERVAL, 4 * INTERVAL)
    expr = (
        query.expr.replace("$__rate_interval", f"{rate_interval:g}s")
        .replace("$__interval", f"{interval:g}s")
        .replace("$__range", f"{RANGE:g}s")
    )
    start = math.floor((now - RANGE) / step) * step
    return {"query": expr, "start": f"{start:.3f}", "end": f"{now:.3f}", "step": f"{step:g}"}


async def _results(client: httpx.AsyncClient, query: Query) -> list[Any]:
    """The query's series over the last minute (and now, for instant queries)."""
    params = _grafana_request(query, time.time())
    r = await client.get("/api/v1/query_range", params=params)
    assert r.status_code == 200, (query, r.text)
    body = r.json()
    assert body["status"] == "success" and body["data"]["resultType"] == "matrix", query
    result: list[Any] = body["data"]["result"]
    if query.instant and result:
        r = await client.get("/api/v1/query", params={"query": params["query"]})
        assert r.status_code == 200 and r.json()["status"] == "success", (query, r.text)
        result = r.json()["data"]["result"]
    return result


def _excuse(query: Query) -> str | None:
    """Why this query may be empty, or ``None`` when it must return data."""
    if not query.ref:
        return PENDING_ONLY.get(query.uid)
    return EXCUSED.get((query.uid, query.panel, query.ref)) or EXCUSED.get((query.uid, query.panel))


def _required(all_queries: list[Query]) -> list[Query]:
    """Queries that must return data: the unexcused ones, and the pending variant of the
    annotations of alerts too slow to fire here."""
    required = [q for q in all_queries if _excuse(q) is None]
    required += [
        dataclasses.replace(q, expr=q.expr.replace('alertstate="firing"', 'alertstate="pending"'))
        for q in all_queries
        if not q.ref and q.uid in PENDING_ONLY
    ]
    return required


@pytest.fixture
async def agent(sim: SimulatorProcess, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an agent running on this loop; the simulator's pilot state reset after."""
    port, dead = free_port(), free_port()
    path = tmp_path / "agent.yml"
    path.write_text(_config(sim, port, dead, tmp_path))
    loaded = load_all(path)
    agent = Agent(loaded.config, rule_groups=loaded.rule_groups, config_path=path)
    started = asyncio.Event()
    task = asyncio.create_task(agent.run(started))
    try:
        await asyncio.wait_for(started.wait(), 30)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield client
    finally:
        agent.request_shutdown()
        await asyncio.wait_for(task, 30)
        async with httpx.AsyncClient(timeout=5) as admin:
            (await admin.delete(f"{sim.url}/admin/pilot")).raise_for_status()


async def _wait_for_scrapes(client: httpx.AsyncClient) -> None:
    """Until the agent has scraped the simulator and itself twice."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        r = await client.get("/api/v1/query", params={"query": "count_over_time(up[1m]) >= 2"})
        jobs = {s["metric"]["job"] for s in r.json()["data"]["result"]}
        if {"pilot", "pilot-agent"} <= jobs:
            return
        await asyncio.sleep(0.2)
    raise AssertionError("the agent did not scrape the simulator and itself")


async def _inject_faults(sim: SimulatorProcess) -> None:
    """Errors and a refused WebSocket, a kill switch, a rollback, conflicts, breakers."""
    admin = f"{sim.url}/admin/pilot"
    async with httpx.AsyncClient(timeout=5) as client:
        faults = {"error_rate": 0.05, "ws_refuse": True}
        (await client.put(f"{sim.url}/admin/faults", json=faults)).raise_for_status()
        changes = [
            ("PUT", "/flags/new_order_flow", {"kill_switch": True}),
            ("PUT", "/flags/realtime_tracking", {"evaluation_error_rate": 0.05}),
            ("POST", "/migration/rollback/start", None),
            ("PUT", "/dual-write", {"unresolved_conflicts": 3, "failure_rate": 0.05}),
            ("PUT", "/breakers/banking", {"state": "open"}),
            ("PUT", "/breakers/sms", {"state": "open"}),
        ]
        # Seven switches of one dependency in a row: flapping, and slow (10 s each).
        changes += [
            ("PUT", "/breakers/sms", {"failover": i % 2 == 0, "switch_seconds": 10})
            for i in range(7)
        ]
        for method, path, body in changes:
            r = await client.request(method, admin + path, json=body)
            r.raise_for_status()


async def _empty(client: httpx.AsyncClient, pending: list[Query]) -> list[Query]:
    """The queries that return nothing yet (all requests finish before one failure raises)."""
    results = await asyncio.gather(*(_results(client, q) for q in pending), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return [q for q, result in zip(pending, results, strict=True) if not result]


async def test_every_dashboard_query_returns_data(
    agent: httpx.AsyncClient, sim: SimulatorProcess
) -> None:
    """Every panel and annotation query succeeds on the agent's query API and returns series,
    unless excused above with a reason (slow alerts' annotations then match while pending)."""
    await _wait_for_scrapes(agent)
    await _inject_faults(sim)
    files = sorted(DASHBOARDS.glob("*.json"))
    all_queries = [q for path in files for q in queries(json.loads(path.read_text()))]
    assert len(all_queries) > 70
    named = {(q.uid, q.panel) for q in all_queries} | {(q.uid, q.panel, q.ref) for q in all_queries}
    assert set(EXCUSED) <= named, "an excuse names no query"
    empty = _required(all_queries)
    deadline = time.monotonic() + DEADLINE
    while empty and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        empty = await _empty(agent, empty)
    assert [str(q) for q in empty] == []
    for query in all_queries:  # the excused ones too must at least succeed
        await _results(agent, query)
