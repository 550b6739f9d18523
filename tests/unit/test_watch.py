"""The change watcher: pilot state changes become exactly one event each, across restarts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import structlog
from pydantic import ValidationError

from agent.config.watch import WatchConfig, WatchRule
from agent.errors import ComponentStateError
from agent.model import Event
from agent.scrape.base import ScrapeReport
from agent.tsdb.base import STALE_NAN, labels_from
from agent.watch import (
    ChangeWatcher,
    InMemoryWatchStateStore,
    JsonFileWatchStateStore,
    load_watch_rules,
    pilot_watch_config,
)

P = "io.luckygas.pilot."
JOB, INSTANCE = "backend", "backend:8000"
T0 = 1_800_000_000.0

Sample = tuple[str, Mapping[str, str], float]


def report(t: float, *samples: Sample, success: bool = True) -> ScrapeReport:
    """A scrape of the backend at ``t`` seconds with ``(metric, labels, value)`` samples."""
    stored = tuple(
        (labels_from({"__name__": n, "job": JOB, "instance": INSTANCE, **lb}), v)
        for n, lb, v in samples
    )
    return ScrapeReport(
        job=JOB,
        instance=INSTANCE,
        target_labels=labels_from({"job": JOB, "instance": INSTANCE}),
        t_ms=int(t * 1000),
        success=success,
        error=None if success else "connection refused",
        duration_seconds=0.01,
        samples=stored if success else (),
    )


async def watcher(store: Any = None) -> ChangeWatcher:
    w = ChangeWatcher(
        load_watch_rules(None), state=store or InMemoryWatchStateStore(), source="pilot-agent"
    )
    await w.restore()
    return w


def types(events: list[Event]) -> list[str]:
    return [e.type.removeprefix(P) for e in events]


def flag(metric: str, value: float, name: str = "new_order_flow") -> Sample:
    return (metric, {"flag": name}, value)


def customers(pending: float, failed: float = 0, rolled_back: float = 0) -> list[Sample]:
    counts = {"pending": pending, "failed": failed, "rolled_back": rolled_back, "migrated": 10}
    return [("migration_customers", {"state": s}, v) for s, v in counts.items()]


# --------------------------------------------------------------------------- feature flags


async def test_flag_enabled_then_disabled() -> None:
    """0→1 of feature_flag_enabled is flag.enabled and 1→0 is flag.disabled, with the subject."""
    w = await watcher()
    assert w.observe(report(T0, flag("feature_flag_enabled", 0))) == []
    up = w.observe(report(T0 + 15, flag("feature_flag_enabled", 1)))
    down = w.observe(report(T0 + 30, flag("feature_flag_enabled", 0)))
    assert types(up) == ["flag.enabled"] and types(down) == ["flag.disabled"]
    assert up[0].subject == "flag/new_order_flow"
    assert (up[0].data["before"], up[0].data["after"]) == (0, 1)


async def test_rollout_change_carries_before_and_after() -> None:
    """A rollout from 10% to 50% is one rollout_changed event with before 10 and after 50."""
    w = await watcher()
    w.observe(report(T0, flag("feature_flag_rollout_percent", 10)))
    [event] = w.observe(report(T0 + 15, flag("feature_flag_rollout_percent", 50)))
    assert event.type == P + "flag.rollout_changed"
    assert (event.data["before"], event.data["after"]) == (10, 50)
    assert event.data["key"] == {"flag": "new_order_flow"}


async def test_kill_switch_engaged_and_released() -> None:
    """The kill switch going to 1 and back to 0 gives engaged, then released."""
    w = await watcher()
    w.observe(report(T0, flag("feature_flag_kill_switch_engaged", 0)))
    on = w.observe(report(T0 + 15, flag("feature_flag_kill_switch_engaged", 1)))
    off = w.observe(report(T0 + 30, flag("feature_flag_kill_switch_engaged", 0)))
    assert types(on + off) == ["flag.kill_switch_engaged", "flag.kill_switch_released"]


async def test_pilot_customers_changed() -> None:
    """A change in the number of pilot customers of a flag is one pilot_customers_changed."""
    w = await watcher()
    w.observe(report(T0, flag("feature_flag_pilot_customers", 3)))
    [event] = w.observe(report(T0 + 15, flag("feature_flag_pilot_customers", 5)))
    assert event.type == P + "flag.pilot_customers_changed"
    assert (event.data["before"], event.data["after"]) == (3, 5)


# --------------------------------------------------------------------------- migration


async def test_failed_and_rolled_back_counts_increasing() -> None:
    """Customers moving into failed or rolled_back are reported; a decrease is not."""
    w = await watcher()
    w.observe(report(T0, *customers(100, failed=2, rolled_back=0)))
    events = w.observe(report(T0 + 15, *customers(90, failed=5, rolled_back=1)))
    assert types(events) == ["migration.customers_failed", "migration.customers_rolled_back"]
    failed = events[0].data
    assert (failed["before"], failed["after"], failed["increase"]) == (2, 5, 3)
    assert events[0].subject == "migration"
    assert w.observe(report(T0 + 30, *customers(90, failed=4, rolled_back=1))) == []
    [again] = w.observe(report(T0 + 45, *customers(90, failed=6, rolled_back=1)))
    assert (again.data["before"], again.data["increase"]) == (4, 2)


async def test_rollback_started_and_finished() -> None:
    """migration_rollback_in_progress 0→1 is rollback_started, 1→0 rollback_finished."""
    w = await watcher()
    w.observe(report(T0, ("migration_rollback_in_progress", {}, 0)))
    start = w.observe(report(T0 + 15, ("migration_rollback_in_progress", {}, 1)))
    end = w.observe(report(T0 + 30, ("migration_rollback_in_progress", {}, 0)))
    assert types(start + end) == ["migration.rollback_started", "migration.rollback_finished"]


def batch(t: float, last_batch: float, pending: float) -> ScrapeReport:
    return report(
        t, ("migration_last_batch_timestamp_seconds", {}, last_batch), *customers(pending)
    )


async def test_migration_stalled_then_resumed() -> None:
    """No batch for over 5m while customers are pending is stalled; a new batch is resumed."""
    w = await watcher()
    assert w.observe(batch(T0, T0, pending=50)) == []
    assert w.observe(batch(T0 + 300, T0, pending=50)) == []  # exactly max_age: not yet
    [stalled] = w.observe(batch(T0 + 315, T0, pending=50))
    assert stalled.type == P + "migration.stalled"
    assert stalled.data["age_seconds"] == 315 and stalled.data["max_age_seconds"] == 300
    assert w.observe(batch(T0 + 330, T0, pending=50)) == []
    [resumed] = w.observe(batch(T0 + 345, T0 + 340, pending=40))
    assert resumed.type == P + "migration.resumed"
    assert (resumed.data["before"], resumed.data["after"]) == (T0, T0 + 340)
    assert resumed.data["condition_holds"] is True


async def test_migration_not_stalled_while_no_customers_pending() -> None:
    """An old last batch is no stall when nothing is pending; pending work turns it into one."""
    w = await watcher()
    w.observe(batch(T0, T0, pending=0))
    assert w.observe(batch(T0 + 3600, T0, pending=0)) == []
    [stalled] = w.observe(batch(T0 + 3615, T0, pending=5))
    assert stalled.type == P + "migration.stalled"
    [cleared] = w.observe(batch(T0 + 3630, T0, pending=0))
    assert cleared.type == P + "migration.resumed"
    assert cleared.data["condition_holds"] is False


# --------------------------------------------------------------------------- dual-write, breakers


async def test_dual_write_lag_crosses_thresholds_up_and_down_once_each() -> None:
    """Lag rising past 5s is one lag_above and falling to 5-1s one lag_below, no flapping."""
    w = await watcher()
    lags = [0.2, 2, 5.5, 9, 4.5, 4.2, 6, 4.2, 4, 0.3]
    events = [e for i, lag in enumerate(lags) for e in w.observe(lag_report(T0 + 15 * i, lag))]
    assert types(events) == ["dual_write.lag_above", "dual_write.lag_below"]
    above, below = (e.data for e in events)
    assert (above["before"], above["after"], above["threshold"]) == (2, 5.5, 5)
    assert (below["before"], below["after"], below["threshold"]) == (4.2, 4, 5)
    assert events[0].subject == "dual_write"


def lag_report(t: float, lag: float) -> ScrapeReport:
    return report(t, ("dual_write_lag_seconds", {}, lag))


async def test_dual_write_lag_jumping_two_thresholds_is_one_event() -> None:
    """A jump past both thresholds is one lag_above naming the highest threshold exceeded."""
    w = await watcher()
    w.observe(lag_report(T0, 1))
    [event] = w.observe(lag_report(T0 + 15, 900))
    assert event.data["threshold"] == 60
    [down] = w.observe(lag_report(T0 + 30, 0))
    assert down.type == P + "dual_write.lag_below" and down.data["threshold"] == 5


async def test_breaker_transitions_carry_state_names() -> None:
    """closed→open→half_open→closed gives three state_changed events with names."""
    w = await watcher()
    states = [0, 2, 1, 0]
    events = [
        e
        for i, s in enumerate(states)
        for e in w.observe(report(T0 + 15 * i, ("circuit_breaker_state", {"dependency": "sms"}, s)))
    ]
    assert types(events) == ["breaker.state_changed"] * 3
    names = [(e.data["before_name"], e.data["after_name"]) for e in events]
    assert names == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    assert {e.subject for e in events} == {"breaker/sms"}


def failover(t: float, switches: float, dur_sum: float, dur_count: float) -> ScrapeReport:
    dep = {"dependency": "banking"}
    other = {"dependency": "sms"}
    return report(
        t,
        ("failover_switches_total", dep, switches),
        ("failover_active", dep, switches % 2),
        ("failover_switch_duration_seconds_bucket", {**dep, "le": "+Inf"}, dur_count),
        ("failover_switch_duration_seconds_sum", dep, dur_sum),
        ("failover_switch_duration_seconds_count", dep, dur_count),
        ("failover_switches_total", other, 7),
        ("failover_switch_duration_seconds_sum", other, 70.0),
        ("failover_switch_duration_seconds_count", other, 7),
    )


async def test_failover_switch_duration_from_histogram_deltas() -> None:
    """A failover switch reports its duration as the delta of the histogram's sum over count."""
    w = await watcher()
    assert w.observe(failover(T0, 2, 3.0, 2)) == []
    [event] = w.observe(failover(T0 + 15, 3, 4.25, 3))
    assert event.type == P + "failover.switched" and event.subject == "failover/banking"
    data = event.data
    assert (data["increase"], data["observed_count"], data["observed_sum"]) == (1, 1, 1.25)
    assert data["observed_mean"] == 1.25
    assert data["context"] == {"failover_active": 1}
    assert w.observe(failover(T0 + 30, 3, 4.25, 3)) == []


