"""Alert transitions become alert.firing / alert.resolved events, once each, in order."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest
from structlog.testing import capture_logs

from agent.errors import ComponentStateError
from agent.events.alerts import (
    EVENT_ALERT_FIRING,
    EVENT_ALERT_RESOLVED,
    AlertEventEmitter,
    fingerprint,
)
from agent.model import Event
from agent.rules.model import OutgoingAlert
from agent.tsdb.base import labels_from
from tests.events_schema import validate_event

T0 = 1_800_000_000.0
LABELS = labels_from({"alertname": "PilotApiDown", "service": "api", "severity": "page"})


def firing(labels: tuple[tuple[str, str], ...] = LABELS, at: float = T0) -> OutgoingAlert:
    return OutgoingAlert(labels, {"summary": "API down"}, at, at + 240, "http://agent/graph")


def resolved(labels: tuple[tuple[str, str], ...] = LABELS, at: float = T0) -> OutgoingAlert:
    return OutgoingAlert(labels, {"summary": "API down"}, at, at + 60, "http://agent/graph")


class Clock:
    def __init__(self) -> None:
        self.now = T0 + 30

    def __call__(self) -> float:
        return self.now


class Recorder:
    """The injected emit: records events and the thread each was emitted on."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.threads: set[int] = set()
        self.arrived = asyncio.Event()

    async def emit(self, event: Event) -> bool:
        self.events.append(event)
        self.threads.add(threading.get_ident())
        self.arrived.set()
        return True


def emitter_for(
    recorder: Recorder, clock: Clock, scrub: Callable[[str], str] | None = None
) -> AlertEventEmitter:
    return AlertEventEmitter(emit=recorder.emit, source="pilot-agent", clock=clock, scrub=scrub)


def test_fingerprint_is_fnv1a_64_over_sorted_names_and_values_with_separators() -> None:
    """Order does not matter, the 0xff separators do, and no labels give the FNV offset basis."""
    assert fingerprint({}) == "cbf29ce484222325"
    # As a real Alertmanager 0.25 reports it (tests/integration/test_alert_fingerprint.py).
    am_labels = {"alertname": "PilotApiDown", "service": "api", "severity": "critical"}
    assert fingerprint(am_labels) == "bf4aef6b722a7441"
    assert fingerprint({"b": "2", "a": "1"}) == fingerprint((("a", "1"), ("b", "2")))
    assert fingerprint({"a": "bc"}) != fingerprint({"ab": "c"})
    assert fingerprint({"a": ""}) != fingerprint({})
    assert len(fingerprint({"alertname": "été"})) == 16


async def test_first_firing_and_first_resolved_send_give_one_event_each() -> None:
    """Re-sends of a firing or a resolved alert emit nothing; the events carry the alert."""
    recorder, clock = Recorder(), Clock()
    async with emitter_for(recorder, clock) as emitter:
        emitter.send([firing()])
        emitter.send([firing()])
        clock.now = T0 + 90
        emitter.send([resolved()])
        emitter.send([resolved()])
    assert [e.type for e in recorder.events] == [EVENT_ALERT_FIRING, EVENT_ALERT_RESOLVED]
    fire, resolve = recorder.events
    assert fire.subject == resolve.subject == fingerprint(dict(LABELS))
    assert fire.time == T0 + 30 and resolve.time == T0 + 90
    assert fire.data == {
        "alertname": "PilotApiDown",
        "labels": dict(LABELS),
        "annotations": {"summary": "API down"},
        "starts_at": "2027-01-15T08:00:00.000Z",
        "ends_at": "2027-01-15T08:04:00.000Z",
        "generator_url": "http://agent/graph",
        "fingerprint": fire.subject,
        "state": "firing",
    }
    assert resolve.data["state"] == "resolved"
    assert resolve.data["ends_at"] == "2027-01-15T08:01:00.000Z"
    assert all(validate_event(e.to_dict()) == [] for e in recorder.events)


async def test_resolved_without_firing_gives_nothing_and_refiring_gives_a_new_event() -> None:
    """An alert first seen resolved is not reported; one firing again after resolving is."""
    recorder, clock = Recorder(), Clock()
    other = labels_from({"alertname": "PilotLoginFailing"})
    clock.now = T0 + 90
    async with emitter_for(recorder, clock) as emitter:
        emitter.send([resolved(other)])
        emitter.send([firing(at=T0 + 60)])
        emitter.send([resolved(at=T0 + 30)])
        emitter.send([firing(at=T0 + 80)])
    assert [e.data["state"] for e in recorder.events] == ["firing", "resolved", "firing"]
    assert {e.data["alertname"] for e in recorder.events} == {"PilotApiDown"}


