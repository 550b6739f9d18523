"""Rule-group evaluation time of the PromQL engine (``agent.promql``) against Prometheus.

Goal: ``ratio`` <= 5, our p50 time to evaluate the pilot-like rule group in
``pilot_rules.yml`` divided by the median ``prometheus_rule_group_last_duration_seconds``
of a real Prometheus 2.42 evaluating the same file over the same samples.

The data (about ``--series`` series, ``--hours`` of samples 15 s apart, from
``--seed``): a classic request-duration histogram and a request counter per
job/instance/handler/method/status, ``probe_success`` and ``probe_duration_seconds``
per check, ``up``. Samples sit 7 s off the 15 s grid and evaluations are on it,
so no sample is on a range boundary (2.42's ranges are closed on the left, 3.x's
open) and both sides must give the same answers.

Prometheus first, since it evaluates at wall-clock time: the data ends at "now"
plus the predicted time to write and backfill it (one OpenMetrics file and one
``promtool tsdb create-blocks-from openmetrics`` per 2 h block); ``prometheus``
starts on the blocks once that end has passed, and one reading per evaluation is
taken after a few warm-up evaluations. Ours: the same samples in a
``SeriesStore``, every rule expression through ``PromQLEngine.instant`` at the
data's end, one after the other, repeated. See ``benchmarks/README.md``.

    .venv/bin/python benchmarks/promql_eval.py                       # default, ~2.5 min
    .venv/bin/python benchmarks/promql_eval.py --series 2000 --hours 1
    .venv/bin/python benchmarks/promql_eval.py --no-prometheus --profile

The human-readable figures come first; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import math
import os
import pstats
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from array import array
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from agent.promql.engine import PromQLEngine
from agent.promql.value import QueryError, Vector
from agent.tsdb.base import Labels, labels_from
from agent.tsdb.store import SeriesStore

GOAL_RATIO = 5.0
RULES_PATH = Path(__file__).with_name("pilot_rules.yml")
INTERVAL_MS = 15_000
OFFSET_MS = 7_000  # samples sit 7 s after the 15 s grid: never on a range boundary
BLOCK_MS = 2 * 3600_000  # promtool's block range
EVAL_INTERVAL_S = 5.0
REL_TOLERANCE = 1e-6

HIST = "http_request_duration_seconds"
HANDLERS = (  # (handler, requests/s per instance, median latency in s)
    ("/api/v1/orders", 40.0, 0.060),
    ("/api/v1/users", 25.0, 0.030),
    ("/api/v1/items", 30.0, 0.045),
    ("/api/v1/carts", 10.0, 0.080),
    ("/api/v1/pay", 5.0, 0.250),
    ("/api/v1/search", 15.0, 0.400),
    ("/login", 8.0, 0.120),
    ("/health", 2.0, 0.002),
    ("/metrics", 1.0, 0.015),
    ("/static", 20.0, 0.008),
)
METHODS = (("GET", 1.0), ("POST", 0.3))
STATUSES = ("200", "404", "500", "503")
STATUS_SHARE = (0.955, 0.035, 0.007, 0.003)
STATUS_SHARE_BAD = (0.88, 0.04, 0.05, 0.03)  # instance 1 burns its error budget
LE = ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf")
LATENCY_LEVELS = ((1.0, 0.7), (1.3, 0.2), (0.8, 0.08), (3.0, 0.02))  # (factor, weight)
SIGMA = 0.8  # of the log-normal latency
PROBE_KINDS = ("http", "tcp", "tls", "dns")
SERIES_PER_INSTANCE = len(HANDLERS) * len(METHODS) * len(STATUSES) * (len(LE) + 3) + 1


# -- data ----------------------------------------------------------------------------


@dataclass(slots=True)
class GenSeries:
    """One generated series: labels, OpenMetrics line prefix, one value per step."""

    labels: Labels
    prefix: str
    values: array[float]


@dataclass(slots=True)
class Dataset:
    """Series grouped by OpenMetrics family as ``(family, type, series)``; no timestamps."""

    steps: int
    instances: int
    families: list[tuple[str, str, list[GenSeries]]] = field(default_factory=list)

    def all_series(self) -> Iterator[GenSeries]:
        for _, _, series in self.families:
            yield from series

    def subset(self, every: int) -> Dataset:
        return Dataset(self.steps, 0, [(f, k, s[::every]) for f, k, s in self.families])

    @property
    def n_series(self) -> int:
        return sum(len(s) for _, _, s in self.families)


def _series(name: str, labels: dict[str, str], values: Sequence[float]) -> GenSeries:
    lbls = labels_from({"__name__": name, **labels})
    body = ",".join(f'{k}="{v}"' for k, v in lbls if k != "__name__")
    return GenSeries(lbls, f"{name}{{{body}}}", array("d", values))


def _counter(start: float, incs: Sequence[float], reset: int | None) -> list[float]:
    """Cumulative values from ``start``; the counter restarts from 0 at step ``reset``."""
    if reset is None:
        return list(accumulate(incs, initial=start))[1:]
    return list(accumulate(incs[:reset], initial=start))[1:] + list(accumulate(incs[reset:]))


def _bucket_fractions(median: float) -> list[tuple[float, ...]]:
    """Cumulative share of requests under each ``le``, one tuple per latency level."""
    out = []
    for factor, _ in LATENCY_LEVELS:
        mu = math.log(median * factor)
        fr = [0.5 * math.erfc((mu - math.log(float(le))) / (SIGMA * math.sqrt(2))) for le in LE]
        out.append((*fr[:-1], 1.0))
    return out


def _http_combo(
    rng: random.Random,
    labels: dict[str, str],
    rate: float,
    median: float,
    uptime_s: float,
    reset: int | None,
    steps: int,
) -> tuple[list[GenSeries], GenSeries]:
    """Histogram series and request counter of one handler/method/status of one instance."""
    levels = rng.choices(range(len(LATENCY_LEVELS)), [w for _, w in LATENCY_LEVELS], k=steps)
    per_step = rate * INTERVAL_MS / 1000
    ns = [float(int(per_step * (0.7 + 0.6 * rng.random()) + rng.random())) for _ in range(steps)]
    fractions = _bucket_fractions(median)
    means = [median * f * math.exp(SIGMA**2 / 2) for f, _ in LATENCY_LEVELS]
    n0 = float(int(rate * uptime_s))
    hist = []
    for i, le in enumerate(LE):
        incs = [float(int(n * fractions[lv][i])) for n, lv in zip(ns, levels, strict=True)]
        values = _counter(float(int(n0 * fractions[0][i])), incs, reset)
        hist.append(_series(f"{HIST}_bucket", {**labels, "le": le}, values))
    sums = [n * means[lv] * (0.9 + 0.2 * rng.random()) for n, lv in zip(ns, levels, strict=True)]
    hist.append(_series(f"{HIST}_sum", labels, _counter(n0 * means[0], sums, reset)))
    hist.append(_series(f"{HIST}_count", labels, _counter(n0, ns, reset)))
    return hist, _series("http_requests_total", labels, _counter(n0, ns, reset))


def _http_families(rng: random.Random, instances: int, steps: int) -> list[list[GenSeries]]:
    """Histogram series, request counters and ``up`` of every instance."""
    hist: list[GenSeries] = []
    totals: list[GenSeries] = []
    ups: list[GenSeries] = []
    for inst in range(instances):
        base = {
            "job": ("api", "web")[inst % 2],
            "instance": f"10.0.{inst // 250}.{inst % 250 + 1}:8080",
        }
        shares = STATUS_SHARE_BAD if inst == 1 else STATUS_SHARE
        uptime_s = rng.uniform(3600, 10 * 86400)
        reset = int(steps * 0.62) if inst == 3 else None  # the instance restarts
        for handler, rate, median in HANDLERS:
            for method, method_factor in METHODS:
                for status, share in zip(STATUSES, shares, strict=True):
                    labels = {**base, "handler": handler, "method": method, "status": status}
                    r = rate * method_factor * share
                    h, total = _http_combo(rng, labels, r, median, uptime_s, reset, steps)
                    hist += h
                    totals.append(total)
        ups.append(_series("up", base, [1.0] * steps))
    return [hist, totals, ups]


def _probe_families(rng: random.Random, checks: int, steps: int) -> list[list[GenSeries]]:
    success: list[GenSeries] = []
    duration: list[GenSeries] = []
    for c in range(checks):
        labels = {"job": "probes", "check": f"{PROBE_KINDS[c % len(PROBE_KINDS)]}-{c:03d}"}
        p_fail = 0.2 if c % 20 == 7 else 0.001
        down_from = steps - 32 if c % 50 == 11 else steps  # down for the last 8 min
        ok = [0.0 if k >= down_from or rng.random() < p_fail else 1.0 for k in range(steps)]
        base = rng.uniform(0.01, 0.5)
        seconds = [base * (0.5 + rng.random()) for _ in range(steps)]
        success.append(_series("probe_success", labels, ok))
        duration.append(_series("probe_duration_seconds", labels, seconds))
    return [success, duration]


def build_dataset(n_series: int, steps: int, seed: int) -> Dataset:
    """About ``n_series`` series of ``steps`` values each; deterministic in ``seed``."""
    rng = random.Random(seed)
    instances = max(1, (n_series - 200) // SERIES_PER_INSTANCE)
    checks = max(1, (n_series - instances * SERIES_PER_INSTANCE) // 2)
    hist, totals, ups = _http_families(rng, instances, steps)
    success, duration = _probe_families(rng, checks, steps)
    families = [
        (HIST, "histogram", hist),
        ("http_requests", "counter", totals),
        ("probe_success", "gauge", success),
        ("probe_duration_seconds", "gauge", duration),
        ("up", "gauge", ups),
    ]
    return Dataset(steps, instances, families)


def sample_times(end_ms: int, steps: int) -> list[int]:
    """``steps`` timestamps 15 s apart, the last one 8 s before ``end_ms``."""
    last = end_ms - INTERVAL_MS + OFFSET_MS
    return [last - (steps - 1 - k) * INTERVAL_MS for k in range(steps)]


def fill_store(ds: Dataset, times: Sequence[int]) -> SeriesStore:
    store = SeriesStore(retention_ms=10**12)
    append = store.append
    for s in ds.all_series():
        lbls = s.labels
        for t, v in zip(times, s.values, strict=True):
            append(lbls, t, v)
    return store


def block_windows(times: Sequence[int]) -> list[tuple[int, int]]:
    """Index ranges ``[lo, hi)`` of ``times`` falling in each 2 h block range."""
    out = []
    lo = 0
    while lo < len(times):
        hi = bisect_left(times, times[lo] - times[lo] % BLOCK_MS + BLOCK_MS, lo)
        out.append((lo, hi))
        lo = hi
    return out


def write_openmetrics(ds: Dataset, times: Sequence[int], lo: int, hi: int, path: Path) -> int:
    """Samples ``lo:hi`` of every series as OpenMetrics, series by series; returns bytes."""
    stamps = [str(t // 1000) for t in times[lo:hi]]  # whole seconds (grid and offset are)
    with path.open("w") as f:
        for family, kind, series in ds.families:
            f.write(f"# TYPE {family} {kind}\n")
            for s in series:
                p = s.prefix
                lines = [f"{p} {v!r} {t}\n" for v, t in zip(s.values[lo:hi], stamps, strict=True)]
                f.write("".join(lines))
        f.write("# EOF\n")
    return path.stat().st_size


def _promtool(promtool: str, path: Path, out_dir: Path) -> None:
    cmd = [promtool, "tsdb", "create-blocks-from", "openmetrics", "--quiet", str(path)]
    done = subprocess.run([*cmd, str(out_dir)], capture_output=True, text=True, check=False)
    path.unlink()
    if done.returncode != 0:
        raise RuntimeError(f"promtool failed ({done.returncode}): {done.stderr[-2000:]}")


def backfill(promtool: str, ds: Dataset, times: Sequence[int], out_dir: Path) -> tuple[int, float]:
    """Write and backfill ``ds`` into ``out_dir``, one file per block; bytes, write seconds."""
    size = 0
    write_s = 0.0
    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        jobs = []
        for i, (lo, hi) in enumerate(block_windows(times)):
            path = out_dir.with_name(f"{out_dir.name}-{i}.om")
            start = time.perf_counter()
            size += write_openmetrics(ds, times, lo, hi, path)
            write_s += time.perf_counter() - start
            jobs.append(pool.submit(_promtool, promtool, path, out_dir))
        for job in jobs:
            job.result()
    return size, write_s


# -- our engine ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    kind: str  # "record" or "alert"
    expr: str


def load_rules(path: Path) -> list[Rule]:
    """The rules of the file's only group, in order."""
    (group,) = yaml.safe_load(path.read_text())["groups"]
    out = []
    for rule in group["rules"]:
        kind = "record" if "record" in rule else "alert"
        out.append(Rule(rule[kind], kind, " ".join(rule["expr"].split())))
    return out


