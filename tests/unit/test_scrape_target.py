"""One target's scrape loop, the scrape manager, file_sd and the targets API, against local servers.

:class:`MetricsServer` is a tiny asyncio HTTP server on a free port (also used
by the integration tests): each GET gets the next queued :class:`Reply`, or the
standing one, and the request's headers are recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from agent.api.targets import add_targets_routes
from agent.config import ScrapeConfig
from agent.errors import ComponentStateError
from agent.scrape.base import ScrapeReport
from agent.scrape.discovery import Target, build_target
from agent.scrape.manager import ScrapeManager, scrape_client
from agent.scrape.parser import accept_header
from agent.scrape.target import OFFLOAD_BYTES, ScrapeLoop, ScrapeMetrics, TargetStatus
from agent.tsdb.base import Labels, Matcher, is_stale, labels_from
from agent.tsdb.store import SeriesStore
from exporters.scrape import ScrapeMetricsExporter
from tests.support import free_port

# --------------------------------------------------------------------------- helpers


@dataclass
class Reply:
    """One HTTP answer; ``hang`` accepts the request and never answers."""

    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False


class MetricsServer:
    """A tiny HTTP/1.1 server on a free local port (``Connection: close`` answers)."""

    def __init__(self, reply: Reply | None = None) -> None:
        self.reply = reply or Reply()
        self.queue: list[Reply] = []
        self.requests: list[dict[str, str]] = []
        self.port = free_port()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def __aenter__(self) -> MetricsServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()
        for _ in range(3):
            await asyncio.sleep(0)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            pairs = (line.partition(":") for line in head[1:] if line)
            self.requests.append(
                {"path": head[0].split(" ")[1], **{k.lower(): v.strip() for k, _, v in pairs}}
            )
            reply = self.queue.pop(0) if self.queue else self.reply
            if reply.hang:
                await reader.read()  # until the client gives up
                return
            headers = {
                "Content-Type": "text/plain; version=0.0.4",
                "Content-Length": str(len(reply.body)),
                "Connection": "close",
                **reply.headers,
            }
            status = f"HTTP/1.1 {reply.status} {HTTPStatus(reply.status).phrase}\r\n"
            lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            writer.write(f"{status}{lines}\r\n".encode("latin-1") + reply.body)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


class FakeClock:
    """A settable clock (Unix seconds)."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def job(address: str, **kw: Any) -> ScrapeConfig:
    kw.setdefault("job_name", "node")
    kw.setdefault("static_configs", [{"targets": [address]}])
    return ScrapeConfig.model_validate(kw)


def latest(store: SeriesStore, **labels: str) -> dict[Labels, tuple[int, float]]:
    """The last sample of every series matching ``labels`` exactly by value."""
    matchers = [Matcher(k, "=", v) for k, v in labels.items()]
    return {s.labels: (s.timestamps[-1], s.values[-1]) for s in store.select(matchers, 0, 2**62)}


def value(store: SeriesStore, **labels: str) -> float:
    [(_, v)] = latest(store, **labels).values()
    return v


@contextlib.asynccontextmanager
async def scrape_loop(
    cfg: ScrapeConfig,
    store: SeriesStore,
    clock: FakeClock,
    *,
    listeners: list[Callable[[ScrapeReport], None]] | None = None,
    metrics: ScrapeMetrics | None = None,
) -> AsyncIterator[ScrapeLoop]:
    address = cfg.static_configs[0].targets[0]
    target = build_target(cfg, address, (), interval=cfg.scrape_interval or 15.0, timeout=1.0)
    assert isinstance(target, Target)
    async with scrape_client(cfg) as client:
        yield ScrapeLoop(
            target,
            config=cfg,
            client=client,
            appender=store,
            clock=clock,
            listeners=listeners or [],
            metrics=metrics,
            global_host="agent.example",
        )


BODY = b'# TYPE m gauge\nm{k="a"} 1\nm{k="b"} 2\nother_total 7\n'


# --------------------------------------------------------------------------- ScrapeLoop


