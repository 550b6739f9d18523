"""The rollout gate's configuration and decision logic, with a fake query function."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

import pytest

from agent.config import parse_config
from agent.config.gate import GateConfig
from agent.errors import ConfigError
from agent.gate import GateDecision, StagePolicy, evaluate_gate, stage_policy
from agent.promql.value import QueryError, Sample, Vector
from agent.tsdb.base import labels_from

NOW = 1_800_000_000.0
FIRING = 'ALERTS{alertstate="firing",gate="block"}'
COOLDOWN = 'max_over_time(ALERTS{alertstate="firing",gate="block"}[30m])'
ERRORS_6H = "pilot:http_requests:error_ratio_rate6h / 0.001"
LATENCY_6H = "pilot:http_requests:slow_ratio_rate6h / 0.05"
STARTED = "max(feature_flag_last_change_timestamp_seconds)"


class FakeQuery:
    """Answers known expressions with fixed samples (or an error); records every call."""

    def __init__(self, answers: Mapping[str, list[tuple[dict[str, str], float]] | Exception]):
        self.answers = answers
        self.calls: list[tuple[str, float]] = []

    def __call__(self, expr: str, at: float) -> Vector:
        self.calls.append((expr, at))
        answer = self.answers[expr]
        if isinstance(answer, Exception):
            raise answer
        return Vector([Sample(labels_from(lb), v, round(at * 1000)) for lb, v in answer])


def _alert(name: str, **labels: str) -> dict[str, str]:
    return {"__name__": "ALERTS", "alertname": name, "alertstate": "firing", **labels}


def _healthy(**changes: list[tuple[dict[str, str], float]] | Exception) -> FakeQuery:
    answers: dict[str, list[tuple[dict[str, str], float]] | Exception] = {
        FIRING: [],
        COOLDOWN: [],
        ERRORS_6H: [({}, 0.4)],
        LATENCY_6H: [({}, 0.9)],
        STARTED: [({}, NOW - 7200)],
    }
    keys = {"firing": FIRING, "cooldown": COOLDOWN, "errors": ERRORS_6H, "latency": LATENCY_6H}
    answers.update({keys.get(k, k): v for k, v in changes.items()})
    return FakeQuery(answers)


def _policy(stage: str = "rollout-10", **gate: object) -> StagePolicy:
    policy = stage_policy(GateConfig.model_validate(gate), stage)
    assert policy is not None
    return policy


def _kinds(decision: GateDecision) -> list[str]:
    return [r.kind for r in decision.reasons]


# --------------------------------------------------------------------------- configuration


def test_default_stages_are_the_pilots_four_in_order() -> None:
    """Without configuration the four pilot stages exist, in rollout order, with 1h/6h windows."""
    gate = GateConfig()
    assert [(s.name, s.window) for s in gate.stages] == [
        ("pilot-5-customers", 3600.0),
        ("rollout-10", 21600.0),
        ("rollout-50", 21600.0),
        ("rollout-100", 21600.0),
    ]
    assert gate.block_matchers == ['gate="block"'] and gate.cooldown == 1800.0
    assert stage_policy(gate, "rollout-25") is None


def test_stage_policy_applies_defaults_and_fills_in_the_window() -> None:
    """A stage inherits unset fields; `$window` becomes the stage's window."""
    policy = _policy("pilot-5-customers")
    assert policy.firing_expr == FIRING
    assert policy.cooldown_expr == COOLDOWN
    assert [c.expr for c in policy.slo] == [
        "pilot:http_requests:error_ratio_rate1h / 0.001",
        "pilot:http_requests:slow_ratio_rate1h / 0.05",
    ]
    assert policy.min_duration is None


def test_stage_overrides_win_over_the_defaults() -> None:
    """A stage's own matchers, cooldown, window, criteria and minimum duration are used."""
    policy = _policy(
        "canary",
        stages=[
            {
                "name": "canary",
                "block_matchers": ['severity="critical"', 'team=~"pilot|platform"'],
                "cooldown": "90s",
                "window": "30m",
                "slo": [{"name": "burn", "expr": "x_rate$window > 0", "max": 2}],
                "min_duration": "1h",
            }
        ],
    )
    assert policy.firing_expr == (
        'ALERTS{alertstate="firing",severity="critical",team=~"pilot|platform"}'
    )
    assert policy.cooldown_expr == f"max_over_time({policy.firing_expr}[1m30s])"
    assert [(c.name, c.expr, c.max) for c in policy.slo] == [("burn", "x_rate30m > 0", 2.0)]
    assert policy.min_duration == 3600.0