# --------------------------------------------------------------------------- one event per change


async def test_repeated_identical_scrapes_yield_exactly_one_event() -> None:
    """After a change, the same values scraped again and again yield nothing more."""
    w = await watcher()
    w.observe(report(T0, flag("feature_flag_enabled", 0), ("dual_write_lag_seconds", {}, 1)))
    events = []
    for i in range(1, 6):
        scrape = report(T0 + 15 * i, flag("feature_flag_enabled", 1), lag_sample(50))
        events += w.observe(scrape)
    assert types(events) == ["flag.enabled", "dual_write.lag_above"]


def lag_sample(lag: float) -> Sample:
    return ("dual_write_lag_seconds", {}, lag)


async def test_first_observation_is_the_baseline() -> None:
    """A series seen for the first time, whatever its value, yields no event."""
    w = await watcher()
    first = report(
        T0,
        flag("feature_flag_enabled", 1),
        ("circuit_breaker_state", {"dependency": "maps"}, 2),
        lag_sample(500),
        *customers(10, failed=9),
    )
    assert w.observe(first) == []


async def test_event_envelope_and_common_data() -> None:
    """Events carry rule, metric, labels, key, job, instance; time is the scrape time."""
    w = await watcher()
    w.observe(report(T0, flag("feature_flag_enabled", 0)))
    [event] = w.observe(report(T0 + 15.5, flag("feature_flag_enabled", 1)))
    assert event.source == "pilot-agent" and event.time == T0 + 15.5
    assert event.data["rule"] == "flag_enabled"
    assert event.data["metric"] == "feature_flag_enabled"
    assert event.data["labels"] == {"flag": "new_order_flow", "job": JOB, "instance": INSTANCE}
    assert (event.data["job"], event.data["instance"]) == (JOB, INSTANCE)
    json.dumps(event.to_dict(), allow_nan=False)


