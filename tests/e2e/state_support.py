"""Helpers of the state end-to-end tests: agent configs, polling, and reading what they show.

The agents run as processes (:class:`~tests.e2e.harness.AgentProcess`); what is
read back is what an operator sees: ``/api/v1/alerts``, ``/metrics``,
Alertmanager's ``/api/v2/alerts``, the events log and the keys in Redis (layout:
agent/state/redis.py).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from tests.alertmanager import Arrival, WebhookRecorder
from tests.conftest import SimulatorProcess
from tests.e2e.harness import AgentProcess, agent_config, read_events
from tests.integration.conftest import RedisProcess
from tests.support import free_port

T = TypeVar("T")
Factory = Callable[[str], AgentProcess]
Json = dict[str, Any]

RULES = """groups:
  - name: state
    rules:
      - alert: ApiDown
        expr: probe_success{{check="api-health"}} == 0
        for: {for_}
        labels: {{severity: critical}}
"""
FIRING, RESOLVED = "io.luckygas.pilot.alert.firing", "io.luckygas.pilot.alert.resolved"
SENT = "agent_notifications_sent_total"


# --------------------------------------------------------------------------- set-up


def state_config(
    sim: SimulatorProcess,
    tmp_path: Path,
    *,
    state: str,
    for_: str,
    am_url: str | None = None,
    resend_delay: str = "1m",
    name: str = "agent",
) -> tuple[str, Path]:
    """An agent config (1 s checks and evaluations, rule ApiDown) and its events log."""
    (tmp_path / "state.rules.yml").write_text(RULES.format(for_=for_))
    events = tmp_path / f"{name}-events.jsonl"
    head = f"rule_files: [state.rules.yml]\nstate:\n{state}"
    if am_url is not None:
        target = am_url.removeprefix("http://")
        head += f"alerting:\n  resend_delay: {resend_delay}\n"
        head += f'  alertmanagers:\n    - static_configs: [{{targets: ["{target}"]}}]\n'
    head += "global:\n  evaluation_interval: 1s\n"
    return agent_config(sim, free_port(), events).replace("global:\n", head, 1), events


def redis_state(redis: RedisProcess, election: bool = False) -> str:
    text = f"  redis: {{url: '{redis.url}', timeout: 1s}}\n"
    if election:
        text += "  leader_election: {enabled: true, lease_ttl: 2s, renew_interval: 500ms}\n"
    return text


async def start(factory: Factory, config: str) -> AgentProcess:
    """Start an agent without blocking the loop (the webhook recorder runs in it)."""
    return await asyncio.to_thread(factory, config)


def kill_9(agent: AgentProcess) -> None:
    """kill -9: no shutdown code runs, nothing is flushed."""
    agent.proc.kill()
    agent.proc.wait(timeout=10)


# --------------------------------------------------------------------------- reading


async def until(
    probe: Callable[[], Awaitable[T | None]],
    within: float,
    what: str,
    agents: Sequence[AgentProcess] = (),
) -> T:
    """The first truthy value of ``probe`` (polled every 0.2 s); fails after ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        for agent in agents:
            if agent.proc.poll() is not None:
                raise AssertionError(f"agent exited waiting for {what}:\n{agent.stderr[-3000:]}")
        try:
            value = await probe()
        except httpx.TransportError:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.2)


def sync(read: Callable[[], T]) -> Callable[[], Awaitable[T]]:
    """``read`` (a file, no I/O wait) as a probe for :func:`until`."""

    async def probe() -> T:
        return read()

    return probe


async def alerts(http: httpx.AsyncClient, agent: AgentProcess) -> list[Json]:
    body = (await http.get(f"{agent.url}/api/v1/alerts")).json()
    return list(body["data"]["alerts"])


async def metric(
    http: httpx.AsyncClient, agent: AgentProcess, name: str, **labels: str
) -> float | None:
    """The sum of the samples called ``name`` with ``labels`` (None when there is none)."""
    text = (await http.get(f"{agent.url}/metrics")).text
    values = [
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and labels.items() <= s.labels.items()
    ]
    return sum(values) if values else None


async def metric_is(
    http: httpx.AsyncClient,
    agent: AgentProcess,
    name: str,
    value: float,
    within: float,
    **labels: str,
) -> None:
    async def probe() -> bool:
        return await metric(http, agent, name, **labels) == value

    await until(probe, within, f"{name} == {value} on {agent.url}", [agent])


async def am_alert(http: httpx.AsyncClient, am_url: str) -> Json:
    """ApiDown as Alertmanager holds it (``GET /api/v2/alerts``)."""
    alerts = (await http.get(f"{am_url}/api/v2/alerts")).json()
    (alert,) = [a for a in alerts if a["labels"]["alertname"] == "ApiDown"]
    return dict(alert)


async def stored_alerts(redis: RedisProcess) -> list[Json]:
    """Every alert in Redis: the hashes ``pilot-agent:alerts:{file;group}:{rule}``."""
    async with Redis(port=redis.port) as client:
        keys = [k async for k in client.scan_iter(match="pilot-agent:alerts:*")]
        return [json.loads(v) for k in keys for v in (await client.hgetall(k)).values()]


async def stored_firing(redis: RedisProcess) -> list[Json]:
    """The firing alerts in Redis that were sent (the write-behind has flushed)."""
    alerts = await stored_alerts(redis)
    return [a for a in alerts if a["state"] == "firing" and a["last_sent_at"] is not None]


def alert_events(events: Path, kind: str) -> list[dict[str, object]]:
    return [e for e in read_events(events) if e["type"] == kind]


def ts(rfc3339: str) -> float:
    return dt.datetime.fromisoformat(rfc3339).timestamp()


def is_resolved(arrival: Arrival) -> bool:
    return arrival.has_alert("resolved", alertname="ApiDown")


def is_firing(arrival: Arrival) -> bool:
    return arrival.has_alert("firing", alertname="ApiDown")


async def healthy(http: httpx.AsyncClient, agent: AgentProcess) -> None:
    await metric_is(http, agent, "probe_success", 1.0, 30, check="api-health")


async def fire_and_deliver(
    sim: SimulatorProcess, http: httpx.AsyncClient, agent: AgentProcess, hook: WebhookRecorder
) -> None:
    """Outage until ApiDown reaches the webhook firing."""
    await healthy(http, agent)
    sim.set_faults(outage=True)
    await hook.wait_for(is_firing, within=30)
