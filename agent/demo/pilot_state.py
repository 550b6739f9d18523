"""The Lucky Gas pilot's moving parts in the simulator, and the metrics that expose them.

:class:`PilotState` holds the feature flags, the customer migration, the
dual-write sync to the legacy system and the circuit breakers of the external
dependencies. ``advance(now)`` moves them on (flag evaluations follow traffic,
the migration runs in batches, the dual-write lag hovers around its target);
``agent.demo.pilot_admin`` changes them and advances them every second while
the simulator serves; :class:`PilotCollector` exposes them as described in
``docs/metrics-contract.md``.

>>> state = PilotState(rng=random.Random(1), clock=lambda: 0.0)
>>> state.advance(60.0)
>>> state.migration.batches["success"] + state.migration.batches["failure"]
6
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal, get_args

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

from agent.demo.faults import FaultSettings

FlagName = Literal["new_order_flow", "route_optimisation", "realtime_tracking", "einvoice_v2"]
Dependency = Literal["sms", "banking", "einvoice", "maps"]
BreakerState = Literal["closed", "half_open", "open"]
FLAGS: tuple[FlagName, ...] = get_args(FlagName)
DEPENDENCIES: tuple[Dependency, ...] = get_args(Dependency)
BREAKER_VALUES: dict[BreakerState, int] = {"closed": 0, "half_open": 1, "open": 2}
MIGRATION_STATES = ("pending", "in_progress", "migrated", "failed", "rolled_back")
WRITE_OPS = ("create", "update", "delete")
WRITE_OP_WEIGHTS = (0.2, 0.7, 0.1)
SWITCH_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BASELINE_ERROR_RATE = 0.0005
CONFLICT_RATE = 0.01
LAG_TIME_CONSTANT = 3.0
MAX_STEP_SECONDS = 300.0
# The pilot's settings when the simulator starts: 5 pilot customers, then 10% → 50% → 100%.
INITIAL_FLAGS: dict[FlagName, tuple[bool, float, int]] = {
    "new_order_flow": (True, 10.0, 5),
    "route_optimisation": (True, 0.0, 5),
    "realtime_tracking": (True, 50.0, 5),
    "einvoice_v2": (False, 0.0, 0),
}


@dataclass(frozen=True, slots=True)
class MigrationPlan:
    """The customer migration's size and pace; the defaults take about 25 minutes."""

    customers: int = 2000
    migrated: int = 592
    failed: int = 8
    batch_size: int = 10
    batch_seconds: float = 10.0
    failure_probability: float = 0.05
    rollback_batch_size: int = 50


@dataclass(slots=True)
class Flag:
    """One feature flag's settings and the counts of its evaluations."""

    enabled: bool
    rollout_percent: float
    pilot_customers: int
    changed_at: float
    kill_switch: bool = False
    error_rate: float = 0.0
    evaluation_error_rate: float = 0.0
    evaluations: Counter[str] = field(default_factory=lambda: Counter(on=0, off=0))
    evaluation_errors: int = 0
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)

    def exposure(self, population: int) -> float:
        """The share of requests served the ``on`` variant."""
        if not self.enabled or self.kill_switch:
            return 0.0
        return max(self.rollout_percent / 100, min(1.0, self.pilot_customers / population))


@dataclass(slots=True)
class Migration:
    """Customers per migration state, batch results and the migration's controls."""

    customers: dict[str, int]
    last_batch_at: float
    batches: Counter[str] = field(default_factory=lambda: Counter(success=0, failure=0))
    stalled: bool = False
    rollback_in_progress: bool = False
    carry: float = 0.0


@dataclass(slots=True)
class DualWrite:
    """The dual-write sync: lag and queue (current, smoothed level, target) and counts."""

    target_lag: float = 0.25
    lag_level: float = 0.25
    lag_seconds: float = 0.25
    target_queue: float = 3.0
    queue_level: float = 3.0
    queue_depth: int = 3
    failure_rate: float = 0.001
    unresolved: int = 0
    operations: Counter[tuple[str, str]] = field(default_factory=Counter)
    conflicts: Counter[str] = field(
        default_factory=lambda: Counter(source_wins=0, legacy_wins=0, manual=0)
    )
    carry: float = 0.0


