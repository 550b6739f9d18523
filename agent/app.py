"""The composition root: the only module that wires every component together.

Check results flow into the history (``/metrics``, status page), the event sink
and the in-memory series store (PromQL over ``/api/v1/query``); each result also
triggers the rule groups that read its metrics, whose alerts go to the notifier.
Components are entered in data-flow order in one ``AsyncExitStack`` (event sink,
check scheduler, store retention, HTTP server, rule manager), so shutdown runs
in reverse: stop rule evaluation and intake, stop scheduling and let in-flight
checks finish within the grace period, then flush and close the sinks.

>>> agent = Agent(load_config("pilot.yml"), config_path="pilot.yml")   # doctest: +SKIP
>>> await agent.run()                                                  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import functools
import gc
import math
import platform
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from pathlib import Path

import structlog
from prometheus_client import CollectorRegistry

from agent import __version__
from agent.api.app import create_api
from agent.api.server import ApiServer
from agent.checks.aiohttp_transport import aiohttp_transport
from agent.checks.base import Checker
from agent.checks.factory import build_checker
from agent.checks.history import CheckHistory
from agent.checks.probe_series import ProbeSeriesWriter
from agent.checks.results import ResultPipeline
from agent.checks.scheduler import CheckScheduler
from agent.config import AgentConfig, CheckConfig, WebConfig
from agent.datasource.prometheus import querier_from_config
from agent.errors import ConfigError
from agent.events.alerts import AlertEventEmitter
from agent.events.base import EventSink
from agent.events.emitter import CountingEmitter
from agent.events.fanout import FanoutEventSink
from agent.events.jsonl import JsonlEventSink
from agent.events.kafka import KafkaEventSink
from agent.loading import load_all
from agent.logs import SCRUBBER
from agent.model import CheckResult, Event
from agent.notify.alertmanager import AlertmanagerNotifier
from agent.notify.console import ConsoleNotifier
from agent.notify.payload import with_labels
from agent.promql.engine import PromQLEngine
from agent.promql.value import Engine
from agent.roles import LeaderRole
from agent.rules.group import GroupEvaluator, engine_query_func
from agent.rules.manager import RuleManager
from agent.rules.model import AlertState, NotifyFunc, OutgoingAlert, QueryFunc, RuleGroup
from agent.scrape.base import ScrapeReport
from agent.scrape.manager import ScrapeManager
from agent.scrape.target import TargetStatus
from agent.secrets import collect_secrets
from agent.state.factory import StateStore, build_lease, build_state_store
from agent.tasks import PeriodicTask, cancel_and_wait
from agent.tsdb.base import Appender, Queryable, metric_name
from agent.tsdb.store import SeriesStore
from agent.tsdb.threadsafe import LoopAppender
from agent.watch.service import WatchService
from agent.watch.state import InMemoryWatchStateStore, JsonFileWatchStateStore, WatchStateStore
from agent.watch.watcher import ChangeWatcher, load_watch_rules
from exporters.agent import AgentMetrics
from exporters.events import EventDeliveryMetrics
from exporters.notify import NotifyMetricsExporter
from exporters.probe import ProbeCollector
from exporters.rules import AlertsCollector, RuleMetricsExporter
from exporters.scrape import ScrapeMetricsExporter
from exporters.state import StateMetricsExporter

log = structlog.get_logger(__name__)

SCRAPE_SERIES = frozenset(
    {
        "up",
        "scrape_duration_seconds",
        "scrape_samples_scraped",
        "scrape_samples_post_metric_relabeling",
        "scrape_series_added",
    }
)
"""The series every scrape writes, for rule triggers even when the scrape failed."""

WARM_UP_LIMIT_SECONDS = 60.0
"""Longest wait for first check results before rules start (see ``Agent._warm_up``)."""


class Agent:
    """One running pilot-agent: checks, exporter, API, events. Implements the API's context."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        rule_groups: Sequence[RuleGroup] = (),
        config_path: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        checker_factory: Callable[[CheckConfig], Checker] | None = None,
        shutdown_grace_seconds: float = 10.0,
    ) -> None:
        self._config = config
        self._check_labels = {c.name: c.labels for c in config.checks}
        self._rule_groups = tuple(rule_groups)
        self._rules: RuleManager | None = None
        self._scrapes: ScrapeManager | None = None
        self._config_path = Path(config_path) if config_path is not None else None
        self._env = env
        self._clock = clock
        # HTTP checks on the aiohttp-backed transport: 1,000 checks/s on one core
        # (benchmarks/check_capacity.py), where httpx's own transport saturates below.
        self._checker_factory = checker_factory or functools.partial(
            build_checker, http_transport=aiohttp_transport
        )
        self._grace = shutdown_grace_seconds
        self._stop = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self._ready = False
        self._scheduler: CheckScheduler | None = None
        self._watch: WatchService | None = None
        self._sink: EventSink | None = None
        self._emitter: CountingEmitter | None = None
        self._external_url = ""
        self.history = CheckHistory()
        self.store = SeriesStore(retention_ms=round(config.storage.retention * 1000))
        self._engine = PromQLEngine(lookback_delta_ms=round(config.storage.lookback_delta * 1000))
        self._probe_writer = ProbeSeriesWriter(self.store, labels_of=self._labels_of)
        self.registry = CollectorRegistry()
        self.metrics = AgentMetrics(self.registry, version=__version__)
        self.registry.register(ProbeCollector(self.history, self.checks))
        self.registry.register(AlertsCollector(self.rule_evaluators))
        self._rule_metrics = RuleMetricsExporter(self.registry)
        self._scrape_metrics = ScrapeMetricsExporter(self.registry)
        self._notify_metrics = NotifyMetricsExporter(self.registry)
        self.delivery_metrics = EventDeliveryMetrics(self.registry)
        self._state_metrics = StateMetricsExporter(
            self.registry, leader_election=config.state.leader_election.enabled
        )
        self._state: StateStore | None = None
        self._stopping = False
        self._notifiers: list[NotifyFunc] = []
        self.metrics.config_reloaded(True, clock())
        self.bound_port: int | None = None
        SCRUBBER.update(collect_secrets(config))

    # ------------------------------------------------------------------ ApiContext
    @property
    def web(self) -> WebConfig:
        return self._config.web

    @property
    def config(self) -> AgentConfig:
        return self._config

    @property
    def storage(self) -> Queryable:
        return self.store

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def clock(self) -> Callable[[], float]:
        return self._clock

    @property
    def emit_event(self) -> Callable[[Event], Awaitable[object]] | None:
        return self._emitter.emit if self._emitter is not None else None

    def checks(self) -> Sequence[CheckConfig]:
        return self._config.checks

    def scrape_targets(self) -> Sequence[TargetStatus]:
        return self._scrapes.targets() if self._scrapes is not None else []

    def rule_evaluators(self) -> Sequence[GroupEvaluator]:
        return self._rules.evaluators() if self._rules is not None else []

    def is_ready(self) -> bool:
        return self._ready

    def request_shutdown(self) -> None:
        self._stop.set()

    async def reload(self) -> None:
        """Re-read the config file; on any problem keep the running config and raise."""
        if self._config_path is None:
            raise ConfigError([])
        async with self._reload_lock:
            try:
                loaded = load_all(self._config_path, self._env)
            except ConfigError as exc:
                self.metrics.config_reloaded(False, self._clock())
                log.error(
                    "config_reload_failed",
                    file=str(self._config_path),
                    problems=[str(p) for p in exc.problems],
                )
                raise
            self._apply(loaded.config)
            self._rule_groups = loaded.rule_groups
            if self._rules is not None:
                self._rules.update(loaded.rule_groups)
            self.metrics.config_reloaded(True, self._clock())
            gc.freeze()
            log.info(
                "config_reloaded",
                file=str(self._config_path),
                checks=len(loaded.config.checks),
                rule_groups=len(loaded.rule_groups),
            )

    def _apply(self, new: AgentConfig) -> None:
        old = self._config
        # Basic auth users and the lifecycle switch are read per request and apply at once.
        restart_only: dict[str, tuple[object, object]] = {
            "listen": (old.listen, new.listen),
            "web.tls_server_config": (old.web.tls_server_config, new.web.tls_server_config),
            "events": (old.events, new.events),
            "storage": (old.storage, new.storage),
            "global.evaluation_interval": (
                old.global_.evaluation_interval,
                new.global_.evaluation_interval,
            ),
            "global.external_labels": (old.global_.external_labels, new.global_.external_labels),
            "rule_datasource": (old.rule_datasource, new.rule_datasource),
            "alerting": (old.alerting, new.alerting),
            "state": (old.state, new.state),
            "web.external_url": (old.web.external_url, new.web.external_url),
            "watch": (old.watch, new.watch),
        }
        for section, (before, after) in restart_only.items():
            if before != after:
                log.warning("config_change_needs_restart", section=section)
        SCRUBBER.update(collect_secrets(new))
        removed = {c.name for c in old.checks} - {c.name for c in new.checks}
        self._config = new
        self._check_labels = {c.name: c.labels for c in new.checks}
        if self._scheduler is not None:
            self._scheduler.apply(new.checks)
        if self._scrapes is not None:
            self._scrapes.apply(
                new.scrape_configs, global_scrape_interval=new.global_.scrape_interval
            )
        self.history.retain(c.name for c in new.checks)
        now_ms = round(self._clock() * 1000)
        for name in removed:
            if self._state is not None:
                self._state.checks.save_nowait(name, None)
            self.metrics.forget_check(name)
            self._probe_writer.forget(name, now_ms)

    @property
    def _base_dir(self) -> Path:
        """Relative paths in the config are relative to the config file."""
        return self._config_path.parent if self._config_path is not None else Path.cwd()

    def _labels_of(self, check: str) -> Mapping[str, str]:
        # Called for every check result: a dict, not a scan of the configured checks.
        return self._check_labels.get(check, {})

    def _on_result(self, result: CheckResult) -> None:
        written = self._probe_writer.record(result)
        if self._rules is not None:
            # Event-driven evaluation: groups reading these metrics run now, not at their
            # next interval, so a failed check reaches its alert without that delay.
            self._rules.trigger(written)

    def _on_scrape(self, report: ScrapeReport) -> None:
        if self._watch is not None:
            self._watch.submit(report)
        if self._rules is not None:
            names = {metric_name(labels) for labels, _ in report.samples}
            self._rules.trigger(names | SCRAPE_SERIES)

    def _change_watcher(self) -> ChangeWatcher:
        watch = self._config.watch
        state: WatchStateStore = (
            self._state.watch if self._state is not None else InMemoryWatchStateStore()
        )
        if watch.state_file is not None and self._config.state.redis is None:
            path = Path(watch.state_file)
            if self._config_path is not None and not path.is_absolute():
                path = self._config_path.parent / path
            state = JsonFileWatchStateStore(path)
        return ChangeWatcher(
            load_watch_rules(watch), state=state, source=self._config.events.source
        )

    def _rule_manager(self, external_url: str) -> RuleManager:
        cfg = self._config
        query: QueryFunc
        appender: Appender = self.store
        remote = cfg.rule_datasource
        if remote is not None:
            querier = querier_from_config(remote)
            query = querier.query
            appender = LoopAppender(self.store, asyncio.get_running_loop())
        else:
            query = engine_query_func(self._engine, self.store)
        return RuleManager(
            query=query,
            appender=appender,
            notify=self._notify,
            clock=self._clock,
            default_interval=cfg.global_.evaluation_interval,
            resend_delay=cfg.alerting.resend_delay,
            external_labels=cfg.global_.external_labels,
            external_url=external_url,
            metrics=self._rule_metrics,
            offload=remote is not None,
            state_store=self._state.alerts if self._state is not None else None,
        )

    def _notify(self, alerts: Sequence[OutgoingAlert]) -> None:
        """The rule manager's NotifyFunc: every notifier gets the alerts; none blocks."""
        for send in self._notifiers:
            try:
                send(alerts)
            except Exception:
                log.exception("notifier_failed", count=len(alerts))

    def _labelled(self, alerts: Sequence[OutgoingAlert]) -> list[OutgoingAlert]:
        """Alerts with the labels Alertmanager sees: external labels, alert relabelling."""
        cfg = self._config
        return with_labels(alerts, cfg.global_.external_labels, cfg.alerting.alert_relabel_configs)

    async def _notifiers_for(self, stack: AsyncExitStack) -> list[NotifyFunc]:
        """Alertmanager when configured, else the console; closed after the rules."""
        cfg = self._config
        if not cfg.alerting.alertmanagers:
            return [ConsoleNotifier(self._clock).send]
        notifier = AlertmanagerNotifier(
            cfg.alerting,
            external_labels=cfg.global_.external_labels,
            metrics=self._notify_metrics,
        )
        await stack.enter_async_context(notifier)
        return [notifier.send]

    def _compact_store(self) -> None:
        dropped = self.store.compact(round(self._clock() * 1000))
        if dropped:
            log.debug("tsdb_compacted", samples_dropped=dropped)

    # ------------------------------------------------------------------ running
    async def run(self, started: asyncio.Event | None = None) -> None:
        """Run until :meth:`request_shutdown`; then shut down in reverse order."""
        cfg = self._config
        async with AsyncExitStack() as stack:
            # Entered first, so closed last: it writes through what the others saved.
            self._state = await stack.enter_async_context(
                build_state_store(cfg.state, base_dir=self._base_dir, metrics=self._state_metrics)
            )
            events = cfg.events.jsonl
            jsonl = await stack.enter_async_context(
                JsonlEventSink(
                    events.path,
                    max_bytes=events.max_bytes,
                    backups=events.backups,
                    fsync=events.fsync,
                )
            )
            self._sink = jsonl
            kafka_config = cfg.events.kafka
            if kafka_config is not None:
                # Entered after the log, so closed before it: Kafka spools what it holds.
                kafka = await stack.enter_async_context(
                    KafkaEventSink(
                        kafka_config,
                        spool_dir=kafka_config.spool.path(self._base_dir),
                        metrics=self.delivery_metrics,
                    )
                )
                self._sink = FanoutEventSink(
                    {"jsonl": jsonl, "kafka": kafka}, self.delivery_metrics
                )
            self._emitter = CountingEmitter(self._sink, self.metrics)
            self._scrapes = await stack.enter_async_context(
                ScrapeManager(
                    appender=self.store,
                    clock=self._clock,
                    global_scrape_interval=cfg.global_.scrape_interval,
                    base_dir=self._base_dir,
                    listeners=[self._on_scrape],
                    metrics=self._scrape_metrics,
                )
            )
            await stack.enter_async_context(
                PeriodicTask("tsdb_retention", 60.0, self._compact_store)
            )
            host, port = cfg.listen_host_port
            server = await stack.enter_async_context(
                ApiServer(create_api(self), host=host, port=port, web=cfg.web)
            )
            self.bound_port = server.port
            self._external_url = cfg.web.external_url or f"http://{host}:{server.port}"
            self._scrapes.apply(cfg.scrape_configs)
            leader = await stack.enter_async_context(LeaderRole(self._lead))
            lease = build_lease(
                cfg.state,
                on_acquired=lambda _token: self._promote(leader),
                on_lost=leader.demote,
                metrics=self._state_metrics,
            )
            if lease is None:
                await leader.promote()
            else:
                # On shutdown the role is demoted first (below), so the lease is released
                # only once this agent has stopped leading.
                await stack.enter_async_context(lease)
            self._ready = True
            log.info(
                "agent_started",
                listen=f"{host}:{server.port}",
                checks=len(cfg.checks),
                rule_groups=len(self._rule_groups),
                scrape_jobs=len(cfg.scrape_configs),
                events_file=str(jsonl.path),
                version=__version__,
                python=platform.python_version(),
            )
            # Everything built at start-up lives as long as the process: keep the cyclic
            # garbage collector from walking it (full collections paused runs by 45-100 ms
            # at 1,000 checks in benchmarks/check_capacity.py).
            gc.freeze()
            if started is not None:
                started.set()
            await self._stop.wait()
            self._ready = False
            self._stopping = True
            log.info("agent_stopping")
            await leader.demote()
        log.info("agent_stopped")

    async def _lead(self, stack: AsyncExitStack) -> None:
        """Start the leader-only work: watch events, checks, then (warmed up) rules.

        Closed in reverse on demotion or shutdown: rules stop first, then the
        scheduler lets in-flight checks finish, then the watch service drains.
        """
        cfg = self._config
        assert self._sink is not None and self._emitter is not None  # set up by run()
        stack.callback(self._forget_leader_work)
        if self._state is not None:
            # Warm from the store: a takeover or restart continues each check's state.
            self.history.restore(await self._state.checks.load())
        pipeline = ResultPipeline(
            history=self.history,
            metrics=self.metrics,
            sink=self._sink,
            labels_of=self._labels_of,
            source=cfg.events.source,
            clock=self._clock,
            scrub=SCRUBBER.scrub_text,
            listeners=[self._on_result, self._save_check_state],
        )
        self._watch = await stack.enter_async_context(
            WatchService(self._change_watcher(), emit=self._emitter.emit)
        )
        self._scheduler = await stack.enter_async_context(
            CheckScheduler(
                build=self._checker_factory,
                on_result=pipeline.handle,
                metrics=self.metrics,
                clock=self._clock,
                grace_seconds=self._grace,
            )
        )
        self._scheduler.apply(cfg.checks)
        alert_events = await stack.enter_async_context(
            AlertEventEmitter(
                emit=self._emitter.emit,
                source=cfg.events.source,
                clock=self._clock,
                scrub=SCRUBBER.scrub_text,
            )
        )
        self._notifiers = [
            *await self._notifiers_for(stack),
            lambda alerts: alert_events.send(self._labelled(alerts)),
        ]
        rules = asyncio.create_task(self._rules_when_warm(alert_events), name="rules")
        stack.push_async_callback(cancel_and_wait, rules)

    async def _rules_when_warm(self, alert_events: AlertEventEmitter) -> None:
        """Evaluate rules once checks have first results; until cancelled (demotion)."""
        try:
            await self._run_rules(alert_events)
        except Exception:  # logged; checks, notifications and the API go on
            log.exception("rule_manager_failed")

    async def _run_rules(self, alert_events: AlertEventEmitter) -> None:
        await self._warm_up()
        manager = self._rule_manager(self._external_url)
        # Groups added before the start are restored from the state store while it starts;
        # added after, each would restore in its own task, too late for ``announced``.
        manager.update(self._rule_groups)
        async with manager as rules:
            self._rules = rules
            try:
                # Restored alerts that were announced firing before a restart or takeover.
                announced = [
                    OutgoingAlert(alert.labels, {}, alert.active_at, math.inf, "")
                    for ev in rules.evaluators()
                    for _, alert in ev.active_alerts()
                    if alert.state is AlertState.FIRING and alert.last_sent_at is not None
                ]
                alert_events.remember_firing(a.labels for a in self._labelled(announced))
                # The first results arrived during the warm-up: evaluate on them now.
                rules.trigger(self.store.label_values("__name__"))
                await asyncio.Event().wait()
            finally:
                self._rules = None

    async def _promote(self, leader: LeaderRole) -> None:
        """The lease was won: lead, unless this agent is shutting down."""
        if not self._stopping:
            await leader.promote()

    def _save_check_state(self, result: CheckResult) -> None:
        if self._state is not None:
            self._state.checks.save_nowait(result.check, self.history.snapshot(result.check))

    def _forget_leader_work(self) -> None:
        self._notifiers = []
        self._rules = None
        self._scheduler = None
        self._watch = None
        # A standby runs no checks: forget their results, so that leading again starts
        # from the state store and waits for fresh results before evaluating rules.
        self.history.retain(())

    async def _warm_up(self) -> None:
        """Wait until every check has a first result, so rules do not start on no data.

        After a restart or a takeover the store holds no probe series yet: a restored
        firing alert would otherwise resolve at the first evaluation and fire again a
        moment later. Bounded by the slowest check's interval + timeout (at most
        :data:`WARM_UP_LIMIT_SECONDS`).
        """
        checks = self._config.checks
        if not checks:
            return
        limit = min(WARM_UP_LIMIT_SECONDS, max(c.interval + c.run_timeout for c in checks) + 1.0)
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if all(self.history.get(c.name) is not None for c in self._config.checks):
                return
            await asyncio.sleep(0.05)
        log.warning("rule_warm_up_timed_out", seconds=limit)
