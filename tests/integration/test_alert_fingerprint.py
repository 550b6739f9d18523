"""Alert events name an alert by the same fingerprint a real Alertmanager 0.25 shows."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import httpx
import pytest

from agent.events.alerts import AlertEventEmitter, fingerprint, rfc3339
from agent.model import Event
from agent.rules.model import OutgoingAlert
from agent.tsdb.base import labels_from
from tests.integration.test_alertmanager_config import alertmanager

pytestmark = pytest.mark.integration

CONFIG = """\
route:
  receiver: blackhole
receivers:
  - name: blackhole
"""

LABEL_SETS = [
    {"alertname": "PilotApiDown", "service": "api", "severity": "critical"},
    {"alertname": "OnlyName"},
    # Upper case sorts before "_" and lower case; Go sorts bytes as Python sorts code points.
    {"alertname": "Order", "Zone": "z", "_private": "p", "a": "", "zz": "last"},
    {"alertname": "Unicode", "city": "Kaohsiung 高雄", "note": "naïve ✓ 🚒"},
    {"alertname": "Separators", "a": "b\xffc", "path": "/x=y,z\n"},
]


def _alerts(client: httpx.Client) -> dict[str, dict[str, str]]:
    """Alertmanager's alerts as fingerprint → labels."""
    answer = client.get("/api/v2/alerts", params={"active": "true", "silenced": "true"})
    answer.raise_for_status()
    return {a["fingerprint"]: a["labels"] for a in answer.json()}


def test_fingerprints_match_alertmanager_for_assorted_label_sets(tmp_path: Path) -> None:
    """For each label set posted, GET /api/v2/alerts reports fingerprint(labels)."""
    config = tmp_path / "alertmanager.yml"
    config.write_text(CONFIG, encoding="utf-8")
    ends = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    body = [{"labels": labels, "endsAt": ends} for labels in LABEL_SETS]
    with alertmanager(config, tmp_path) as client:
        client.post("/api/v2/alerts", json=body).raise_for_status()
        seen = _alerts(client)
    assert len(seen) == len(LABEL_SETS)
    # Alertmanager drops labels with empty values, as our label sets do.
    expected = {
        fingerprint(labels_from(labels)): dict(labels_from(labels)) for labels in LABEL_SETS
    }
    assert seen == expected


def test_an_alert_event_subject_is_the_fingerprint_alertmanager_shows(tmp_path: Path) -> None:
    """The firing event for an alert the agent sends carries Alertmanager's fingerprint."""
    config = tmp_path / "alertmanager.yml"
    config.write_text(CONFIG, encoding="utf-8")
    now = dt.datetime.now(dt.UTC).timestamp()
    labels = labels_from({"alertname": "PilotDualWriteLagHigh", "severity": "warning"})
    alert = OutgoingAlert(labels, {"summary": "lag"}, now - 60, now + 3600, "http://agent/g")
    events: list[Event] = []

    async def emit(event: Event) -> None:
        events.append(event)

    async def send() -> None:
        async with AlertEventEmitter(emit=emit, source="pilot-agent", clock=lambda: now) as em:
            em.send([alert])

    asyncio.run(send())
    postable = {
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "startsAt": rfc3339(alert.starts_at),
        "endsAt": rfc3339(alert.ends_at),
        "generatorURL": alert.generator_url,
    }
    with alertmanager(config, tmp_path) as client:
        client.post("/api/v2/alerts", json=[postable]).raise_for_status()
        seen = _alerts(client)
    (event,) = events
    assert list(seen) == [event.subject]
    assert event.data["fingerprint"] == event.subject