@dataclass(slots=True)
class OurRun:
    group_ms: list[float] = field(default_factory=list)  # one per measured iteration
    rule_ms: dict[str, list[float]] = field(default_factory=dict)
    results: dict[str, dict[Labels, float]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def evaluate_group(
    engine: PromQLEngine, store: SeriesStore, rules: Sequence[Rule], t_ms: int, run: OurRun
) -> float:
    """Evaluate every rule at ``t_ms``, one after the other; returns the total seconds."""
    total = 0.0
    for rule in rules:
        start = time.perf_counter()
        try:
            value = engine.instant(store, rule.expr, t_ms).value
        except QueryError as exc:
            run.errors[rule.name] = f"{exc.error_type}: {exc}"
            value = None
        elapsed = time.perf_counter() - start
        total += elapsed
        run.rule_ms.setdefault(rule.name, []).append(elapsed * 1000)
        if isinstance(value, Vector):
            run.results[rule.name] = {s.labels: s.value for s in value.samples}
    return total


def run_ours(store: SeriesStore, rules: Sequence[Rule], t_ms: int, warmup: int, n: int) -> OurRun:
    engine = PromQLEngine()
    run = OurRun()
    for _ in range(warmup):
        evaluate_group(engine, store, rules, t_ms, run)
    run.rule_ms.clear()
    run.group_ms = [evaluate_group(engine, store, rules, t_ms, run) * 1000 for _ in range(n)]
    return run


def profile_group(store: SeriesStore, rules: Sequence[Rule], t_ms: int, top: int) -> None:
    """cProfile one group evaluation; print the top functions by cumulative and own time."""
    engine = PromQLEngine()
    evaluate_group(engine, store, rules, t_ms, OurRun())  # parse cache warm
    prof = cProfile.Profile()
    prof.runcall(evaluate_group, engine, store, rules, t_ms, OurRun())
    for key in ("cumulative", "tottime"):
        out = io.StringIO()
        pstats.Stats(prof, stream=out).strip_dirs().sort_stats(key).print_stats(top)
        body = out.getvalue()
        print(f"--- profile of one group evaluation, top {top} by {key} ---")
        print(body[body.find("   ncalls") :].rstrip())


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


# -- Prometheus ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True, slots=True)
class Reading:
    eval_ts: float  # the evaluation's timestamp, Unix seconds
    duration_s: float
    rule_s: dict[str, float]


class PrometheusServer:
    """A ``prometheus`` process on 127.0.0.1 over ``data_dir``, evaluating ``rules``."""

    def __init__(self, binary: str, workdir: Path, data_dir: Path, rules: Path) -> None:
        self.cmd = [
            binary,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={data_dir}",
            f"--web.listen-address=127.0.0.1:{free_port()}",
            # a single block range: the backfilled blocks are never compacted mid-run
            "--storage.tsdb.min-block-duration=2h",
            "--storage.tsdb.max-block-duration=2h",
        ]
        self.base = f"http://{self.cmd[3].partition('=')[2]}"
        self.config = {
            "global": {"evaluation_interval": f"{EVAL_INTERVAL_S:g}s"},
            "rule_files": [str(rules)],
        }
        self.group_key = f"{rules};pilot"
        self.log_path = workdir / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        Path(self.cmd[1].partition("=")[2]).write_text(yaml.safe_dump(self.config))
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, lines: int = 15) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def get(self, path: str, **params: str) -> bytes:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.base}{path}{query}", timeout=30) as resp:
            return bytes(resp.read())

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError("prometheus exited")
            try:
                self.get("/-/ready")
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"prometheus not ready after {timeout} s")

    def query(self, expr: str, t_s: float) -> dict[Labels, float]:
        body = json.loads(self.get("/api/v1/query", query=expr, time=f"{t_s:.3f}"))
        data = body["data"]
        if body["status"] != "success" or data["resultType"] != "vector":
            raise RuntimeError(f"unexpected answer: {str(body)[:300]}")
        return {labels_from(s["metric"]): float(s["value"][1]) for s in data["result"]}

    def group_metrics(self) -> dict[str, float]:
        """This group's ``prometheus_rule_*`` samples on /metrics, by name (and quantile)."""
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(self.get("/metrics").decode()):
            if not family.name.startswith("prometheus_rule_"):
                continue
            for s in family.samples:
                if s.labels.get("rule_group", self.group_key) != self.group_key:
                    continue  # another group's (the duration summary has no group label)
                quantile = s.labels.get("quantile")
                out[s.name if quantile is None else f"{s.name}:{quantile}"] = s.value
        return out

    def rule_times(self) -> tuple[float, dict[str, float]]:
        """From /api/v1/rules: the group's last duration and each rule's, in seconds."""
        groups = json.loads(self.get("/api/v1/rules"))["data"]["groups"]
        (group,) = [g for g in groups if g["name"] == "pilot"]
        rules = {r["name"]: float(r["evaluationTime"]) for r in group["rules"]}
        return float(group["evaluationTime"]), rules

    def readings(self, warmup: int, n: int) -> list[Reading]:
        """One reading per evaluation, after ``warmup`` evaluations."""
        readings: list[Reading] = []
        seen = 0.0
        skipped = 0
        deadline = time.monotonic() + (warmup + n + 4) * EVAL_INTERVAL_S + 30
        while len(readings) < n and time.monotonic() < deadline:
            m = self.group_metrics()
            ts = m.get("prometheus_rule_group_last_evaluation_timestamp_seconds", 0.0)
            duration = m.get("prometheus_rule_group_last_duration_seconds", 0.0)
            group_s, rules = self.rule_times()
            if ts <= seen or abs(group_s - duration) > 1e-9:  # none new, or one ended between
                time.sleep(0.25)
                continue
            seen = ts
            if skipped < warmup:
                skipped += 1
            else:
                readings.append(Reading(ts, duration, rules))
            # poll again just after the next evaluation should have ended, not during it
            time.sleep(max(0.25, ts + EVAL_INTERVAL_S + 1.2 * duration + 0.1 - time.time()))
        return readings


