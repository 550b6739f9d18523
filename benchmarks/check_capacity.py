"""How many HTTP checks per second one core sustains, and what each costs against a bare loop.

Goal: 1,000 checks/s on one core, p99 schedule lag under 100 ms, and at most
twice the CPU a bare asyncio loop spends on the same request (``ratio <= 2``).

For each httpx transport (``agent``: the agent's own aiohttp-backed one, what it
runs with; ``httpx``: httpx's default; ``aiohttp``: the httpx-aiohttp package's)
two peers run in turn in a child process pinned to one CPU, each against the same
local target (``_target.py``, a separate process pinned to another CPU when there
is one):

* agent: a :class:`CheckScheduler` with ``--checks`` HTTP checks at 1 s interval
  (900 ms timeout) built by :func:`build_checker` with the transport injected;
* bare: a plain asyncio loop whose tasks send the same request at the same
  ticks with the same client configuration (one ``httpx.AsyncClient`` per task,
  no keep-alive, the same transport, the run bounded by the same timeout).

After every check has run once and ``--warmup`` seconds more, each peer counts
results, schedule lag and CPU (``time.process_time``) over ``--seconds``. The
human-readable figures come first; the last line is one JSON object.

    .venv/bin/python benchmarks/check_capacity.py                # 1000 checks, every transport
    .venv/bin/python benchmarks/check_capacity.py --checks 500 --transports agent,httpx
    .venv/bin/python benchmarks/check_capacity.py --profile      # where the agent's CPU goes
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import importlib.util
import json
import math
import os
import pstats
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import httpx
from _target import TargetProcess

from agent.checks.aiohttp_transport import aiohttp_transport
from agent.checks.base import Checker
from agent.checks.factory import build_checker
from agent.checks.http import USER_AGENT, TransportFactory, default_transport
from agent.checks.scheduler import CheckScheduler, phase_offset
from agent.checks.tlsutil import build_ssl_context
from agent.config import CheckConfig, TLSConfig
from agent.logs import configure_logging
from agent.model import CheckResult

TRANSPORTS = ("agent", "httpx", "aiohttp")
INTERVAL = 1.0
TIMEOUT = 0.9
GOAL_RATE = 1000.0
GOAL_LAG_P99_MS = 100.0
GOAL_RATIO = 2.0
FIRST_ROUND_CAP = 60.0  # seconds to wait for every check to have run once


# --------------------------------------------------------------------------- transports


def transport_factory(name: str) -> TransportFactory:
    """The transport factory for ``name``.

    ``agent``: the agent's aiohttp-backed transport; ``httpx``: httpx's default one
    (:func:`agent.checks.http.default_transport`); ``aiohttp``: httpx-aiohttp's, set
    up like them (SSL context of ``build_ssl_context``, no keep-alive).
    """
    if name == "agent":
        return aiohttp_transport
    if name == "httpx":
        return default_transport
    if name == "aiohttp":
        import aiohttp
        from httpx_aiohttp import AiohttpTransport

        def build_aiohttp(tls: TLSConfig) -> httpx.AsyncBaseTransport:
            ctx = build_ssl_context(tls)

            def session() -> aiohttp.ClientSession:  # called on first request, in the loop
                return aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(ssl=ctx, force_close=True)
                )

            return AiohttpTransport(verify=ctx, client=session)

        return build_aiohttp
    raise ValueError(f"unknown transport {name!r}")


# --------------------------------------------------------------------------- recording


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile; 0.0 for no values."""
    ordered = sorted(values) or [0.0]
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


class Recorder:
    """Counts results and lags; only what happens inside the window is measured.

    It is the scheduler's ``metrics`` and ``on_result``, and the bare loop's too.
    """

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.seen: set[str] = set()
        self.first_round = asyncio.Event()
        self.measuring = False
        self.lags: list[float] = []
        self.results = self.failures = self.misfires = 0
        self.reasons: Counter[str] = Counter()
        self.phases: set[str] = set()

    def observe_lag(self, check: str, seconds: float) -> None:
        if self.measuring:
            self.lags.append(seconds)

    def misfire(self, check: str) -> None:
        if self.measuring:
            self.misfires += 1

    def record(self, name: str, reason: str | None, phases: Iterable[str] = ()) -> None:
        if not self.first_round.is_set():
            self.seen.add(name)
            if len(self.seen) >= self.expected:
                self.first_round.set()
        if not self.measuring:
            return
        self.results += 1
        self.phases.update(phases)
        if reason is not None:
            self.failures += 1
            self.reasons[reason] += 1

    async def on_result(self, result: CheckResult) -> None:
        self.record(result.check, None if result.success else result.reason, result.phases)


