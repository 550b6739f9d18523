"""Runs rule groups: on a schedule, on new data, and hands alerts to the notifier.

Each group runs every ``interval`` at a stable phase (a hash of file and
name, as in Prometheus), evaluating at the scheduled timestamp; when an
evaluation overruns, the skipped slots are counted as missed iterations and
the next one is the latest slot due. :meth:`RuleManager.trigger` makes groups
that read the named metrics evaluate as soon as possible at the time the data
arrived, without moving the schedule; triggers arriving meanwhile fold into
one extra evaluation. A group's evaluations never overlap and never go back
in time. After each one, due alerts go to ``notify`` and changed alert state
to the :class:`~agent.rules.state.AlertStateStore`.

Evaluation is synchronous and runs on the event loop (the series store is not
thread-safe).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from agent.errors import ComponentStateError
from agent.lifecycle import Component
from agent.promql.xxhash import labels_hash
from agent.rules.group import ANY_METRIC, GroupEvaluator, group_key
from agent.rules.model import Alert, AlertState, NotifyFunc, QueryFunc, RuleGroup
from agent.rules.recording import eval_ms
from agent.rules.state import AlertStateStore
from agent.tsdb.base import Appender

log = logging.getLogger(__name__)


class RuleMetrics(Protocol):
    """What the manager reports per group (``group_key`` is ``file;name``)."""

    def group_evaluated(self, group_key: str, duration_seconds: float, timestamp: float) -> None:
        """An iteration ran: observe its duration, set last duration and evaluation time."""

    def rules_evaluated(self, group_key: str, total: int, failures: int) -> None:
        """Add to the rule evaluations and evaluation failures counters."""

    def iterations_missed(self, group_key: str, count: int) -> None:
        """Scheduled iterations skipped because an evaluation overran its interval."""

    def alerts_by_state(self, group_key: str, counts: Mapping[str, int]) -> None:
        """The group's alerts now, by state (``pending``, ``firing``, ``inactive``)."""

    def group_removed(self, group_key: str) -> None:
        """The group is gone; drop its series."""


class NoopRuleMetrics:
    """A :class:`RuleMetrics` that records nothing."""

    def group_evaluated(self, group_key: str, duration_seconds: float, timestamp: float) -> None:
        pass

    def rules_evaluated(self, group_key: str, total: int, failures: int) -> None:
        pass

    def iterations_missed(self, group_key: str, count: int) -> None:
        pass

    def alerts_by_state(self, group_key: str, counts: Mapping[str, int]) -> None:
        pass

    def group_removed(self, group_key: str) -> None:
        pass


def phase_offset(group: RuleGroup, interval: float) -> float:
    """The group's offset in ``[0, interval)``: Prometheus's ``hash(file, name) % interval``."""
    interval_ns = max(1, round(interval * 1e9))
    return (labels_hash((("file", group.file), ("name", group.name))) % interval_ns) / 1e9


def slot_at_or_before(t: float, interval: float, offset: float) -> float:
    """The latest evaluation slot ``offset + k * interval`` not after ``t``.

    >>> slot_at_or_before(125.0, 60.0, 10.0)
    70.0
    """
    shifted = t - offset
    return shifted - shifted % interval + offset


def _after(last: float | None, arrived: float) -> float:
    """When to evaluate for data that arrived at ``arrived``: then, after ``last``'s millisecond.

    Data that arrived before the last evaluation's timestamp was seen by it (the
    result is then skipped); data that arrived in the same millisecond, during
    that evaluation, moves to the next millisecond so the samples do not collide.

    >>> _after(None, 10.0), _after(10.0, 12.5), _after(10.0, 10.0004), _after(10.0, 9.0)
    (10.0, 12.5, 10.001, 9.0)
    """
    if last is None or arrived <= last or eval_ms(arrived) > eval_ms(last):
        return arrived
    return (eval_ms(last) + 1) / 1000


