"""A hanging target holds back only its own check, never the other 49."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator

import pytest

from agent.checks.factory import build_checker
from agent.checks.scheduler import CheckScheduler
from agent.config import CheckConfig
from agent.model import CheckResult
from tests.conftest import SimulatorProcess

pytestmark = pytest.mark.integration


class LagRecorder:
    def __init__(self) -> None:
        self.lags: dict[str, list[float]] = defaultdict(list)
        self.misfires: dict[str, int] = defaultdict(int)

    def observe_lag(self, check: str, seconds: float) -> None:
        self.lags[check].append(seconds)

    def misfire(self, check: str) -> None:
        self.misfires[check] += 1


@pytest.fixture
async def hanging_server() -> AsyncIterator[int]:
    """A TCP server that accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        held.append(w)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port: int = server.sockets[0].getsockname()[1]
    yield port
    for w in held:
        w.close()
    server.close()
    await server.wait_closed()


async def test_hanging_check_does_not_delay_49_others(
    sim: SimulatorProcess, hanging_server: int
) -> None:
    """With one check stuck on a silent target, the 49 others start on time and pass."""
    checks = [
        CheckConfig.model_validate(
            {
                "name": "hanging",
                "interval": "10s",
                "timeout": "8s",
                "http": {"url": f"http://127.0.0.1:{hanging_server}/"},
            }
        )
    ] + [
        CheckConfig.model_validate(
            {
                "name": f"fast-{i}",
                "interval": "1s",
                "timeout": "900ms",
                "http": {"url": f"{sim.url}/health"},
            }
        )
        for i in range(49)
    ]
    results: list[CheckResult] = []

    async def on_result(r: CheckResult) -> None:
        results.append(r)

    recorder = LagRecorder()
    scheduler = CheckScheduler(
        build=build_checker,
        on_result=on_result,
        metrics=recorder,
        grace_seconds=0.5,
        offset=lambda name, interval: 0.0 if name == "hanging" else 0.3,
    )
    async with scheduler:
        scheduler.apply(checks)
        await asyncio.sleep(4.5)
    fast = [r for r in results if r.check != "hanging"]
    per_check = {f"fast-{i}": 0 for i in range(49)}
    for r in fast:
        per_check[r.check] += 1
    assert min(per_check.values()) >= 3, per_check
    assert all(r.success for r in fast), [r.reason for r in fast if not r.success][:3]
    worst = max(lag for name, lags in recorder.lags.items() if name != "hanging" for lag in lags)
    print(f"worst start lag of the 49 fast checks: {worst * 1000:.1f} ms")
    assert worst < 1.0
    assert not any(r.check == "hanging" and r.success for r in results)