@dataclass(slots=True)
class Breaker:
    """One dependency's circuit breaker, failover and switch-duration histogram."""

    state: BreakerState = "closed"
    failover: bool = False
    switches: int = 0
    bucket_counts: list[int] = field(default_factory=lambda: [0] * (len(SWITCH_BUCKETS) + 1))
    switch_sum: float = 0.0

    def record_switch(self, seconds: float) -> None:
        """Count one switch between primary and secondary that took ``seconds``."""
        self.switches += 1
        self.switch_sum += seconds
        self.bucket_counts[bisect.bisect_left(SWITCH_BUCKETS, seconds)] += 1


class PilotState:
    """The pilot's flags, migration, dual-write sync and breakers, moved on by ``advance``.

    >>> state = PilotState(rng=random.Random(2), clock=lambda: 100.0)
    >>> state.flags["new_order_flow"].exposure(state.plan.customers)
    0.1
    """

    def __init__(
        self,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        faults: Callable[[], FaultSettings] = FaultSettings,
        request_rate: float = 20.0,
        write_rate: float = 6.0,
        plan: MigrationPlan = MigrationPlan(),
    ) -> None:
        self.rng = rng if rng is not None else random.Random()
        self.clock = clock
        self.faults = faults
        self.request_rate = request_rate
        self.write_rate = write_rate
        self.plan = plan
        self.reset()

    def reset(self) -> None:
        """Return to the initial state, counters included, as if just started."""
        now = self.clock()
        self._last = now
        self._request_carry = 0.0
        self.flags = {
            name: Flag(enabled, percent, pilot, changed_at=now - 86_400)
            for name, (enabled, percent, pilot) in INITIAL_FLAGS.items()
        }
        p = self.plan
        pending = p.customers - p.migrated - p.failed - p.batch_size
        counts = (pending, p.batch_size, p.migrated, p.failed, 0)
        self.migration = Migration(dict(zip(MIGRATION_STATES, counts, strict=True)), now)
        self.dual_write = DualWrite()
        self.breakers = {dependency: Breaker() for dependency in DEPENDENCIES}

    # ------------------------------------------------------------------ evolution

    def advance(self, now: float) -> None:
        """Move everything on to ``now``; at most ``MAX_STEP_SECONDS`` are simulated at once."""
        elapsed = min(max(0.0, now - self._last), MAX_STEP_SECONDS)
        self._last = now
        if elapsed > 0:
            self._evaluate_flags(elapsed)
            self._run_migration(now, elapsed)
            self._sync(elapsed)

    def _due(self, carry: float, rate: float, elapsed: float) -> tuple[int, float]:
        carry += rate * elapsed
        count = math.floor(carry)
        return count, carry - count

    def _evaluate_flags(self, elapsed: float) -> None:
        """Evaluate every flag once per synthetic request and count each request's outcome."""
        count, self._request_carry = self._due(self._request_carry, self.request_rate, elapsed)
        faults, rng = self.faults(), self.rng
        for flag in self.flags.values():
            share = flag.exposure(self.plan.customers)
            for _ in range(count):
                variant = "on" if rng.random() < share else "off"
                if flag.evaluation_error_rate > 0 and rng.random() < flag.evaluation_error_rate:
                    flag.evaluation_errors += 1
                    variant = "off"
                flag.evaluations[variant] += 1
                extra = flag.error_rate if variant == "on" else 0.0
                cohort = "treatment" if variant == "on" else "control"
                flag.requests[(cohort, self._status(faults, extra))] += 1

    def _status(self, faults: FaultSettings, extra_error_rate: float) -> str:
        if faults.outage:
            return "503"
        error_rate = BASELINE_ERROR_RATE + faults.error_rate + extra_error_rate
        return "500" if self.rng.random() < error_rate else "200"

    def _run_migration(self, now: float, elapsed: float) -> None:
        m, p = self.migration, self.plan
        if m.stalled and not m.rollback_in_progress:
            return
        m.carry += elapsed
        while m.carry >= p.batch_seconds:
            m.carry -= p.batch_seconds
            moved = self.roll_back() if m.rollback_in_progress else self._batch(now)
            if not moved:
                m.carry = 0.0

    def _batch(self, now: float) -> bool:
        """Finish the batch in progress and start the next; whether anything moved."""
        customers, p = self.migration.customers, self.plan
        done = customers["in_progress"]
        if done:
            failed = self.rng.random() < p.failure_probability
            customers["failed" if failed else "migrated"] += done
            customers["in_progress"] = 0
            self.migration.batches["failure" if failed else "success"] += 1
            self.migration.last_batch_at = now
        started = min(p.batch_size, customers["pending"])
        customers["pending"] -= started
        customers["in_progress"] += started
        return bool(done or started)

    def roll_back(self, size: int | None = None) -> bool:
        """Move customers in progress, then migrated ones, to rolled_back; whether any moved."""
        customers = self.migration.customers
        left = self.plan.rollback_batch_size if size is None else size
        moved = 0
        for source in ("in_progress", "migrated"):
            take = min(left - moved, customers[source])
            customers[source] -= take
            moved += take
        customers["rolled_back"] += moved
        return moved > 0

    def _sync(self, elapsed: float) -> None:
        """Dual-write operations at the write rate; lag and queue drift to their targets."""
        dw, rng = self.dual_write, self.rng
        count, dw.carry = self._due(dw.carry, self.write_rate, elapsed)
        for op in rng.choices(WRITE_OPS, WRITE_OP_WEIGHTS, k=count):
            failed = rng.random() < dw.failure_rate
            dw.operations[(op, "failure" if failed else "success")] += 1
            if not failed and rng.random() < CONFLICT_RATE:
                resolution = "source_wins" if rng.random() < 0.8 else "legacy_wins"
                dw.conflicts[resolution] += 1
        pull = min(1.0, elapsed / LAG_TIME_CONSTANT)
        dw.lag_level += (dw.target_lag - dw.lag_level) * pull
        dw.queue_level += (dw.target_queue - dw.queue_level) * pull
        dw.lag_seconds = dw.lag_level * rng.lognormvariate(0.0, 0.1)
        dw.queue_depth = round(dw.queue_level * rng.lognormvariate(0.0, 0.2))


