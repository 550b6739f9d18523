"""The pilot simulator's flags, migration, dual-write and breakers: metrics, evolution, admin."""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from fastapi.routing import APIRoute
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agent.demo.pilot_admin import PilotTicker, pilot_view
from agent.demo.pilot_state import FLAGS, PilotState
from agent.demo.simulator import Simulator
from agent.promql.engine import PromQLEngine
from agent.promql.value import Vector
from agent.tsdb.base import labels_from
from agent.tsdb.store import SeriesStore

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = (ROOT / "docs" / "metrics-contract.md").read_text()
T0 = 1_700_000_000.0
Key = tuple[str, tuple[tuple[str, str], ...]]


class Clock:
    """A settable clock for the simulator."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_sim(seed: int = 1) -> tuple[Simulator, Clock]:
    clock = Clock()
    return Simulator(rng=random.Random(seed), clock=clock), clock


def step(sim: Simulator, clock: Clock, seconds: int) -> None:
    """Advance the pilot one second at a time, as the background ticker does."""
    for _ in range(seconds):
        clock.now += 1
        sim.pilot.advance(clock.now)


@contextlib.asynccontextmanager
async def client_for(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=sim.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def parse(text: str) -> dict[Key, float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def exposed(sim: Simulator) -> dict[Key, float]:
    return parse(generate_latest(sim.metrics.registry).decode())


async def scrape(client: httpx.AsyncClient) -> dict[Key, float]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    return parse(response.text)


def val(metrics: dict[Key, float], name: str, **labels: str) -> float:
    return metrics[(name, tuple(sorted(labels.items())))]


def total(metrics: dict[Key, float], name: str, **labels: str) -> float:
    wanted = labels.items()
    return sum(v for (n, ls), v in metrics.items() if n == name and wanted <= dict(ls).items())


# --------------------------------------------------------------------------- flags


async def test_flag_update_sets_gauges_and_last_change_only_when_changed() -> None:
    """PUT flags/{flag} sets its gauges and moves its last-change time only on a real change."""
    sim, clock = make_sim()
    async with client_for(sim) as client:
        clock.now = T0 + 5
        body = {"rollout_percent": 50, "pilot_customers": 20, "enabled": True}
        reply = await client.put("/admin/pilot/flags/new_order_flow", json=body)
        assert reply.status_code == 200 and reply.json()["exposure"] == 0.5
        clock.now = T0 + 9
        await client.put("/admin/pilot/flags/new_order_flow", json={"rollout_percent": 50})
        m = await scrape(client)
    flag = {"flag": "new_order_flow"}
    assert val(m, "feature_flag_rollout_percent", **flag) == 50
    assert val(m, "feature_flag_pilot_customers", **flag) == 20
    assert val(m, "feature_flag_enabled", **flag) == 1
    assert val(m, "feature_flag_last_change_timestamp_seconds", **flag) == T0 + 5
    other = {"flag": "realtime_tracking"}
    assert val(m, "feature_flag_last_change_timestamp_seconds", **other) == T0 - 86_400


async def test_evaluations_grow_with_traffic_in_proportion_to_exposure() -> None:
    """Each flag is evaluated once per synthetic request, serving "on" to its exposed share."""
    sim, clock = make_sim()
    step(sim, clock, 100)
    m = exposed(sim)
    for flag in FLAGS:
        assert total(m, "feature_flag_evaluations_total", flag=flag) == 2000
        assert total(m, "feature_flag_requests_total", flag=flag) == 2000
    on = {"variant": "on"}
    assert 900 < val(m, "feature_flag_evaluations_total", flag="realtime_tracking", **on) < 1100
    assert 150 < val(m, "feature_flag_evaluations_total", flag="new_order_flow", **on) < 250
    assert val(m, "feature_flag_evaluations_total", flag="einvoice_v2", **on) == 0
    assert total(m, "feature_flag_requests_total", flag="einvoice_v2", cohort="treatment") == 0


async def test_kill_switch_serves_off_to_everyone_until_released() -> None:
    """An engaged kill switch stops "on" evaluations; releasing it resumes them."""
    sim, clock = make_sim()
    flag = {"flag": "realtime_tracking"}
    async with client_for(sim) as client:
        await client.put("/admin/pilot/flags/realtime_tracking", json={"kill_switch": True})
        before = await scrape(client)
        step(sim, clock, 30)
        during = await scrape(client)
        await client.put("/admin/pilot/flags/realtime_tracking", json={"kill_switch": False})
        step(sim, clock, 30)
        after = await scrape(client)
    assert val(during, "feature_flag_kill_switch_engaged", **flag) == 1
    assert val(during, "feature_flag_enabled", **flag) == 1
    on = "feature_flag_evaluations_total"
    assert val(during, on, variant="on", **flag) == val(before, on, variant="on", **flag)
    assert val(during, on, variant="off", **flag) == 600
    assert val(after, "feature_flag_kill_switch_engaged", **flag) == 0
    assert val(after, on, variant="on", **flag) > 200


async def test_flag_error_rate_fails_only_its_treatment_cohort() -> None:
    """A flag's error_rate fails its treatment cohort, not control; evaluation errors serve off."""
    sim, clock = make_sim()
    async with client_for(sim) as client:
        change = {"rollout_percent": 50, "error_rate": 0.5, "evaluation_error_rate": 0.1}
        await client.put("/admin/pilot/flags/new_order_flow", json=change)
        step(sim, clock, 100)
        m = await scrape(client)
    flag = {"flag": "new_order_flow"}
    treatment = total(m, "feature_flag_requests_total", cohort="treatment", **flag)
    treatment_5xx = total(
        m, "feature_flag_requests_total", cohort="treatment", status="500", **flag
    )
    control_5xx = total(m, "feature_flag_requests_total", cohort="control", status="500", **flag)
    assert 0.4 < treatment_5xx / treatment < 0.6
    assert control_5xx < 5
    errors = val(m, "feature_flag_evaluation_errors_total", **flag)
    assert 120 < errors < 280
    assert val(m, "feature_flag_evaluations_total", variant="off", **flag) > 1000 + errors / 2