def _fingerprint(alerts: Sequence[Alert]) -> tuple[object, ...]:
    """What makes a save worth it: values and annotations change every evaluation.

    The last-sent time is part of it (one write per firing alert per resend delay), so
    a restart resumes re-sending on schedule instead of re-sending every alert at once.
    """
    return tuple(
        (
            a.labels,
            a.state,
            a.active_at,
            a.fired_at,
            a.resolved_at,
            a.keep_firing_since,
            a.last_sent_at,
        )
        for a in alerts
    )


def _same_group(a: RuleGroup, b: RuleGroup) -> bool:
    return (a.name, a.file, a.interval_seconds, a.limit, a.query_offset_seconds) == (
        b.name,
        b.file,
        b.interval_seconds,
        b.limit,
        b.query_offset_seconds,
    ) and (dict(a.labels), tuple(a.rules)) == (dict(b.labels), tuple(b.rules))


@dataclass(eq=False)
class _Runner:
    """One group with its scheduling state."""

    evaluator: GroupEvaluator
    offset: float
    names: frozenset[str]
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    task: asyncio.Task[None] | None = None
    restored: bool = False
    trigger_at: float | None = None
    pending_due: float | None = None
    last_ts: float | None = None
    saved: dict[str, tuple[object, ...]] = field(default_factory=dict)

    def reads(self, names: set[str]) -> bool:
        return ANY_METRIC in self.names or not self.names.isdisjoint(names)


