"""Samples per second of the exposition parser (``agent.scrape.parser``) against prometheus_client.

Goal: ``ratio`` >= 5, our samples/s divided by those of
``prometheus_client.parser.text_string_to_metric_families`` on the same payloads,
both timed from the body's bytes (``bytes.decode`` included on their side) until
every sample exists as an object (our ``ScrapedSample``s, their families'
``Sample``s), counted the same way.

Payloads:

- ``simulator``: what the pilot simulator's /metrics serves, at scale: the
  simulator's own ``RequestMetrics`` (a ``http_request_duration_seconds``
  histogram with its 12 buckets, and ``http_requests_total``) over ``--handlers``
  routes x 2 methods x 5 statuses, rendered by ``generate_latest`` as the
  simulator does: 18 samples per combination, 10,800 at the default 60 routes.
- ``prometheus``: Prometheus's own /metrics (text 0.0.4; Prometheus 2.42 serves
  no OpenMetrics there), fetched with our ``Accept`` header from a ``prometheus``
  started on 127.0.0.1 on a free port with an empty scrape config, stopped (and
  its data directory removed) before the timing starts, also on errors.
- ``simulator_openmetrics`` (not in the headline): the simulator payload as
  OpenMetrics (``_created`` series, ``# EOF``) against prometheus_client's
  OpenMetrics parser.

Each payload is parsed ``--warmup`` times, then ``--repeat`` times by each
parser, alternately (the garbage collector runs as it would in the agent); the
figures are medians. Before timing, both parsers' samples are compared (names,
labels, values with NaN, timestamps, order).

    .venv/bin/python benchmarks/scrape_parse.py
    .venv/bin/python benchmarks/scrape_parse.py --handlers 200 --repeat 5
    .venv/bin/python benchmarks/scrape_parse.py --no-prometheus --profile

The human-readable figures come first; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import math
import pstats
import random
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from agent.demo.traffic import RequestMetrics
from agent.scrape.parser import accept_header, parse

GOAL_RATIO = 5.0
TEXT = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
METHODS = ("GET", "POST")
STATUSES = (200, 201, 404, 500, 503)


@dataclass(frozen=True)
class Payload:
    name: str
    body: bytes
    content_type: str
    headline: bool


@dataclass(frozen=True)
class Result:
    payload: Payload
    samples: int
    ours_s: float
    theirs_s: float
    same: bool

    @property
    def ours_per_s(self) -> float:
        return self.samples / self.ours_s

    @property
    def theirs_per_s(self) -> float:
        return self.samples / self.theirs_s


def simulator_registry(handlers: int, seed: int) -> CollectorRegistry:
    """The simulator's request metrics after traffic on every route/method/status."""
    registry = CollectorRegistry()
    metrics = RequestMetrics(registry)
    rng = random.Random(seed)
    for h in range(handlers):
        route = f"/api/v1/{'orders' if h % 2 else 'customers'}/{h}/{{id}}"
        for method in METHODS:
            for status in STATUSES:
                for _ in range(rng.randint(1, 5)):
                    metrics.observe(route, method, status, rng.expovariate(8.0))
    return registry


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def prometheus_metrics(binary: str, timeout: float = 30.0) -> tuple[bytes, str]:
    """Prometheus's own /metrics body and content type, from a throwaway ``prometheus``."""
    workdir = Path(tempfile.mkdtemp(prefix="scrape-parse-bench-"))
    port = free_port()
    (workdir / "prometheus.yml").write_text("global: {scrape_interval: 1s}\n")
    cmd = [
        binary,
        f"--config.file={workdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with (workdir / "prometheus.log").open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{base}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"prometheus did not become ready: {cmd}") from None
                time.sleep(0.1)
        time.sleep(1.0)  # let its own metrics fill in
        request = urllib.request.Request(f"{base}/metrics", headers={"Accept": accept_header()})
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.read(), response.headers.get("Content-Type", "")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def _value(value: float) -> object:
    return "NaN" if math.isnan(value) else value


def ours(payload: Payload) -> list[tuple[Any, ...]]:
    return [
        (s.name, tuple(p for p in s.labels if p[0] != "__name__"), _value(s.value), s.timestamp_ms)
        for s in parse(payload.body, payload.content_type).samples
    ]


def _their_parser(payload: Payload) -> Callable[[str], Any]:
    if payload.content_type.startswith("application/openmetrics-text"):
        return openmetrics_families
    return text_string_to_metric_families


def _ms(timestamp: Any) -> int | None:
    if timestamp is None:
        return None
    if hasattr(timestamp, "sec"):
        return int(timestamp.sec * 1000 + timestamp.nsec // 1_000_000)
    ms: int = round(timestamp * 1000)
    return ms


def theirs(payload: Payload) -> list[tuple[Any, ...]]:
    families = _their_parser(payload)(payload.body.decode())
    return [
        (s.name, tuple(sorted(s.labels.items())), _value(s.value), _ms(s.timestamp))
        for family in families
        for s in family.samples
    ]


def run_ours(payload: Payload) -> int:
    return len(parse(payload.body, payload.content_type).samples)


def run_theirs(payload: Payload) -> int:
    families = _their_parser(payload)(payload.body.decode())
    return sum(len(family.samples) for family in families)


def measure(payload: Payload, warmup: int, repeat: int) -> Result:
    mine = ours(payload)
    same = mine == theirs(payload)
    for _ in range(warmup):
        run_ours(payload)
        run_theirs(payload)
    ours_times, theirs_times = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        n_ours = run_ours(payload)
        ours_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        n_theirs = run_theirs(payload)
        theirs_times.append(time.perf_counter() - start)
        if n_ours != n_theirs:
            raise AssertionError(f"{payload.name}: {n_ours} samples here, {n_theirs} there")
    return Result(
        payload, len(mine), statistics.median(ours_times), statistics.median(theirs_times), same
    )


def profile(payload: Payload, top: int) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(5):
        run_ours(payload)
    profiler.disable()
    print(f"--- profile of 5 parses of {payload.name} (own time)")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--handlers", type=int, default=60, help="simulator routes (18 x 10 samples)")
    p.add_argument("--repeat", type=int, default=15)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--prometheus", default="prometheus", help="the prometheus binary")
    p.add_argument("--no-prometheus", action="store_true")
    p.add_argument("--profile", action="store_true")
    p.add_argument("--profile-top", type=int, default=15)
    return p.parse_args(argv)


def payloads(args: argparse.Namespace) -> list[Payload]:
    registry = simulator_registry(args.handlers, args.seed)
    found = [Payload("simulator", generate_latest(registry), TEXT, True)]
    if not args.no_prometheus:
        binary = shutil.which(args.prometheus)
        if binary is None:
            raise SystemExit(f"{args.prometheus} not found (use --no-prometheus to skip it)")
        body, content_type = prometheus_metrics(binary)
        found.append(Payload("prometheus", body, content_type, True))
    found.append(
        Payload("simulator_openmetrics", generate_openmetrics(registry), OPENMETRICS, False)
    )
    return found


def report(result: Result) -> None:
    p = result.payload
    print(
        f"{p.name:22} {len(p.body):>9,} bytes {result.samples:>7,} samples  "
        f"ours {result.ours_s * 1000:7.2f} ms = {result.ours_per_s:>10,.0f} samples/s  "
        f"prometheus_client {result.theirs_s * 1000:7.2f} ms = {result.theirs_per_s:>9,.0f}/s  "
        f"ratio {result.ours_per_s / result.theirs_per_s:5.2f}  "
        f"same samples: {'yes' if result.same else 'NO'}"
        + ("" if p.headline else "  (not in the headline)")
    )


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    results = [measure(p, args.warmup, args.repeat) for p in payloads(args)]
    for result in results:
        report(result)
    headline = [r for r in results if r.payload.headline]
    samples = sum(r.samples for r in headline)
    ours_per_s = samples / sum(r.ours_s for r in headline)
    theirs_per_s = samples / sum(r.theirs_s for r in headline)
    ratio = ours_per_s / theirs_per_s
    same = all(r.same for r in results)
    print(
        f"headline ({' + '.join(r.payload.name for r in headline)}): ours {ours_per_s:,.0f} "
        f"samples/s, prometheus_client {theirs_per_s:,.0f} samples/s, ratio {ratio:.2f}"
    )
    print(f"both parsers give the same samples on every payload: {'yes' if same else 'NO'}")
    met = ratio >= GOAL_RATIO and same
    print(f"goal ratio >= {GOAL_RATIO:g}: {'MET' if met else 'NOT MET'}")
    if args.profile:
        profile(headline[-1].payload, args.profile_top)
        profile(headline[0].payload, args.profile_top)
    figures = {
        r.payload.name: {
            "bytes": len(r.payload.body),
            "samples": r.samples,
            "samples_per_s": round(r.ours_per_s),
            "prometheus_client_samples_per_s": round(r.theirs_per_s),
            "ratio": round(r.ours_per_s / r.theirs_per_s, 2),
            "ms": round(r.ours_s * 1000, 3),
            "prometheus_client_ms": round(r.theirs_s * 1000, 3),
            "same_samples": r.same,
            "content_type": r.payload.content_type,
            "in_headline": r.payload.headline,
        }
        for r in results
    }
    print(
        json.dumps(
            {
                "samples_per_s": round(ours_per_s),
                "prometheus_client_samples_per_s": round(theirs_per_s),
                "ratio": round(ratio, 2),
                "goal_met": met,
                "same_samples": same,
                "samples": samples,
                "repeat": args.repeat,
                "payloads": figures,
            }
        )
    )


if __name__ == "__main__":
    main()