async def test_success_stores_samples_and_report_series() -> None:
    """A good scrape stores every sample with job/instance at the scrape time, plus up & co."""
    store, clock = SeriesStore(), FakeClock()
    reports: list[ScrapeReport] = []
    async with MetricsServer(Reply(BODY)) as srv:
        cfg = job(srv.address)
        async with scrape_loop(cfg, store, clock, listeners=[reports.append]) as loop:
            first = await loop.scrape_once()
            clock.now += 15
            second = await loop.scrape_once()
    t1, t2 = first.t_ms, second.t_ms
    assert t1 == 1_700_000_000_000 and t2 == t1 + 15_000
    series = latest(store, __name__="m")
    assert series == {
        labels_from({"__name__": "m", "k": k, "job": "node", "instance": srv.address}): (t2, v)
        for k, v in (("a", 1.0), ("b", 2.0))
    }
    assert value(store, __name__="up") == 1.0
    assert value(store, __name__="scrape_samples_scraped") == 3.0
    assert value(store, __name__="scrape_samples_post_metric_relabeling") == 3.0
    assert value(store, __name__="scrape_series_added") == 0.0  # all known from the first scrape
    assert first.success and first.error is None and len(first.samples) == 3
    assert reports == [first, second]
    status = loop.status()
    assert (status.health, status.last_scrape, status.last_error) == ("up", clock.now, "")
    assert status.global_url == f"http://agent.example:{srv.port}/metrics"


async def test_request_headers_as_prometheus_sends_them() -> None:
    """Accept from the parser, Accept-Encoding gzip, the timeout header and the auth header."""
    async with MetricsServer(Reply(BODY)) as srv:
        cfg = job(srv.address, authorization={"credentials": "s3cret"}, params={"a": ["1"]})
        async with scrape_loop(cfg, SeriesStore(), FakeClock()) as loop:
            await loop.scrape_once()
    [request] = srv.requests
    assert request["path"] == "/metrics?a=1"
    assert request["accept"] == accept_header()
    assert request["accept-encoding"] == "gzip"
    assert request["x-prometheus-scrape-timeout-seconds"] == "1"
    assert request["authorization"] == "Bearer s3cret"
    assert request["user-agent"] == "pilot-agent"


async def test_basic_auth_and_stable_offset() -> None:
    """basic_auth sends an Authorization header; the schedule offset is stable and in range."""
    async with MetricsServer(Reply(BODY)) as srv:
        cfg = job(srv.address, basic_auth={"username": "u", "password": "p"}, scrape_interval="15s")
        async with (
            scrape_loop(cfg, SeriesStore(), FakeClock()) as loop,
            scrape_loop(cfg, SeriesStore(), FakeClock()) as twin,
        ):
            await loop.scrape_once()
    assert srv.requests[0]["authorization"] == "Basic dTpw"
    assert loop.offset() == twin.offset() and 0 <= loop.offset() < 15.0


async def test_gzip_body_is_decoded() -> None:
    """A gzip-encoded body is inflated before parsing."""
    store = SeriesStore()
    reply = Reply(gzip.compress(BODY), headers={"Content-Encoding": "gzip"})
    async with (
        MetricsServer(reply) as srv,
        scrape_loop(job(srv.address), store, FakeClock()) as loop,
    ):
        report = await loop.scrape_once()
    assert report.success
    assert value(store, __name__="other_total") == 7.0


async def test_gzip_bomb_fails_on_the_inflated_size() -> None:
    """A small gzip body that inflates past body_size_limit fails as body_size, up = 0."""
    store, registry = SeriesStore(), CollectorRegistry()
    bomb = gzip.compress(b"# " + b"x" * 5_000_000 + b"\nm 1\n")
    reply = Reply(bomb, headers={"Content-Encoding": "gzip"})
    async with MetricsServer(reply) as srv:
        cfg = job(srv.address, body_size_limit="64KB")
        metrics = ScrapeMetricsExporter(registry)
        async with scrape_loop(cfg, store, FakeClock(), metrics=metrics) as loop:
            report = await loop.scrape_once()
    assert len(bomb) < 64 * 1024
    assert not report.success and report.error == "body size limit exceeded"
    assert value(store, __name__="up") == 0.0
    failures = {"job": "node", "reason": "body_size"}
    assert registry.get_sample_value("agent_scrape_failures_total", failures) == 1.0
    up = {"job": "node", "instance": srv.address}
    assert registry.get_sample_value("agent_scrape_target_up", up) == 0.0