@dataclass(slots=True)
class PromRun:
    end_ms: int
    predicted_s: float
    om_bytes: int = 0
    write_s: float = 0.0
    prep_s: float = 0.0  # writing and backfilling
    start_delay_s: float = 0.0  # from the data's end to starting prometheus
    up_at_end: float = 0.0
    load: str = ""  # load average when the readings start
    readings: list[Reading] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    answers: dict[str, dict[Labels, float]] = field(default_factory=dict)
    query_errors: dict[str, str] = field(default_factory=dict)


def predict_prep_seconds(promtool: str, ds: Dataset, workdir: Path) -> float:
    """Seconds to write and backfill ``ds``, extrapolated from a run over 1/25 of it."""
    sub = ds.subset(25)
    now_ms = int(time.time() * 1000)
    start = time.perf_counter()
    backfill(promtool, sub, sample_times(now_ms - now_ms % INTERVAL_MS, ds.steps), workdir / "cal")
    shutil.rmtree(workdir / "cal")
    return (time.perf_counter() - start) * ds.n_series / sub.n_series


def run_prometheus(
    args: argparse.Namespace, ds: Dataset, rules: Sequence[Rule], workdir: Path
) -> PromRun:
    predicted = predict_prep_seconds(args.promtool, ds, workdir)
    end_ms = int((time.time() + predicted) * 1000)
    run = PromRun(end_ms - end_ms % INTERVAL_MS, predicted)
    times = sample_times(run.end_ms, ds.steps)
    start = time.perf_counter()
    run.om_bytes, run.write_s = backfill(args.promtool, ds, times, workdir / "data")
    run.prep_s = time.perf_counter() - start
    time.sleep(max(0.0, run.end_ms / 1000 + 0.5 - time.time()))  # let the data's end pass
    server = PrometheusServer(args.prometheus, workdir, workdir / "data", RULES_PATH.resolve())
    try:
        run.start_delay_s = time.time() - run.end_ms / 1000
        server.start()
        server.wait_ready(60)
        run.up_at_end = sum(server.query("count(up)", run.end_ms / 1000).values())
        run.load = load_average()
        run.readings = server.readings(args.prom_warmup, args.readings)
        run.metrics = server.group_metrics()
        for rule in rules:
            try:
                run.answers[rule.name] = server.query(rule.expr, run.end_ms / 1000)
            except (OSError, RuntimeError) as exc:
                run.query_errors[rule.name] = str(exc)
    except Exception:
        print(f"prometheus log tail:\n{server.log_tail()}", file=sys.stderr)
        raise
    finally:
        server.stop()
    return run