async def test_outage_fault_answers_every_cohort_request_503() -> None:
    """During an injected outage every flag's cohort requests are counted as 503."""
    sim, clock = make_sim()
    async with client_for(sim) as client:
        await client.put("/admin/faults", json={"outage": True})
        step(sim, clock, 10)
        m = await scrape(client)
    assert total(m, "feature_flag_requests_total", status="503") == 4 * 200
    assert total(m, "feature_flag_requests_total") == 4 * 200


# --------------------------------------------------------------------------- migration


def test_migration_moves_forward_in_batches_deterministically() -> None:
    """Stepped with the same seed, the migration completes the same batches every 10 s."""
    runs = []
    for _ in range(2):
        sim, clock = make_sim(seed=7)
        step(sim, clock, 600)
        runs.append(exposed(sim))
    m = runs[0]
    assert {k: v for k, v in m.items() if k[0].startswith("migration_")} == {
        k: v for k, v in runs[1].items() if k[0].startswith("migration_")
    }
    success = val(m, "migration_batches_total", result="success")
    failure = val(m, "migration_batches_total", result="failure")
    assert success + failure == 60 and success > failure
    assert val(m, "migration_customers", state="migrated") == 592 + 10 * success
    assert val(m, "migration_customers", state="failed") == 8 + 10 * failure
    assert val(m, "migration_customers", state="pending") == 2000 - 600 - 600 - 10
    assert val(m, "migration_customers", state="in_progress") == 10
    assert total(m, "migration_customers") == 2000
    assert val(m, "migration_last_batch_timestamp_seconds") == T0 + 600


