"""The Redis state store against real redis-server processes: layout, outages, TLS."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from structlog.testing import capture_logs

from agent.config.state import RedisStateConfig
from agent.rules.model import Alert, AlertState
from agent.state.base import CheckSnapshot
from agent.state.redis import RedisStateStore
from exporters.state import StateMetricsExporter
from tests.integration.conftest import REDIS_PASSWORD, Certs, RedisProcess, Servers
from tests.support import free_port

pytestmark = pytest.mark.integration

ALERTS = [
    Alert(
        (("alertname", "Down"), ("zone", "a")), {"summary": "s"}, AlertState.FIRING, 0.0, 10.0, 40.0
    ),
    Alert((("alertname", "Down"), ("zone", "b")), {}, AlertState.PENDING, 1.5, 20.0),
]
SNAP = CheckSnapshot("failing", 2, 100.0, 0.3, "refused", None, "refused", 100.0)


def _config(url: str, **extra: Any) -> RedisStateConfig:
    """A store configuration with a key prefix of its own (the session server is shared)."""
    return RedisStateConfig(url=url, key_prefix=f"t-{uuid.uuid4().hex[:8]}:", **extra)


def _store(config: RedisStateConfig, registry: CollectorRegistry | None = None) -> RedisStateStore:
    metrics = StateMetricsExporter(registry) if registry is not None else None
    return RedisStateStore(config, metrics=metrics, backoff=(0.05, 0.2), health_interval=0.2)


async def eventually(predicate: Callable[[], bool], within: float = 20.0) -> None:
    """Wait until ``predicate()`` holds (a metric or a flag with no event to wait on)."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 (polling a condition is the point)
            await asyncio.sleep(0.02)


async def test_alerts_checks_and_watch_round_trip_through_redis(redis_server: str) -> None:
    """What one store writes, a second store (another agent) loads; keys follow the layout."""
    config = _config(f"redis://{redis_server}/3")
    async with _store(config) as first:
        await first.alerts.save("rules.yml;api", "Down", ALERTS)
        await first.checks.save("api", SNAP)
        await first.watch.save({"breaker/sms": {"value": 2.0}})
        await asyncio.wait_for(first.wait_flushed(), 10)
    raw = Redis.from_url(f"redis://{redis_server}/3", decode_responses=True)
    try:
        fields = await raw.hgetall(f"{config.key_prefix}alerts:rules.yml;api:Down")
        assert set(fields) == {
            json.dumps([list(p) for p in a.labels], separators=(",", ":")) for a in ALERTS
        }
        checks = await raw.hgetall(f"{config.key_prefix}checks")
        assert json.loads(checks["api"])["consecutive_failures"] == 2
        assert await raw.hgetall(f"{config.key_prefix}watch") == {"breaker/sms": '{"value":2.0}'}
    finally:
        await raw.aclose()
    async with _store(config) as second:
        assert await second.alerts.load("rules.yml;api", "Down") == ALERTS
        assert await second.checks.load() == {"api": SNAP}
        assert await second.watch.load() == {"breaker/sms": {"value": 2.0}}
        await second.alerts.save("rules.yml;api", "Down", [])
        await second.checks.save("api", None)
        started = time.monotonic()
        await second.aclose()  # flushes the two deletions
        assert time.monotonic() - started < 1.5  # the writer stopped, not cancelled after 6 s
    async with _store(config) as third:
        assert await third.alerts.load("rules.yml;api", "Down") == []
        assert await third.checks.load() == {}