async def test_big_body_is_parsed_off_the_event_loop() -> None:
    """A body over OFFLOAD_BYTES goes through the worker-thread path and stores every sample."""
    store = SeriesStore()
    body = b"".join(b'big{i="%d",pad="%s"} %d\n' % (i, b"x" * 30, i) for i in range(6000))
    assert len(body) > OFFLOAD_BYTES
    async with (
        MetricsServer(Reply(body)) as srv,
        scrape_loop(job(srv.address), store, FakeClock()) as loop,
    ):
        report = await loop.scrape_once()
    assert report.success and len(report.samples) == 6000
    assert len(latest(store, __name__="big")) == 6000


async def test_honor_labels_false_moves_clashes_to_exported() -> None:
    """Without honor_labels, exposed job/instance become exported_job/exported_instance."""
    store = SeriesStore()
    body = b'm{job="theirs",instance="x"} 1\n'
    async with (
        MetricsServer(Reply(body)) as srv,
        scrape_loop(job(srv.address), store, FakeClock()) as loop,
    ):
        await loop.scrape_once()
    [labels] = latest(store, __name__="m")
    assert dict(labels) == {
        "__name__": "m",
        "job": "node",
        "instance": srv.address,
        "exported_job": "theirs",
        "exported_instance": "x",
    }


async def test_honor_labels_true_keeps_exposed_labels() -> None:
    """With honor_labels, exposed labels win and target labels only fill the gaps."""
    store = SeriesStore()
    async with MetricsServer(Reply(b'm{job="theirs"} 1\n')) as srv:
        cfg = job(srv.address, honor_labels=True)
        async with scrape_loop(cfg, store, FakeClock()) as loop:
            await loop.scrape_once()
    [labels] = latest(store, __name__="m")
    assert dict(labels) == {"__name__": "m", "job": "theirs", "instance": srv.address}


@pytest.mark.parametrize(("honor", "expected_ms"), [(True, 1_600_000_000_000), (False, None)])
async def test_honor_timestamps(honor: bool, expected_ms: int | None) -> None:
    """honor_timestamps uses the exposed timestamp; otherwise the scrape time is used."""
    store, clock = SeriesStore(), FakeClock()
    async with MetricsServer(Reply(b"m 1 1600000000000\n")) as srv:
        cfg = job(srv.address, honor_timestamps=honor)
        async with scrape_loop(cfg, store, clock) as loop:
            report = await loop.scrape_once()
    [(t_ms, _)] = latest(store, __name__="m").values()
    assert t_ms == (expected_ms if expected_ms is not None else report.t_ms)


async def test_metric_relabel_configs_apply_before_storing() -> None:
    """metric_relabel_configs drop and rewrite samples; the post-relabel count reflects it."""
    store = SeriesStore()
    rules = [
        {"source_labels": ["__name__"], "regex": "other_.*", "action": "drop"},
        {"source_labels": ["k"], "target_label": "kind", "replacement": "k_$1"},
        {"regex": "k", "action": "labeldrop"},
    ]
    async with MetricsServer(Reply(BODY)) as srv:
        cfg = job(srv.address, metric_relabel_configs=rules)
        async with scrape_loop(cfg, store, FakeClock()) as loop:
            report = await loop.scrape_once()
    assert sorted(dict(lb)["kind"] for lb in latest(store, __name__="m")) == ["k_a", "k_b"]
    assert latest(store, __name__="other_total") == {}
    assert value(store, __name__="scrape_samples_scraped") == 3.0
    assert value(store, __name__="scrape_samples_post_metric_relabeling") == 2.0
    assert len(report.samples) == 2


async def test_vanished_series_gets_a_stale_marker() -> None:
    """A series exposed last time but not now gets a stale marker at the new scrape's time."""
    store, clock = SeriesStore(), FakeClock()
    async with (
        MetricsServer(Reply(BODY)) as srv,
        scrape_loop(job(srv.address), store, clock) as loop,
    ):
        await loop.scrape_once()
        srv.reply = Reply(b'm{k="a"} 1\nnew 1\n')
        clock.now += 15
        second = await loop.scrape_once()
    by_k = {dict(lb).get("k", dict(lb)["__name__"]): tv for lb, tv in latest(store).items()}
    assert by_k["b"][0] == second.t_ms and is_stale(by_k["b"][1])
    assert by_k["other_total"][0] == second.t_ms and is_stale(by_k["other_total"][1])
    assert by_k["a"] == (second.t_ms, 1.0)
    assert value(store, __name__="scrape_series_added") == 1.0