async def test_one_batch_gives_events_in_the_order_of_the_alerts() -> None:
    """A batch with several alerts emits their events in batch order."""
    recorder, clock = Recorder(), Clock()
    names = [f"Alert{i}" for i in range(20)]
    async with emitter_for(recorder, clock) as emitter:
        emitter.send([firing(labels_from({"alertname": n})) for n in names])
    assert [e.data["alertname"] for e in recorder.events] == names


async def test_send_from_a_worker_thread_emits_on_the_event_loop() -> None:
    """The rule manager's worker thread may call send; the emit runs on the loop's thread."""
    recorder, clock = Recorder(), Clock()
    async with emitter_for(recorder, clock) as emitter:
        await asyncio.to_thread(emitter.send, [firing()])
        await asyncio.wait_for(recorder.arrived.wait(), timeout=10)
    assert [e.type for e in recorder.events] == [EVENT_ALERT_FIRING]
    assert recorder.threads == {threading.get_ident()}


async def test_close_awaits_the_pending_emits() -> None:
    """Events queued before close are all emitted by the time aclose returns."""
    gate = asyncio.Event()
    done: list[str] = []

    async def slow_emit(event: Event) -> None:
        await gate.wait()
        done.append(event.data["alertname"])

    emitter = AlertEventEmitter(emit=slow_emit, source="pilot-agent", clock=Clock())
    await emitter.start()
    emitter.send([firing(labels_from({"alertname": f"A{i}"})) for i in range(5)])
    closing = asyncio.create_task(emitter.aclose())
    await asyncio.sleep(0)
    assert not closing.done()
    gate.set()
    await asyncio.wait_for(closing, timeout=10)
    assert done == [f"A{i}" for i in range(5)]


async def test_close_gives_up_on_a_stuck_sink_after_its_timeout_and_counts_the_drops() -> None:
    """A sink that never returns does not hold shutdown past close_timeout; the loss is logged."""

    async def stuck(event: Event) -> None:
        await asyncio.Event().wait()

    emitter = AlertEventEmitter(emit=stuck, source="s", clock=Clock(), close_timeout=0.2)
    await emitter.start()
    emitter.send([firing(labels_from({"alertname": f"A{i}"})) for i in range(3)])
    with capture_logs() as logs:
        await asyncio.wait_for(emitter.aclose(), timeout=10)
    assert emitter.dropped == 2  # the first was in flight; two were still queued
    assert any(e["event"] == "alert_events_dropped" for e in logs)


async def test_a_failing_emit_is_logged_and_the_next_events_still_go_out() -> None:
    """An emit that raises is logged; the emitter goes on with the following events."""
    seen: list[str] = []

    async def flaky(event: Event) -> None:
        if not seen:
            seen.append("boom")
            raise RuntimeError("sink down")
        seen.append(event.data["alertname"])

    with capture_logs() as logs:
        async with AlertEventEmitter(emit=flaky, source="s", clock=Clock()) as emitter:
            emitter.send([firing(labels_from({"alertname": n})) for n in ("A", "B")])
    assert seen == ["boom", "B"]
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["alert_event_emit_failed"]


async def test_alerts_sent_before_start_or_after_close_are_dropped_and_logged() -> None:
    """Nothing is emitted outside the running state, and the drop is never silent."""
    recorder, clock = Recorder(), Clock()
    emitter = emitter_for(recorder, clock)
    with capture_logs() as logs:
        emitter.send([firing()])
        await emitter.start()
        await emitter.aclose()
        emitter.send([firing()])
    assert recorder.events == []
    assert emitter.dropped == 2
    assert [e["event"] for e in logs] == ["alert_events_dropped"] * 2
    with pytest.raises(ComponentStateError):
        await emitter.start()


async def test_annotations_pass_through_the_scrubber_and_labels_do_not() -> None:
    """Secrets in rendered annotations are scrubbed; labels stay intact for the fingerprint."""
    recorder, clock = Recorder(), Clock()
    alert = OutgoingAlert(LABELS, {"description": "token s3cret leaked"}, T0, T0 + 240, "")

    def scrub(text: str) -> str:
        return text.replace("s3cret", "***")

    async with emitter_for(recorder, clock, scrub=scrub) as emitter:
        emitter.send([alert])
    (event,) = recorder.events
    assert event.data["annotations"] == {"description": "token *** leaked"}
    assert event.data["labels"] == dict(LABELS)


async def test_alerts_remembered_as_firing_resend_quietly_and_still_resolve() -> None:
    """After a restart, a restored firing alert's re-send gives no event, its resolution does."""
    recorder, clock = Recorder(), Clock()
    clock.now = T0 + 90
    async with emitter_for(recorder, clock) as emitter:
        emitter.remember_firing([LABELS])
        emitter.send([firing(at=T0 + 60)])
        emitter.send([resolved(at=T0 + 30)])
    assert [e.data["state"] for e in recorder.events] == ["resolved"]
