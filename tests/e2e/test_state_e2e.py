"""Restarts, Redis outages and the hot standby, with the real process, Redis and Alertmanager.

Each test runs the ``pilot-agent`` process (killed with SIGKILL where it says
kill -9) against the simulator, a redis-server of its own (``restartable_redis``)
or a snapshot file, and where it matters Alertmanager 0.25 with a webhook
recorder. What is asserted is what an operator sees: ``/api/v1/alerts``,
``/metrics``, Alertmanager's ``/api/v2/alerts``, the webhook, the events log and
the keys in Redis (layout: agent/state/redis.py); helpers in tests/e2e/state_support.py.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from tests.alertmanager import WebhookRecorder, run_alertmanager, webhook_config
from tests.conftest import SimulatorProcess
from tests.e2e.harness import AgentProcess
from tests.e2e.state_support import (
    FIRING,
    RESOLVED,
    SENT,
    Factory,
    Json,
    alert_events,
    alerts,
    am_alert,
    fire_and_deliver,
    healthy,
    is_firing,
    is_resolved,
    kill_9,
    metric,
    metric_is,
    redis_state,
    start,
    state_config,
    stored_alerts,
    stored_firing,
    sync,
    ts,
    until,
)
from tests.integration.conftest import RedisProcess

pytestmark = pytest.mark.e2e


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


# --------------------------------------------------------------------------- restarts (Redis)


async def test_pending_alert_keeps_active_at_across_kill_9(
    sim: SimulatorProcess,
    agent_factory: Factory,
    restartable_redis: RedisProcess,
    http: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    """After kill -9 a pending alert comes back with its activeAt and fires at activeAt + for."""
    config, events = state_config(sim, tmp_path, state=redis_state(restartable_redis), for_="10s")
    agent = await start(agent_factory, config)
    await healthy(http, agent)
    sim.set_faults(outage=True)

    async def pending() -> list[Json]:
        return [a for a in await alerts(http, agent) if a["state"] == "pending"]

    (before,) = await until(pending, 15, "ApiDown pending", [agent])
    active_at = ts(before["activeAt"])
    await until(lambda: stored_alerts(restartable_redis), 5, "the alert in Redis")
    # Killed 3 s into `for`, so a `for` restarted by the new process would end visibly late.
    await asyncio.sleep(max(0.0, active_at + 3.0 - time.time()))
    kill_9(agent)
    restarted_at = time.time()
    again = await start(agent_factory, config)

    (after,) = await until(lambda: alerts(http, again), 20, "ApiDown restored", [again])
    assert (after["state"], after["activeAt"]) == ("pending", before["activeAt"])
    firing = sync(lambda: alert_events(events, FIRING))
    (fired,) = await until(firing, 20, "firing event", [again])
    fired_at = ts(str(fired["data"]["starts_at"]))  # type: ignore[index]
    print(f"fired {fired_at - active_at:.3f} s after activeAt (for: 10 s)")
    assert active_at + 9.999 <= fired_at < min(active_at + 14.0, restarted_at + 10.0)
    assert [a["state"] for a in await alerts(http, again)] == ["firing"]


async def test_firing_alert_survives_kill_9_without_a_notification_burst(
    sim: SimulatorProcess,
    agent_factory: Factory,
    restartable_redis: RedisProcess,
    http: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    """A firing alert restored after kill -9 is re-sent at last-sent + resend_delay, not at once."""
    async with (
        WebhookRecorder() as hook,
        run_alertmanager(tmp_path, webhook_config(hook.url)) as (am_url, _),
    ):
        state = redis_state(restartable_redis)
        config, events = state_config(
            sim, tmp_path, state=state, for_="1s", am_url=am_url, resend_delay="10s"
        )
        agent = await start(agent_factory, config)
        await fire_and_deliver(sim, http, agent, hook)
        in_am = await am_alert(http, am_url)
        (led,) = await alerts(http, agent)
        (stored,) = await until(lambda: stored_firing(restartable_redis), 5, "alert in Redis")
        resend_due = stored["last_sent_at"] + 10.0
        assert len(alert_events(events, FIRING)) == 1
        kill_9(agent)

        again = await start(agent_factory, config)
        iterations = "agent_rule_group_iterations_total"
        await until(lambda: metric(http, again, iterations), 20, "a first evaluation", [again])
        first = await metric(http, again, iterations)
        assert resend_due - time.time() > 2.0, "the restart took too long to see the wait"
        while time.time() < resend_due - 0.5:  # absence needs a window: several evaluations
            assert await metric(http, again, SENT) == 0.0, "re-sent before resend_delay"
            await asyncio.sleep(0.25)
        assert (await metric(http, again, iterations) or 0.0) >= (first or 0.0) + 1.0
        await until(lambda: metric(http, again, SENT), 5, "the re-send", [again])
        print(f"re-sent {time.time() - resend_due:.2f} s after last-sent + resend_delay")
        assert time.time() - resend_due < 3.0

        (now_led,) = await alerts(http, again)
        assert (now_led["state"], now_led["activeAt"]) == ("firing", led["activeAt"])
        assert len(alert_events(events, FIRING)) == 1, "alert.firing announced again"
        in_am_now = await am_alert(http, am_url)
        assert in_am_now["startsAt"] == in_am["startsAt"]
        assert in_am_now["updatedAt"] != in_am["updatedAt"]
        assert not any(is_resolved(a) for a in hook.arrivals)


async def test_alert_cleared_while_the_agent_was_down_resolves_at_restart(
    sim: SimulatorProcess,
    agent_factory: Factory,
    restartable_redis: RedisProcess,
    http: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    """An outage that ended while the agent was dead is resolved by its first evaluations."""
    async with (
        WebhookRecorder() as hook,
        run_alertmanager(tmp_path, webhook_config(hook.url)) as (am_url, _),
    ):
        state = redis_state(restartable_redis)
        config, events = state_config(sim, tmp_path, state=state, for_="1s", am_url=am_url)
        agent = await start(agent_factory, config)
        await fire_and_deliver(sim, http, agent, hook)
        await until(lambda: stored_firing(restartable_redis), 5, "the sent alert in Redis")
        kill_9(agent)
        sim.clear_faults()

        restarted_at = time.time()
        again = await start(agent_factory, config)
        arrival = await hook.wait_for(is_resolved, within=30)
        (alert,) = [a for a in arrival.alerts if a["labels"]["alertname"] == "ApiDown"]
        resolved_at = ts(alert["endsAt"])  # the evaluation that resolved it
        print(
            f"restart → resolving evaluation {resolved_at - restarted_at:.2f} s, "
            f"→ webhook {arrival.received_at - restarted_at:.2f} s"
        )
        # Start-up plus the warm-up (a first result of each 1 s check), then AM's 1 s group.
        assert restarted_at < resolved_at < restarted_at + 10.0
        assert arrival.received_at - resolved_at < 5.0
        logged = sync(lambda: alert_events(events, RESOLVED))
        (resolved,) = await until(logged, 10, "alert.resolved event", [again])
        assert resolved["subject"] == alert["fingerprint"]
        assert len(alert_events(events, FIRING)) == 1


# --------------------------------------------------------------------------- Redis outage


async def test_agent_keeps_working_through_a_redis_outage(
    sim: SimulatorProcess,
    agent_factory: Factory,
    restartable_redis: RedisProcess,
    http: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    """With Redis dead the agent checks, alerts and notifies; Redis back gets what it missed."""
    async with (
        WebhookRecorder() as hook,
        run_alertmanager(tmp_path, webhook_config(hook.url)) as (am_url, _),
    ):
        state = redis_state(restartable_redis)
        config, _events = state_config(sim, tmp_path, state=state, for_="1s", am_url=am_url)
        agent = await start(agent_factory, config)
        await healthy(http, agent)
        await metric_is(http, agent, "agent_state_store_up", 1.0, 10)

        restartable_redis.kill()  # SIGKILL: every key is lost with it
        await metric_is(http, agent, "agent_state_store_up", 0.0, 15)
        sim.set_faults(outage=True)
        await hook.wait_for(is_firing, within=30)
        assert await metric(http, agent, "probe_success", check="api-health") == 0.0
        assert (await metric(http, agent, "agent_state_store_pending_writes") or 0.0) > 0

        await asyncio.to_thread(restartable_redis.start)  # same port, empty
        await metric_is(http, agent, "agent_state_store_up", 1.0, 15)
        (stored,) = await until(lambda: stored_firing(restartable_redis), 10, "alert in Redis")
        assert dict(stored["labels"])["alertname"] == "ApiDown"
        (alert,) = await alerts(http, agent)
        assert abs(stored["active_at"] - ts(alert["activeAt"])) < 0.001
        async with Redis(port=restartable_redis.port) as client:
            checks = await client.hgetall("pilot-agent:checks")
        api = json.loads(checks[b"api-health"])
        assert api["state"] == "failing" and api["consecutive_failures"] >= 1
        await metric_is(http, agent, "agent_state_store_pending_writes", 0.0, 10)


# --------------------------------------------------------------------------- hot standby


async def test_standby_takes_over_a_firing_alert_without_resetting_it(
    sim: SimulatorProcess,
    agent_factory: Factory,
    restartable_redis: RedisProcess,
    http: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    """kill -9 of the leader: the standby leads within twice the ttl and re-sends the same alert."""
    async with (
        WebhookRecorder() as hook,
        run_alertmanager(tmp_path, webhook_config(hook.url)) as (am_url, _),
    ):
        state = redis_state(restartable_redis, election=True)
        agents, logs = [], []
        for name in ("a", "b"):
            config, events = state_config(
                sim, tmp_path, state=state, for_="1s", am_url=am_url, resend_delay="3s", name=name
            )
            agents.append(await start(agent_factory, config))
            logs.append(events)

        async def one_leader() -> list[float | None] | None:
            roles = [await metric(http, a, "agent_leader") for a in agents]
            return roles if roles in ([1.0, 0.0], [0.0, 1.0]) else None

        roles = await until(one_leader, 20, "exactly one leader", agents)
        lead = roles.index(1.0)
        leader, standby, standby_events = agents[lead], agents[1 - lead], logs[1 - lead]
        await fire_and_deliver(sim, http, leader, hook)
        (led,) = await alerts(http, leader)
        await until(lambda: stored_firing(restartable_redis), 5, "the sent alert in Redis")
        assert await metric(http, standby, "agent_leader") == 0.0
        assert await alerts(http, standby) == []  # a standby evaluates nothing

        kill_9(leader)
        killed = time.monotonic()
        in_am = await am_alert(http, am_url)  # as the dead leader left it
        await metric_is(http, standby, "agent_leader", 1.0, 10)
        takeover = time.monotonic() - killed
        await until(lambda: metric(http, standby, SENT), 15, "a re-send by the new leader")
        print(f"takeover {takeover:.2f} s after kill -9 (ttl 2 s)")
        assert takeover < 2 * 2.0

        (now_led,) = await alerts(http, standby)
        assert (now_led["state"], now_led["activeAt"]) == ("firing", led["activeAt"])
        in_am_now = await am_alert(http, am_url)
        assert in_am_now["startsAt"] == in_am["startsAt"]
        assert in_am_now["updatedAt"] != in_am["updatedAt"]  # the new leader's re-send
        assert in_am_now["status"]["state"] == "active"
        assert not any(is_resolved(a) for a in hook.arrivals)
        assert alert_events(standby_events, RESOLVED) == []
        assert alert_events(standby_events, FIRING) == []  # a continuation, not a new alert


# --------------------------------------------------------------------------- snapshot file


def _snapshot_active_ats(path: Path) -> list[float]:
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    return [a["active_at"] for rules in data["alerts"].values() for v in rules.values() for a in v]


async def _no_alerts(http: httpx.AsyncClient, agent: AgentProcess) -> bool:
    return await alerts(http, agent) == []


async def test_snapshot_file_keeps_a_pending_alert_across_restarts(
    sim: SimulatorProcess, agent_factory: Factory, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    """Without Redis, the snapshot keeps activeAt across SIGTERM and (once written) kill -9."""
    snapshot = tmp_path / "state.json"

    def config(interval: str) -> str:
        state = f"  snapshot_file: state.json\n  snapshot_interval: {interval}\n"
        return state_config(sim, tmp_path, state=state, for_="5m")[0]

    agent = await start(agent_factory, config("1h"))  # written on shutdown only
    await healthy(http, agent)
    sim.set_faults(outage=True)
    (before,) = await until(lambda: alerts(http, agent), 15, "ApiDown pending", [agent])
    assert not snapshot.exists()
    assert agent.stop() == 0  # SIGTERM
    assert _snapshot_active_ats(snapshot) == [pytest.approx(ts(before["activeAt"]), abs=1e-3)]

    again = await start(agent_factory, config("1s"))
    (after,) = await until(lambda: alerts(http, again), 20, "ApiDown restored", [again])
    assert (after["state"], after["activeAt"]) == ("pending", before["activeAt"])

    # kill -9 loses only what the last periodic snapshot did not hold: use a new alert.
    sim.clear_faults()
    await until(lambda: _no_alerts(http, again), 15, "ApiDown gone", [again])
    sim.set_faults(outage=True)
    (second,) = await until(lambda: alerts(http, again), 15, "ApiDown pending again", [again])
    assert second["activeAt"] != before["activeAt"]
    second_at = pytest.approx(ts(second["activeAt"]), abs=1e-3)
    written = sync(lambda: _snapshot_active_ats(snapshot) == [second_at])
    await until(written, 5, "the new alert in the snapshot")
    kill_9(again)
    third = await start(agent_factory, config("1s"))
    (restored,) = await until(lambda: alerts(http, third), 20, "ApiDown restored", [third])
    assert (restored["state"], restored["activeAt"]) == ("pending", second["activeAt"])