def test_zero_cooldown_skips_the_cooldown_query() -> None:
    """With `cooldown: 0s` only alerts firing now block."""
    policy = _policy(cooldown="0s")
    query = _healthy()
    decision = evaluate_gate(policy, query, NOW)
    assert policy.cooldown_expr is None and decision.go
    assert COOLDOWN not in [expr for expr, _ in query.calls]


def test_configuration_mistakes_are_located() -> None:
    """Bad matchers, bad PromQL and repeated stages are each reported at their path and line."""
    text = """\
pilot_gate:
  block_matchers: ['gate']
  stages:
    - name: rollout-10
      slo:
        - {name: burn, expr: 'rate(x[$window]', max: 1}
    - name: rollout-10
"""
    with pytest.raises(ConfigError) as info:
        parse_config(text, "pilot.yml", env={})
    got = {(p.path, p.line) for p in info.value.problems}
    assert ("pilot_gate.block_matchers[0]", 2) in got
    assert ("pilot_gate.stages[0].slo[0].expr", 6) in got
    text = "pilot_gate:\n  stages: [{name: a}, {name: b}, {name: a}]\n"
    with pytest.raises(ConfigError, match="repeated: a"):
        parse_config(text, "pilot.yml", env={})


def test_window_placeholder_is_not_an_environment_variable() -> None:
    """`$window` survives the loader's `${VAR}` expansion untouched."""
    text = "pilot_gate:\n  slo: [{name: b, expr: 'x_rate$window', max: 1}]\n"
    assert parse_config(text, "pilot.yml", env={}).pilot_gate.slo[0].expr == "x_rate$window"


# --------------------------------------------------------------------------- decisions


def test_go_when_nothing_blocks_and_every_query_runs_at_now() -> None:
    """No blocking alert and both burns within budget: go, each criterion passed at `now`."""
    query = _healthy()
    decision = evaluate_gate(_policy(), query, NOW)
    assert decision.go and decision.reasons == ()
    assert {at for _, at in query.calls} == {NOW}
    assert [(c.name, c.value, c.passed) for c in decision.criteria] == [
        ("blocking_alerts_firing", 0.0, True),
        ("blocking_alerts_cooldown", 0.0, True),
        ("error_budget_burn", 0.4, True),
        ("latency_budget_burn", 0.9, True),
    ]


def test_firing_alert_is_a_no_go_reason_with_its_labels() -> None:
    """A firing blocking alert gives an alert_firing reason naming it, once (not as cooldown)."""
    alert = _alert("PilotApiLatencyFastBurn", gate="block", severity="critical")
    query = _healthy(firing=[(alert, 1.0)], cooldown=[({**alert, "__name__": ""}, 1.0)])
    decision = evaluate_gate(_policy(), query, NOW)
    assert not decision.go
    (reason,) = decision.reasons
    assert reason.kind == "alert_firing" and reason.alertname == "PilotApiLatencyFastBurn"
    assert reason.labels == {
        "alertname": "PilotApiLatencyFastBurn",
        "gate": "block",
        "severity": "critical",
    }
    assert "PilotApiLatencyFastBurn is firing" in reason.message
    assert [c.passed for c in decision.criteria] == [False, True, True, True]


def test_alert_within_cooldown_is_a_no_go_reason() -> None:
    """An alert that no longer fires but fired within the cooldown keeps the gate closed."""
    alert = {"alertname": "PilotDualWriteUnresolvedConflicts", "gate": "block"}
    query = _healthy(cooldown=[(alert, 1.0)])
    decision = evaluate_gate(_policy(), query, NOW)
    assert _kinds(decision) == ["alert_cooldown"]
    assert decision.reasons[0].alertname == "PilotDualWriteUnresolvedConflicts"
    assert "within the last 30m" in decision.reasons[0].message


