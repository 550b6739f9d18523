"""A restart continues each check's state from its saved snapshot."""

from __future__ import annotations

from agent.checks.history import CheckHistory
from agent.checks.results import EVENT_FAILED, EVENT_STATE_CHANGED, ResultPipeline
from agent.events.base import MemoryEventSink
from agent.model import CheckResult
from agent.state.base import CheckSnapshot


class _Metrics:
    def observe_result(self, result: CheckResult) -> None:
        pass

    def event_emitted(self, type: str) -> None:
        pass

    def event_sink_error(self) -> None:
        pass


def _result(ok: bool, at: float) -> CheckResult:
    reason = None if ok else "connection refused"
    return CheckResult("api", "http", ok, at, 0.2, reason=reason, status_code=200 if ok else None)


def test_snapshot_describes_the_latest_result_and_last_failure() -> None:
    """snapshot() carries the state, the failure count and the last failure's reason and time."""
    history = CheckHistory()
    assert history.snapshot("api") is None
    history.record(_result(False, 10.0))
    history.record(_result(False, 20.0))
    assert history.snapshot("api") == CheckSnapshot(
        "failing", 2, 20.0, 0.2, "connection refused", None, "connection refused", 20.0
    )
    history.record(_result(True, 30.0))
    assert history.snapshot("api") == CheckSnapshot(
        "ok", 0, 30.0, 0.2, None, 200, "connection refused", 20.0
    )


def test_restored_failure_count_continues_and_first_result_is_compared() -> None:
    """After restore the first result has a previous state and the failure count goes on."""
    history = CheckHistory()
    history.restore({"api": CheckSnapshot("failing", 3, 50.0, 0.2, "x", None, "x", 50.0)})
    assert history.get("api") is None  # a snapshot is not shown as a result
    transition = history.record(_result(False, 60.0))
    assert (transition.previous, transition.current, transition.changed) == (
        "failing",
        "failing",
        False,
    )
    assert history.get("api").consecutive_failures == 4  # type: ignore[union-attr]


def test_restored_last_failure_survives_a_successful_first_result() -> None:
    """A check that recovers right after the restart still shows its last failure."""
    history = CheckHistory()
    history.restore({"api": CheckSnapshot("failing", 2, 50.0, 0.2, "boom", 503, "boom", 45.0)})
    transition = history.record(_result(True, 60.0))
    assert (transition.previous, transition.current) == ("failing", "ok")
    status = history.get("api")
    assert status is not None and status.last_failure is not None
    assert (status.last_failure.reason, status.last_failure.started_at) == ("boom", 45.0)
    assert status.consecutive_failures == 0


def test_restore_does_not_override_live_results_and_retain_drops_removed_checks() -> None:
    """A check with a result keeps it; snapshots of unconfigured checks are forgotten."""
    history = CheckHistory()
    history.record(_result(True, 1.0))
    history.restore(
        {
            "api": CheckSnapshot("failing", 9, 0.0, 0.1),
            "old": CheckSnapshot("failing", 1, 0.0, 0.1),
        }
    )
    assert history.snapshot("api").state == "ok"  # type: ignore[union-attr]
    assert history.snapshot("old") is not None
    history.retain(["api"])
    assert history.snapshot("old") is None


async def test_no_first_result_state_change_event_after_restore() -> None:
    """A restart into the same state emits no state_changed with previous_state null."""
    history, sink = CheckHistory(), MemoryEventSink()
    history.restore({"api": CheckSnapshot("failing", 1, 50.0, 0.2, "x", None, "x", 50.0)})
    pipeline = ResultPipeline(
        history=history,
        metrics=_Metrics(),
        sink=sink,
        labels_of=lambda name: {},
        source="test",
        clock=lambda: 61.0,
    )
    await pipeline.handle(_result(False, 60.0))
    await pipeline.handle(_result(True, 70.0))
    assert [e.type for e in sink.events] == [EVENT_FAILED, EVENT_STATE_CHANGED]
    assert sink.events[0].data["consecutive_failures"] == 2
    assert sink.events[1].data["previous_state"] == "failing"