def cpu_busy_s(cpu: int | None) -> float:
    """Seconds ``cpu`` spent busy (every process, and steal) since boot; 0.0 if unknown."""
    for line in Path("/proc/stat").read_text().splitlines() if cpu is not None else ():
        if line.startswith(f"cpu{cpu} "):
            user, nice, system, _idle, _iowait, irq, softirq, steal = line.split()[1:9]
            busy = sum(int(v) for v in (user, nice, system, irq, softirq, steal))
            return busy / os.sysconf("SC_CLK_TCK")
    return 0.0


async def measure(
    recorder: Recorder, args: argparse.Namespace, profiler: cProfile.Profile | None = None
) -> dict[str, Any]:
    """Wait for the first round and the warm-up, then measure one window."""
    started = time.perf_counter()
    cpu_started = time.process_time()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(recorder.first_round.wait(), FIRST_ROUND_CAP)
    first_round_s = time.perf_counter() - started
    first_round_cpu_s = time.process_time() - cpu_started
    if args.gc_freeze:  # what an agent could do once its checks are built
        gc.collect()
        gc.freeze()
    await asyncio.sleep(args.warmup)
    recorder.measuring = True
    if profiler is not None:
        profiler.enable()
    t0, cpu0, busy0 = time.perf_counter(), time.process_time(), cpu_busy_s(args.cpu)
    await asyncio.sleep(args.seconds)
    window, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    others = max(0.0, cpu_busy_s(args.cpu) - busy0 - cpu)  # other processes on our CPU
    if profiler is not None:
        profiler.disable()
    recorder.measuring = False
    return {
        "window_s": window,
        "cpu_s": cpu,
        "others_load": others / window,
        "results": recorder.results,
        "failures": recorder.failures,
        "misfires": recorder.misfires,
        "lag_p50_ms": percentile(recorder.lags, 50) * 1000,
        "lag_p99_ms": percentile(recorder.lags, 99) * 1000,
        "lag_max_ms": max(recorder.lags, default=0.0) * 1000,
        "first_round_complete": recorder.first_round.is_set(),
        "first_round_s": first_round_s,
        "first_round_cpu_s": first_round_cpu_s,
        "reasons": recorder.reasons.most_common(3),
        "phases": sorted(recorder.phases),
    }


# --------------------------------------------------------------------------- peers


def bench_checks(n: int, url: str) -> list[CheckConfig]:
    common = {"interval": INTERVAL, "timeout": TIMEOUT, "http": {"url": url}}
    return [CheckConfig.model_validate({"name": f"bench-{i:04d}", **common}) for i in range(n)]


async def run_agent(args: argparse.Namespace, profiler: cProfile.Profile | None) -> dict[str, Any]:
    """The agent peer: a CheckScheduler running ``args.checks`` HTTP checks."""
    factory = transport_factory(args.transport)
    recorder = Recorder(args.checks)

    def build(check: CheckConfig) -> Checker:
        return build_checker(check, http_transport=factory)

    scheduler = CheckScheduler(build=build, on_result=recorder.on_result, metrics=recorder)
    async with scheduler:
        scheduler.apply(bench_checks(args.checks, args.url))
        return await measure(recorder, args, profiler)


