"""Our exposition parser against its peers.

- prometheus_client's parsers (text and OpenMetrics), on a 10,000-sample payload
  shaped like the pilot simulator's, on the live simulator's /metrics and on
  Prometheus 2.42's own /metrics: the same samples (names, labels, values with
  NaN, timestamps), in the same order. prometheus_client folds samples into
  families; they are flattened back in exposition order.
- Prometheus 2.42 itself, scraping edge-case bodies: a body fails to parse here
  exactly when Prometheus marks the target down, and otherwise the series
  Prometheus stores are ours (minus empty-valued labels, which its storage drops).
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, Enum, Gauge, Info, Summary, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from agent.demo.traffic import RequestMetrics
from agent.scrape.parser import OPENMETRICS, ParseError, accept_header, media_type, parse
from tests.conftest import SimulatorProcess
from tests.prometheus import run_prometheus
from tests.support import free_port

pytestmark = pytest.mark.integration

TEXT = "text/plain; version=0.0.4; charset=utf-8"
OM = "application/openmetrics-text; version=1.0.0; charset=utf-8"
Row = tuple[str, tuple[tuple[str, str], ...], object, int | None]


def _value(value: float) -> object:
    return "NaN" if math.isnan(value) else value


def ours(body: bytes, content_type: str | None) -> list[Row]:
    """Our samples as (name, labels without __name__, value, timestamp in ms)."""
    return [
        (s.name, tuple(p for p in s.labels if p[0] != "__name__"), _value(s.value), s.timestamp_ms)
        for s in parse(body, content_type).samples
    ]


def _ms(timestamp: Any) -> int | None:
    if timestamp is None:
        return None
    if hasattr(timestamp, "sec"):  # OpenMetrics: Timestamp(sec, nsec)
        return int(timestamp.sec * 1000 + timestamp.nsec // 1_000_000)
    return round(timestamp * 1000)


def theirs(body: bytes, content_type: str | None) -> list[Row]:
    """prometheus_client's samples, flattened out of their families, in the same shape."""
    text = body.decode()
    families = (
        parse_openmetrics_families(text)
        if media_type(content_type) == OPENMETRICS
        else text_string_to_metric_families(text)
    )
    return [
        (s.name, tuple(sorted(s.labels.items())), _value(s.value), _ms(s.timestamp))
        for family in families
        for s in family.samples
    ]


class _Stamped:
    """A custom collector: samples with explicit timestamps and special values."""

    def collect(self) -> Iterator[Any]:
        gauge = GaugeMetricFamily("batch_last_run_seconds", "Last run.", labels=["batch"])
        gauge.add_metric(["nightly"], 1.5, timestamp=1_700_000_000.5)
        gauge.add_metric(["hourly"], math.nan, timestamp=1_700_000_001)
        yield gauge
        counter = CounterMetricFamily("batch_items", "Items.", labels=["batch"])
        counter.add_metric(["nightly"], 12.0, timestamp=1_700_000_000.25)
        yield counter


def simulator_registry(handlers: int = 60, seed: int = 7) -> CollectorRegistry:
    """The simulator's request metrics (RequestMetrics) over many routes, plus odd families.

    60 handlers x 2 methods x 5 statuses x 18 samples = 10,800 samples, then a
    few dozen more: NaN and infinities, escaped label values, a summary, an info
    and an enum, and samples with timestamps.
    """
    registry = CollectorRegistry()
    metrics = RequestMetrics(registry)
    rng = random.Random(seed)
    for h in range(handlers):
        for method in ("GET", "POST"):
            for status in (200, 201, 404, 500, 503):
                for _ in range(rng.randint(1, 4)):
                    metrics.observe(f"/api/v1/r{h}/{{id}}", method, status, rng.expovariate(8))
    odd = Gauge("odd_values", "Special values.", ["kind"], registry=registry)
    for kind, v in (("nan", math.nan), ("inf", math.inf), ("-inf", -math.inf), ("neg", -2.5e-9)):
        odd.labels(kind).set(v)
    Gauge("escaped", "Label escapes.", ["path"], registry=registry).labels(
        'C:\\dir "quoted"\nnext line, {braces}=1 # not a comment'
    ).set(1)
    Summary("job_seconds", "A summary.", registry=registry).observe(0.25)
    Info("build", "Build info.", registry=registry).info({"version": "1.2.3", "commit": "abc"})
    Enum("state", "An enum.", states=["up", "down"], registry=registry).state("down")
    registry.register(_Stamped())  # type: ignore[arg-type]
    return registry


