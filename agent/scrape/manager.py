"""Runs the scrape jobs: one pool per job, one :class:`ScrapeLoop` per target.

Each job (scrape pool) has its own HTTP client and its targets from
``static_configs`` and ``file_sd_configs``; targets go through
``relabel_configs`` (see :func:`~agent.scrape.discovery.build_target`).
:meth:`ScrapeManager.apply` is also the reload: a job whose settings did not
change keeps its loops; a changed job gets new loops that carry on each
target's series (no stale markers in between); a target or job that is gone
stops and its series get stale markers at once. File changes re-sync only
their own job.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog

from agent.checks.tlsutil import build_ssl_context
from agent.config import ScrapeConfig
from agent.errors import AgentError
from agent.lifecycle import Component
from agent.scrape.base import ScrapeListener
from agent.scrape.discovery import (
    DroppedTarget,
    FileSDWatcher,
    InvalidTarget,
    Target,
    TargetGroup,
    build_target,
    static_groups,
)
from agent.scrape.parser import accept_header
from agent.scrape.target import (
    USER_AGENT,
    NoopScrapeMetrics,
    ScrapeLoop,
    ScrapeMetrics,
    TargetStatus,
)
from agent.tsdb.base import Appender, Labels

log = structlog.get_logger(__name__)

DEFAULT_SCRAPE_TIMEOUT = 10.0

ClientFactory = Callable[[ScrapeConfig], httpx.AsyncClient]
_Key = tuple[Labels, str]


def scrape_client(cfg: ScrapeConfig) -> httpx.AsyncClient:
    """The job's HTTP client: auth, TLS, Prometheus's Accept and Accept-Encoding headers.

    Raises :class:`~agent.errors.CheckFailed` when a TLS file cannot be loaded.
    """
    headers = {"User-Agent": USER_AGENT, "Accept": accept_header(), "Accept-Encoding": "gzip"}
    auth: httpx.BasicAuth | None = None
    if cfg.basic_auth is not None:
        password = cfg.basic_auth.password
        secret = password.get_secret_value() if password is not None else ""
        auth = httpx.BasicAuth(cfg.basic_auth.username, secret)
    if cfg.authorization is not None and cfg.authorization.credentials is not None:
        creds = cfg.authorization.credentials.get_secret_value()
        headers["Authorization"] = f"{cfg.authorization.type} {creds}"
    return httpx.AsyncClient(
        verify=build_ssl_context(cfg.tls_config),
        auth=auth,
        headers=headers,
        timeout=None,  # the loop bounds the whole scrape
        trust_env=False,
        follow_redirects=True,
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=100),
    )


def job_timing(cfg: ScrapeConfig, global_interval: float) -> tuple[float, float]:
    """The job's interval and timeout: defaults from ``global``, timeout at most 10s."""
    interval = cfg.scrape_interval or global_interval
    timeout = cfg.scrape_timeout or min(DEFAULT_SCRAPE_TIMEOUT, interval)
    return interval, timeout


@dataclass(eq=False)
class _Pool:
    """One job: its settings, client, file_sd watchers, loops and dropped targets."""

    config: ScrapeConfig
    interval: float
    timeout: float
    client: httpx.AsyncClient
    watchers: list[FileSDWatcher] = field(default_factory=list)
    loops: dict[_Key, ScrapeLoop] = field(default_factory=dict)
    dropped: list[DroppedTarget] = field(default_factory=list)
    stopped: list[asyncio.Task[None]] = field(default_factory=list)

    def same_job(self, cfg: ScrapeConfig, interval: float, timeout: float) -> bool:
        return (self.config, self.interval, self.timeout) == (cfg, interval, timeout)