async def run_bare(args: argparse.Namespace) -> dict[str, Any]:
    """The bare peer: one task per check sending the same request at the same ticks."""
    factory = transport_factory(args.transport)
    recorder = Recorder(args.checks)
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05

    async def probe(name: str, client: httpx.AsyncClient) -> None:
        anchor = start + phase_offset(name, INTERVAL)
        due = anchor
        while True:
            await asyncio.sleep(due - loop.time())
            recorder.observe_lag(name, loop.time() - due)
            reason: str | None = None
            try:
                async with asyncio.timeout(TIMEOUT):
                    # Keep no response alive between runs, as the agent keeps none.
                    status = (await client.get(args.url)).status_code
                if status != 200:
                    reason = f"status {status}"
            except Exception as exc:
                reason = type(exc).__name__
            recorder.record(name, reason)
            due = anchor + (math.floor((loop.time() - anchor) / INTERVAL) + 1) * INTERVAL

    # As HttpClients builds them: one client per check, the run bounding the time.
    options: dict[str, Any] = {"timeout": None, "trust_env": False}
    options["headers"] = {"User-Agent": USER_AGENT}
    clients = [
        httpx.AsyncClient(transport=factory(TLSConfig()), **options) for _ in range(args.checks)
    ]
    tasks = [
        asyncio.create_task(probe(f"bench-{i:04d}", client)) for i, client in enumerate(clients)
    ]
    try:
        return await measure(recorder, args)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for client in clients:
            await client.aclose()


def child_main(args: argparse.Namespace) -> int:
    """Run one peer pinned to ``args.cpu`` and write its figures to ``args.out``."""
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    configure_logging("info", "json")
    # Wall time (a CPU-time timer triples the overhead); the idle epoll wait is set apart.
    profiler = cProfile.Profile() if args.profile else None
    peer = run_agent(args, profiler) if args.role == "agent" else run_bare(args)
    figures = asyncio.run(peer)
    Path(args.out).write_text(json.dumps(figures))
    if profiler is not None:
        print_profile(profiler, figures["cpu_s"], args.transport)
    return 0


# --------------------------------------------------------------------------- profile


_IDLE = "<method 'poll' of 'select.epoll' objects>"
_PACKAGES = "apscheduler httpx_aiohttp httpx httpcore h11 anyio aiohttp multidict yarl structlog"
_PATH = "_process_jobs run_coroutine_job _fire _run run_check probe send_request send"
_PATH += " handle_async_request check_answer on_result"


def _category(filename: str) -> str:
    path = filename.replace("\\", "/")
    for package in _PACKAGES.split():
        if f"/{package}/" in path:
            return package
    if "/agent/checks/scheduler.py" in path:
        return "agent scheduler"
    if "/agent/checks/" in path:
        return "agent checker"
    if "/agent/" in path:
        return "agent other"
    if "/asyncio/" in path or path.endswith("/selectors.py"):
        return "asyncio"
    if path.endswith("check_capacity.py"):
        return "benchmark recorder"
    if path.startswith("<frozen importlib"):
        return "importlib"
    stem = Path(path).stem
    return f"stdlib {Path(path).parent.name if stem == '__init__' else stem}"


def print_profile(profiler: cProfile.Profile, cpu_s: float, transport: str) -> None:
    """Self time by package (C calls charged to their Python caller), then top functions."""
    stats = pstats.Stats(profiler)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    by_category: Counter[str] = Counter()
    idle = 0.0
    for (filename, _line, name), (_cc, _nc, tottime, _ct, callers) in raw.items():
        if name == _IDLE:
            idle += tottime
            continue
        if filename != "~":
            by_category[_category(filename)] += tottime
            continue
        edge_total = sum(edge[2] for edge in callers.values()) or 1.0
        for (caller_file, _l, _n), edge in callers.items():
            share = tottime * edge[2] / edge_total
            by_category[_category(caller_file) if caller_file != "~" else "C builtins"] += share
    total = sum(by_category.values()) or 1.0
    print(
        f"[{transport}] profile of the agent window: {total:.2f} s busy, {idle:.2f} s idle in "
        f"epoll ({cpu_s:.2f} s CPU with the profiler on); self time by package:"
    )
    for category, seconds in by_category.most_common(14):
        print(f"[{transport}]   {category:<22} {seconds:7.3f} s  {seconds / total:6.1%}")
    print(f"[{transport}] inclusive time of the agent's path (coroutine steps included):")
    rows = [
        (ct, name, filename)
        for (filename, _line, name), (_cc, _nc, _tt, ct, _callers) in raw.items()
        if name in _PATH.split() and _category(filename) != "asyncio"
    ]
    for ct, name, filename in sorted(rows, reverse=True)[:12]:
        where = f"{_category(filename)}:{name}"
        print(f"[{transport}]   {where:<40} {ct:7.3f} s  {ct / total:6.1%}")
    print(f"[{transport}] top functions by self time:")
    busy = [item for item in raw.items() if item[0][2] != _IDLE]
    top = sorted(busy, key=lambda item: item[1][2], reverse=True)[:15]
    for (filename, line, name), (_cc, nc, tottime, _ct, _callers) in top:
        where = f"{Path(filename).name}:{line}:{name}" if filename != "~" else name
        print(f"[{transport}]   {tottime:7.3f} s  {nc:>8} calls  {where[:80]}")
    sys.stdout.flush()