# -- report --------------------------------------------------------------------------


def compare(ours: dict[Labels, float], theirs: dict[Labels, float]) -> str:
    """``agree (n series)`` or ``DIFFER: ...`` for one expression's two answers."""

    def rel(a: float, b: float) -> float:
        if a == b or (a != a and b != b):
            return 0.0
        return abs(a - b) / max(abs(a), abs(b)) if a == a and b == b else math.inf

    common = ours.keys() & theirs.keys()
    bad = [rel(ours[lb], theirs[lb]) for lb in common if rel(ours[lb], theirs[lb]) > REL_TOLERANCE]
    only_ours, only_theirs = len(ours.keys() - common), len(theirs.keys() - common)
    if not (bad or only_ours or only_theirs):
        return f"agree ({len(common)} series)"
    return (
        f"DIFFER: {len(bad)}/{len(common)} values (max rel diff {max(bad, default=0):.3g}), "
        f"{only_ours} series only ours, {only_theirs} only Prometheus's"
    )


def report_prometheus(run: PromRun, instances: int) -> float | None:
    """Print Prometheus's figures; returns the median group duration in ms."""
    print(
        f"prometheus: {run.om_bytes / 1e6:,.0f} MB of OpenMetrics written ({run.write_s:.1f} s) "
        f"and backfilled by promtool in {run.prep_s:.1f} s (predicted {run.predicted_s:.0f} s); "
        f"started {run.start_delay_s:.1f} s after the data's end"
    )
    sees = "sees" if run.up_at_end == instances else "WARNING: does not see"
    print(f"prometheus: {sees} the data (count(up) at the data's end = {run.up_at_end:g})")
    if not run.readings:
        print("WARNING: no evaluation of the rule group was read from prometheus")
        return None
    ms = [r.duration_s * 1000 for r in run.readings]
    lags = [r.eval_ts - run.end_ms / 1000 for r in run.readings]
    q50, q99 = (
        run.metrics.get(f"prometheus_rule_group_duration_seconds:{q}") for q in ("0.5", "0.99")
    )
    failures = run.metrics.get("prometheus_rule_evaluation_failures_total", math.nan)
    print(
        f"prometheus: group evaluation over {len(ms)} evaluations:"
        f" median {statistics.median(ms):.1f} ms (min {min(ms):.1f}, max {max(ms):.1f}),"
        f" {min(lags):.0f}-{max(lags):.0f} s after the data's end;"
        f" summary since start p50 {(q50 or math.nan) * 1000:.1f} ms,"
        f" p99 {(q99 or math.nan) * 1000:.1f} ms; rule evaluation failures {failures:g};"
        f" load average before: {run.load}"
    )
    if max(lags) > 240:
        print("WARNING: prometheus evaluated over 4 min after the data's end: thin 5m windows")
    return statistics.median(ms)


