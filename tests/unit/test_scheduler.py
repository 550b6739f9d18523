"""The check scheduler with fake checkers: timing, isolation, reload and shutdown."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

from agent.checks.base import ProbeReport
from agent.checks.scheduler import CheckScheduler, phase_offset, run_check
from agent.config import CheckConfig
from agent.errors import CheckFailed
from agent.model import CheckResult


def _check(name: str, interval: float = 0.2, timeout: float | None = None) -> CheckConfig:
    return CheckConfig.model_validate(
        {"name": name, "interval": interval, "timeout": timeout, "tcp": {"target": "h:1"}}
    )


@dataclass
class FakeChecker:
    delay: float = 0.0
    fail: str | None = None
    crash: bool = False
    kind: str = "tcp"
    running: int = 0
    max_running: int = 0
    closed: bool = False

    async def probe(self, report: ProbeReport) -> None:
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            report.status_code = 200
            await asyncio.sleep(self.delay)
            if self.crash:
                raise ZeroDivisionError
            if self.fail:
                raise CheckFailed(self.fail)
        finally:
            self.running -= 1

    async def aclose(self) -> None:
        self.closed = True


@dataclass
class FakeMetrics:
    lags: list[float] = field(default_factory=list)
    misfires: Counter[str] = field(default_factory=Counter)

    def observe_lag(self, check: str, seconds: float) -> None:
        self.lags.append(seconds)

    def misfire(self, check: str) -> None:
        self.misfires[check] += 1


class Harness:
    def __init__(self, checkers: dict[str, FakeChecker]) -> None:
        self.checkers = checkers
        self.results: list[CheckResult] = []
        self.metrics = FakeMetrics()

    async def on_result(self, result: CheckResult) -> None:
        self.results.append(result)

    def scheduler(self, grace: float = 5.0) -> CheckScheduler:
        return CheckScheduler(
            build=lambda c: self.checkers[c.name],
            on_result=self.on_result,
            metrics=self.metrics,
            grace_seconds=grace,
            offset=lambda name, interval: 0.0,
        )


async def test_run_check_turns_outcomes_into_results() -> None:
    """Success, assertion failure, timeout and a crashing checker all become results."""
    clock = lambda: 50.0  # noqa: E731
    ok = await run_check(_check("a"), FakeChecker(), clock)
    assert ok.success and ok.status_code == 200 and ok.started_at == 50.0
    failed = await run_check(_check("a"), FakeChecker(fail="status 500"), clock)
    assert not failed.success and failed.reason == "status 500"
    slow = await run_check(_check("a", 1.0, 0.05), FakeChecker(delay=5), clock)
    assert slow.reason == "timeout after 0.05s" and slow.duration_seconds < 1
    crash = await run_check(_check("a"), FakeChecker(crash=True), clock)
    assert crash.reason == "internal error: ZeroDivisionError"


async def test_checks_run_repeatedly_and_report_lag() -> None:
    """Each check runs on its interval and its schedule lag is observed."""
    h = Harness({"a": FakeChecker(), "b": FakeChecker()})
    async with h.scheduler() as s:
        s.apply([_check("a"), _check("b")])
        await asyncio.sleep(0.75)
    counts = Counter(r.check for r in h.results)
    assert counts["a"] >= 2 and counts["b"] >= 2
    assert h.metrics.lags and max(h.metrics.lags) < 0.2


async def test_a_slow_check_never_overlaps_itself_and_counts_misfires() -> None:
    """A run still going when the next is due is not overlapped; the skipped run is counted."""
    blocker = FakeChecker(delay=0.35)
    h = Harness({"b": blocker})
    async with h.scheduler() as s:
        # the config forbids timeout > interval; bypass it to force a run past its next due time
        check = _check("b", 1.0, 1.0).model_copy(update={"interval": 0.1})
        s.apply([check])
        await asyncio.sleep(0.9)
    assert blocker.max_running == 1
    assert h.metrics.misfires["b"] >= 1


async def test_apply_keeps_unchanged_replaces_changed_and_closes_removed() -> None:
    """A reload keeps unchanged checks, and closes the checker of a removed one."""
    a, b = FakeChecker(), FakeChecker()
    h = Harness({"a": a, "b": b})
    async with h.scheduler() as s:
        s.apply([_check("a"), _check("b")])
        s.apply([_check("a")])
        await asyncio.sleep(0.05)
        assert b.closed and not a.closed
        assert [c.name for c in s.checks] == ["a"]
    assert a.closed


async def test_close_waits_for_inflight_runs_within_grace() -> None:
    """Shutdown lets a run in flight finish and report its result."""
    c = FakeChecker(delay=0.3)
    h = Harness({"a": c})
    s = h.scheduler(grace=2.0)
    async with s:
        s.apply([_check("a", 1.0)])
        await asyncio.sleep(0.1)
        assert c.running == 1
    assert c.running == 0
    assert len(h.results) == 1 and h.results[0].success


async def test_close_cancels_runs_past_grace() -> None:
    """A run that outlives the grace period is cancelled, and close still returns."""
    c = FakeChecker(delay=10)
    h = Harness({"a": c})
    s = h.scheduler(grace=0.1)
    async with s:
        s.apply([_check("a", 20.0, 15.0)])
        await asyncio.sleep(0.1)
        assert c.running == 1
    assert c.running == 0 and c.closed


def test_phase_offset_is_stable_and_inside_the_interval() -> None:
    """The per-check offset depends only on the name and stays within the interval."""
    offsets = {phase_offset(f"check-{i}", 10.0) for i in range(100)}
    assert all(0 <= o < 10.0 for o in offsets)
    assert len(offsets) > 90
    assert phase_offset("x", 10.0) == phase_offset("x", 10.0)
