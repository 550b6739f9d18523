"""GET /api/v1/pilot/gate over a real store and PromQL engine, with ALERTS written by real rules.

The agent's rule evaluator writes ``ALERTS`` (and the stale marker when an alert
resolves) into a :class:`SeriesStore`, exactly as in the running agent; the
recording rules' outputs are written directly at chosen times.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import structlog
from fastapi import FastAPI

from agent.api.gate import GATE_EVALUATED, EmitEvent, gate_routes
from agent.config import AgentConfig
from agent.model import Event
from agent.promql.engine import PromQLEngine
from agent.rules.group import GroupEvaluator, engine_query_func
from agent.rules.model import AlertingRule, RuleGroup
from agent.tsdb.base import labels_from
from agent.tsdb.store import SeriesStore
from tests.events_schema import validate_event

T0 = 1_800_000_000
SPIKE = (600, 900)  # seconds after T0 during which 90% of requests are slow
FAST_BURN = AlertingRule(
    "PilotApiLatencyFastBurn",
    "pilot:http_requests:slow_ratio_rate1h > (14.4 * 0.05)",
    labels={"severity": "critical", "service": "lucky-gas-api", "gate": "block"},
)
NOT_BLOCKING = AlertingRule(
    "PilotApiHighLatency",
    "pilot:http_requests:slow_ratio_rate1h > 0.05",
    labels={"severity": "warning"},
)


@dataclass
class Ctx:
    """The gate's view of the agent: store, engine, config, a settable clock, an event list."""

    config: AgentConfig
    storage: SeriesStore = field(default_factory=SeriesStore)
    engine: PromQLEngine = field(default_factory=PromQLEngine)
    now: float = float(T0)
    events: list[Event] = field(default_factory=list)
    emit_event: EmitEvent | None = None

    def __post_init__(self) -> None:
        self.emit_event = self._emit
        self.clock: Callable[[], float] = lambda: self.now
        rules = RuleGroup("pilot-slo-alerts", "slo.rules.yml", [FAST_BURN, NOT_BLOCKING])
        query = engine_query_func(self.engine, self.storage)
        self.rules = GroupEvaluator(rules, query=query, appender=self.storage)

    async def _emit(self, event: Event) -> bool:
        self.events.append(event)
        return True

    def record(self, start: int, end: int, slow_6h: float = 0.01) -> None:
        """Recording-rule outputs and a rule evaluation every 15 s, from start to end."""
        for t in range(start, end, 15):
            slow_1h = 0.9 if SPIKE[0] <= t < SPIKE[1] else 0.01
            for name, value in (
                ("pilot:http_requests:slow_ratio_rate1h", slow_1h),
                ("pilot:http_requests:slow_ratio_rate6h", slow_6h),
                ("pilot:http_requests:error_ratio_rate1h", 0.0002),
                ("pilot:http_requests:error_ratio_rate6h", 0.0002),
                ("feature_flag_last_change_timestamp_seconds", T0 - 86_400),
            ):
                self.storage.append(labels_from({"__name__": name}), (T0 + t) * 1000, value)
            self.rules.evaluate(float(T0 + t))


def _config(**gate: Any) -> AgentConfig:
    return AgentConfig.model_validate({"pilot_gate": gate})


@pytest.fixture
def ctx() -> Ctx:
    return Ctx(_config())


@pytest.fixture
async def client(ctx: Ctx) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    gate_routes(app, ctx)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://agent") as c:
        yield c


async def _gate(client: httpx.AsyncClient, ctx: Ctx, at: int, stage: str) -> dict[str, Any]:
    ctx.now = float(T0 + at)
    answer = await client.get("/api/v1/pilot/gate", params={"stage": stage})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert body["status"] == "success"
    return dict(body["data"])


async def test_go_before_the_spike_and_the_answer_is_emitted(
    client: httpx.AsyncClient, ctx: Ctx
) -> None:
    """Healthy burns and no blocking alert: go; the answer is also an event, valid by its schema."""
    ctx.record(0, 600)
    data = await _gate(client, ctx, 595, "pilot-5-customers")
    assert data["decision"] == "go" and data["reasons"] == []
    assert data["evaluated_at"] == "2027-01-15T08:09:55.000Z"
    assert [(c["name"], c["value"], c["passed"]) for c in data["criteria"]] == [
        ("blocking_alerts_firing", 0, True),
        ("blocking_alerts_cooldown", 0, True),
        ("error_budget_burn", pytest.approx(0.2), True),
        ("latency_budget_burn", pytest.approx(0.2), True),
    ]
    (event,) = ctx.events
    assert (event.type, event.subject, event.source) == (
        GATE_EVALUATED,
        "pilot-5-customers",
        "pilot-agent",
    )
    assert event.data == data and event.time == T0 + 595
    assert validate_event(event.to_dict()) == []


async def test_firing_blocking_alert_is_a_no_go_naming_it(
    client: httpx.AsyncClient, ctx: Ctx
) -> None:
    """During the spike the gate-blocking alert fires: no-go with it as the only reason."""
    ctx.record(0, 800)
    data = await _gate(client, ctx, 795, "rollout-10")
    assert data["decision"] == "no-go"
    assert data["reasons"] == [
        {
            "kind": "alert_firing",
            "criterion": "blocking_alerts_firing",
            "alertname": "PilotApiLatencyFastBurn",
            "labels": {
                "alertname": "PilotApiLatencyFastBurn",
                "gate": "block",
                "service": "lucky-gas-api",
                "severity": "critical",
            },
            "message": "PilotApiLatencyFastBurn is firing",
            "value": 1,
        }
    ]
    assert validate_event(ctx.events[0].to_dict()) == []