class ScrapeManager(Component):
    """Scrapes every job's targets and writes the samples to ``appender``.

    ``base_dir`` is where relative ``file_sd_configs`` paths start (the config
    file's directory). The lead wires it in the composition root like this::

        scrapes = ScrapeManager(
            appender=store, clock=time.time,
            global_scrape_interval=cfg.global_.scrape_interval,
            base_dir=config_path.parent,
            listeners=[watcher.on_scrape, lambda r: rules.trigger(names_of(r))],
            metrics=ScrapeMetricsExporter(registry),
        )
        async with scrapes:                   # inside the app's AsyncExitStack
            scrapes.apply(cfg.scrape_configs)  # and again on every reload
            ...                                # ctx.scrape_targets = scrapes.targets
    """

    def __init__(
        self,
        *,
        appender: Appender,
        clock: Callable[[], float],
        global_scrape_interval: float,
        base_dir: str | os.PathLike[str],
        listeners: Sequence[ScrapeListener],
        metrics: ScrapeMetrics | None = None,
        global_host: str | None = None,
        file_sd_poll_interval: float = 2.0,
        client_factory: ClientFactory = scrape_client,
    ) -> None:
        self._appender = appender
        self._clock = clock
        self._global_interval = global_scrape_interval
        self._base_dir = base_dir
        self._listeners = list(listeners)
        self._metrics: ScrapeMetrics = metrics or NoopScrapeMetrics()
        self._global_host = global_host
        self._poll = file_sd_poll_interval
        self._client_factory = client_factory
        self._pools: dict[str, _Pool] = {}
        self._retired: list[_Pool] = []  # replaced before start: clients still to close
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle -------------------------------------------------------------------

    async def _on_start(self) -> None:
        """Start every loop and file watcher."""
        for pool in self._pools.values():
            for watcher in pool.watchers:
                watcher.start()
            for loop in pool.loops.values():
                loop.start()
        retired, self._retired = self._retired, []
        for pool in retired:
            self._spawn(self._dispose(pool), f"scrape-dispose:{pool.config.job_name}")

    async def _on_close(self) -> None:
        """Stop every loop (no stale markers: the agent is stopping) and close clients."""
        pools = [*self._pools.values(), *self._retired]
        self._pools, self._retired = {}, []
        for pool in pools:
            for loop in pool.loops.values():
                task = loop.cancel()
                if task is not None:
                    pool.stopped.append(task)
            pool.loops = {}
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        for pool in pools:
            await self._dispose(pool)

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("scrape_task_crashed", task=task.get_name(), exc_info=task.exception())

    async def _dispose(self, pool: _Pool) -> None:
        await asyncio.gather(*pool.stopped, return_exceptions=True)
        for watcher in pool.watchers:
            await watcher.aclose()
        await pool.client.aclose()

    # -- configuration -----------------------------------------------------------------

    def apply(
        self, configs: Sequence[ScrapeConfig], *, global_scrape_interval: float | None = None
    ) -> None:
        """Use these jobs from now on (also the reload); unchanged jobs keep their loops."""
        if self._state == "closed":
            log.warning("scrape_apply_after_close")
            return
        if global_scrape_interval is not None:
            self._global_interval = global_scrape_interval
        wanted = {cfg.job_name: cfg for cfg in configs}
        for name in [n for n in self._pools if n not in wanted]:
            self._remove_pool(self._pools.pop(name))
        for name, cfg in wanted.items():
            interval, timeout = job_timing(cfg, self._global_interval)
            old = self._pools.get(name)
            if old is not None and old.same_job(cfg, interval, timeout):
                continue  # unchanged: its loops go on
            pool = self._new_pool(cfg, interval, timeout)
            if pool is None:
                continue  # the old pool, if any, keeps running
            self._pools[name] = pool
            self._sync(pool, old)
            if old is not None:
                self._remove_pool(old)

    def _new_pool(self, cfg: ScrapeConfig, interval: float, timeout: float) -> _Pool | None:
        try:
            client = self._client_factory(cfg)
        except AgentError as exc:
            log.error("scrape_job_invalid", job=cfg.job_name, error=str(exc))
            return None
        pool = _Pool(cfg, interval, timeout, client)
        for sd in cfg.file_sd_configs:
            on_change = functools.partial(self._on_discovery, pool)
            watcher = FileSDWatcher(sd, self._base_dir, on_change, poll_interval=self._poll)
            watcher.refresh(force=True)
            if self._state == "running":
                watcher.start()
            pool.watchers.append(watcher)
        return pool

    def _remove_pool(self, pool: _Pool) -> None:
        """Retire a replaced or removed pool: stale markers for loops not carried over."""
        for loop in list(pool.loops.values()):
            self._retire(pool, loop, stale=True)
        pool.loops = {}
        if pool.config.job_name not in self._pools:
            self._metrics.job_removed(pool.config.job_name)
        if self._state == "running":
            self._spawn(self._dispose(pool), f"scrape-dispose:{pool.config.job_name}")
        else:
            self._retired.append(pool)

    def _on_discovery(self, pool: _Pool) -> None:
        if self._state != "closed" and self._pools.get(pool.config.job_name) is pool:
            self._sync(pool)

    def _discover(self, pool: _Pool) -> tuple[list[Target], list[DroppedTarget]]:
        groups: list[TargetGroup] = static_groups(pool.config)
        groups += [g for watcher in pool.watchers for g in watcher.groups()]
        targets: list[Target] = []
        dropped: list[DroppedTarget] = []
        for group in groups:
            for address in group.targets:
                try:
                    found = build_target(
                        pool.config,
                        address,
                        group.labels,
                        interval=pool.interval,
                        timeout=pool.timeout,
                    )
                except InvalidTarget as exc:
                    job = pool.config.job_name
                    log.warning(
                        "scrape_target_invalid", job=job, source=group.source, error=str(exc)
                    )
                    continue
                if isinstance(found, DroppedTarget):
                    dropped.append(found)
                else:
                    targets.append(found)
        return targets, dropped

    def _sync(self, pool: _Pool, old: _Pool | None = None) -> None:
        """Match the pool's loops to its targets now; ``old`` hands over its loops' series."""
        targets, dropped = self._discover(pool)
        previous = old.loops if old is not None else {}
        fresh: dict[_Key, ScrapeLoop] = {}
        for target in targets:
            key = (target.labels, target.url)
            if key in fresh:
                continue  # the same target twice
            loop = pool.loops.pop(key, None)
            if loop is not None and loop.target == target:
                fresh[key] = loop
                continue
            before, source = (loop, pool) if loop is not None else (previous.pop(key, None), old)
            if before is not None and source is not None:
                self._retire(source, before, stale=False)
            fresh[key] = self._new_loop(pool, target, before)
        for loop in pool.loops.values():
            self._retire(pool, loop, stale=True)
        pool.loops, pool.dropped = fresh, dropped
        job = pool.config.job_name
        self._metrics.targets_changed(job, active=len(fresh), dropped=len(dropped))
        log.info("scrape_targets_synced", job=job, active=len(fresh), dropped=len(dropped))

    def _new_loop(self, pool: _Pool, target: Target, before: ScrapeLoop | None) -> ScrapeLoop:
        loop = ScrapeLoop(
            target,
            config=pool.config,
            client=pool.client,
            appender=self._appender,
            clock=self._clock,
            listeners=self._listeners,
            metrics=self._metrics,
            global_host=self._global_host,
            previous=before,
        )
        if self._state == "running":
            loop.start()
        return loop

    def _retire(self, pool: _Pool, loop: ScrapeLoop, *, stale: bool) -> None:
        task = loop.cancel()
        if task is not None:
            pool.stopped.append(task)
            pool.stopped = [t for t in pool.stopped if not t.done()]
        if stale:
            loop.mark_stale(int(self._clock() * 1000))
            self._metrics.target_removed(loop.target.pool, loop.target.instance)

    # -- status ------------------------------------------------------------------------

    def targets(self) -> list[TargetStatus]:
        """Active targets by job and URL, then dropped ones (``dropped=True``)."""
        active: list[TargetStatus] = []
        dropped: list[TargetStatus] = []
        for name in sorted(self._pools):
            pool = self._pools[name]
            loops = sorted(pool.loops.values(), key=lambda lp: (lp.target.url, lp.target.labels))
            active += [loop.status() for loop in loops]
            dropped += [TargetStatus(d.pool, d.discovered, dropped=True) for d in pool.dropped]
        return active + dropped