# ---------------------------------------------------------------------- metrics

Rows = Iterator[tuple[list[str], float]]
FLAG_GAUGES: dict[str, tuple[str, Callable[[Flag], float]]] = {
    "enabled": ("1 if the flag is switched on.", lambda f: f.enabled),
    "rollout_percent": (
        "Share of customers the flag is rolled out to.",
        lambda f: f.rollout_percent,
    ),
    "kill_switch_engaged": (
        "1 while the kill switch forces the flag off.",
        lambda f: f.kill_switch,
    ),
    "pilot_customers": ("Customers on the flag's pilot allow-list.", lambda f: f.pilot_customers),
    "last_change_timestamp_seconds": ("Unix time of the last change.", lambda f: f.changed_at),
}


def _gauge(name: str, doc: str, labels: list[str], rows: Rows) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for values, value in rows:
        family.add_metric(values, float(value))
    return family


def _counter(name: str, doc: str, labels: list[str], rows: Rows) -> Metric:
    family = CounterMetricFamily(name, doc, labels=labels)
    for values, value in rows:
        family.add_metric(values, float(value))
    return family


class PilotCollector:
    """Exposes a :class:`PilotState` as the metrics of ``docs/metrics-contract.md``.

    ``collect`` reads the in-memory state and never blocks.

    >>> from prometheus_client import CollectorRegistry
    >>> registry = CollectorRegistry()
    >>> registry.register(PilotCollector(PilotState(clock=lambda: 0.0)))
    >>> registry.get_sample_value("circuit_breaker_state", {"dependency": "sms"})
    0.0
    """

    def __init__(self, state: PilotState) -> None:
        self.state = state

    def describe(self) -> list[Metric]:
        """The families ``collect`` yields, so the registry can catch name clashes."""
        return list(self.collect())

    def collect(self) -> Iterator[Metric]:
        """Every pilot metric, read from the state as it is now."""
        yield from _flag_metrics(self.state.flags)
        yield from _migration_metrics(self.state.migration)
        yield from _dual_write_metrics(self.state.dual_write)
        yield from _breaker_metrics(self.state.breakers)


