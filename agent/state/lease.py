"""Leader election: one agent of several holds a lease in Redis and does the leader-only work.

The lease is the key ``{key_prefix}leader`` holding ``"{token}:{identity}"``:

- acquire: a Lua script that INCRs the fencing counter ``{key_prefix}leader:token``
  and runs ``SET key value NX PX ttl``, atomically, only when the key is absent;
  the counter starts at the current Unix time in milliseconds when it is missing,
  so tokens keep rising even after Redis lost its data;
- renew, every ``renew_interval``: compare-and-``PEXPIRE`` (only while the value is ours);
- release, on close: compare-and-``DEL``, so a standby takes over at its next poll.

A leader that cannot renew steps down (``on_lost``) at ``last renewal sent + ttl -
margin`` (:class:`~agent.state.lease_timing.LeaseTiming`), measured on the
monotonic clock, before Redis can expire its lease and let another agent in. A
standby polls every ``renew_interval``, so it takes over within ``ttl +
renew_interval`` of the leader's last renewal: under twice the ttl.

Callbacks run one after another in their own task, so a slow callback never
delays a renewal; ``is_leader`` flips before they run.

>>> lease = RedisLease(redis_config, election_config,                   # doctest: +SKIP
...                    on_acquired=start_leader_work, on_lost=stop_leader_work)
>>> async with lease:                                                  # doctest: +SKIP
...     await lease.wait_leader()
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import structlog
from redis.asyncio import Redis

from agent.config.state import LeaderElectionConfig, RedisStateConfig
from agent.lifecycle import Component
from agent.state.base import NullStateMetrics, StateMetrics
from agent.state.connection import redis_client
from agent.state.lease_timing import LeaseTiming
from agent.state.redis import ERRORS
from agent.state.tasks import stop_task, surface_crash, wait_event

log = structlog.get_logger(__name__)

_ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('SET', KEYS[2], ARGV[3]) end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token .. ':' .. ARGV[1], 'NX', 'PX', ARGV[2])
return token
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

OnAcquired = Callable[[int], Awaitable[None]]
OnLost = Callable[[], Awaitable[None]]
_Notice = tuple[Literal["acquired", "lost"], int]


def default_identity() -> str:
    """``hostname:pid``: unique per process, readable in ``GET {prefix}leader``."""
    return f"{socket.gethostname()}:{os.getpid()}"


class RedisLease(Component):
    """Takes part in leader election; ``is_leader`` and ``token`` say how it stands.

    ``on_acquired(token)`` runs after the lease is won, ``on_lost()`` after it is
    lost or released; :meth:`wait_leader` / :meth:`wait_standby` wait for a side.
    """

    name = "redis_lease"

    def __init__(
        self,
        redis: RedisStateConfig,
        election: LeaderElectionConfig,
        *,
        on_acquired: OnAcquired | None = None,
        on_lost: OnLost | None = None,
        metrics: StateMetrics | None = None,
        timing: LeaseTiming | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis
        self.identity = election.identity or default_identity()
        self._timing = timing or LeaseTiming(election.lease_ttl, election.renew_interval)
        self._key = redis.key_prefix + "leader"
        self._token_key = redis.key_prefix + "leader:token"
        self._on_acquired, self._on_lost = on_acquired, on_lost
        self._metrics = metrics or NullStateMetrics()
        self._clock = clock
        self._token = 0
        self._renewed_at = 0.0
        self._leading, self._standby = asyncio.Event(), asyncio.Event()
        self._standby.set()
        self._reachable = True
        self._stop = asyncio.Event()
        self._notices: asyncio.Queue[_Notice | None] = asyncio.Queue()
        self._client: Redis | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def is_leader(self) -> bool:
        return self._leading.is_set()

    @property
    def token(self) -> int | None:
        """The fencing token of the lease held now (None when not the leader)."""
        return self._token if self.is_leader else None

    @property
    def value(self) -> str:
        """What the lease key holds while this agent leads."""
        return f"{self._token}:{self.identity}"

    @property
    def renewed_at(self) -> float:
        """Monotonic time the last successful acquisition or renewal was sent."""
        return self._renewed_at

    async def wait_leader(self) -> None:
        await self._leading.wait()

    async def wait_standby(self) -> None:
        await self._standby.wait()

    # -- lifecycle -----------------------------------------------------------------------

    async def _on_start(self) -> None:
        self._client = redis_client(self._redis)
        self._metrics.leader(False)
        for coro, name in ((self._run(), "lease"), (self._dispatch(), "lease-callbacks")):
            task = asyncio.create_task(coro, name=name)
            task.add_done_callback(surface_crash)
            self._tasks.append(task)

    async def _on_close(self) -> None:
        # Stopped by a flag, not cancelled: redis-py can swallow a cancellation that
        # arrives during a command, which would leave the loop running.
        self._stop.set()
        run, dispatch = self._tasks or (None, None)
        if run is not None:
            await stop_task(run, self._redis.timeout + 1.0)
        if self.is_leader:
            await self._release()
        self._notices.put_nowait(None)
        if dispatch is not None:
            with contextlib.suppress(Exception):
                await dispatch  # a crash was logged by its done-callback
        if self._client is not None:
            await self._client.aclose()

    # -- the election loop ---------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stop.is_set():
            if await self._try_acquire():
                await self._hold()
            else:
                await wait_event(self._stop, self._timing.renew_interval)

    async def _call(self, script: str, keys: list[str], args: list[Any], budget: float) -> Any:
        assert self._client is not None
        async with asyncio.timeout(budget):
            return await self._client.eval(script, len(keys), *keys, *args)

    async def _try_acquire(self) -> bool:
        sent = self._clock()
        ttl_ms, now_ms = round(self._timing.ttl * 1000), round(time.time() * 1000)
        keys, args = [self._key, self._token_key], [self.identity, ttl_ms, now_ms]
        try:
            token = await self._call(_ACQUIRE, keys, args, self._redis.timeout)
        except ERRORS as exc:
            if self._reachable:
                log.warning("lease_redis_unreachable", error=str(exc) or type(exc).__name__)
            self._reachable = False
            return False
        self._reachable = True
        if token is None:
            return False
        self._token, self._renewed_at = int(token), sent
        self._transition(True, "acquired")
        return True

    async def _hold(self) -> None:
        """Renew until the lease is lost or overdue; return once stepped down."""
        timing, last_failed = self._timing, False
        while True:
            now = self._clock()
            wake = timing.next_attempt_at(
                renewed_at=self._renewed_at, now=now, last_failed=last_failed
            )
            if await wait_event(self._stop, max(0.0, wake - now)):
                return  # closing: the lease is released by _on_close
            sent = self._clock()
            if timing.must_step_down(renewed_at=self._renewed_at, now=sent):
                self._transition(False, "renewal_overdue")
                return
            budget = min(
                timing.renewal_timeout(renewed_at=self._renewed_at, now=sent), self._redis.timeout
            )
            try:
                renewed = await self._call(
                    _RENEW, [self._key], [self.value, round(timing.ttl * 1000)], budget
                )
            except ERRORS as exc:
                # Retried every retry interval until the step-down time: warn once.
                report = log.debug if last_failed else log.warning
                report(
                    "leader_renew_failed", token=self._token, error=str(exc) or type(exc).__name__
                )
                last_failed = True
                continue
            if not renewed:
                self._transition(False, "lease_lost")
                return
            self._renewed_at, last_failed = sent, False

    async def _release(self) -> None:
        try:
            await self._call(_RELEASE, [self._key], [self.value], self._redis.timeout)
        except ERRORS as exc:
            log.warning(
                "leader_release_failed", token=self._token, error=str(exc) or type(exc).__name__
            )
        self._transition(False, "released")

    def _transition(self, leading: bool, reason: str) -> None:
        if leading:
            self._standby.clear()
            self._leading.set()
            log.info("leader_acquired", identity=self.identity, token=self._token)
        else:
            self._leading.clear()
            self._standby.set()
            report = log.info if reason == "released" else log.warning
            report("leader_lost", identity=self.identity, token=self._token, reason=reason)
        self._metrics.leader(leading)
        self._notices.put_nowait(("acquired" if leading else "lost", self._token))

    async def _dispatch(self) -> None:
        while (notice := await self._notices.get()) is not None:
            kind, token = notice
            try:
                if kind == "acquired" and self._on_acquired is not None:
                    await self._on_acquired(token)
                elif kind == "lost" and self._on_lost is not None:
                    await self._on_lost()
            except Exception:
                log.exception("leader_callback_failed", callback=f"on_{kind}", token=token)