# --------------------------------------------------------------------------- orchestration


def run_child(
    role: str, transport: str, url: str, cpu: int | None, args: argparse.Namespace, tmp: Path
) -> dict[str, Any]:
    out = tmp / f"{role}-{transport}.json"
    log_path = tmp / f"{role}-{transport}.log"
    flags = {"role": role, "transport": transport, "url": url, "out": out, "cpu": cpu}
    flags |= {"checks": args.checks, "seconds": args.seconds, "warmup": args.warmup}
    cmd = [sys.executable, str(Path(__file__).resolve())]
    cmd += [f"--{name}={value}" for name, value in flags.items() if value is not None]
    cmd += ["--profile"] * (args.profile and role == "agent") + ["--gc-freeze"] * args.gc_freeze
    limit = FIRST_ROUND_CAP + args.warmup + args.seconds + 60
    with log_path.open("w") as log:
        proc = subprocess.run(cmd, stderr=log, timeout=limit, check=False)
    log_lines = log_path.read_text().splitlines()
    if proc.returncode != 0:
        sys.stderr.write("\n".join(log_lines[-30:]) + "\n")
        raise RuntimeError(f"{role} peer ({transport}) exited with {proc.returncode}")
    figures: dict[str, Any] = json.loads(out.read_text())
    figures["log_warnings"] = log_warnings(log_lines)
    return figures


def log_warnings(lines: Sequence[str]) -> dict[str, int]:
    """Warning and error log lines, counted by event (quoted job names elided)."""
    counts: Counter[str] = Counter()
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if not isinstance(entry, dict) or entry.get("level") not in ("warning", "error"):
            continue
        event = re.sub(r'"[^"]*"', '"…"', str(entry.get("event", "?")))
        exception = str(entry.get("exception") or "").strip().splitlines()
        exception = exception or [str(info) for info in entry.get("exc_info", [])[1:2]]
        if exception:
            event += f" ({exception[-1][:60]})"
        counts[event] += 1
    return dict(counts.most_common())


def summarize(transport: str, agent: dict[str, Any], bare: dict[str, Any]) -> dict[str, Any]:
    """The figures of one transport, printing the human-readable lines."""
    agent_rate = agent["results"] / agent["window_s"]
    bare_rate = bare["results"] / bare["window_s"]
    cpu_per_check = agent["cpu_s"] / max(agent["results"], 1)
    bare_per_request = bare["cpu_s"] / max(bare["results"], 1)
    ratio = cpu_per_check / bare_per_request if bare_per_request else math.inf
    fig = {
        "checks_per_s": round(agent_rate, 1),
        "lag_p50_ms": round(agent["lag_p50_ms"], 2),
        "lag_p99_ms": round(agent["lag_p99_ms"], 2),
        "cpu_s_per_check": round(cpu_per_check, 6),
        "agent_core_utilisation": round(agent["cpu_s"] / agent["window_s"], 3),
        "failures": agent["failures"],
        "misfires": agent["misfires"],
        "bare_requests_per_s": round(bare_rate, 1),
        "bare_lag_p99_ms": round(bare["lag_p99_ms"], 2),
        "bare_loop_cpu_s_per_request": round(bare_per_request, 6),
        "bare_failures": bare["failures"],
        "ratio": round(ratio, 3),
        "first_round_s": round(agent["first_round_s"], 2),
        "phases": agent["phases"],
        "others_load": round(max(agent["others_load"], bare["others_load"]), 3),
    }
    print_figures(f"[{transport}]", fig, agent, bare)
    return fig