def report_rules(rules: Sequence[Rule], ours: OurRun, prom: PromRun | None) -> bool | None:
    """Per-rule times and agreement; returns whether every answer agreed (None: no prometheus)."""
    print(f"{'rule':<52} {'ours p50 ms':>11} {'prom ms':>8} {'ratio':>6} {'series':>6}  answers")
    all_agree = None if prom is None else True
    for rule in rules:
        mine = statistics.median(ours.rule_ms[rule.name])
        theirs = math.nan
        agreement = "-"
        if prom is not None:
            if prom.readings:
                theirs = statistics.median(r.rule_s.get(rule.name, math.nan) for r in prom.readings)
                theirs *= 1000
            if rule.name in prom.query_errors or rule.name in ours.errors:
                agreement = f"FAILED: {prom.query_errors.get(rule.name) or ours.errors[rule.name]}"
            else:
                agreement = compare(ours.results.get(rule.name, {}), prom.answers[rule.name])
            all_agree = all_agree and agreement.startswith("agree")
        n = len(ours.results.get(rule.name, {}))
        ratio = mine / theirs if theirs > 0 else math.nan
        print(f"{rule.name:<52} {mine:>11.1f} {theirs:>8.2f} {ratio:>6.1f} {n:>6}  {agreement}")
    return all_agree


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--series", type=int, default=10_000, help="about this many series")
    p.add_argument("--hours", type=float, default=6.0, help="hours of samples, 15 s apart")
    p.add_argument("--iterations", type=int, default=20, help="measured group evaluations")
    p.add_argument("--warmup", type=int, default=2, help="unmeasured group evaluations first")
    p.add_argument("--readings", type=int, default=10, help="prometheus evaluations read")
    p.add_argument("--prom-warmup", type=int, default=3, help="prometheus evaluations skipped")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-prometheus", action="store_true", help="measure our engine only")
    p.add_argument("--profile", action="store_true", help="cProfile one group evaluation")
    p.add_argument("--profile-top", type=int, default=30)
    p.add_argument("--prometheus", default="/usr/bin/prometheus")
    p.add_argument("--promtool", default="/usr/bin/promtool")
    return p.parse_args(argv)


