"""The scrape engine's acceptance test: a failing target fails whole, nobody else waits.

Three real local HTTP servers scraped by one :class:`ScrapeManager` on the real
clock: ``flaky`` answers good, malformed, good, oversized, good, too many
samples; ``healthy`` always answers; ``hanging`` accepts and never answers.
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from agent.config import ScrapeConfig
from agent.promql.engine import PromQLEngine
from agent.promql.value import Vector
from agent.scrape.base import ScrapeReport
from agent.scrape.manager import ScrapeManager
from agent.tsdb.store import SeriesStore
from exporters.scrape import ScrapeMetricsExporter
from tests.unit.test_scrape_target import MetricsServer, Reply, eventually

pytestmark = pytest.mark.integration

GOOD = b'# TYPE flaky_value gauge\nflaky_value{k="a"} 1\nflaky_value{k="b"} 2\n'
MALFORMED = b'flaky_value{k="a" 1\n'
OVERSIZED = b"# HELP flaky_value " + b"x" * 8192 + b"\n" + GOOD
TOO_MANY = b"".join(f'flaky_value{{k="{i}"}} {i}\n'.encode() for i in range(10))

HEALTHY_MS, FLAKY_MS, HANGING_MS, HANGING_TIMEOUT_MS = 100, 200, 300, 250


@dataclass(frozen=True)
class Seen:
    """What PromQL answered right after one scrape of the flaky target."""

    report: ScrapeReport
    flaky_series: int
    up: tuple[float, ...]


def _configs(flaky: str, healthy: str, hanging: str) -> list[ScrapeConfig]:
    jobs = [
        {
            "job_name": "flaky",
            "scrape_interval": f"{FLAKY_MS}ms",
            "sample_limit": 5,
            "body_size_limit": "4KB",
            "static_configs": [{"targets": [flaky]}],
        },
        {
            "job_name": "healthy",
            "scrape_interval": f"{HEALTHY_MS}ms",
            "static_configs": [{"targets": [healthy]}],
        },
        {
            "job_name": "hanging",
            "scrape_interval": f"{HANGING_MS}ms",
            "scrape_timeout": f"{HANGING_TIMEOUT_MS}ms",
            "static_configs": [{"targets": [hanging]}],
        },
    ]
    return [ScrapeConfig.model_validate(j) for j in jobs]


def _values(result: object) -> tuple[float, ...]:
    return tuple(s.value for s in result.samples) if isinstance(result, Vector) else ()


async def test_failing_target_goes_down_and_stale_while_others_keep_schedule(
    tmp_path: Path,
) -> None:
    """Malformed, oversized and too-many-samples scrapes each set up=0 and stale the target's
    series (PromQL returns nothing for them), while a healthy target keeps its interval and a
    hanging one delays nobody."""
    store, engine, registry = SeriesStore(), PromQLEngine(), CollectorRegistry()
    reports: dict[str, list[ScrapeReport]] = defaultdict(list)
    seen: list[Seen] = []

    def listen(report: ScrapeReport) -> None:
        reports[report.job].append(report)
        if report.job == "flaky":  # query at once: the next scrape changes the answer
            flaky = engine.instant(store, 'flaky_value{job="flaky"}', report.t_ms).value
            up = engine.instant(store, 'up{job="flaky"}', report.t_ms).value
            seen.append(Seen(report, len(_values(flaky)), _values(up)))

    flaky_srv = MetricsServer(Reply(GOOD))
    flaky_srv.queue = [Reply(b) for b in (GOOD, MALFORMED, GOOD, OVERSIZED, GOOD, TOO_MANY)]
    async with (
        flaky_srv,
        MetricsServer(Reply(b"healthy_value 1\n")) as healthy_srv,
        MetricsServer(Reply(hang=True)) as hanging_srv,
        ScrapeManager(
            appender=store,
            clock=time.time,
            global_scrape_interval=1.0,
            base_dir=tmp_path,
            listeners=[listen],
            metrics=ScrapeMetricsExporter(registry),
        ) as scrapes,
    ):
        scrapes.apply(_configs(flaky_srv.address, healthy_srv.address, hanging_srv.address))
        await eventually(lambda: len(seen) >= 6, within=10.0)

    _check_flaky(seen, registry)
    _check_others(reports["healthy"], reports["hanging"], hanging_srv.requests)


def _check_flaky(seen: list[Seen], registry: CollectorRegistry) -> None:
    """Good scrapes see both series and up=1; each failure sees none of them and up=0."""
    outcomes = [(s.report.success, s.flaky_series, s.up) for s in seen[:6]]
    assert outcomes == [(True, 2, (1.0,)), (False, 0, (0.0,))] * 3
    errors = [s.report.error or "" for s in seen[1:6:2]]
    assert errors[0].startswith("line 1")  # the parser's ParseError
    assert errors[1:] == ["body size limit exceeded", "sample limit exceeded"]
    assert all(not s.report.samples for s in seen[1:6:2])
    for reason in ("parse", "body_size", "sample_limit"):
        labels = {"job": "flaky", "reason": reason}
        assert registry.get_sample_value("agent_scrape_failures_total", labels) == 1.0
    flaky_gaps = [b.report.t_ms - a.report.t_ms for a, b in itertools.pairwise(seen)]
    assert all(0.5 * FLAKY_MS <= g <= 1.9 * FLAKY_MS for g in flaky_gaps), flaky_gaps


def _check_others(
    healthy: list[ScrapeReport], hanging: list[ScrapeReport], hung: list[dict[str, str]]
) -> None:
    """The healthy target kept its interval, even while the hanging one was waited for."""
    gaps = [b.t_ms - a.t_ms for a, b in itertools.pairwise(healthy)]
    assert all(r.success for r in healthy) and len(healthy) >= 8
    assert all(0.5 * HEALTHY_MS <= g <= 1.9 * HEALTHY_MS for g in gaps), gaps
    # never waited for the hanging target (that would take its whole timeout)
    assert max(r.duration_seconds for r in healthy) < HANGING_TIMEOUT_MS / 1000 / 2
    assert hanging and hung  # the hanging server accepted requests
    assert all(not r.success and (r.error or "").startswith("scrape timed out") for r in hanging)
    assert all(0.24 <= r.duration_seconds < 0.4 for r in hanging)
    first = hanging[0]
    during = [r for r in healthy if first.t_ms < r.t_ms < first.t_ms + HANGING_TIMEOUT_MS]
    assert len(during) >= 2  # the healthy target was scraped while the hanging one waited