async def test_resolved_alert_blocks_through_the_cooldown_then_goes(
    client: httpx.AsyncClient, ctx: Ctx
) -> None:
    """After the alert resolves the gate stays no-go for the 30m cooldown, and goes after it."""
    ctx.record(0, 900 + 1800 + 60)
    resolved = await _gate(client, ctx, 960, "rollout-10")
    assert [(r["kind"], r["alertname"]) for r in resolved["reasons"]] == [
        ("alert_cooldown", "PilotApiLatencyFastBurn")
    ]
    assert "fired within the last 30m" in resolved["reasons"][0]["message"]
    almost = await _gate(client, ctx, 885 + 1795, "rollout-10")
    assert [r["kind"] for r in almost["reasons"]] == ["alert_cooldown"]
    after = await _gate(client, ctx, 885 + 1800 + 15, "rollout-10")
    assert after["decision"] == "go", after["reasons"]


async def test_short_cooldown_from_the_config_applies(client: httpx.AsyncClient, ctx: Ctx) -> None:
    """A stage's own cooldown replaces the default: 2m after resolving it goes again."""
    ctx.config = _config(stages=[{"name": "rollout-10", "window": "6h", "cooldown": "2m"}])
    ctx.record(0, 1100)
    assert (await _gate(client, ctx, 960, "rollout-10"))["decision"] == "no-go"
    assert (await _gate(client, ctx, 1020, "rollout-10"))["decision"] == "go"


async def test_slo_burn_over_the_stage_window_is_a_no_go(
    client: httpx.AsyncClient, ctx: Ctx
) -> None:
    """A latency burn above 1 over the stage's 6h window stops the stage, with its value."""
    ctx.record(0, 300, slow_6h=0.08)
    data = await _gate(client, ctx, 295, "rollout-50")
    assert [(r["kind"], r["criterion"], r["value"]) for r in data["reasons"]] == [
        ("slo_burn", "latency_budget_burn", pytest.approx(1.6))
    ]
    latency = data["criteria"][3]
    assert latency["expr"] == "pilot:http_requests:slow_ratio_rate6h / 0.05"
    assert (latency["threshold"], latency["passed"]) == (1, False)


async def test_unknown_or_missing_stage_is_an_error_in_prometheus_shape(
    client: httpx.AsyncClient, ctx: Ctx
) -> None:
    """An unknown stage answers 404, a missing one 400, both bad_data; neither emits an event."""
    unknown = await client.get("/api/v1/pilot/gate", params={"stage": "rollout-25"})
    assert unknown.status_code == 404
    body = unknown.json()
    assert (body["status"], body["errorType"]) == ("error", "bad_data")
    assert 'unknown stage "rollout-25"' in body["error"] and "rollout-10" in body["error"]
    missing = await client.get("/api/v1/pilot/gate")
    assert missing.status_code == 400 and missing.json()["errorType"] == "bad_data"
    assert ctx.events == []


async def test_query_failure_and_missing_data_fail_closed(
    client: httpx.AsyncClient, ctx: Ctx
) -> None:
    """A criterion whose query fails in the engine, or finds no series, makes the answer no-go."""
    ctx.config = _config(
        slo=[
            {"name": "matrix", "expr": "pilot:http_requests:slow_ratio_rate$window[5m]", "max": 1},
            {"name": "absent", "expr": "pilot:no_such_series_rate$window", "max": 1},
        ]
    )
    ctx.record(0, 300)
    data = await _gate(client, ctx, 295, "rollout-10")
    assert data["decision"] == "no-go"
    assert [(r["kind"], r["criterion"]) for r in data["reasons"]] == [
        ("query_error", "matrix"),
        ("no_data", "absent"),
    ]
    matrix = data["criteria"][2]
    assert matrix["value"] is None and matrix["error"] and not matrix["passed"]
    assert validate_event(ctx.events[0].to_dict()) == []


async def test_min_duration_reads_the_stage_start_from_the_store(
    client: httpx.AsyncClient, ctx: Ctx
) -> None:
    """The previous stage started a day ago: a 12h minimum passes, a 48h one does not."""
    ctx.config = _config(
        stages=[
            {"name": "rollout-10", "min_duration": "12h"},
            {"name": "rollout-50", "min_duration": "48h"},
        ]
    )
    ctx.record(0, 300)
    assert (await _gate(client, ctx, 295, "rollout-10"))["decision"] == "go"
    data = await _gate(client, ctx, 295, "rollout-50")
    assert [r["kind"] for r in data["reasons"]] == ["min_duration"]
    assert data["criteria"][-1]["value"] == 86_400 + 295


async def test_failing_event_sink_never_fails_the_answer(
    client: httpx.AsyncClient, ctx: Ctx
) -> None:
    """An emit that raises is logged; the caller still gets the decision."""

    async def broken(event: Event) -> bool:
        raise OSError("disk full")

    ctx.emit_event = broken
    ctx.record(0, 300)
    with structlog.testing.capture_logs() as logs:
        data = await _gate(client, ctx, 295, "rollout-10")
    assert data["decision"] == "go"
    assert [entry["event"] for entry in logs] == ["gate_evaluated", "gate_event_emit_failed"]