def print_figures(
    tag: str, fig: dict[str, Any], agent: dict[str, Any], bare: dict[str, Any]
) -> None:
    agent_core, bare_core = agent["cpu_s"] / agent["window_s"], bare["cpu_s"] / bare["window_s"]
    print(
        f"{tag} agent: {fig['checks_per_s']:7.1f} checks/s, lag p50 {agent['lag_p50_ms']:.1f} "
        f"ms p99 {agent['lag_p99_ms']:.1f} ms max {agent['lag_max_ms']:.1f} ms, CPU "
        f"{fig['cpu_s_per_check'] * 1e3:.3f} ms/check ({agent_core:.0%} of a core), "
        f"failures {agent['failures']}, misfires {agent['misfires']}"
    )
    print(
        f"{tag} bare:  {fig['bare_requests_per_s']:7.1f} req/s,    lag p50 "
        f"{bare['lag_p50_ms']:.1f} ms p99 {bare['lag_p99_ms']:.1f} ms max "
        f"{bare['lag_max_ms']:.1f} ms, CPU {fig['bare_loop_cpu_s_per_request'] * 1e3:.3f} "
        f"ms/request ({bare_core:.0%} of a core), failures {bare['failures']}"
    )
    print(
        f"{tag} ratio {fig['ratio']:.2f} (agent CPU per check / bare CPU per request); first round "
        f"of all checks took {agent['first_round_s']:.2f} s, {agent['first_round_cpu_s']:.2f} "
        f"s CPU; phases recorded: {', '.join(agent['phases']) or 'none'}"
    )
    for peer, figures in (("agent", agent), ("bare", bare)):
        if figures["failures"]:
            print(
                f"WARNING {tag} {peer}: {figures['failures']} failed runs, so this run is not a "
                f"valid measurement; top reasons: {figures['reasons']}"
            )
        if figures["others_load"] > 0.05:
            print(
                f"WARNING {tag} {peer}: other processes used {figures['others_load']:.0%} of the "
                "measured CPU during the window; the figures are not reliable"
            )
        if not figures["first_round_complete"]:
            print(f"WARNING {tag} {peer}: not every check ran within {FIRST_ROUND_CAP:g} s")
        if figures["log_warnings"]:
            counts = ", ".join(f"{e} x{n}" for e, n in figures["log_warnings"].items())
            print(f"WARNING {tag} {peer}: warning/error log lines: {counts}")


def default_transport_setup_ms(samples: int = 5) -> tuple[float, float]:
    """CPU (ms) of the agent's ``default_transport``: its first call, then each next one."""
    started = time.process_time()
    default_transport(TLSConfig())
    first = time.process_time() - started
    for _ in range(samples):
        default_transport(TLSConfig())
    return first * 1e3, (time.process_time() - started - first) / samples * 1e3


def cpus() -> tuple[int | None, int | None]:
    """(measured CPU, target CPU); the target shares the CPU when there is only one."""
    available = sorted(os.sched_getaffinity(0))
    if len(available) >= 2:
        return available[0], available[1]
    return available[0], None


def print_setup(args: argparse.Namespace, cpus: tuple[int | None, int | None]) -> dict[str, Any]:
    """The run's set-up lines; returns the environment facts that shape the figures."""
    offered = args.checks / INTERVAL
    print(
        f"check_capacity: {args.checks} http checks every {INTERVAL:g} s ({offered:g}/s offered), "
        f"timeout {TIMEOUT * 1e3:g} ms, warm-up {args.warmup:g} s + first round, window "
        f"{args.seconds:g} s; measured CPU {cpus[0]}, target CPU {cpus[1]}"
    )
    if cpus[1] is None:
        print("WARNING only one CPU: the target shares it with the measured process")
    first_ms, setup_ms = default_transport_setup_ms()
    print(
        f"note: the agent's default_transport takes {first_ms:.1f} ms CPU on its first call, "
        f"then {setup_ms:.2f} ms per check ({setup_ms * args.checks / 1e3:.2f} s for "
        f"{args.checks} checks, paid on their first run)"
    )
    sniffio = importlib.util.find_spec("sniffio") is not None
    if not sniffio:
        print(
            "note: sniffio is not installed, so httpcore retries `import sniffio` (a sys.path "
            "scan) for every lock it sets up: this slows the httpx transport"
        )
    return {"sniffio_installed": sniffio, "default_transport_setup_ms": round(setup_ms, 2)}


