"""``/api/v1/rules`` and ``/api/v1/alerts`` in Prometheus's JSON shapes.

Filters as Prometheus: ``type=alert|record``, ``rule_name[]``, ``rule_group[]``,
``file[]``. Times are RFC 3339; a never-evaluated rule shows Go's zero time
(``0001-01-01T00:00:00Z``), and alert values are rendered like Go's ``%e``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from agent.rules.group import GroupEvaluator, RuleStatus
from agent.rules.model import Alert, AlertingRule, AlertState, RecordingRule

ZERO_TIME = "0001-01-01T00:00:00Z"


class RulesContext(Protocol):
    """What the rules API needs from the agent."""

    def rule_evaluators(self) -> Sequence[GroupEvaluator]: ...


def rfc3339(ts: float | None) -> str:
    """Unix seconds as RFC 3339 UTC with nanosecond-style precision, or Go's zero time."""
    if ts is None:
        return ZERO_TIME
    text = dt.datetime.fromtimestamp(ts, tz=dt.UTC).isoformat(timespec="microseconds")
    return text.replace("+00:00", "Z")


def go_e(value: float) -> str:
    """Go's ``strconv.FormatFloat(v, 'e', -1, 64)``: the shortest digits, in exponent form.

    >>> go_e(1.0), go_e(0.25), go_e(1234.5)
    ('1e+00', '2.5e-01', '1.2345e+03')
    """
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    text = (
        next(t for p in range(17) if float(t := f"{value:.{p}e}") == value)
        if value
        else f"{value:.0e}"
    )
    mantissa, _, exponent = text.partition("e")
    return f"{mantissa}e{exponent[0]}{abs(int(exponent)):02d}"


def _alert_json(alert: Alert) -> dict[str, Any]:
    out: dict[str, Any] = {
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "state": alert.state.value,
        "activeAt": rfc3339(alert.active_at),
        "value": go_e(alert.value),
    }
    if alert.keep_firing_since is not None:
        out["keepFiringSince"] = rfc3339(alert.keep_firing_since)
    return out


def _rule_state(alerts: Sequence[Alert]) -> str:
    states = {a.state for a in alerts}
    if AlertState.FIRING in states:
        return "firing"
    if AlertState.PENDING in states:
        return "pending"
    return "inactive"


def _rule_json(status: RuleStatus, alerts: Sequence[Alert]) -> dict[str, Any]:
    rule = status.rule
    common = {
        "name": rule.name,
        "query": rule.expr,
        "labels": dict(rule.labels),
        "health": status.health,
        "lastError": status.last_error or "",
        "evaluationTime": status.evaluation_seconds,
        "lastEvaluation": rfc3339(status.last_evaluation),
    }
    if isinstance(rule, RecordingRule):
        return {**common, "type": "recording"}
    live = [a for a in alerts if a.state is not AlertState.INACTIVE]
    return {
        **common,
        "state": _rule_state(live),
        "duration": rule.for_seconds,
        "keepFiringFor": rule.keep_firing_for_seconds,
        "annotations": dict(rule.annotations),
        "alerts": [_alert_json(a) for a in live],
        "type": "alerting",
    }


def _wanted(params: Request) -> tuple[str | None, set[str], set[str], set[str]]:
    q = params.query_params
    return (
        q.get("type"),
        set(q.getlist("rule_name[]")),
        set(q.getlist("rule_group[]")),
        set(q.getlist("file[]")),
    )


def _group_json(ev: GroupEvaluator, kind: str | None, names: set[str]) -> dict[str, Any] | None:
    by_rule: dict[str, list[Alert]] = {}
    for rule, alert in ev.active_alerts():
        by_rule.setdefault(rule.name, []).append(alert)
    rules = []
    for status in ev.rule_statuses():
        is_alert = isinstance(status.rule, AlertingRule)
        if (kind == "alert" and not is_alert) or (kind == "record" and is_alert):
            continue
        if names and status.rule.name not in names:
            continue
        rules.append(_rule_json(status, by_rule.get(status.rule.name, [])))
    if (kind or names) and not rules:
        return None
    return {
        "name": ev.group.name,
        "file": ev.group.file,
        "rules": rules,
        "interval": ev.interval,
        "limit": ev.group.limit,
        "evaluationTime": ev.last_duration,
        "lastEvaluation": rfc3339(ev.last_evaluation),
    }


def add_rules_routes(app: FastAPI, ctx: RulesContext) -> None:
    """Mount ``/api/v1/rules`` and ``/api/v1/alerts``."""

    @app.get("/api/v1/rules")
    async def rules(request: Request) -> JSONResponse:
        kind, names, groups, files = _wanted(request)
        if kind not in (None, "alert", "record"):
            return JSONResponse(
                {"status": "error", "errorType": "bad_data", "error": f"unsupported type {kind}"},
                status_code=400,
            )
        out = []
        for ev in ctx.rule_evaluators():
            if (groups and ev.group.name not in groups) or (files and ev.group.file not in files):
                continue
            group = _group_json(ev, kind, names)
            if group is not None:
                out.append(group)
        return JSONResponse({"status": "success", "data": {"groups": out}})

    @app.get("/api/v1/alerts")
    async def alerts() -> JSONResponse:
        out = [
            _alert_json(alert)
            for ev in ctx.rule_evaluators()
            for _, alert in ev.active_alerts()
            if alert.state is not AlertState.INACTIVE
        ]
        return JSONResponse({"status": "success", "data": {"alerts": out}})