def test_migration_stops_when_no_customer_is_pending() -> None:
    """Once every customer has gone through, batches stop and the last batch time stays."""
    state = PilotState(rng=random.Random(3), clock=lambda: 0.0, request_rate=0.0)
    for t in range(10, 3000, 10):
        state.advance(float(t))
    customers = state.migration.customers
    assert customers["pending"] == customers["in_progress"] == 0
    assert customers["migrated"] + customers["failed"] == 2000
    batches, last = dict(state.migration.batches), state.migration.last_batch_at
    state.advance(5000.0)
    assert dict(state.migration.batches) == batches and state.migration.last_batch_at == last


async def test_stall_stops_batches_until_resumed() -> None:
    """A stalled migration completes no batch and keeps its batch in progress until resumed."""
    sim, clock = make_sim()
    async with client_for(sim) as client:
        step(sim, clock, 25)
        stalled = await client.post("/admin/pilot/migration/stall")
        assert stalled.json()["stalled"] is True
        before = await scrape(client)
        step(sim, clock, 300)
        during = await scrape(client)
        resumed = await client.post("/admin/pilot/migration/resume")
        assert resumed.json()["stalled"] is False
        step(sim, clock, 30)
        after = await scrape(client)
    migration = {k: v for k, v in before.items() if k[0].startswith("migration_")}
    assert {k: during[k] for k in migration} == migration
    assert val(during, "migration_customers", state="in_progress") == 10
    assert val(during, "migration_last_batch_timestamp_seconds") == T0 + 20
    assert total(after, "migration_batches_total") == total(before, "migration_batches_total") + 3
    assert val(after, "migration_last_batch_timestamp_seconds") == T0 + 350


async def test_rollback_moves_customers_to_rolled_back() -> None:
    """A rollback moves in-progress, then migrated customers to rolled_back; finish ends it."""
    sim, clock = make_sim()
    async with client_for(sim) as client:
        started = await client.post("/admin/pilot/migration/rollback/start")
        assert started.json()["rollback_in_progress"] is True
        step(sim, clock, 20)
        during = await scrape(client)
        assert (await client.post("/admin/pilot/migration/resume")).status_code == 409
        assert (await client.post("/admin/pilot/migration/rollback/start")).status_code == 409
        finished = await client.post("/admin/pilot/migration/rollback/finish")
        assert finished.json()["stalled"] is True
        step(sim, clock, 60)
        after = await scrape(client)
        assert (await client.post("/admin/pilot/migration/rollback/finish")).status_code == 409
    assert val(during, "migration_rollback_in_progress") == 1
    assert val(during, "migration_customers", state="rolled_back") == 100
    assert val(during, "migration_customers", state="in_progress") == 0
    assert val(during, "migration_customers", state="migrated") == 592 - 90
    assert total(during, "migration_batches_total") == 0
    assert val(after, "migration_rollback_in_progress") == 0
    assert val(after, "migration_customers", state="rolled_back") == 602
    assert val(after, "migration_customers", state="migrated") == 0
    assert val(after, "migration_customers", state="pending") == 1390
    assert total(after, "migration_customers") == 2000


# --------------------------------------------------------------------------- dual-write


async def test_dual_write_lag_hovers_low_then_drifts_to_its_target() -> None:
    """The lag stays near 0.25 s with noise; a target lag and queue are reached within seconds."""
    sim, clock = make_sim()
    lags = []
    for _ in range(60):
        step(sim, clock, 1)
        lags.append(val(exposed(sim), "dual_write_lag_seconds"))
    assert all(0.15 < lag < 0.4 for lag in lags) and len(set(lags)) > 50
    async with client_for(sim) as client:
        change = {"lag_seconds": 120, "queue_depth": 5000}
        reply = await client.put("/admin/pilot/dual-write", json=change)
        assert reply.json()["target_lag_seconds"] == 120
        step(sim, clock, 15)
        m = await scrape(client)
    assert 95 < val(m, "dual_write_lag_seconds") < 150
    assert 3000 < val(m, "dual_write_queue_depth") < 7500
    assert 420 < total(m, "dual_write_operations_total") < 480
    assert total(m, "dual_write_operations_total", op="update") > 250