def test_simulator_shaped_payload_matches_prometheus_client() -> None:
    """10,000+ samples in the text format: the same samples as prometheus_client, in order."""
    body = generate_latest(simulator_registry())
    mine = ours(body, TEXT)
    assert len(mine) > 10_000
    assert mine == theirs(body, TEXT)


def test_simulator_shaped_payload_as_openmetrics_matches_prometheus_client() -> None:
    """The same registry as OpenMetrics (exemplars, _created, # EOF): the same samples."""
    body = generate_openmetrics(simulator_registry(handlers=20))
    mine = ours(body, OM)
    assert len(mine) > 3_000
    assert mine == theirs(body, OM)


def test_openmetrics_exemplars_are_dropped_like_prometheus_client_does() -> None:
    """Exemplars on counters and buckets, as prometheus_client writes them, change nothing."""
    registry = CollectorRegistry()
    metrics = RequestMetrics(registry)
    metrics.duration.labels("/x", "GET", "200").observe(0.3, exemplar={"trace_id": "abc"})
    metrics.requests.labels("/x", "GET", "200").inc(exemplar={"trace_id": "abc"})
    body = generate_openmetrics(registry)
    assert b" # {" in body
    assert ours(body, OM) == theirs(body, OM)


def test_live_simulator_metrics_match(simulator: SimulatorProcess) -> None:
    """The running simulator's /metrics, fetched with our Accept header, parses the same."""
    for path in ("/health", "/api/v1/orders/unknown", "/nope"):
        httpx.get(simulator.url + path, timeout=5)
    response = httpx.get(f"{simulator.url}/metrics", headers={"Accept": accept_header()}, timeout=5)
    content_type = response.headers.get("content-type")
    mine = ours(response.content, content_type)
    assert any(row[0] == "http_requests_total" for row in mine)
    assert mine == theirs(response.content, content_type)


async def test_prometheus_own_metrics_match(tmp_path: Path) -> None:
    """Prometheus 2.42's own /metrics parses the same with both parsers (NaN included)."""
    async with run_prometheus(tmp_path, "global: {scrape_interval: 1s}\n") as client:
        await asyncio.sleep(0.5)
        response = await client.get("/metrics", headers={"Accept": accept_header()})
    content_type = response.headers.get("content-type")
    mine = ours(response.content, content_type)
    assert len(mine) > 200
    assert any(row[2] == "NaN" for row in mine)
    assert mine == theirs(response.content, content_type)


# --------------------------------------------------------------------------- Prometheus as oracle

T, OPEN = TEXT, OM
EDGE_CASES: list[tuple[bytes, str]] = [
    (b'a{b="c"} 1\nb 2\n', T),
    (b"a-1\n", T),
    (b'a{b="c" d="e"} 1\n', T),
    (b'a{b="c"}1\n', T),
    (b'a {b="c"} 1\n', T),
    (b"  a 1\n", T),
    (b"\ta 1\n", T),
    (b" # HELP a x\na 1\n", T),
    (b'a{b="c",} 1 \n', T),
    (b'a{b="x\ny"} 1\n', T),
    (b'a{b="\\q\\\\\\"\\n"} 1\n', T),
    (b"a +nan\n", T),
    (b"a NaN\nb -Infinity\nc .5\nd 5.\n", T),
    (b"a 1_0\n", T),
    (b"a 1e400\n", T),
    (b"a 0x1\n", T),
    (b"a 1\r\n", T),
    (b"# TYPE a  counter\na 1\n", T),
    (b"# TYPE a\tcounter\na 1\n", T),
    (b"# TYPE a info\na 1\n", T),
    (b"# HELP \na 1\n", T),
    (b"# HELP\n# TYPE\n# HELPER x\n#\tTYPE\tc\tgauge\n#x\na 1\n", T),
    (b"# TYPE a\na 1\n", T),
    (b"# TYPE a-b gauge\n# HELP a-b text\na 1\n", T),
    (b"a 1\n\x00junk{\n", T),
    (b'a{b="x\x00y"} 1\n', T),
    (b"a 1\x00\n", T),
    (b'a{b="1",b="2"} 1\n', T),
    (b'a{__name__="x"} 1\n', T),
    (b'a{b="c",b=""} 1\n', T),
    (b'a{__name__=""} 1\n', T),
    (b"# HELP a \xff\na 1\n", T),
    (b"# \xff\na 1\n", T),
    (b'a{b="\xff"} 1\n', T),
    (b"a 1 -5\n", T),
    (b"a 1 # c\n", T),
    (b"a{,} 1\n", T),
    (b"a{} 1\n", T),
    (b"a 1\n", OPEN),
    (b"a 1\n# EOF\n\n", OPEN),
    (b"a{} 1\n# EOF", OPEN),
    (b'a{b="c",} 1\n# EOF\n', OPEN),
    (b'a{b="c"d="e"} 1\n# EOF\n', OPEN),
    (b'a{b="c", d="e"} 1\n# EOF\n', OPEN),
    (b"a  1\n# EOF\n", OPEN),
    (b"\na 1\n# EOF\n", OPEN),
    (b"# TYPE a untyped\na 1\n# EOF\n", OPEN),
    (b"# TYPE a_total counter\n# UNIT a_total total\na_total 1\na_created 1.5e9\n# EOF\n", OPEN),
    (b"# UNIT a_seconds bytes\na_seconds 1\n# EOF\n", OPEN),
    (b"# foo\na 1\n# EOF\n", OPEN),
    (b"# HELP a\n# EOF\n", OPEN),
    (b'a_total 1 # {t="1"} 2\n# EOF\n', OPEN),
    (b'a 1 # {t="1"} 2\n# EOF\n', OPEN),
    (b'a_bucket{le="1"} 1 # {t="1",t="2"} 2 1.5\n# EOF\n', OPEN),
    (b'a_total 1 # {t="1",} 2\n# EOF\n', OPEN),
    (b'a_total 1 # {t="1"} 2 NaN\n# EOF\n', OPEN),
    (b'a{b="x\ny"} 1\n# EOF\n', OPEN),
    (b"a 1 1e400\n# EOF\n", OPEN),
]


