"""What each check result turns into: history, metrics and events."""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.checks.history import CheckHistory
from agent.checks.results import EVENT_FAILED, EVENT_STATE_CHANGED, ResultPipeline
from agent.events.base import MemoryEventSink
from agent.model import CheckResult, Event, StepResult
from agent.secrets import Scrubber


@dataclass
class FakeMetrics:
    results: list[CheckResult] = field(default_factory=list)
    emitted: list[str] = field(default_factory=list)
    sink_errors: int = 0

    def observe_result(self, result: CheckResult) -> None:
        self.results.append(result)

    def event_emitted(self, type: str) -> None:
        self.emitted.append(type)

    def event_sink_error(self) -> None:
        self.sink_errors += 1


def _result(ok: bool, reason: str | None = None) -> CheckResult:
    return CheckResult("api", "http", ok, 100.0, 0.05, reason=reason, status_code=200)


def _pipeline(sink: object, metrics: FakeMetrics, scrub: Scrubber | None = None) -> ResultPipeline:
    return ResultPipeline(
        history=CheckHistory(),
        metrics=metrics,
        sink=sink,  # type: ignore[arg-type]
        labels_of=lambda name: {"service": "api"},
        source="test",
        clock=lambda: 123.0,
        scrub=scrub.scrub_text if scrub else None,
    )


async def test_state_changes_and_failures_become_events() -> None:
    """First result, ok→failing, every failed run and failing→ok each give their events."""
    sink, metrics = MemoryEventSink(), FakeMetrics()
    pipeline = _pipeline(sink, metrics)
    for ok in (True, True, False, False, True):
        await pipeline.handle(_result(ok, None if ok else "timeout after 5s"))
    types = [(e.type, e.data.get("state")) for e in sink.events]
    assert types == [
        (EVENT_STATE_CHANGED, "ok"),
        (EVENT_STATE_CHANGED, "failing"),
        (EVENT_FAILED, None),
        (EVENT_FAILED, None),
        (EVENT_STATE_CHANGED, "ok"),
    ]
    first, changed = sink.events[0], sink.events[1]
    assert first.data["previous_state"] is None
    assert changed.data["previous_state"] == "ok"
    assert sink.events[3].data["consecutive_failures"] == 2
    assert sink.events[2].data["reason"] == "timeout after 5s"
    assert changed.data["labels"] == {"service": "api"}
    assert changed.subject == "api"
    assert len(metrics.results) == 5
    assert metrics.emitted.count(EVENT_FAILED) == 2


class BrokenSink:
    async def emit(self, event: Event) -> None:
        raise OSError("disk full")

    async def aclose(self) -> None:
        return None


async def test_a_failing_sink_is_counted_and_does_not_raise() -> None:
    """A sink error is counted and logged; the result is still recorded."""
    metrics = FakeMetrics()
    pipeline = _pipeline(BrokenSink(), metrics)
    await pipeline.handle(_result(False, "boom"))
    assert metrics.sink_errors == 2
    assert len(metrics.results) == 1


async def test_secrets_in_reasons_are_scrubbed_before_anything_records_them() -> None:
    """A secret that slipped into a reason never reaches history or events."""
    sink, metrics = MemoryEventSink(), FakeMetrics()
    pipeline = _pipeline(sink, metrics, Scrubber({"tok-12345"}))
    result = CheckResult(
        "api",
        "flow",
        False,
        1.0,
        0.1,
        reason="step login: bad tok-12345",
        steps=(StepResult("login", False, 0.1, 401, "bad tok-12345"),),
    )
    await pipeline.handle(result)
    recorded = metrics.results[0]
    assert recorded.reason == "step login: bad [redacted]"
    assert recorded.steps[0].reason == "bad [redacted]"
    assert "tok-12345" not in repr([e.to_dict() for e in sink.events])