async def test_failed_scrape_changes_nothing() -> None:
    """A failed scrape yields no event and keeps the state: the change is reported once after."""
    w = await watcher()
    w.observe(report(T0, flag("feature_flag_enabled", 0)))
    assert w.observe(report(T0 + 15, success=False)) == []
    assert types(w.observe(report(T0 + 30, flag("feature_flag_enabled", 1)))) == ["flag.enabled"]


async def test_disappearing_series_keeps_its_state() -> None:
    """A series missing (or stale-marked) in a scrape keeps its state and yields no event."""
    w = await watcher()
    w.observe(report(T0, flag("feature_flag_enabled", 1)))
    assert w.observe(report(T0 + 15)) == []
    assert w.observe(report(T0 + 30, flag("feature_flag_enabled", STALE_NAN))) == []
    assert w.observe(report(T0 + 45, flag("feature_flag_enabled", 1))) == []
    assert types(w.observe(report(T0 + 60, flag("feature_flag_enabled", 0)))) == ["flag.disabled"]


# --------------------------------------------------------------------------- restarts


async def test_change_while_down_yields_one_event_after_restore(tmp_path: Path) -> None:
    """State persisted to a JSON file: a change that happened while down is reported once."""
    path = tmp_path / "watch-state.json"
    before = await watcher(JsonFileWatchStateStore(path))
    before.observe(report(T0, flag("feature_flag_rollout_percent", 10)))
    await before.persist()

    after = await watcher(JsonFileWatchStateStore(path))
    [event] = after.observe(report(T0 + 600, flag("feature_flag_rollout_percent", 50)))
    assert (event.data["before"], event.data["after"]) == (10, 50)
    assert after.observe(report(T0 + 615, flag("feature_flag_rollout_percent", 50))) == []