def test_slo_burn_above_max_is_a_no_go_and_at_max_passes() -> None:
    """A burn rate above its maximum is an slo_burn reason; exactly the maximum still passes."""
    decision = evaluate_gate(_policy(), _healthy(latency=[({}, 3.5)], errors=[({}, 1.0)]), NOW)
    assert _kinds(decision) == ["slo_burn"]
    (reason,) = decision.reasons
    assert (reason.criterion, reason.value, reason.alertname) == ("latency_budget_burn", 3.5, None)
    assert "above the maximum 1" in reason.message
    assert [c.passed for c in decision.criteria] == [True, True, True, False]


def test_each_failing_sample_of_a_criterion_is_its_own_reason() -> None:
    """A per-flag criterion names every flag above its maximum, by labels."""
    samples = [({"flag": "a"}, 0.5), ({"flag": "b"}, 2.0), ({"flag": "c"}, 4.0)]
    decision = evaluate_gate(_policy(), _healthy(errors=samples), NOW)
    assert [r.labels for r in decision.reasons] == [{"flag": "b"}, {"flag": "c"}]
    assert decision.criteria[2].value == 4.0


@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        ([], "no_data"),
        ([({}, math.nan)], "slo_burn"),
        (QueryError("parse error"), "query_error"),
        (ConnectionError("datasource unreachable"), "query_error"),
    ],
    ids=["no-data", "nan", "query-error", "datasource-down"],
)
def test_slo_criterion_fails_closed(
    answer: list[tuple[dict[str, str], float]] | Exception, kind: str
) -> None:
    """No data, NaN or a failing query make an SLO criterion a no-go, never a silent go."""
    decision = evaluate_gate(_policy(), _healthy(latency=answer), NOW)
    assert not decision.go and _kinds(decision) == [kind]
    assert decision.reasons[0].criterion == "latency_budget_burn"
    assert not decision.criteria[3].passed


def test_failing_alert_query_fails_closed() -> None:
    """When the ALERTS query fails the gate cannot know what fires: no-go."""
    decision = evaluate_gate(_policy(), _healthy(firing=QueryError("boom")), NOW)
    assert _kinds(decision) == ["query_error"]
    assert decision.criteria[0].value is None and decision.criteria[0].error == "QueryError: boom"


def test_min_duration_holds_until_the_previous_stage_ran_long_enough() -> None:
    """min_duration passes once the running stage is old enough; no start time fails closed."""
    policy = _policy(stages=[{"name": "rollout-10", "window": "6h", "min_duration": "3h"}])
    young = evaluate_gate(policy, _healthy(), NOW)
    assert _kinds(young) == ["min_duration"]
    assert young.reasons[0].value == 7200.0
    assert "has run 2h, less than the minimum 3h" in young.reasons[0].message
    old = evaluate_gate(policy, _healthy(**{STARTED: [({}, NOW - 3 * 3600)]}), NOW)
    assert old.go and old.criteria[-1].name == "min_duration"
    unknown = evaluate_gate(policy, _healthy(**{STARTED: []}), NOW)
    assert _kinds(unknown) == ["no_data"]


def test_answer_is_strict_json_in_the_documented_shape() -> None:
    """to_dict() is valid JSON (no NaN) with stage, decision, reasons, evaluated_at, criteria."""
    alert = _alert("PilotApiDown", gate="block", service="lucky-gas-api")
    query = _healthy(firing=[(alert, 1.0)], latency=[({}, math.inf)], errors=[({}, math.nan)])
    data = evaluate_gate(_policy(), query, NOW).to_dict()
    json.dumps(data, allow_nan=False)
    assert set(data) == {"stage", "decision", "reasons", "evaluated_at", "criteria"}
    assert (data["stage"], data["decision"]) == ("rollout-10", "no-go")
    assert data["evaluated_at"] == "2027-01-15T08:00:00.000Z"
    assert data["reasons"][0] == {
        "kind": "alert_firing",
        "criterion": "blocking_alerts_firing",
        "alertname": "PilotApiDown",
        "labels": {"alertname": "PilotApiDown", "gate": "block", "service": "lucky-gas-api"},
        "message": "PilotApiDown is firing",
        "value": 1.0,
    }
    assert [r["value"] for r in data["reasons"][1:]] == ["NaN", "+Inf"]
    assert data["criteria"][3] == {
        "name": "latency_budget_burn",
        "kind": "slo_burn",
        "expr": LATENCY_6H,
        "value": "+Inf",
        "op": "<=",
        "threshold": 1.0,
        "passed": False,
        "error": None,
    }