def headline(per_transport: dict[str, dict[str, Any]], offered: float) -> tuple[str, bool]:
    """The cheaper transport among those that sustained the rate (if any did); goal met?"""

    def sustained(figures: dict[str, Any]) -> bool:
        return bool(figures["checks_per_s"] >= 0.98 * offered and figures["failures"] == 0)

    best = min(
        per_transport,
        key=lambda t: (not sustained(per_transport[t]), per_transport[t]["cpu_s_per_check"]),
    )
    head = per_transport[best]
    met = (
        sustained(head)
        and offered >= GOAL_RATE
        and head["lag_p99_ms"] < GOAL_LAG_P99_MS
        and head["ratio"] <= GOAL_RATIO
    )
    print(
        f"headline transport: {best}; goal ({GOAL_RATE:g} checks/s, p99 lag < "
        f"{GOAL_LAG_P99_MS:g} ms, ratio <= {GOAL_RATIO:g}): {'MET' if met else 'NOT MET'}"
    )
    return best, met


def orchestrate(args: argparse.Namespace) -> int:
    measured_cpu, target_cpu = cpus()
    environment = print_setup(args, (measured_cpu, target_cpu))
    per_transport: dict[str, dict[str, Any]] = {}
    budget = 4 * len(args.transports) * (FIRST_ROUND_CAP + args.warmup + args.seconds + 60)
    with TargetProcess(target_cpu, budget) as target, tempfile.TemporaryDirectory() as tmp:
        url = f"http://127.0.0.1:{target.port}/health"
        logs = Path(args.log_dir) if args.log_dir else Path(tmp)
        logs.mkdir(parents=True, exist_ok=True)
        for transport in args.transports:
            agent = run_child("agent", transport, url, measured_cpu, args, logs)
            bare = run_child("bare", transport, url, measured_cpu, args, logs)
            per_transport[transport] = summarize(transport, agent, bare)
    best, met = headline(per_transport, args.checks / INTERVAL)
    if args.profile:
        print("WARNING --profile: the agent's CPU figures include cProfile's overhead")
    head = per_transport[best]
    summary = {
        "checks": args.checks,
        **{key: head[key] for key in ("checks_per_s", "lag_p99_ms", "cpu_s_per_check")},
        **{key: head[key] for key in ("bare_loop_cpu_s_per_request", "ratio")},
        "transport": best,
        "goal_met": met,
        "profiled": args.profile,
        "gc_freeze": args.gc_freeze,
        **environment,
        "transports": per_transport,
    }
    print(json.dumps(summary, separators=(",", ":")))
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--checks", type=int, default=1000, help="number of checks (1 s interval)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=5.0, help="after the first round")
    parser.add_argument(
        "--transports",
        type=lambda s: [t for t in s.split(",") if t],
        default=list(TRANSPORTS),
        help="comma-separated, from: agent,httpx,aiohttp",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the agent's window")
    parser.add_argument("--log-dir", help="keep the peers' logs and figures here")
    parser.add_argument(
        "--gc-freeze", action="store_true", help="gc.freeze() in both peers after the first round"
    )
    # Internal: one peer in a child process.
    parser.add_argument("--role", choices=("agent", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--transport", choices=TRANSPORTS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--cpu", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = set(args.transports) - set(TRANSPORTS)
    if unknown:
        parser.error(f"unknown transports {sorted(unknown)}; choose from {TRANSPORTS}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.role is not None:
        return child_main(args)
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