async def test_change_already_reported_is_not_reported_again(tmp_path: Path) -> None:
    """A change reported and persisted before a restart yields no event after it."""
    path = tmp_path / "watch-state.json"
    before = await watcher(JsonFileWatchStateStore(path))
    before.observe(report(T0, ("circuit_breaker_state", {"dependency": "sms"}, 0)))
    assert len(before.observe(report(T0 + 15, ("circuit_breaker_state", {"dependency": "sms"}, 2))))
    await before.persist()

    after = await watcher(JsonFileWatchStateStore(path))
    assert after.observe(report(T0 + 60, ("circuit_breaker_state", {"dependency": "sms"}, 2))) == []
    leftovers = await asyncio.to_thread(lambda: list(tmp_path.glob(".watch-state.json.*")))
    assert leftovers == [], "temporary file left behind"


async def test_persist_saves_only_changed_entries() -> None:
    """persist() writes only entries changed since the last persist, and nothing when none did."""
    store = InMemoryWatchStateStore()
    w = await watcher(store)
    w.observe(report(T0, flag("feature_flag_enabled", 0), flag("feature_flag_enabled", 1, "x")))
    await w.persist()
    assert store.saves == 1 and len(store.entries) == 2
    w.observe(
        report(T0 + 15, flag("feature_flag_enabled", 0), flag("feature_flag_enabled", 0, "x"))
    )
    changed: list[Mapping[str, Any]] = []
    real_save = store.save

    async def spy(changes: Mapping[str, Any]) -> None:
        changed.append(changes)
        await real_save(changes)

    store.save = spy  # type: ignore[method-assign]
    await w.persist()
    await w.persist()
    assert len(changed) == 1 and len(changed[0]) == 1


async def test_failed_persist_is_retried_on_the_next_persist() -> None:
    """A store error propagates and the unsaved entries are saved by the next persist()."""
    store = InMemoryWatchStateStore()
    w = await watcher(store)
    w.observe(report(T0, flag("feature_flag_enabled", 0)))
    real_save = store.save

    async def broken(changes: Mapping[str, Any]) -> None:
        raise OSError("disk full")

    store.save = broken  # type: ignore[method-assign]
    with pytest.raises(OSError):
        await w.persist()
    store.save = real_save  # type: ignore[method-assign]
    await w.persist()
    assert len(store.entries) == 1