async def test_label_limit_and_http_status_fail_the_whole_scrape() -> None:
    """A sample over label_limit, and then a 500, each store nothing and mark the series stale."""
    store, clock, registry = SeriesStore(), FakeClock(), CollectorRegistry()
    async with MetricsServer(Reply(BODY)) as srv:
        cfg = job(srv.address, label_limit=4)
        metrics = ScrapeMetricsExporter(registry)
        async with scrape_loop(cfg, store, clock, metrics=metrics) as loop:
            assert (await loop.scrape_once()).success
            srv.queue = [Reply(b'm{k="a",x="1"} 1\n'), Reply(b"", status=500)]
            clock.now += 15
            too_many = await loop.scrape_once()
            clock.now += 15
            status = await loop.scrape_once()
    assert too_many.error is not None and too_many.error.startswith("label_limit exceeded")
    assert status.error == "server returned HTTP status 500 Internal Server Error"
    assert all(is_stale(v) for _, v in latest(store, __name__="m").values())
    for reason in ("label_limit", "http_status"):
        sample = {"job": "node", "reason": reason}
        assert registry.get_sample_value("agent_scrape_failures_total", sample) == 1.0
    assert loop.status().health == "down"


async def test_connection_refused_is_a_connect_failure() -> None:
    """Nothing listening: up = 0 and the reason is connect, without raising."""
    store = SeriesStore()
    async with scrape_loop(job(f"127.0.0.1:{free_port()}"), store, FakeClock()) as loop:
        report = await loop.scrape_once()
    assert not report.success and report.error
    assert value(store, __name__="up") == 0.0


# --------------------------------------------------------------------------- manager


async def eventually(check: Callable[[], bool], within: float = 3.0) -> None:
    """Wait until ``check()`` holds, failing after ``within`` seconds."""
    async with asyncio.timeout(within):
        while not check():  # noqa: ASYNC110 (polling a condition is the point)
            await asyncio.sleep(0.01)


def manager(store: SeriesStore, base_dir: Path, **kw: Any) -> ScrapeManager:
    kw.setdefault("listeners", [])
    return ScrapeManager(
        appender=store,
        clock=time.time,
        global_scrape_interval=0.1,
        base_dir=base_dir,
        global_host="agent.example",
        **kw,
    )


async def test_manager_lifecycle(tmp_path: Path) -> None:
    """aclose is idempotent, a closed manager refuses to start, and apply after close is ignored."""
    scrapes = manager(SeriesStore(), tmp_path)
    scrapes.apply([job("127.0.0.1:1")])
    async with scrapes:
        with pytest.raises(ComponentStateError):
            await scrapes.start()
    await scrapes.aclose()
    with pytest.raises(ComponentStateError):
        await scrapes.start()
    scrapes.apply([job("127.0.0.1:2")])
    assert scrapes.targets() == []


async def test_manager_reload_keeps_carries_and_retires_loops(tmp_path: Path) -> None:
    """Unchanged jobs keep their loops, changed ones carry series on, removed ones go stale."""
    store = SeriesStore()
    reports: list[ScrapeReport] = []
    registry = CollectorRegistry()
    async with MetricsServer(Reply(BODY)) as srv:
        cfg = job(srv.address, scrape_interval="100ms")
        scrapes = manager(
            store, tmp_path, listeners=[reports.append], metrics=ScrapeMetricsExporter(registry)
        )
        async with scrapes:
            scrapes.apply([cfg])
            await eventually(lambda: len(reports) >= 2)
            loops = dict(scrapes._pools["node"].loops)
            scrapes.apply([job(srv.address, scrape_interval="100ms")])
            assert scrapes._pools["node"].loops == loops  # same loop objects
            changed = job(srv.address, scrape_interval="100ms", sample_limit=100)
            scrapes.apply([changed])
            assert all(not is_stale(v) for _, v in latest(store, __name__="m").values())
            seen = len(reports)
            await eventually(lambda: len(reports) >= seen + 2)
            assert scrapes.targets()[0].health == "up"
            scrapes.apply([])
            assert scrapes.targets() == []
            assert all(is_stale(v) for _, v in latest(store, __name__="m").values())
            assert is_stale(value(store, __name__="up"))
    assert all(r.success for r in reports)
    gaps = [b.t_ms - a.t_ms for a, b in itertools.pairwise(reports)]
    assert all(50 <= gap <= 250 for gap in gaps), gaps
    assert registry.get_sample_value("agent_scrape_targets", {"job": "node"}) is None