class RuleManager(Component):
    """Schedules rule groups, evaluates them on new data, and notifies.

    With ``offload=True`` evaluations run in a worker thread, for queries that block
    (a remote data source); the appender must then accept writes from that thread.

    ::

        async with RuleManager(query=query, appender=store, notify=notifier.send,
                               clock=time.time, default_interval=15.0) as rules:
            rules.update(groups)        # also on reload: unchanged rules keep their alerts
            rules.trigger({"probe_success"})
    """

    def __init__(
        self,
        *,
        query: QueryFunc,
        appender: Appender,
        notify: NotifyFunc,
        clock: Callable[[], float],
        default_interval: float,
        resend_delay: float = 60.0,
        external_labels: Mapping[str, str] = {},
        external_url: str = "",
        state_store: AlertStateStore | None = None,
        metrics: RuleMetrics | None = None,
        offload: bool = False,
    ) -> None:
        self._offload = offload
        self._query = query
        self._appender = appender
        self._notify = notify
        self._clock = clock
        self._default_interval = default_interval
        self._resend_delay = resend_delay
        self._external_labels = dict(external_labels)
        self._external_url = external_url
        self._store = state_store
        self._metrics: RuleMetrics = metrics or NoopRuleMetrics()
        self._runners: dict[str, _Runner] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle -------------------------------------------------------------------

    async def _on_start(self) -> None:
        """Restore stored alerts and start every group's schedule."""
        for runner in list(self._runners.values()):
            await self._restore(runner)
        for runner in self._runners.values():
            self._spawn(runner)

    async def _on_close(self) -> None:
        """Stop every group (an evaluation in progress finishes first)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _spawn_task(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _spawn(self, runner: _Runner) -> None:
        runner.task = self._spawn_task(self._run(runner), name=f"rules:{runner.evaluator.key}")

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "rule_task_crashed", exc_info=task.exception(), extra={"task": task.get_name()}
            )

    # -- configuration -----------------------------------------------------------------

    def update(self, groups: Sequence[RuleGroup]) -> None:
        """Replace the rule groups; unchanged groups keep running, changed ones keep state."""
        if self._state == "closed":
            return
        fresh: dict[str, _Runner] = {}
        for group in groups:
            key = group_key(group)
            old = self._runners.pop(key, None) or fresh.pop(key, None)
            if old is not None and _same_group(old.evaluator.group, group):
                fresh[key] = old
                continue
            fresh[key] = self._replace(group, old)
        for old in self._runners.values():
            self._retire(old)
        self._runners = fresh

    def _replace(self, group: RuleGroup, old: _Runner | None) -> _Runner:
        runner = self._runner(group)
        if old is not None:
            self._stop(old)
            runner.evaluator.copy_state_from(old.evaluator)
            runner.restored, runner.last_ts = True, old.last_ts
            keys = set(runner.evaluator.state_keys())
            runner.saved = {k: v for k, v in old.saved.items() if k in keys}
            self._forget(old.evaluator.key, set(old.saved) - keys)
        if self._state == "running":
            self._spawn(runner)
        return runner

    def _runner(self, group: RuleGroup) -> _Runner:
        evaluator = GroupEvaluator(
            group,
            query=self._query,
            appender=self._appender,
            default_interval=self._default_interval,
            external_labels=self._external_labels,
            external_url=self._external_url,
        )
        offset = phase_offset(group, evaluator.interval)
        return _Runner(evaluator, offset, evaluator.metric_names())

    def _stop(self, runner: _Runner) -> None:
        if runner.task is not None:
            runner.task.cancel()  # it waits at an await, so no evaluation is cut short

    def _retire(self, runner: _Runner) -> None:
        self._stop(runner)
        ev = runner.evaluator
        self._metrics.group_removed(ev.key)
        self._forget(ev.key, set(runner.saved))
        if self._state == "running" and runner.last_ts is not None:
            stale = self._mark_stale_later(ev, self._clock())
            self._spawn_task(stale, name=f"rules-stale:{ev.key}")

    async def _mark_stale_later(self, evaluator: GroupEvaluator, stopped_at: float) -> None:
        # Like Prometheus, wait two intervals so a rule moved to another group writes
        # its series first and the (older) stale markers are rejected as out of order.
        await asyncio.sleep(2 * evaluator.interval)
        evaluator.mark_stale(stopped_at)

    def _forget(self, key: str, rule_keys: set[str]) -> None:
        if self._store is None or not rule_keys or self._state != "running":
            return
        store = self._store

        async def forget() -> None:
            for rule_key in sorted(rule_keys):
                with _logged("rule_state_save_failed", key):
                    await store.save(key, rule_key, [])

        self._spawn_task(forget(), name=f"rules-forget:{key}")

    def evaluators(self) -> list[GroupEvaluator]:
        """The current groups' evaluators, by file and name."""
        runners = sorted(
            self._runners.values(), key=lambda r: (r.evaluator.group.file, r.evaluator.group.name)
        )
        return [r.evaluator for r in runners]

    # -- triggers and scheduling -------------------------------------------------------

    def trigger(self, metric_names: Iterable[str]) -> None:
        """New samples of ``metric_names`` arrived: groups reading them evaluate soon."""
        if self._state == "closed":
            return
        names = set(metric_names)
        runners = [r for r in self._runners.values() if r.reads(names)]
        if not runners:
            return
        now = self._clock()
        for runner in runners:
            runner.trigger_at = now if runner.trigger_at is None else max(runner.trigger_at, now)
            runner.wake.set()

    async def _run(self, runner: _Runner) -> None:
        await self._restore(runner)
        interval = runner.evaluator.interval
        due = slot_at_or_before(self._clock(), interval, runner.offset) + interval
        while True:
            wake_at = due if runner.pending_due is None else min(due, runner.pending_due)
            await self._wait(runner, wake_at - self._clock())
            now = self._clock()
            if runner.pending_due is not None and runner.pending_due <= now < due:
                # A pending alert's `for` runs out now: evaluate at that moment rather than
                # at the next data or interval, so it fires without extra delay.
                at, runner.pending_due = runner.pending_due, None
                await self._evaluate(runner, _after(runner.last_ts, at))
            if now >= due:
                missed = math.floor((now - due) / interval)
                if missed > 0:
                    self._metrics.iterations_missed(runner.evaluator.key, missed)
                due += missed * interval
                await self._evaluate(runner, due)
                due += interval
            if runner.wake.is_set():
                runner.wake.clear()
                arrived, runner.trigger_at = runner.trigger_at, None
                if arrived is not None:
                    await self._evaluate(runner, _after(runner.last_ts, arrived))

    @staticmethod
    async def _wait(runner: _Runner, seconds: float) -> None:
        if runner.wake.is_set() or seconds <= 0:
            await asyncio.sleep(0)  # never starve the loop, even when always behind
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runner.wake.wait(), seconds)

    async def evaluate_all(self, now: float) -> None:
        """Evaluate every group once at ``now`` (tests; the schedule is untouched)."""
        if self._state == "closed":
            raise ComponentStateError("rule manager is closed")
        for runner in list(self._runners.values()):
            await self._restore(runner)
            await self._evaluate(runner, now)

    # -- one evaluation ------------------------------------------------------------

    async def _evaluate(self, runner: _Runner, ts: float) -> None:
        async with runner.lock:
            if runner.last_ts is not None and eval_ms(ts) <= eval_ms(runner.last_ts):
                return  # never back in time (nor twice in a millisecond): that one saw the data
            runner.last_ts = ts
            if self._offload:
                # Queries that block (a remote data source) run in a worker thread; the
                # runner's lock still keeps one evaluation of a group at a time.
                await asyncio.to_thread(self._evaluate_now, runner.evaluator, ts)
            else:
                self._evaluate_now(runner.evaluator, ts)
            runner.pending_due = _next_pending_due(runner.evaluator, ts)
            await self._save(runner)

    def _evaluate_now(self, ev: GroupEvaluator, ts: float) -> None:
        ev.evaluate(ts)
        with _logged("rule_metrics_failed", ev.key):
            self._record(ev, ts)
        alerts = ev.alerts_to_send(ts, self._resend_delay)
        if alerts:
            with _logged("rule_notify_failed", ev.key):
                self._notify(alerts)

    def _record(self, ev: GroupEvaluator, ts: float) -> None:
        statuses = ev.rule_statuses()
        failures = sum(1 for s in statuses if s.health == "err")
        counts = dict.fromkeys((s.value for s in AlertState), 0)
        for _, alert in ev.active_alerts():
            counts[alert.state.value] += 1
        self._metrics.group_evaluated(ev.key, ev.last_duration, ts)
        self._metrics.rules_evaluated(ev.key, len(statuses), failures)
        self._metrics.alerts_by_state(ev.key, counts)

    async def _save(self, runner: _Runner) -> None:
        if self._store is None:
            return
        ev = runner.evaluator
        for rule_key, alerts in ev.alert_states().items():
            fingerprint = _fingerprint(alerts)
            if runner.saved.get(rule_key, ()) == fingerprint:
                continue
            with _logged("rule_state_save_failed", ev.key):
                await self._store.save(ev.key, rule_key, alerts)
                runner.saved[rule_key] = fingerprint

    async def _restore(self, runner: _Runner) -> None:
        if runner.restored:
            return
        runner.restored = True
        if self._store is None:
            return
        ev = runner.evaluator
        for rule_key in ev.state_keys():
            with _logged("rule_state_load_failed", ev.key):
                alerts = await self._store.load(ev.key, rule_key)
                ev.restore_alerts(rule_key, alerts)
                runner.saved[rule_key] = _fingerprint(alerts)


@contextlib.contextmanager
def _logged(event: str, group: str) -> Iterator[None]:
    """Log and swallow an exception: one failing group or store call must not stop the rest."""
    try:
        yield
    except Exception:
        log.exception(event, extra={"group": group})


def _next_pending_due(ev: GroupEvaluator, ts: float) -> float | None:
    """When the earliest pending alert's ``for`` has run out after ``ts``, if any does.

    One millisecond past the exact moment (evaluation times are whole milliseconds,
    and ``active_at + for - active_at`` may round just below ``for``).
    """
    dues = [
        alert.active_at + rule.for_seconds
        for rule, alert in ev.active_alerts()
        if alert.state is AlertState.PENDING and alert.active_at + rule.for_seconds > ts
    ]
    return (math.ceil(min(dues) * 1000) + 1) / 1000 if dues else None