def _flag_metrics(flags: dict[FlagName, Flag]) -> Iterator[Metric]:
    for suffix, (doc, value) in FLAG_GAUGES.items():
        rows = (([str(name)], value(flag)) for name, flag in flags.items())
        yield _gauge(f"feature_flag_{suffix}", doc, ["flag"], rows)
    doc = "Flag evaluations, by the variant served."
    rows = (([n, v], c) for n, f in flags.items() for v, c in f.evaluations.items())
    yield _counter("feature_flag_evaluations_total", doc, ["flag", "variant"], rows)
    doc = "Flag evaluations that failed and served the default (off) variant."
    rows = (([str(name)], f.evaluation_errors) for name, f in flags.items())
    yield _counter("feature_flag_evaluation_errors_total", doc, ["flag"], rows)
    doc = "API requests by each flag's cohort (treatment: on, control: off) and HTTP status."
    rows = (([n, *key], c) for n, f in flags.items() for key, c in sorted(f.requests.items()))
    yield _counter("feature_flag_requests_total", doc, ["flag", "cohort", "status"], rows)


def _migration_metrics(m: Migration) -> Iterator[Metric]:
    rows = (([state], count) for state, count in m.customers.items())
    yield _gauge("migration_customers", "Customers in each migration state.", ["state"], rows)
    doc = "Migration batches completed, by result."
    rows = (([result], count) for result, count in m.batches.items())
    yield _counter("migration_batches_total", doc, ["result"], rows)
    doc = "Unix time the last migration batch completed."
    yield GaugeMetricFamily("migration_last_batch_timestamp_seconds", doc, float(m.last_batch_at))
    doc = "1 while customers are being rolled back to the legacy system."
    yield GaugeMetricFamily("migration_rollback_in_progress", doc, float(m.rollback_in_progress))


def _dual_write_metrics(dw: DualWrite) -> Iterator[Metric]:
    doc = "How far the legacy system trails the new one."
    yield GaugeMetricFamily("dual_write_lag_seconds", doc, float(dw.lag_seconds))
    doc = "Writes waiting to be applied to the legacy system."
    yield GaugeMetricFamily("dual_write_queue_depth", doc, float(dw.queue_depth))
    doc = "Writes mirrored to the legacy system, by operation and result."
    rows = (([op, result], c) for (op, result), c in sorted(dw.operations.items()))
    yield _counter("dual_write_operations_total", doc, ["op", "result"], rows)
    doc = "Conflicts between the two systems, by how they were resolved."
    rows = (([resolution], c) for resolution, c in dw.conflicts.items())
    yield _counter("dual_write_conflicts_total", doc, ["resolution"], rows)
    doc = "Conflicts waiting for manual resolution."
    yield GaugeMetricFamily("dual_write_unresolved_conflicts", doc, float(dw.unresolved))


def _breaker_metrics(breakers: dict[Dependency, Breaker]) -> Iterator[Metric]:
    doc = "Circuit breaker state: 0 closed, 1 half-open, 2 open."
    rows = (([str(dep)], BREAKER_VALUES[b.state]) for dep, b in breakers.items())
    yield _gauge("circuit_breaker_state", doc, ["dependency"], rows)
    doc = "1 while calls go to the dependency's secondary provider."
    rows = (([str(dep)], b.failover) for dep, b in breakers.items())
    yield _gauge("failover_active", doc, ["dependency"], rows)
    doc = "Switches between a dependency's primary and secondary provider, either way."
    rows = (([str(dep)], b.switches) for dep, b in breakers.items())
    yield _counter("failover_switches_total", doc, ["dependency"], rows)
    doc = "Time a switch between primary and secondary provider took."
    histogram = HistogramMetricFamily(
        "failover_switch_duration_seconds", doc, labels=["dependency"]
    )
    bounds = [*map(floatToGoString, SWITCH_BUCKETS), "+Inf"]
    for dep, b in breakers.items():
        cumulative = itertools.accumulate(b.bucket_counts)
        buckets = [(bound, float(n)) for bound, n in zip(bounds, cumulative, strict=True)]
        histogram.add_metric([dep], buckets, sum_value=b.switch_sum)
    yield histogram