@contextmanager
def serve_cases(cases: list[tuple[bytes, str]]) -> Iterator[int]:
    """An HTTP server on a free port answering /case/<i> with the i-th body."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body, content_type = cases[int(self.path.rsplit("/", 1)[-1])]
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _config(port: int, count: int) -> str:
    jobs = "".join(
        f"  - job_name: case{i}\n    metrics_path: /case/{i}\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
        for i in range(count)
    )
    return f"global: {{scrape_interval: 1s, scrape_timeout: 900ms}}\nscrape_configs:\n{jobs}"


async def _scraped_targets(client: httpx.AsyncClient, count: int) -> dict[str, Any]:
    for _ in range(100):
        found = (await client.get("/api/v1/targets")).json()["data"]["activeTargets"]
        if len(found) == count and all(t["health"] != "unknown" for t in found):
            return {t["labels"]["job"]: t for t in found}
        await asyncio.sleep(0.1)
    raise TimeoutError("Prometheus did not scrape every target")


async def _stored(client: httpx.AsyncClient, job: str) -> list[Row]:
    response = await client.get("/api/v1/query", params={"query": f'{{job="{job}"}}'})
    rows: list[Row] = []
    for item in response.json()["data"]["result"]:
        metric = item["metric"]
        name = metric.pop("__name__")
        if name == "up" or name.startswith("scrape_"):
            continue
        labels = tuple(sorted((k, v) for k, v in metric.items() if k not in ("job", "instance")))
        rows.append((name, labels, _value(float(item["value"][1])), None))
    return sorted(rows, key=repr)


def _expected(body: bytes, content_type: str) -> list[Row] | str:
    try:
        rows = ours(body, content_type)
    except ParseError as exc:
        return f"error: {exc}"
    stored = {(n, tuple(p for p in labels if p[1]), v, None) for n, labels, v, _ in rows}
    return sorted(stored, key=repr)


async def test_prometheus_2_42_agrees_on_edge_cases(tmp_path: Path) -> None:
    """Each edge-case body fails here exactly when Prometheus 2.42 fails its scrape."""
    with serve_cases(EDGE_CASES) as port:
        async with run_prometheus(tmp_path, _config(port, len(EDGE_CASES))) as client:
            targets = await _scraped_targets(client, len(EDGE_CASES))
            await asyncio.sleep(0.2)
            disagreements = []
            for i, (body, content_type) in enumerate(EDGE_CASES):
                target = targets[f"case{i}"]
                expected = _expected(body, content_type)
                if target["health"] == "down":
                    agree = isinstance(expected, str)
                    got: object = f"down: {target['lastError']}"
                else:
                    got = await _stored(client, f"case{i}")
                    agree = got == expected
                if not agree:
                    disagreements.append((body, content_type[:12], got, expected))
    assert disagreements == []
