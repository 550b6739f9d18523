"""The rule manager: schedule, triggers, notification, reload, state store and shutdown."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence

import pytest

from agent.errors import ComponentStateError
from agent.promql.engine import PromQLEngine
from agent.promql.value import Vector
from agent.rules.group import engine_query_func
from agent.rules.manager import RuleManager, phase_offset, slot_at_or_before
from agent.rules.model import AlertingRule, AlertState, OutgoingAlert, RecordingRule, RuleGroup
from agent.rules.state import InMemoryAlertStateStore
from agent.tsdb.base import labels_from
from agent.tsdb.store import SeriesStore

UP = labels_from({"__name__": "up", "job": "api"})
DOWN = AlertingRule("Down", "up == 0", for_seconds=60.0)
SLOW = 3600.0  # an interval no scheduled evaluation reaches during a test


class Recorder:
    """A RuleMetrics that keeps what it was told."""

    def __init__(self) -> None:
        self.evaluated: list[tuple[str, float]] = []
        self.missed = 0
        self.rules = (0, 0)
        self.alerts: dict[str, int] = {}
        self.removed: list[str] = []

    def group_evaluated(self, group_key: str, duration_seconds: float, timestamp: float) -> None:
        self.evaluated.append((group_key, timestamp))

    def rules_evaluated(self, group_key: str, total: int, failures: int) -> None:
        self.rules = (self.rules[0] + total, self.rules[1] + failures)

    def iterations_missed(self, group_key: str, count: int) -> None:
        self.missed += count

    def alerts_by_state(self, group_key: str, counts: Mapping[str, int]) -> None:
        self.alerts = dict(counts)

    def group_removed(self, group_key: str) -> None:
        self.removed.append(group_key)


class Rig:
    """A store with data, a counting query function, and what was notified."""

    def __init__(self) -> None:
        self.store = SeriesStore()
        self.engine_query = engine_query_func(PromQLEngine(), self.store)
        self.sent: list[list[OutgoingAlert]] = []
        self.calls: list[float] = []
        self.inside = False
        self.overlapped = False
        self.during_query: list[object] = []
        self.metrics = Recorder()

    def query(self, expr: str, t: float) -> Vector:
        self.overlapped |= self.inside
        self.inside = True
        try:
            self.calls.append(t)
            for action in self.during_query:
                action()  # type: ignore[operator]
            return self.engine_query(expr, t)
        finally:
            self.inside = False

    def notify(self, alerts: Sequence[OutgoingAlert]) -> None:
        self.sent.append(list(alerts))

    def manager(self, clock: object = time.time, **kw: object) -> RuleManager:
        return RuleManager(
            query=self.query,
            appender=self.store,
            notify=self.notify,
            clock=clock,  # type: ignore[arg-type]
            default_interval=SLOW,
            metrics=self.metrics,
            **kw,  # type: ignore[arg-type]
        )


def group(*rules: AlertingRule | RecordingRule, name: str = "g", **kw: object) -> RuleGroup:
    return RuleGroup(name, "rules.yml", list(rules), **kw)  # type: ignore[arg-type]


async def settle(condition: object, within: float = 2.0) -> None:
    deadline = time.monotonic() + within
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


@pytest.fixture
def rig() -> Rig:
    return Rig()


def test_slots_are_aligned_to_the_phase_offset() -> None:
    """Evaluation slots are offset + k * interval, the offset stable per file and name."""
    g = group(DOWN)
    offset = phase_offset(g, 60.0)
    assert 0 <= offset < 60 and offset == phase_offset(g, 60.0)
    assert phase_offset(group(DOWN, name="other"), 60.0) != offset
    assert slot_at_or_before(1000.0, 60.0, offset) % 60 == pytest.approx(offset % 60)


async def test_evaluate_all_notifies_firing_alerts(rig: Rig) -> None:
    """After an evaluation, the alerts due for sending reach notify; metrics are recorded."""
    rig.store.append(UP, 0, 0.0)
    manager = rig.manager()
    manager.update([group(AlertingRule("Down", "up == 0"))])
    await manager.evaluate_all(0)
    ((alert,),) = rig.sent
    assert dict(alert.labels)["alertname"] == "Down" and alert.starts_at == 0
    assert rig.metrics.evaluated == [("rules.yml;g", 0)]
    assert rig.metrics.rules == (1, 0)
    assert rig.metrics.alerts == {"inactive": 0, "pending": 0, "firing": 1}
    await manager.evaluate_all(30)
    assert len(rig.sent) == 1  # not due again before the resend delay
    await manager.aclose()


async def test_trigger_runs_reading_groups_promptly_and_only_them(rig: Rig) -> None:
    """trigger() evaluates groups that read the metric soon, at the arrival time."""
    rig.store.append(UP, round(time.time() * 1000), 0.0)
    async with rig.manager() as manager:
        manager.update([group(DOWN), group(RecordingRule("r", "other_metric"), name="other")])
        manager.trigger({"unrelated"})
        await asyncio.sleep(0.05)
        assert rig.calls == []
        before = time.time()
        manager.trigger({"up"})
        await settle(lambda: len(rig.calls) == 1)
        assert rig.calls[0] >= before
        by_name = {ev.group.name: ev for ev in manager.evaluators()}
        assert by_name["g"].last_evaluation == rig.calls[0]
        assert by_name["other"].last_evaluation is None


async def test_triggers_are_debounced_and_never_overlap(rig: Rig) -> None:
    """Many triggers fold into one evaluation; one arriving mid-evaluation adds exactly one."""
    async with rig.manager() as manager:
        manager.update([group(DOWN)])
        for _ in range(20):
            manager.trigger(["up"])
        await settle(lambda: len(rig.calls) == 1)
        rig.during_query.append(lambda: rig.during_query.clear() or manager.trigger(["up"]))
        manager.trigger(["up"])
        await settle(lambda: len(rig.calls) >= 3)
        await asyncio.sleep(0.05)
        assert len(rig.calls) == 3
        assert not rig.overlapped
        assert rig.calls == sorted(rig.calls)


async def test_groups_run_on_schedule_at_slot_timestamps(rig: Rig) -> None:
    """A group evaluates every interval at offset + k * interval, not at wake-up time."""
    interval = 0.1
    async with rig.manager() as manager:
        g = group(DOWN, interval_seconds=interval)
        manager.update([g])
        await settle(lambda: len(rig.calls) >= 3)
    offset = phase_offset(g, interval)
    for t in rig.calls[:3]:
        assert slot_at_or_before(t + 1e-6, interval, offset) == pytest.approx(t, abs=1e-6)
    assert rig.calls[1] - rig.calls[0] == pytest.approx(interval, abs=1e-6)


async def test_overrunning_evaluations_count_missed_iterations(rig: Rig) -> None:
    """An evaluation longer than the interval skips slots, counted as missed iterations."""
    rig.during_query.append(lambda: time.sleep(0.25))
    async with rig.manager() as manager:
        manager.update([group(DOWN, interval_seconds=0.1)])
        await settle(lambda: len(rig.calls) >= 2)
    assert rig.metrics.missed >= 1


async def test_update_keeps_state_of_unchanged_rules(rig: Rig) -> None:
    """Reloading keeps unchanged groups and carries alerts into changed groups."""
    rig.store.append(UP, 0, 0.0)
    manager = rig.manager()
    manager.update([group(DOWN), group(DOWN, name="h")])
    await manager.evaluate_all(0)
    (kept_before, _) = manager.evaluators()
    manager.update([group(DOWN), group(DOWN, RecordingRule("r", "up"), name="h")])
    kept, changed = manager.evaluators()
    assert kept is kept_before
    assert [a.active_at for _, a in changed.active_alerts()] == [0]
    rig.store.append(UP, 60_000, 0.0)
    await manager.evaluate_all(60)
    assert [a.state for _, a in changed.active_alerts()] == [AlertState.FIRING]
    manager.update([group(DOWN)])
    assert rig.metrics.removed == ["rules.yml;h"]
    assert len(manager.evaluators()) == 1
    await manager.aclose()


async def test_close_cancels_tasks_and_is_idempotent(rig: Rig) -> None:
    """aclose() stops every group task; a second close is a no-op; no restart after close."""
    manager = rig.manager()
    manager.update([group(DOWN, interval_seconds=0.05)])
    await manager.start()
    await settle(lambda: len(rig.calls) >= 1)
    await manager.aclose()
    await manager.aclose()
    count = len(rig.calls)
    await asyncio.sleep(0.15)
    assert len(rig.calls) == count
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("rules")]
    with pytest.raises(ComponentStateError):
        await manager.start()
    manager.trigger(["up"])  # ignored once closed


async def test_state_store_restore_keeps_active_at(rig: Rig) -> None:
    """A new manager restores pending alerts from the store; for keeps counting from active_at."""
    store = InMemoryAlertStateStore()
    rig.store.append(UP, 0, 0.0)
    first = rig.manager(state_store=store)
    first.update([group(DOWN)])
    await first.evaluate_all(0)
    await first.aclose()
    assert store.keys() == [("rules.yml;g", "Down")]

    second = rig.manager(state_store=store)
    second.update([group(DOWN)])
    await second.start()
    ((_, restored),) = second.evaluators()[0].active_alerts()
    assert (restored.state, restored.active_at) == (AlertState.PENDING, 0)
    rig.store.append(UP, 60_000, 0.0)
    await second.evaluate_all(60)
    ((_, alert),) = second.evaluators()[0].active_alerts()
    assert (alert.state, alert.active_at, alert.fired_at) == (AlertState.FIRING, 0, 60)
    (saved,) = await store.load("rules.yml;g", "Down")
    assert saved.state is AlertState.FIRING
    second.update([])
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert store.keys() == []
    await second.aclose()


async def test_state_store_keeps_the_last_sent_time_of_each_resend(rig: Rig) -> None:
    """Every re-send of a firing alert is saved, so a restart resumes its resend schedule."""
    store = InMemoryAlertStateStore()
    rig.store.append(UP, 0, 0.0)
    manager = rig.manager(state_store=store, resend_delay=60.0)
    manager.update([group(AlertingRule("Down", "up == 0"))])
    for t in (0, 30, 61, 90):
        rig.store.append(UP, t * 1000, 0.0)
        await manager.evaluate_all(t)
    (saved,) = await store.load("rules.yml;g", "Down")
    assert (saved.state, saved.last_sent_at) == (AlertState.FIRING, 61)
    await manager.aclose()


async def test_evaluations_never_go_back_in_time(rig: Rig) -> None:
    """An evaluation at or before the last evaluated timestamp is skipped."""
    manager = rig.manager()
    manager.update([group(DOWN)])
    await manager.evaluate_all(10)
    await manager.evaluate_all(10)
    await manager.evaluate_all(5)
    assert rig.calls == [10]
    await manager.aclose()


async def test_a_failing_notifier_does_not_stop_evaluation(rig: Rig) -> None:
    """notify raising is logged; the group keeps evaluating."""

    def broken(alerts: Sequence[OutgoingAlert]) -> None:
        raise RuntimeError("alertmanager queue full")

    rig.notify = broken  # type: ignore[method-assign]
    rig.store.append(UP, 0, 0.0)
    manager = rig.manager()
    manager.update([group(AlertingRule("Down", "up == 0"))])
    await manager.evaluate_all(0)
    await manager.evaluate_all(60)
    assert rig.calls == [0, 60]
    await manager.aclose()


async def test_nameless_selectors_are_triggered_by_any_metric(rig: Rig) -> None:
    """A group with a selector without a metric name is triggered by any new data."""
    async with rig.manager() as manager:
        manager.update([group(RecordingRule("r", '{job="api"}'))])
        manager.trigger(["anything"])
        await settle(lambda: len(rig.calls) == 1)


async def test_pending_alert_fires_when_its_for_runs_out_without_new_data(rig: Rig) -> None:
    """A pending alert is evaluated again the moment its `for` ends, not at the next interval."""
    rig.store.append(UP, round(time.time() * 1000), 0.0)
    async with rig.manager() as manager:
        manager.update([group(AlertingRule("Down", "up == 0", for_seconds=0.3))])
        manager.trigger({"up"})
        await settle(lambda: rig.calls)
        (ev,) = manager.evaluators()
        ((_, alert),) = ev.active_alerts()
        assert alert.state is AlertState.PENDING
        await settle(lambda: rig.sent, within=1.0)
        ((_, alert),) = ev.active_alerts()
        assert alert.state is AlertState.FIRING
        assert alert.fired_at is not None
        assert alert.fired_at - alert.active_at == pytest.approx(0.3, abs=0.02)