async def test_file_sd_follows_files_and_keeps_last_good(tmp_path: Path) -> None:
    """file_sd targets appear on apply, follow file changes, survive a bad file, go when deleted."""
    sd = tmp_path / "sd"
    sd.mkdir()
    first, second = sd / "a.json", sd / "b.yml"
    first.write_text(json.dumps([{"targets": ["127.0.0.1:1"], "labels": {"team": "x"}}]))
    cfg = ScrapeConfig.model_validate(
        {"job_name": "sd", "file_sd_configs": [{"files": ["sd/*.json", "sd/*.yml"]}]}
    )
    scrapes = manager(SeriesStore(), tmp_path, file_sd_poll_interval=0.02)
    scrapes.apply([cfg])
    [status] = scrapes.targets()
    assert dict(status.labels) == {"instance": "127.0.0.1:1", "job": "sd", "team": "x"}
    assert dict(status.discovered_labels)["__meta_filepath"] == str(first)
    with capture_logs() as logs:
        async with scrapes:
            second.write_text("- targets: ['127.0.0.1:2']\n  labels: {port: 2}\n")
            await eventually(lambda: len(scrapes.targets()) == 2)
            first.write_text("[{not json")
            await eventually(lambda: any(e["event"] == "file_sd_read_failed" for e in logs))
            assert len(scrapes.targets()) == 2
            second.unlink()
            await eventually(lambda: len(scrapes.targets()) == 1)
            [kept] = scrapes.targets()
    assert dict(kept.labels)["team"] == "x"  # the last good version of the broken file


async def test_targets_api_in_prometheus_shape(tmp_path: Path) -> None:
    """GET /api/v1/targets returns active and dropped targets as Prometheus shapes them."""
    drop = [{"source_labels": ["__address__"], "regex": ".*:2", "action": "drop"}]
    cfg = ScrapeConfig.model_validate(
        {
            "job_name": "node",
            "static_configs": [{"targets": ["127.0.0.1:1", "127.0.0.1:2"]}],
            "relabel_configs": drop,
        }
    )
    scrapes = manager(SeriesStore(), tmp_path)
    scrapes.apply([cfg])

    class Ctx:
        def scrape_targets(self) -> list[TargetStatus]:
            return scrapes.targets()

    app = FastAPI()
    add_targets_routes(app, Ctx())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://agent") as client:
        body = (await client.get("/api/v1/targets")).json()
        dropped_only = (await client.get("/api/v1/targets?state=dropped")).json()["data"]
    await scrapes.aclose()
    assert body["status"] == "success"
    [active] = body["data"]["activeTargets"]
    assert active == {
        "discoveredLabels": {
            "__address__": "127.0.0.1:1",
            "__metrics_path__": "/metrics",
            "__scheme__": "http",
            "__scrape_interval__": "100ms",
            "__scrape_timeout__": "100ms",
            "job": "node",
        },
        "labels": {"instance": "127.0.0.1:1", "job": "node"},
        "scrapePool": "node",
        "scrapeUrl": "http://127.0.0.1:1/metrics",
        "globalUrl": "http://agent.example:1/metrics",
        "lastError": "",
        "lastScrape": "0001-01-01T00:00:00Z",
        "lastScrapeDuration": 0.0,
        "health": "unknown",
        "scrapeInterval": "100ms",
        "scrapeTimeout": "100ms",
    }
    assert [d["discoveredLabels"]["__address__"] for d in body["data"]["droppedTargets"]] == [
        "127.0.0.1:2"
    ]
    assert dropped_only["activeTargets"] == []
    assert dropped_only["droppedTargetCounts"] == {"node": 1}
