"""The shared state store: Redis behind a local copy and a write-behind queue.

Keys, all under ``key_prefix`` (default ``pilot-agent:``):

- ``alerts:{group_key}:{rule}``: a hash per alerting rule, labels (JSON) → alert (JSON);
- ``checks``: a hash, check name → :class:`~agent.state.base.CheckSnapshot` (JSON);
- ``watch``: a hash, series key → the watcher's entry (JSON).

Writes never raise into their caller and never wait for Redis: they update the
local :class:`~agent.state.memory.MemoryState` and a dirty map (the latest value
per key wins) that one background writer flushes in ``MULTI``/``EXEC`` batches.
While Redis cannot be reached the writer logs ``state_store_down`` once, sets
``agent_state_store_up`` to 0 and retries with exponential back-off; when Redis
answers again it logs ``state_store_up`` and writes everything dirty through.

Loads read Redis (pending local writes win over what Redis holds) within
``timeout``; when Redis is down they return the local copy, so start-up never
hangs on an unreachable Redis.

>>> store = RedisStateStore(RedisStateConfig(url="redis://127.0.0.1:6379/0"))  # doctest: +SKIP
>>> async with store:                                                          # doctest: +SKIP
...     await store.checks.save("api", snapshot)       # returns at once
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from agent.config.state import RedisStateConfig
from agent.errors import ComponentStateError
from agent.lifecycle import Component
from agent.state.base import NullStateMetrics, StateMetrics
from agent.state.codec import dumps
from agent.state.connection import redis_client
from agent.state.memory import JsonObject, Key, MemoryState
from agent.state.redis_views import RedisAlertStore, RedisCheckStore, RedisWatchStore, text
from agent.state.tasks import stop_task, surface_crash, wait_event

log = structlog.get_logger(__name__)

T = TypeVar("T")
ERRORS = (RedisError, OSError)  # OSError covers TimeoutError and ssl.SSLError
Hash = dict[bytes | str, bytes | str]


class RedisStateStore(Component):
    """Alert, check and watch state in Redis, with ``.alerts``, ``.checks`` and ``.watch`` views.

    ``batch_size`` keys go in one transaction; back-off after a failure starts at
    ``backoff[0]`` seconds and doubles up to ``backoff[1]``; an idle store PINGs
    every ``health_interval`` seconds so ``agent_state_store_up`` stays true.
    """

    name = "redis_state_store"

    def __init__(
        self,
        config: RedisStateConfig,
        *,
        metrics: StateMetrics | None = None,
        batch_size: int = 256,
        backoff: tuple[float, float] = (0.1, 5.0),
        health_interval: float = 5.0,
    ) -> None:
        self._config = config
        self._prefix = config.key_prefix
        self._metrics = metrics or NullStateMetrics()
        self._batch_size = batch_size
        self._backoff = backoff
        self._health_interval = health_interval
        self._dirty: dict[Key, Any] = {}
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._flushed = asyncio.Event()
        self._flushed.set()
        self._up: bool | None = None
        self._synced = False
        self._client: Redis | None = None
        self._task: asyncio.Task[None] | None = None
        self.memory = MemoryState(on_change=self._mark_dirty)
        self.alerts = RedisAlertStore(self)
        self.checks = RedisCheckStore(self)
        self.watch = RedisWatchStore(self)

    # -- state ---------------------------------------------------------------------------

    @property
    def up(self) -> bool | None:
        """Whether the last Redis operation succeeded (None: none finished yet)."""
        return self._up

    @property
    def pending(self) -> int:
        """Keys written locally and not yet in Redis."""
        return len(self._dirty)

    def key(self, *parts: str) -> str:
        """The Redis key of ``parts`` (joined by ``:``) under the key prefix."""
        return self._prefix + ":".join(parts)

    async def wait_flushed(self) -> None:
        """Return once every write made so far is in Redis."""
        await self._flushed.wait()

    def _mark_dirty(self, key: Key, value: Any) -> None:
        self._dirty[key] = value
        self._flushed.clear()
        self._wake.set()
        self._metrics.pending_writes(len(self._dirty))

    def _set_up(self) -> None:
        if self._up is not True:
            log.info("state_store_up", pending=len(self._dirty))
            self._metrics.store_up(True)
        self._up = True

    def _set_down(self, exc: BaseException) -> None:
        self._synced = False
        self._metrics.store_error()
        if self._up is not False:
            log.warning("state_store_down", error=_describe(exc), pending=len(self._dirty))
            self._metrics.store_up(False)
        self._up = False

    # -- lifecycle -----------------------------------------------------------------------

    async def _on_start(self) -> None:
        self._client = redis_client(self._config)
        self._task = asyncio.create_task(self._writer(), name="state-writer")
        self._task.add_done_callback(surface_crash)

    async def _on_close(self) -> None:
        # The writer is stopped by a flag, not cancelled: redis-py can swallow a
        # cancellation that arrives inside a pipeline, which would leave it running.
        self._stop.set()
        self._wake.set()
        if self._task is not None:
            await stop_task(self._task, 3 * self._config.timeout)
        if self._client is None:
            return
        try:
            async with asyncio.timeout(2 * self._config.timeout):
                while self._dirty:
                    await self._flush_batch(self._client)
        except (*ERRORS, TimeoutError) as exc:
            self._set_down(exc)
        if self._dirty:
            log.warning("state_store_unflushed", pending=len(self._dirty))
        await self._client.aclose()

    # -- the writer ----------------------------------------------------------------------

    async def _writer(self) -> None:
        assert self._client is not None
        client, delay = self._client, self._backoff[0]
        while not self._stop.is_set():
            if self._up and not self._dirty:
                self._wake.clear()
                await wait_event(self._wake, self._health_interval)
                if self._stop.is_set():
                    return
            try:
                async with asyncio.timeout(2 * self._config.timeout):
                    if not self._synced:
                        await self._resync_if_emptied(client)
                    if self._dirty:
                        await self._flush_batch(client)
                    else:
                        await client.ping()
            except ERRORS as exc:
                self._set_down(exc)
                await wait_event(self._stop, delay)
                delay = min(2 * delay, self._backoff[1])
                continue
            self._set_up()
            delay = self._backoff[0]

    async def _resync_if_emptied(self, client: Redis) -> None:
        """After (re)connecting: if Redis lost its data (a restart without persistence),
        write everything this agent holds again, not only what changed meanwhile.

        Every flush also sets the ``written`` key, so its absence means the data is gone.
        """
        if not await client.exists(self.key("written")):
            entries: list[tuple[Key, Any]] = [
                *((("alerts", g, r), v) for (g, r), v in self.memory.alerts.items()),
                *((("checks", n), v) for n, v in self.memory.checks.items()),
                *((("watch", k), v) for k, v in self.memory.watch.items()),
            ]
            added = [self._dirty.setdefault(k, v) for k, v in entries if k not in self._dirty]
            if added:
                log.warning("state_store_resync", keys=len(added))
                self._flushed.clear()
                self._metrics.pending_writes(len(self._dirty))
        self._synced = True

    async def _flush_batch(self, client: Redis) -> None:
        """Write up to ``batch_size`` dirty keys in one transaction; on failure they stay dirty."""
        batch = dict(_take(self._dirty, self._batch_size))
        try:
            async with client.pipeline(transaction=True) as pipe:
                for key, value in batch.items():
                    self._queue_write(pipe, key, value)
                pipe.set(self.key("written"), "1")
                await pipe.execute()
        except BaseException:
            for key, value in batch.items():
                self._dirty.setdefault(key, value)  # a newer value, if any, wins
            raise
        finally:
            self._metrics.pending_writes(len(self._dirty))
        self._metrics.writes(len(batch))
        if not self._dirty:
            self._flushed.set()

    def _queue_write(self, pipe: Pipeline, key: Key, value: Any) -> None:
        kind, *rest = key
        if kind == "alerts":
            redis_key = self.key("alerts", *rest)
            pipe.delete(redis_key)
            if value:
                fields = {dumps(a["labels"]): dumps(a) for a in value}
                pipe.hset(redis_key, mapping=fields)  # type: ignore[arg-type]
        elif value is None:
            pipe.hdel(self.key(kind), rest[0])
        else:
            pipe.hset(self.key(kind), rest[0], dumps(value))

    # -- loads ---------------------------------------------------------------------------

    async def read(self, what: str, fetch: Callable[[Redis], Awaitable[T]]) -> T | None:
        """``fetch(client)`` within the timeout; None (logged) when Redis is down."""
        if self._client is None:
            raise ComponentStateError(f"{self.name} is {self.state}; loads need it running")
        if self._up is False:
            log.info("state_store_load_local", what=what)
            return None
        try:
            async with asyncio.timeout(self._config.timeout):
                result = await fetch(self._client)
        except (*ERRORS, TimeoutError) as exc:
            self._set_down(exc)
            log.warning("state_store_load_failed", what=what, error=_describe(exc))
            return None
        self._set_up()
        return result

    def merge(self, kind: str, stored: Hash, validate: Callable[[JsonObject], object]) -> None:
        """Make the local ``checks`` or ``watch`` map what Redis holds, but for pending writes."""
        fresh: dict[str, JsonObject] = {}
        for raw_field, raw_value in stored.items():
            name = text(raw_field)
            try:
                value = json.loads(raw_value)
                if not isinstance(value, dict):
                    raise ValueError("not a JSON object")
                validate(value)
            except ValueError as exc:
                log.warning(
                    "state_entry_unreadable", key=self.key(kind), field=name, error=str(exc)
                )
                continue
            fresh[name] = value
        local: dict[str, JsonObject] = getattr(self.memory, kind)
        for name in [n for n in local if n not in fresh]:
            if (kind, name) not in self._dirty:
                del local[name]
        local.update({n: v for n, v in fresh.items() if (kind, n) not in self._dirty})

    def is_dirty(self, key: Key) -> bool:
        return key in self._dirty


def _take(d: dict[Key, Any], n: int) -> list[tuple[Key, Any]]:
    """Remove and return the first ``n`` items of ``d``."""
    items = []
    for key in list(d)[:n]:
        items.append((key, d.pop(key)))
    return items


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