async def test_dual_write_failures_and_unresolved_conflicts_follow_admin() -> None:
    """failure_rate drives failed operations; raising unresolved conflicts counts manual ones."""
    sim, clock = make_sim()
    async with client_for(sim) as client:
        await client.put("/admin/pilot/dual-write", json={"failure_rate": 1.0})
        step(sim, clock, 10)
        reply = await client.put("/admin/pilot/dual-write", json={"unresolved_conflicts": 3})
        assert reply.json()["unresolved_conflicts"] == 3
        raised = await scrape(client)
        await client.put("/admin/pilot/dual-write", json={"unresolved_conflicts": 1})
        lowered = await scrape(client)
    assert total(raised, "dual_write_operations_total", result="failure") == 60
    assert total(raised, "dual_write_operations_total", result="success") == 0
    assert val(raised, "dual_write_unresolved_conflicts") == 3
    assert val(raised, "dual_write_conflicts_total", resolution="manual") == 3
    assert val(lowered, "dual_write_unresolved_conflicts") == 1
    assert val(lowered, "dual_write_conflicts_total", resolution="manual") == 3


# --------------------------------------------------------------------------- breakers


async def test_breaker_and_failover_update_state_counter_and_histogram() -> None:
    """Opening a breaker with failover counts one switch and observes its duration; failback too."""
    sim, _ = make_sim()
    sms = {"dependency": "sms"}
    async with client_for(sim) as client:
        body = {"state": "open", "failover": True, "switch_seconds": 2.5}
        reply = await client.put("/admin/pilot/breakers/sms", json=body)
        assert reply.json() == {"state": "open", "failover": True, "switches": 1}
        opened = await scrape(client)
        await client.put("/admin/pilot/breakers/sms", json={"state": "half_open"})
        half = await scrape(client)
        await client.put("/admin/pilot/breakers/sms", json={"state": "closed", "failover": False})
        closed = await scrape(client)
    assert val(opened, "circuit_breaker_state", **sms) == 2
    assert val(opened, "failover_active", **sms) == 1
    assert val(opened, "failover_switches_total", **sms) == 1
    buckets = "failover_switch_duration_seconds_bucket"
    assert val(opened, buckets, le="1.0", **sms) == 0
    assert val(opened, buckets, le="2.5", **sms) == 1
    assert val(opened, "failover_switch_duration_seconds_sum", **sms) == 2.5
    assert val(half, "circuit_breaker_state", **sms) == 1
    assert val(half, "failover_switches_total", **sms) == 1
    assert val(closed, "circuit_breaker_state", **sms) == 0
    assert val(closed, "failover_active", **sms) == 0
    assert val(closed, "failover_switches_total", **sms) == 2
    assert val(closed, "failover_switch_duration_seconds_count", **sms) == 2
    assert val(closed, buckets, le="+Inf", **sms) == 2
    for dep in ("banking", "einvoice", "maps"):
        assert val(closed, "circuit_breaker_state", dependency=dep) == 0
        assert val(closed, "failover_switches_total", dependency=dep) == 0