async def test_writes_survive_a_redis_outage(restartable_redis: RedisProcess) -> None:
    """With Redis killed, saves return at once, up drops to 0 and is logged once; after a
    restart on the same port every pending write is in Redis, and so is what the
    restarted (empty) Redis lost."""
    registry, config = CollectorRegistry(), _config(restartable_redis.url)
    sample = registry.get_sample_value
    async with _store(config, registry) as store:
        await store.checks.save("before", SNAP)
        await asyncio.wait_for(store.wait_flushed(), 10)
        assert sample("agent_state_store_up") == 1.0
        with capture_logs() as logs:
            restartable_redis.kill()
            await eventually(lambda: sample("agent_state_store_up") == 0.0)
            started = time.monotonic()
            for i in range(200):
                await store.checks.save(f"c{i}", SNAP)
            await store.alerts.save("rules.yml;api", "Down", ALERTS)
            await store.watch.save({"k": {"v": 1.0}})
            assert time.monotonic() - started < 1.0  # nothing waited for Redis
            await eventually(lambda: (sample("agent_state_store_errors_total") or 0) >= 4)
            assert sample("agent_state_store_pending_writes") == 202.0
            loaded = await asyncio.wait_for(store.checks.load(), 5)  # the local copy
            assert len(loaded) == 201
            await asyncio.to_thread(restartable_redis.start)
            await asyncio.wait_for(store.wait_flushed(), 20)
        events = [e["event"] for e in logs]
        assert events.count("state_store_down") == 1 and events.count("state_store_up") == 1
        assert sample("agent_state_store_up") == 1.0
        assert sample("agent_state_store_pending_writes") == 0.0
        # 1 key before the outage, 203 after: Redis came back empty, so "before" again
        assert sample("agent_state_store_writes_total") == 1.0 + 203.0
        assert events.count("state_store_resync") == 1
    async with _store(config) as reread:
        checks = await reread.checks.load()
        assert len(checks) == 201 and checks["c199"] == checks["before"] == SNAP
        assert await reread.alerts.load("rules.yml;api", "Down") == ALERTS
        assert await reread.watch.load() == {"k": {"v": 1.0}}


async def test_latest_write_per_key_wins_after_an_outage(restartable_redis: RedisProcess) -> None:
    """Several saves of one key during an outage end as the last one, written once."""
    registry = CollectorRegistry()
    config = _config(restartable_redis.url)
    async with _store(config, registry) as store:
        restartable_redis.kill()
        for failures in range(1, 6):
            await store.checks.save("api", CheckSnapshot("failing", failures, 1.0, 0.1))
        await store.alerts.save("rules.yml;api", "Down", ALERTS)
        await store.alerts.save("rules.yml;api", "Down", ALERTS[:1])
        assert store.pending == 2
        await asyncio.to_thread(restartable_redis.start)
        await asyncio.wait_for(store.wait_flushed(), 20)
        assert registry.get_sample_value("agent_state_store_writes_total") == 2.0
    async with _store(config) as reread:
        assert (await reread.checks.load())["api"].consecutive_failures == 5
        assert await reread.alerts.load("rules.yml;api", "Down") == ALERTS[:1]


async def test_start_and_load_do_not_hang_without_redis(servers: Servers) -> None:
    """Nothing listening, or a peer that never answers: start returns, loads return the
    (empty) local state within about the timeout, and the failure is logged."""
    for target in (f"127.0.0.1:{free_port()}", f"127.0.0.1:{servers.silent}"):
        with capture_logs() as logs:
            started = time.monotonic()
            async with _store(_config(f"redis://{target}/0", timeout=0.5)) as store:
                assert await store.checks.load() == {}
                assert await store.alerts.load("g", "r") == []
                assert await store.watch.load() == {}
                await store.checks.save("api", SNAP)
                assert await store.checks.load() == {"api": SNAP}
            assert time.monotonic() - started < 5.0
        events = [e["event"] for e in logs]
        assert "state_store_load_failed" in events and "state_store_unflushed" in events


async def test_tls_with_password_file(
    redis_tls_auth_server: str, certs: Certs, tmp_path: Path
) -> None:
    """rediss:// with our CA and a password file round-trips; a wrong password is a logged
    outage that never shows the password."""
    secret = tmp_path / "redis-password"
    secret.write_text(REDIS_PASSWORD + "\n")
    target = redis_tls_auth_server.replace("127.0.0.1", "localhost")
    tls = {"ca_file": certs.ca}
    config = _config(f"rediss://{target}/0", password_file=str(secret), tls_config=tls)
    assert config.password is not None
    async with _store(config) as store:
        await store.checks.save("api", SNAP)
        await asyncio.wait_for(store.wait_flushed(), 10)
    async with _store(config) as reread:
        assert await reread.checks.load() == {"api": SNAP}
    wrong = _config(f"rediss://{target}/0", password="not-the-pa55word", tls_config=tls)
    registry = CollectorRegistry()
    with capture_logs() as logs:
        async with _store(wrong, registry) as store:
            assert await store.checks.load() == {}
            await eventually(lambda: registry.get_sample_value("agent_state_store_up") == 0.0)
    assert "state_store_down" in [e["event"] for e in logs]
    assert "not-the-pa55word" not in repr(logs)