async def test_unreadable_state_file_starts_from_baselines(tmp_path: Path) -> None:
    """A corrupt state file is logged and treated as empty instead of stopping the agent."""
    path = tmp_path / "watch-state.json"
    path.write_text("{not json")
    with structlog.testing.capture_logs() as logs:
        w = await watcher(JsonFileWatchStateStore(path))
    assert [entry["event"] for entry in logs] == ["watch_state_unreadable"]
    assert w.observe(report(T0, flag("feature_flag_enabled", 1))) == []
    await w.persist()
    assert len(json.loads(path.read_text())) == 1


async def test_observe_before_restore_is_refused() -> None:
    """Observing before restore() would report changes twice, so it raises."""
    w = ChangeWatcher(load_watch_rules(None), state=InMemoryWatchStateStore(), source="a")
    with pytest.raises(ComponentStateError):
        w.observe(report(T0))


# --------------------------------------------------------------------------- configuration


def test_pilot_defaults_load_and_validate() -> None:
    """The bundled pilot.yml validates and covers every pilot change event type."""
    config = pilot_watch_config()
    rules = load_watch_rules(None)
    assert config.rules == rules
    emitted = set()
    for rule in rules:
        spec = getattr(rule, rule.kind).model_dump()
        emitted |= {v for k, v in spec.items() if isinstance(v, str) and v.startswith(P)}
    assert len(emitted) == 16
    assert load_watch_rules(WatchConfig()) == rules


def test_configured_rules_replace_the_defaults() -> None:
    """A watch section with rules uses exactly those; value names may come as YAML strings."""
    config = WatchConfig.model_validate(
        {
            "rules": [
                {
                    "name": "maps",
                    "metric": "circuit_breaker_state",
                    "matchers": ['dependency=~"maps|sms"'],
                    "value_change": {"type": "x.breaker.changed", "value_names": {"2": "open"}},
                }
            ]
        }
    )
    [rule] = load_watch_rules(config)
    assert rule.value_change is not None and rule.value_change.value_names == {2.0: "open"}
    assert load_watch_rules(WatchConfig(rules=[])) == []


def test_invalid_watch_config_is_rejected_with_every_error() -> None:
    """Missing or double kinds, bad matchers, thresholds and event types are all reported."""
    bad: dict[str, Any] = {
        "rules": [
            {"name": "none", "metric": "m"},
            {
                "name": "two",
                "metric": "m",
                "increase": {"type": "a.b"},
                "value_change": {"type": "a.b"},
            },
            {
                "name": "matcher",
                "metric": "m",
                "matchers": ["state=failed"],
                "increase": {"type": "a.b"},
            },
            {"name": "thr", "metric": "m", "threshold": {"thresholds": [5, 5], "above": "a.b"}},
            {"name": "type", "metric": "m", "increase": {"type": "Not A Type"}},
            {
                "name": "stale",
                "metric": "m",
                "stale_timestamp": {"max_age": "soon", "stale": "a.b"},
            },
            {"name": "vc", "metric": "m", "value_change": {"rising": "a.b"}},
            {"name": "extra", "metric": "m", "increase": {"type": "a.b"}, "unknown": 1},
        ]
    }
    with pytest.raises(ValidationError) as info:
        WatchConfig.model_validate(bad)
    failing = {err["loc"][1] for err in info.value.errors()}
    assert failing == set(range(8))


def test_duplicate_rule_names_are_rejected() -> None:
    """Rule names identify state and events, so two rules may not share one."""
    rule = {"name": "a", "metric": "m", "increase": {"type": "a.b"}}
    with pytest.raises(ValidationError, match="duplicate watch rule name"):
        WatchConfig.model_validate({"rules": [rule, rule]})
    with pytest.raises(ValueError, match="duplicate"):
        parsed = WatchRule.model_validate(rule)
        ChangeWatcher([parsed, parsed], state=InMemoryWatchStateStore(), source="a")