def load_average() -> str:
    """The 1-minute load average against the CPU count: other processes skew the figures."""
    return f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"


def measure_ours(
    args: argparse.Namespace, ds: Dataset, rules: list[Rule], end_ms: int
) -> tuple[OurRun, SeriesStore]:
    start = time.perf_counter()
    store = fill_store(ds, sample_times(end_ms, ds.steps))
    load_s = time.perf_counter() - start
    ds.families.clear()  # the caller's values are not needed any more
    gc.collect()
    print(f"ours: {store.stats().samples:,} samples loaded into a SeriesStore in {load_s:.1f} s")
    load = load_average()
    ours = run_ours(store, rules, end_ms, args.warmup, args.iterations)
    ms = ours.group_ms
    print(
        f"ours: group evaluation over {len(ms)} iterations after {args.warmup} warm-up:"
        f" p50 {statistics.median(ms):.1f} ms, p99 {percentile(ms, 99):.1f} ms"
        f" (min {min(ms):.1f}, max {max(ms):.1f}); load average before: {load}"
    )
    for name, err in ours.errors.items():
        print(f"WARNING: our engine failed on {name}: {err}")
    return ours, store


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    rules = load_rules(RULES_PATH)
    steps = int(args.hours * 3600_000 // INTERVAL_MS)
    start = time.perf_counter()
    ds = build_dataset(args.series, steps, args.seed)
    n_series = ds.n_series
    print(
        f"data: {n_series:,} series x {steps:,} samples = {n_series * steps:,} samples"
        f" ({args.hours:g} h at 15 s, 7 s off the grid, seed {args.seed}),"
        f" generated in {time.perf_counter() - start:.1f} s"
    )
    alerts = sum(r.kind == "alert" for r in rules)
    print(f"rules: {len(rules)} in {RULES_PATH.name} ({alerts} alerting)")
    prom: PromRun | None = None
    prom_ms = None
    end_ms = int(time.time() * 1000) // INTERVAL_MS * INTERVAL_MS
    if not args.no_prometheus:
        with tempfile.TemporaryDirectory(prefix="promql_eval_") as tmp:
            prom = run_prometheus(args, ds, rules, Path(tmp))
        end_ms = prom.end_ms
        prom_ms = report_prometheus(prom, ds.instances)
    ours, store = measure_ours(args, ds, rules, end_ms)
    agree = report_rules(rules, ours, prom)
    p50 = statistics.median(ours.group_ms)
    ratio = p50 / prom_ms if prom_ms else None
    if ratio is not None:
        verdict = "MET" if ratio <= GOAL_RATIO else "NOT MET"
        print(f"ratio {ratio:.2f} (our p50 / prometheus median); goal <= {GOAL_RATIO:g}: {verdict}")
    if args.profile:
        profile_group(store, rules, end_ms, args.profile_top)
    result = {
        "eval_ms_p50": round(p50, 2),
        "eval_ms_p99": round(percentile(ours.group_ms, 99), 2),
        "prometheus_eval_ms": None if prom_ms is None else round(prom_ms, 2),
        "ratio": None if ratio is None else round(ratio, 2),
        "series": n_series,
        "samples": n_series * steps,
        "rules": len(rules),
        "iterations": len(ours.group_ms),
        "prometheus_readings": 0 if prom is None else len(prom.readings),
        "answers_agree": agree,
        "goal_met": None if ratio is None else ratio <= GOAL_RATIO,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
