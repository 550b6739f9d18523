"""The event JSON Schemas: valid themselves, one per producible type, and strict."""

from __future__ import annotations

import copy
import importlib
import json
import pkgutil
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator

import agent
from agent.checks.history import Transition
from agent.checks.results import EVENT_FAILED, EVENT_STATE_CHANGED, check_events
from agent.events.alerts import EVENT_ALERT_FIRING, EVENT_ALERT_RESOLVED, AlertEventEmitter
from agent.model import CheckResult, Event, StepResult
from agent.promql.engine import PromQLEngine
from agent.rules.group import GroupEvaluator, engine_query_func
from agent.rules.model import AlertingRule, RuleGroup
from agent.scrape.base import ScrapeReport
from agent.tsdb.base import labels_from
from agent.tsdb.store import SeriesStore
from agent.watch import ChangeWatcher, InMemoryWatchStateStore, load_watch_rules
from agent.watch.watcher import pilot_watch_config
from tests.events_schema import SCHEMA_DIR, SUFFIX, schemas, validate_event

PREFIX = "io.luckygas.pilot."
T0 = 1_800_000_000.0
TYPE_NAME = re.compile(r"^io\.luckygas\.pilot\.[a-z0-9_]+\.[a-z0-9_.]+$")


def _schema_files() -> list[Any]:
    return sorted(SCHEMA_DIR.glob(f"*{SUFFIX}"))


def _watch_types() -> set[str]:
    """Every event type the pilot's default watch rules can emit."""
    found = set()
    for rule in pilot_watch_config().rules or ():
        spec = getattr(rule, rule.kind)
        for name in ("type", "rising", "falling", "above", "below", "stale", "fresh"):
            value = getattr(spec, name, None)
            if value is not None:
                found.add(value)
    return found


