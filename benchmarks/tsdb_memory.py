"""Bytes per sample and ingest rate of the in-memory series store (``agent.tsdb``).

Goal: at most 16 bytes per sample, everything the store holds included (labels,
index, chunk objects, sample arrays), for 1,000,000 samples over 10,000 series
(100 samples per series, 15 s apart).

Ingest is time-major, as scrapes are: every series gets a sample at ``t``, then
at ``t + 15 s`` (plus per-instance jitter of up to ``--jitter-ms``), and so on.
Label sets look like an HTTP service's metrics: ``__name__`` (five families),
``job``, ``instance``, ``handler``, ``method``, ``status``. With ``--values
mixed`` (the default) two families are float counters/gauges, two integer
counters or gauges and one a small integer gauge; ``--values float`` makes every
value a random double (the worst case for the value arrays).

Memory is measured with :mod:`tracemalloc`, started before the label sets and
the store are created. The figure is the traced memory still held once the
benchmark has dropped its own references to the label sets, divided by the
samples. A second traced run with one sample per series gives the per-series
overhead (label tuple, dict entry, index postings, empty chunk) on its own.
Ingest time is measured in a third run without tracing.

For scale: Prometheus's head block stores a sample in about 1.3-2 bytes with
Gorilla compression (delta-of-delta timestamps and XOR'd float values, packed
into bit streams), plus the label and postings overhead per series. Getting
closer here would take bit-level packing of both streams: in a C extension it
would cost little CPU; in pure Python (big-int shifts per sample, no numpy)
encoding and, worse, decoding on every query would run at roughly a microsecond
per sample, i.e. seconds of CPU for a range query over a million samples.
This store stops at byte granularity (one-byte deltas-of-delta, 1/2/4-byte
integers or 8-byte doubles), which the array module handles at C speed.

    .venv/bin/python benchmarks/tsdb_memory.py
    .venv/bin/python benchmarks/tsdb_memory.py --values float --jitter-ms 0
    .venv/bin/python benchmarks/tsdb_memory.py --series 1000 --samples-per-series 1000

The human-readable figures come first; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import random
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass

from agent.tsdb.base import Labels, Matcher, labels_from
from agent.tsdb.store import SeriesStore

GOAL_BYTES_PER_SAMPLE = 16.0
START_MS = 1_700_000_000_000
FAMILIES = (
    "http_requests_total",  # integer counter
    "http_request_duration_seconds_sum",  # float counter
    "http_response_size_bytes",  # integer gauge (large)
    "http_requests_in_flight",  # small integer gauge
    "http_request_latency_seconds",  # float gauge
)
HANDLERS = tuple(f"/api/v1/{name}" for name in ("orders", "users", "items", "carts", "pay"))
HANDLERS += tuple(f"/internal/{name}" for name in ("health", "metrics", "sync", "jobs", "auth"))
METHODS = ("GET", "POST")
STATUSES = ("200", "201", "404", "500", "503")
JOBS = ("api", "web", "worker", "gateway")


@dataclass(frozen=True)
class Workload:
    """Inputs of one run, built before tracing starts (they are not the store's)."""

    families: list[int]  # family index per series
    instances: list[int]  # instance index per series
    jitter: list[list[int]]  # [round][instance] ms
    values: list[list[float]]  # [round][series]
    n_instances: int


def _label_combos(n: int) -> list[tuple[int, int, str, str, str]]:
    per_instance = len(FAMILIES) * len(HANDLERS) * len(METHODS) * len(STATUSES)
    n_instances = -(-n // per_instance)
    combos = itertools.product(
        range(len(FAMILIES)), range(n_instances), HANDLERS, METHODS, STATUSES
    )
    return list(itertools.islice(combos, n))


def build_labels(n: int) -> list[Labels]:
    """``n`` distinct, realistic label sets (new strings and tuples each call)."""
    out = []
    for family, inst, handler, method, status in _label_combos(n):
        out.append(
            labels_from(
                {
                    "__name__": FAMILIES[family],
                    "job": JOBS[inst % len(JOBS)],
                    "instance": f"10.0.{inst // 250}.{inst % 250}:9100",
                    "handler": handler,
                    "method": method,
                    "status": status,
                }
            )
        )
    return out


def _next_value(family: int, prev: float, rng: random.Random, mode: str) -> float:
    if mode == "float":
        return rng.random() * 1000.0
    if family == 0:
        return prev + rng.randrange(0, 50)
    if family == 1:
        return prev + rng.random() * 5.0
    if family == 2:
        return float(rng.randrange(200, 3_000_000))
    if family == 3:
        return float(rng.randrange(0, 20))
    return rng.expovariate(20.0)


def build_workload(n_series: int, rounds: int, jitter_ms: int, mode: str, seed: int) -> Workload:
    rng = random.Random(seed)
    combos = _label_combos(n_series)
    families = [c[0] for c in combos]
    instances = [c[1] for c in combos]
    n_instances = max(instances) + 1
    jitter = [[rng.randint(0, jitter_ms) for _ in range(n_instances)] for _ in range(rounds)]
    values: list[list[float]] = []
    prev = [0.0] * n_series
    for _ in range(rounds):
        prev = [_next_value(f, p, rng, mode) for f, p in zip(families, prev, strict=True)]
        values.append(prev)
    return Workload(families, instances, jitter, values, n_instances)


def ingest(
    store: SeriesStore, labels: Sequence[Labels], work: Workload, interval_ms: int, rounds: int
) -> int:
    """Append ``rounds`` scrapes of every series; returns the samples accepted."""
    accepted = 0
    append = store.append
    for r in range(rounds):
        t = START_MS + r * interval_ms
        jitter = work.jitter[r]
        for lbls, inst, value in zip(labels, work.instances, work.values[r], strict=True):
            accepted += append(lbls, t + jitter[inst], value)
    return accepted


def traced_run(
    args: argparse.Namespace, work: Workload, rounds: int
) -> tuple[SeriesStore, int, int]:
    """A store filled under tracemalloc; returns it, bytes held after ingest, and peak."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    store = SeriesStore(chunk_size=args.chunk_size)
    labels = build_labels(args.series)
    ingest(store, labels, work, args.interval_ms, rounds)
    del labels
    gc.collect()
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return store, current - base, peak - base


def timed_run(args: argparse.Namespace, work: Workload) -> tuple[SeriesStore, float]:
    labels = build_labels(args.series)
    store = SeriesStore(chunk_size=args.chunk_size)
    gc.collect()
    start = time.perf_counter()
    ingest(store, labels, work, args.interval_ms, args.samples_per_series)
    return store, time.perf_counter() - start


def select_ms(store: SeriesStore, end_ms: int, window_ms: int, repeat: int = 5) -> float:
    """Mean milliseconds of one ``{__name__="http_requests_total"}`` select over a window."""
    matchers = [Matcher("__name__", "=", FAMILIES[0])]
    start = time.perf_counter()
    for _ in range(repeat):
        store.select(matchers, end_ms - window_ms, end_ms)
    return (time.perf_counter() - start) / repeat * 1000


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--series", type=int, default=10_000)
    p.add_argument("--samples-per-series", type=int, default=100)
    p.add_argument("--interval-ms", type=int, default=15_000)
    p.add_argument("--jitter-ms", type=int, default=25)
    p.add_argument("--values", choices=("mixed", "float"), default="mixed")
    p.add_argument("--chunk-size", type=int, default=120)
    p.add_argument("--seed", type=int, default=1)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    rounds = args.samples_per_series
    work = build_workload(args.series, rounds, args.jitter_ms, args.values, args.seed)
    samples = args.series * rounds

    store, held, peak = traced_run(args, work, rounds)
    stats = store.stats()
    assert stats.samples == samples, stats
    del store
    one, per_series_held, _ = traced_run(args, work, 1)
    del one
    timed, seconds = timed_run(args, work)

    per_sample = held / samples
    per_series = per_series_held / args.series
    data_per_sample = (held - per_series_held) / samples
    end_ms = START_MS + (rounds - 1) * args.interval_ms + args.jitter_ms
    instant_ms = select_ms(timed, end_ms, 300_000)
    full_ms = select_ms(timed, end_ms, rounds * args.interval_ms + args.jitter_ms)
    n_selected = len(timed.select([Matcher("__name__", "=", FAMILIES[0])], 0, end_ms))

    print(
        f"ingested {samples:,} samples over {args.series:,} series "
        f"({rounds} per series, {args.interval_ms} ms apart, jitter <= {args.jitter_ms} ms, "
        f"values {args.values}, chunk size {args.chunk_size})"
    )
    print(
        f"memory held: {held / 1e6:.2f} MB = {per_sample:.2f} bytes/sample "
        f"(peak {peak / 1e6:.2f} MB)"
    )
    print(
        f"  per-series overhead (1 sample/series run): {per_series:.0f} bytes/series "
        f"= {per_series / rounds:.2f} bytes/sample at {rounds} samples/series"
    )
    print(f"  sample data beyond that: {data_per_sample:.2f} bytes/sample")
    print(f"  store's own estimate (stats().bytes_estimate): {stats.bytes_estimate / 1e6:.2f} MB")
    print(f"ingest: {seconds:.2f} s = {samples / seconds:,.0f} samples/s (untraced run)")
    print(
        f"select {n_selected} series: last 5 min {instant_ms:.1f} ms, whole range {full_ms:.1f} ms"
    )
    met = per_sample <= GOAL_BYTES_PER_SAMPLE
    print(f"goal <= {GOAL_BYTES_PER_SAMPLE:g} bytes/sample: {'MET' if met else 'NOT MET'}")
    result = {
        "bytes_per_sample": round(per_sample, 3),
        "samples": samples,
        "series": args.series,
        "seconds": round(seconds, 3),
        "samples_per_s": round(samples / seconds),
        "bytes_held": held,
        "peak_bytes": peak,
        "per_series_overhead_bytes": round(per_series, 1),
        "sample_data_bytes_per_sample": round(data_per_sample, 3),
        "bytes_estimate": stats.bytes_estimate,
        "select_5m_ms": round(instant_ms, 2),
        "select_all_ms": round(full_ms, 2),
        "selected_series": n_selected,
        "values": args.values,
        "jitter_ms": args.jitter_ms,
        "chunk_size": args.chunk_size,
        "goal_met": met,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