# --------------------------------------------------------------------------- admin API


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/admin/pilot/flags/new_order_flow", {"rollout_percent": 101}),
        ("/admin/pilot/flags/new_order_flow", {"rollout_percent": -1}),
        ("/admin/pilot/flags/new_order_flow", {"pilot_customers": -1}),
        ("/admin/pilot/flags/new_order_flow", {"kill_switch": "maybe"}),
        ("/admin/pilot/flags/new_order_flow", {"error_rate": 1.5}),
        ("/admin/pilot/flags/new_order_flow", {"colour": "blue"}),
        ("/admin/pilot/flags/no_such_flag", {"enabled": True}),
        ("/admin/pilot/dual-write", {"lag_seconds": -1}),
        ("/admin/pilot/dual-write", {"queue_depth": 1.5}),
        ("/admin/pilot/dual-write", {"unresolved_conflicts": -2}),
        ("/admin/pilot/dual-write", {"lag": 3}),
        ("/admin/pilot/breakers/sms", {"state": "broken"}),
        ("/admin/pilot/breakers/sms", {"switch_seconds": 2}),
        ("/admin/pilot/breakers/sms", {"failover": True, "switch_seconds": 0}),
        ("/admin/pilot/breakers/fax", {"state": "open"}),
    ],
)
async def test_admin_rejects_bad_input_with_422(path: str, body: dict[str, Any]) -> None:
    """Out-of-range values, unknown fields, flags and dependencies are answered 422, unchanged."""
    sim, _ = make_sim()
    async with client_for(sim) as client:
        before = (await client.get("/admin/pilot")).json()
        assert (await client.put(path, json=body)).status_code == 422
        assert (await client.get("/admin/pilot")).json() == before


async def test_admin_and_metrics_work_through_an_outage() -> None:
    """Injected outage and errors leave every /admin/pilot route and /metrics answering."""
    sim, _ = make_sim()
    async with client_for(sim) as client:
        await client.put("/admin/faults", json={"outage": True, "error_rate": 1.0})
        assert (await client.get("/health")).status_code == 503
        flag = await client.put("/admin/pilot/flags/einvoice_v2", json={"enabled": True})
        breaker = await client.put("/admin/pilot/breakers/maps", json={"state": "open"})
        dual = await client.put("/admin/pilot/dual-write", json={"lag_seconds": 5})
        stall = await client.post("/admin/pilot/migration/stall")
        state = await client.get("/admin/pilot")
        m = await scrape(client)
    replies = (flag, breaker, dual, stall, state)
    assert [r.status_code for r in replies] == [200] * 5
    assert val(m, "feature_flag_enabled", flag="einvoice_v2") == 1


async def test_reset_returns_to_the_initial_state() -> None:
    """DELETE /admin/pilot restores the starting flags, migration, sync, breakers and counters."""
    sim, clock = make_sim()
    fresh, _ = make_sim()
    async with client_for(sim) as client:
        await client.put("/admin/pilot/flags/new_order_flow", json={"kill_switch": True})
        await client.put("/admin/pilot/breakers/sms", json={"state": "open", "failover": True})
        await client.post("/admin/pilot/migration/rollback/start")
        step(sim, clock, 30)
        clock.now = T0
        reset = (await client.delete("/admin/pilot")).json()
    assert reset == pilot_view(fresh.pilot)
    assert total(exposed(sim), "failover_switches_total") == 0
    assert total(exposed(sim), "feature_flag_evaluations_total") == 0


async def test_admin_routes_are_the_documented_ones() -> None:
    """Every /admin/pilot route the contract documents exists, and no undocumented one does."""
    documented = set(
        re.findall(r"^\| `(GET|PUT|POST|DELETE) (/admin/pilot[^`]*)` \|", CONTRACT, re.M)
    )
    sim, _ = make_sim()
    served = {
        (method, route.path)
        for route in sim.app.routes
        if isinstance(route, APIRoute) and route.path.startswith("/admin/pilot")
        for method in route.methods or ()
    }
    assert documented == served and len(served) == 9


# --------------------------------------------------------------------------- contract


def documented_metrics() -> dict[str, str]:
    """Metric name to type, from the contract's tables."""
    rows = re.findall(r"^\| `([a-z_]+)` \| (gauge|counter|histogram) \|", CONTRACT, re.M)
    return dict(rows)


def documented_queries() -> list[str]:
    return re.findall(r"```promql\n(.*?)```", CONTRACT, re.S)


