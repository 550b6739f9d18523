"""Leader election against a real redis-server: one leader, takeover, step-down, fencing."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from agent.config.state import LeaderElectionConfig, RedisStateConfig
from agent.state.lease import RedisLease
from exporters.state import StateMetricsExporter
from tests.integration.conftest import RedisProcess

pytestmark = pytest.mark.integration

TTL, RENEW = 1.5, 0.4


class Recorder:
    """Callbacks that note what happened and when (monotonic time)."""

    def __init__(self) -> None:
        self.acquired: list[int] = []
        self.lost_at: list[float] = []

    async def on_acquired(self, token: int) -> None:
        self.acquired.append(token)

    async def on_lost(self) -> None:
        self.lost_at.append(time.monotonic())


def _lease(
    url: str,
    identity: str,
    recorder: Recorder | None = None,
    registry: CollectorRegistry | None = None,
    ttl: float = TTL,
    renew: float = RENEW,
) -> RedisLease:
    election = LeaderElectionConfig(
        enabled=True, identity=identity, lease_ttl=ttl, renew_interval=renew
    )
    metrics = None
    if registry is not None:
        metrics = StateMetricsExporter(registry, leader_election=True)
    return RedisLease(
        RedisStateConfig(url=url, timeout=0.5),
        election,
        on_acquired=recorder.on_acquired if recorder else None,
        on_lost=recorder.on_lost if recorder else None,
        metrics=metrics,
    )


async def _first_leader(*leases: RedisLease, within: float = 10.0) -> RedisLease:
    waits = {asyncio.create_task(lease.wait_leader()): lease for lease in leases}
    done, pending = await asyncio.wait(waits, timeout=within, return_when="FIRST_COMPLETED")
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    assert done, "no lease became leader"
    return waits[done.pop()]


@asynccontextmanager
async def _raw(url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


async def test_exactly_one_of_two_leads(restartable_redis: RedisProcess) -> None:
    """Two agents on one Redis: one leads, the other stands by, the key names the leader,
    and both close promptly."""
    url = restartable_redis.url
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(_lease(url, "a"))
        b = await stack.enter_async_context(_lease(url, "b"))
        leader = await _first_leader(a, b)
        for _ in range(30):  # several renew intervals
            assert [a.is_leader, b.is_leader].count(True) == 1
            await asyncio.sleep(0.05)
        assert leader.is_leader and leader.token is not None
        async with _raw(url) as raw:
            assert await raw.get("pilot-agent:leader") == leader.value
            assert leader.value == f"{leader.token}:{leader.identity}"
        started = time.monotonic()
        await stack.aclose()
        assert time.monotonic() - started < 1.0  # stopped, not left to the cancel fallback


async def test_standby_takes_over_from_a_crashed_leader(restartable_redis: RedisProcess) -> None:
    """A leader process killed with SIGKILL is replaced within 2 x ttl, with a higher token."""
    url = restartable_redis.url
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.integration.lease_holder",
        url,
        "crashing",
        str(TTL),
        str(RENEW),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        line = b""
        async with asyncio.timeout(30):
            while not line.startswith(b"acquired "):  # structlog writes to stdout too
                line = await holder.stdout.readline()
                assert line, "the lease holder exited"
        crashed_token = int(line.split()[1])
        async with _lease(url, "standby") as standby:
            await asyncio.sleep(2 * RENEW)
            assert not standby.is_leader
            holder.kill()
            killed_at = time.monotonic()
            await asyncio.wait_for(standby.wait_leader(), 4 * TTL)
            takeover = time.monotonic() - killed_at
            assert takeover < 2 * TTL, takeover
            assert standby.token is not None and standby.token > crashed_token
    finally:
        if holder.returncode is None:
            holder.kill()
        await holder.wait()


async def test_leader_that_loses_redis_steps_down_before_its_lease_expires(
    restartable_redis: RedisProcess,
) -> None:
    """With Redis gone the leader calls on_lost before last renewal + ttl; when Redis is
    back (empty) it leads again with a higher token."""
    recorder, registry = Recorder(), CollectorRegistry()
    async with _lease(restartable_redis.url, "a", recorder, registry) as lease:
        await asyncio.wait_for(lease.wait_leader(), 10)
        first_token = lease.token
        assert first_token is not None
        await asyncio.sleep(RENEW * 1.5)  # at least one renewal
        restartable_redis.kill()
        await asyncio.wait_for(lease.wait_standby(), 4 * TTL)
        async with asyncio.timeout(5):
            while not recorder.lost_at:  # noqa: ASYNC110 (the callback runs in its own task)
                await asyncio.sleep(0.01)
        assert recorder.lost_at[0] - lease.renewed_at < TTL
        assert registry.get_sample_value("agent_leader") == 0.0
        await asyncio.to_thread(restartable_redis.start)
        await asyncio.wait_for(lease.wait_leader(), 10)
        assert lease.token is not None and lease.token > first_token  # counter lost, still rises
        assert recorder.acquired == [first_token, lease.token]
        assert registry.get_sample_value("agent_leader") == 1.0
        assert registry.get_sample_value("agent_leader_transitions_total") == 3.0


async def test_leader_whose_key_was_taken_steps_down_at_its_next_renewal(
    restartable_redis: RedisProcess,
) -> None:
    """If the lease key no longer holds our value, the compare-and-PEXPIRE fails: step down."""
    async with _lease(restartable_redis.url, "a") as lease, _raw(restartable_redis.url) as raw:
        await asyncio.wait_for(lease.wait_leader(), 10)
        await raw.set("pilot-agent:leader", "999:intruder", px=60_000)
        await asyncio.wait_for(lease.wait_standby(), 2 * RENEW + 1.0)
        await asyncio.sleep(2 * RENEW)
        assert not lease.is_leader  # the intruder's lease is respected
        assert await raw.get("pilot-agent:leader") == "999:intruder"


async def test_release_hands_over_quickly_and_tokens_rise(
    restartable_redis: RedisProcess,
) -> None:
    """Closing a leader deletes its lease: a standby leads well before the ttl would have
    run out, and every acquisition carries a higher fencing token."""
    url, ttl, renew = restartable_redis.url, 3.0, 0.5
    recorders = {name: Recorder() for name in ("a", "b", "c")}
    tokens: list[int] = []
    a = _lease(url, "a", recorders["a"], ttl=ttl, renew=renew)
    b = _lease(url, "b", recorders["b"], ttl=ttl, renew=renew)
    c = _lease(url, "c", recorders["c"], ttl=ttl, renew=renew)
    await a.start()
    await asyncio.wait_for(a.wait_leader(), 10)
    tokens.append(a.token or 0)
    for current, successor in ((a, b), (b, c)):
        if successor.state == "new":
            await successor.start()
        await asyncio.sleep(2 * renew)
        assert not successor.is_leader
        released_at = time.monotonic()
        await current.aclose()
        await asyncio.wait_for(successor.wait_leader(), 10)
        assert time.monotonic() - released_at < ttl - renew  # not a lease expiry
        tokens.append(successor.token or 0)
    await c.aclose()
    assert tokens == sorted(set(tokens)) and len(tokens) == 3
    assert [r.acquired for r in recorders.values()] == [[t] for t in tokens]
    assert all(len(r.lost_at) == 1 for r in recorders.values())  # on_lost on release too
    async with _raw(url) as raw:
        assert await raw.get("pilot-agent:leader") is None