def _constant_types() -> set[str]:
    """Every ``io.luckygas.pilot.*`` string constant of every agent module, imported."""
    found = set()
    for info in pkgutil.walk_packages(agent.__path__, "agent."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if name.isupper() and isinstance(value, str) and TYPE_NAME.match(value):
                found.add(value)
    return found


def test_every_schema_file_is_a_valid_draft_2020_12_schema() -> None:
    """Each file passes check_schema and carries its own name in $id."""
    files = _schema_files()
    assert len(files) >= 3
    for path in files:
        doc = json.loads(path.read_text(encoding="utf-8"))
        Draft202012Validator.check_schema(doc)
        assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema", path
        assert doc["$id"].endswith("/" + path.name), path


def test_type_schemas_are_named_after_their_type_and_refer_to_the_envelope() -> None:
    """``<type>.schema.json`` fixes type to its own name and builds on envelope.schema.json."""
    loaded = schemas()
    for event_type, path in loaded.files.items():
        doc = json.loads(path.read_text(encoding="utf-8"))
        assert path.name == f"{event_type}{SUFFIX}"
        assert doc["$ref"] == "envelope.schema.json"
        assert doc["properties"]["data"], path


def test_every_type_the_code_can_produce_has_a_schema_and_no_schema_is_orphaned() -> None:
    """Check, watch and alert types (and any other type constant in agent/) match the files."""
    produced = _constant_types() | _watch_types()
    known = {EVENT_STATE_CHANGED, EVENT_FAILED, EVENT_ALERT_FIRING, EVENT_ALERT_RESOLVED}
    assert known <= produced
    assert len(_watch_types()) == 16
    assert produced == set(schemas().by_type)


# --------------------------------------------------------------------------- real samples


def _check_samples() -> Iterator[dict[str, Any]]:
    ok = CheckResult("api", "http", True, T0, 0.012, status_code=200)
    failed = CheckResult("api", "http", False, T0, 0.5, reason="timeout after 5s")
    steps = (
        StepResult("login", True, 0.01, 200),
        StepResult("me", False, 0.02, 401, "status 401 not in [200]"),
    )
    flow = CheckResult("order", "flow", False, T0, 0.04, "step me: 401", 401, steps=steps)
    cases = [
        (ok, Transition(None, "ok"), 0),
        (failed, Transition("ok", "failing"), 1),
        (failed, Transition("failing", "failing"), 2),
        (flow, Transition(None, "failing"), 1),
    ]
    for result, transition, failures in cases:
        for event in check_events(
            result,
            transition,
            labels={"service": "api"},
            consecutive_failures=failures,
            source="pilot-agent",
            now=T0,
        ):
            yield event.to_dict()


def _scrape(t: float, values: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> ScrapeReport:
    job, instance = "backend", "backend:8000"
    samples = tuple(
        (labels_from({"__name__": name, "job": job, "instance": instance, **dict(lb)}), v)
        for (name, lb), v in values.items()
    )
    target = labels_from({"job": job, "instance": instance})
    return ScrapeReport(job, instance, target, int(t * 1000), True, None, 0.01, samples)


def _pilot_state(t: float, on: bool, batch: float) -> ScrapeReport:
    """The backend's pilot metrics at ``t``: all quiet (``on`` False) or all changed."""
    flag, dep = (("flag", "new_order_flow"),), (("dependency", "banking"),)
    v = 1.0 if on else 0.0
    return _scrape(
        t,
        {
            ("feature_flag_enabled", flag): v,
            ("feature_flag_rollout_percent", flag): 50.0 if on else 10.0,
            ("feature_flag_kill_switch_engaged", flag): v,
            ("feature_flag_pilot_customers", flag): 7.0 if on else 5.0,
            ("migration_customers", (("state", "failed"),)): 2.0 if on else 0.0,
            ("migration_customers", (("state", "rolled_back"),)): v,
            ("migration_customers", (("state", "pending"),)): 3.0,
            ("migration_rollback_in_progress", ()): v,
            ("migration_last_batch_timestamp_seconds", ()): batch,
            ("dual_write_lag_seconds", ()): 70.0 if on else 0.0,
            ("circuit_breaker_state", (("dependency", "sms"),)): 2.0 if on else 0.0,
            ("failover_switches_total", dep): 3.0 if on else 2.0,
            ("failover_switch_duration_seconds_sum", dep): 3.25 if on else 2.0,
            ("failover_switch_duration_seconds_count", dep): 3.0 if on else 2.0,
            ("failover_active", dep): v,
        },
    )


async def _watch_samples() -> list[dict[str, Any]]:
    watcher = ChangeWatcher(
        load_watch_rules(None), state=InMemoryWatchStateStore(), source="pilot-agent"
    )
    await watcher.restore()
    assert watcher.observe(_pilot_state(T0, False, T0)) == []
    changed = watcher.observe(_pilot_state(T0 + 600, True, T0))
    back = watcher.observe(_pilot_state(T0 + 615, False, T0 + 610))
    return [e.to_dict() for e in [*changed, *back]]


async def _alert_samples() -> list[dict[str, Any]]:
    """An alert fired and resolved by the real rule engine, through the real emitter."""
    store = SeriesStore()
    up = labels_from({"__name__": "up", "job": "api", "instance": "api:8000"})
    rule = AlertingRule(
        "PilotApiDown",
        "up == 0",
        labels={"severity": "critical"},
        annotations={"summary": "{{ $labels.job }} is down"},
    )
    group = GroupEvaluator(
        RuleGroup("pilot", "rules.yml", [rule], labels={"team": "pilot"}),
        query=engine_query_func(PromQLEngine(), store),
        appender=store,
    )
    events: list[Event] = []

    async def emit(event: Event) -> None:
        events.append(event)

    clock = [T0]
    async with AlertEventEmitter(emit=emit, source="pilot-agent", clock=lambda: clock[0]) as em:
        for t, value in ((T0, 0.0), (T0 + 60, 1.0)):
            store.append(up, int(t * 1000), value)
            clock[0] = t
            group.evaluate(t)
            em.send(group.alerts_to_send(t, 60.0))
    assert [e.type for e in events] == [EVENT_ALERT_FIRING, EVENT_ALERT_RESOLVED]
    return [e.to_dict() for e in events]


async def test_events_from_the_real_producers_validate() -> None:
    """Check, watch (all 16 default types) and alert events as produced pass their schemas."""
    samples = [*_check_samples(), *(await _watch_samples()), *(await _alert_samples())]
    assert len({e["type"] for e in await _watch_samples()}) == 16
    for event in samples:
        assert validate_event(json.loads(json.dumps(event))) == [], event
    own = {EVENT_STATE_CHANGED, EVENT_FAILED, EVENT_ALERT_FIRING, EVENT_ALERT_RESOLVED}
    assert {e["type"] for e in samples} == own | _watch_types()


# --------------------------------------------------------------------------- broken events

Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: object) -> Mutation:
    *parents, last = path.split(".")

    def mutate(event: dict[str, Any]) -> None:
        target = event
        for key in parents:
            target = target[key]
        target[last] = value

    return mutate


def _drop(path: str) -> Mutation:
    *parents, last = path.split(".")

    def mutate(event: dict[str, Any]) -> None:
        target = event
        for key in parents:
            target = target[key]
        del target[last]

    return mutate


BROKEN: list[tuple[str, Mutation, str]] = [
    ("check.failed", _drop("data.consecutive_failures"), "'consecutive_failures' is a required"),
    ("check.failed", _set("data.extra", 1), "Unevaluated properties are not allowed"),
    ("check.failed", _set("data.kind", "ftp"), "is not one of"),
    ("check.failed", _set("data.success", True), "False was expected"),
    ("check.state_changed", _set("data.state", "failing"), "'ok' was expected"),
    ("check.state_changed", _set("data.steps", []), "should not be valid"),
    ("check.state_changed", _set("time", "1970-01-01 00:00:00"), "does not match"),
    ("check.state_changed", _set("time", "2026-02-30T00:00:00.000Z"), "is not a 'date-time'"),
    ("check.state_changed", _set("specversion", "0.3"), "'1.0' was expected"),
    ("check.state_changed", _set("traceparent", "00-ab"), "Additional properties"),
    ("check.state_changed", _drop("subject"), "'subject' is a required"),
    ("check.state_changed", _set("id", "e1"), "does not match"),
    ("alert.firing", _set("data.state", "resolved"), "'firing' was expected"),
    ("alert.firing", _set("subject", "ApiDown"), "does not match"),
    ("alert.resolved", _drop("data.fingerprint"), "'fingerprint' is a required"),
    ("flag.enabled", _set("data.before", "0"), "is not of type 'number'"),
    ("flag.enabled", _set("data.threshold", 5), "Unevaluated properties"),
    ("breaker.state_changed", _set("data.after_name", "ajar"), "is not one of"),
    ("migration.stalled", _drop("data.condition_holds"), "'condition_holds' is a required"),
    ("failover.switched", _set("data.context", {}), "'failover_active' is a required"),
]


async def _sample(short_type: str) -> dict[str, Any]:
    samples = [*_check_samples(), *(await _watch_samples()), *(await _alert_samples())]
    return copy.deepcopy(next(e for e in samples if e["type"] == PREFIX + short_type))


@pytest.mark.parametrize(("short_type", "mutate", "expected"), BROKEN)
async def test_broken_events_are_rejected(short_type: str, mutate: Mutation, expected: str) -> None:
    """A good event with one field broken fails validation with a problem naming it."""
    event = await _sample(short_type)
    assert validate_event(event) == []
    mutate(event)
    problems = validate_event(event)
    assert any(expected in p for p in problems), problems


async def test_unknown_types_and_non_objects_are_problems() -> None:
    """A type without a schema file, or something that is not an object, never passes."""
    event = (await _alert_samples())[0]
    event["type"] = PREFIX + "alert.exploded"
    assert "unknown event type" in validate_event(event)[0]
    assert validate_event([event]) == ["not a JSON object: list"]