async def test_contract_metrics_are_exactly_those_exposed() -> None:
    """Every metric in the contract's tables is exposed with its type, and nothing else is."""
    sim, clock = make_sim()
    async with client_for(sim) as client:
        await client.get("/health")
        step(sim, clock, 10)
        text = (await client.get("/metrics")).text
    exposure = {
        f"{f.name}_total" if f.type == "counter" else f.name: f.type
        for f in text_string_to_metric_families(text)
    }
    created = {"http_requests_created", "http_request_duration_seconds_created"}
    assert {name: exposure.pop(name) for name in created} == dict.fromkeys(created, "gauge")
    assert documented_metrics() == exposure
    assert len(exposure) == 23


def test_pilot_metrics_stay_off_the_global_registry() -> None:
    """The pilot collector is registered on the simulator's own registry, not the global one."""
    sim, _ = make_sim()
    assert val(exposed(sim), "circuit_breaker_state", dependency="sms") == 0
    assert REGISTRY.get_sample_value("circuit_breaker_state", {"dependency": "sms"}) is None


def record(store: SeriesStore, sim: Simulator, t: float) -> None:
    for (name, labels), value in exposed(sim).items():
        store.append(
            labels_from({"__name__": name, "job": "sim", **dict(labels)}), int(t * 1000), value
        )


def scraped_store(sim: Simulator, clock: Clock, seconds: int) -> SeriesStore:
    """The simulator's metrics scraped every 15 s for ``seconds``, as the agent would store them."""
    store = SeriesStore()
    for _ in range(seconds // 15):
        record(store, sim, clock.now)
        step(sim, clock, 15)
    record(store, sim, clock.now)
    return store


def test_contract_queries_use_every_metric_and_evaluate_on_the_agent_engine() -> None:
    """Each documented query parses and evaluates on the agent's engine; each metric is used."""
    sim, clock = make_sim()
    sim.pilot.breakers["sms"].record_switch(1.0)
    store = scraped_store(sim, clock, 600)
    engine = PromQLEngine()
    queries = documented_queries()
    for query in queries:
        result = engine.instant(store, query, int(clock.now * 1000))
        assert isinstance(result.value, Vector), query
    used = " ".join(queries)
    assert [name for name in documented_metrics() if name not in used] == []


def test_contract_cohort_query_flags_only_the_failing_flag() -> None:
    """The documented cohort-versus-control query fires for a flag failing in its cohort only."""
    sim, clock = make_sim()
    sim.pilot.flags["new_order_flow"].error_rate = 0.3
    store = scraped_store(sim, clock, 600)
    (query,) = [q for q in documented_queries() if 'cohort="treatment"' in q]
    result = PromQLEngine().instant(store, query, int(clock.now * 1000))
    assert isinstance(result.value, Vector)
    assert [dict(s.labels) for s in result.value.samples] == [{"flag": "new_order_flow"}]


# --------------------------------------------------------------------------- ticking


async def test_app_lifespan_advances_the_pilot_while_serving() -> None:
    """The app's lifespan ticks the pilot state in the background and stops ticking on exit."""
    sim = Simulator(rng=random.Random(1), pilot_interval=0.01, traffic_rate=2000.0)

    def evaluations() -> float:
        return total(exposed(sim), "feature_flag_evaluations_total")

    async with sim.app.router.lifespan_context(sim.app):
        await asyncio.sleep(0.1)
        assert evaluations() > 0
    stopped = evaluations()
    await asyncio.sleep(0.05)
    assert evaluations() == stopped


async def test_ticker_logs_a_failing_tick_and_keeps_going(monkeypatch: pytest.MonkeyPatch) -> None:
    """One tick that raises is logged and the following ticks still run."""
    state = PilotState(rng=random.Random(1))
    calls: list[float] = []

    def advance(now: float) -> None:
        calls.append(now)
        if len(calls) == 1:
            raise RuntimeError("boom")

    monkeypatch.setattr(state, "advance", advance)
    ticker = PilotTicker(state, interval=0.005)
    with structlog.testing.capture_logs() as logs:
        async with ticker(None), ticker(None):
            await asyncio.sleep(0.05)
    assert len(calls) > 2
    assert [e["event"] for e in logs] == ["simulator_pilot_tick_failed"]
