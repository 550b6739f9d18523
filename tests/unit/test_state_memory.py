"""The embedded state store: JSON codec, views, and the snapshot file."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from agent.rules.model import Alert, AlertState
from agent.state.base import CheckSnapshot
from agent.state.codec import (
    alert_from_json,
    alert_to_json,
    dumps,
    snapshot_from_json,
    snapshot_to_json,
)
from agent.state.memory import MemoryStateStore
from exporters.state import StateMetricsExporter

FULL = Alert(
    labels=(("zone", "b"), ("alertname", "Down"), ("a", "x")),
    annotations={"summary": "api down", "runbook": "https://runbooks/api"},
    state=AlertState.FIRING,
    value=0.25,
    active_at=100.5,
    fired_at=130.0,
    resolved_at=190.0,
    last_sent_at=191.25,
    valid_until=251.0,
    keep_firing_since=180.0,
)
BARE = Alert((("alertname", "Pending"),), {}, AlertState.PENDING, -3.0, 7.0)
SNAP = CheckSnapshot("failing", 4, 1000.0, 0.75, "timeout", None, "timeout", 1000.0)


def _through_json(value: object) -> object:
    return json.loads(dumps(value))


def test_alert_round_trip_keeps_every_field_and_label_order() -> None:
    """Every Alert field, set or None, survives JSON text; labels keep their order."""
    for alert in (FULL, BARE):
        back = alert_from_json(_through_json(alert_to_json(alert)))
        assert back == alert
        assert back.labels == alert.labels
    encoded = alert_to_json(BARE)
    assert set(encoded) == {
        "labels",
        "annotations",
        "state",
        "value",
        "active_at",
        "fired_at",
        "resolved_at",
        "last_sent_at",
        "valid_until",
        "keep_firing_since",
    }
    assert encoded["fired_at"] is None and encoded["labels"] == [["alertname", "Pending"]]


def test_non_finite_alert_values_round_trip_as_strings() -> None:
    """NaN and infinite values are written as strings that JSON accepts and read back."""
    for value, text in ((math.nan, "NaN"), (math.inf, "+Inf"), (-math.inf, "-Inf")):
        alert = Alert((("alertname", "X"),), {}, AlertState.FIRING, value, 1.0)
        encoded = alert_to_json(alert)
        assert encoded["value"] == text
        back = alert_from_json(_through_json(encoded)).value
        assert (math.isnan(back) and math.isnan(value)) or back == value


def test_malformed_alert_and_snapshot_json_is_rejected() -> None:
    """Missing fields, wrong types and unknown states raise ValueError, not KeyError."""
    good = alert_to_json(FULL)
    for broken in (
        {k: v for k, v in good.items() if k != "active_at"},
        {**good, "state": "exploded"},
        {**good, "value": "12"},
        [],
    ):
        with pytest.raises(ValueError):
            alert_from_json(broken)
    snap = snapshot_to_json(SNAP)
    for broken_snap in (
        {**snap, "state": "meh"},
        {**snap, "consecutive_failures": -1},
        {**snap, "consecutive_failures": True},
        {k: v for k, v in snap.items() if k != "reason"},
    ):
        with pytest.raises(ValueError):
            snapshot_from_json(broken_snap)


def test_check_snapshot_round_trip_with_none_fields() -> None:
    """A snapshot with and without a last failure comes back equal."""
    ok = CheckSnapshot("ok", 0, 5.0, 0.1, status_code=200)
    for snap in (SNAP, ok):
        assert snapshot_from_json(_through_json(snapshot_to_json(snap))) == snap


async def test_views_copy_what_they_save_and_empty_alerts_forget() -> None:
    """Later changes to saved objects do not leak in; saving no alerts removes the rule."""
    store = MemoryStateStore()
    alert = Alert((("alertname", "A"),), {"s": "1"}, AlertState.PENDING, 1.0, 10.0)
    await store.alerts.save("f.yml;g", "A", [alert])
    alert.state, alert.fired_at = AlertState.FIRING, 20.0
    assert (await store.alerts.load("f.yml;g", "A"))[0].state is AlertState.PENDING
    entry = {"v": 1.0}
    await store.watch.save({"k": entry})
    entry["v"] = 2.0
    assert await store.watch.load() == {"k": {"v": 1.0}}
    await store.alerts.save("f.yml;g", "A", [])
    assert await store.alerts.load("f.yml;g", "A") == []
    assert store.alerts.keys() == []
    store.checks.save_nowait("api", SNAP)
    await store.checks.save("gone", SNAP)
    await store.checks.save("gone", None)
    assert await store.checks.load() == {"api": SNAP}


async def test_snapshot_round_trip_across_restarts(tmp_path: Path) -> None:
    """What one store held at close is what the next store started on the file holds."""
    path = tmp_path / "state" / "state.json"
    async with MemoryStateStore(path, snapshot_interval=3600) as first:
        await first.alerts.save("rules.yml;api", "Down", [FULL, BARE])
        await first.checks.save("api", SNAP)
        await first.watch.save({"breaker/sms": {"value": 2.0, "since": 5.0}})
    assert json.loads(path.read_text())["version"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]  # no temporary files
    async with MemoryStateStore(path) as second:
        assert await second.alerts.load("rules.yml;api", "Down") == [FULL, BARE]
        assert await second.checks.load() == {"api": SNAP}
        assert await second.watch.load() == {"breaker/sms": {"value": 2.0, "since": 5.0}}


async def test_snapshot_is_written_periodically_only_when_changed(tmp_path: Path) -> None:
    """The background writer writes a changed state without waiting for close, once."""
    path, registry = tmp_path / "s.json", CollectorRegistry()
    store = MemoryStateStore(path, snapshot_interval=0.05, metrics=StateMetricsExporter(registry))
    async with store:
        await store.checks.save("api", SNAP)
        async with asyncio.timeout(10):
            while not path.exists():  # noqa: ASYNC110 (the file is what we wait for)
                await asyncio.sleep(0.02)
        assert json.loads(path.read_text())["checks"]["api"]["consecutive_failures"] == 4
        assert await store.write_snapshot() is False  # nothing new since
    assert registry.get_sample_value("agent_state_store_writes_total") == 1.0
    assert registry.get_sample_value("agent_state_store_up") == 1.0


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        '{"version": 1, "alerts": {"g": {"r": [{"labels": []}]}}}',
        '{"version": 99}',
        "[]",
    ],
)
async def test_corrupt_snapshot_is_logged_and_ignored(tmp_path: Path, text: str) -> None:
    """An unreadable snapshot leaves the store empty and running, and is replaced on close."""
    path = tmp_path / "state.json"
    path.write_text(text)
    with capture_logs() as logs:
        async with MemoryStateStore(path) as store:
            assert await store.checks.load() == {}
            assert store.alerts.keys() == []
            await store.checks.save("api", SNAP)
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == [
        "state_snapshot_unreadable"
    ]
    assert json.loads(path.read_text())["checks"]["api"]["state"] == "failing"


async def test_snapshot_write_failure_is_logged_and_counted(tmp_path: Path) -> None:
    """A snapshot that cannot be written does not raise; it is counted and logged."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    registry = CollectorRegistry()
    store = MemoryStateStore(blocker / "state.json", metrics=StateMetricsExporter(registry))
    with capture_logs() as logs:
        async with store:
            await store.checks.save("api", SNAP)
    assert "state_snapshot_write_failed" in [e["event"] for e in logs]
    assert registry.get_sample_value("agent_state_store_errors_total") == 1.0


def test_leader_metrics_exist_only_with_leader_election() -> None:
    """Without election no agent_leader series; with it, transitions count real changes."""
    solo = CollectorRegistry()
    StateMetricsExporter(solo).leader(True)
    assert solo.get_sample_value("agent_leader") is None
    ha = CollectorRegistry()
    metrics = StateMetricsExporter(ha, leader_election=True)
    for leading in (False, True, True, False):
        metrics.leader(leading)
    assert ha.get_sample_value("agent_leader") == 0.0
    assert ha.get_sample_value("agent_leader_transitions_total") == 2.0
