"""The gate's decision for one stage at one time: go, or no-go with its reasons.

Pure: it takes a query function ``(expr, at) -> Vector`` and ``now``, reads no
clock and does no I/O. It fails closed: a query that raises, an SLO or
stage-start query without data, or a NaN value is a no-go with a reason, never
a silent go. ``ALERTS`` queries are the exception to "no data": no blocking
alert is the normal, passing case.

>>> from agent.config.gate import GateConfig
>>> from agent.gate.policy import stage_policy
>>> from agent.promql.value import Sample, Vector
>>> def query(expr: str, at: float) -> Vector:
...     burn = (("__name__", "x"),), 0.2, 0
...     return Vector([]) if "ALERTS" in expr else Vector([Sample(*burn)])
>>> decision = evaluate_gate(stage_policy(GateConfig(), "rollout-10"), query, now=0.0)
>>> decision.go, [c.kind for c in decision.criteria]
(True, ['alert_firing', 'alert_cooldown', 'slo_burn', 'slo_burn'])
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from agent.config.types import format_duration
from agent.gate.policy import SloRule, StagePolicy
from agent.promql.floats import format_f
from agent.promql.value import Sample, Vector

GateQuery = Callable[[str, float], Vector]
"""Evaluate an instant query at a Unix time (raises on failure), as the rule manager's."""

ReasonKind = Literal[
    "alert_firing", "alert_cooldown", "slo_burn", "min_duration", "no_data", "query_error"
]
CriterionKind = Literal["alert_firing", "alert_cooldown", "slo_burn", "min_duration"]
_HIDDEN_LABELS = frozenset({"__name__", "alertstate"})


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a stage may not go."""

    kind: ReasonKind
    criterion: str
    message: str
    alertname: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    value: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "criterion": self.criterion,
            "alertname": self.alertname,
            "labels": dict(self.labels),
            "message": self.message,
            "value": json_number(self.value),
        }


@dataclass(frozen=True, slots=True)
class CriterionResult:
    """One criterion, its value and whether it passed (``value op threshold``)."""

    name: str
    kind: CriterionKind
    expr: str
    op: Literal["<=", ">="]
    threshold: float
    value: float | None
    passed: bool
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "expr": self.expr,
            "value": json_number(self.value),
            "op": self.op,
            "threshold": json_number(self.threshold),
            "passed": self.passed,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class GateDecision:
    """The gate's answer for one stage; ``go`` when no criterion gave a reason."""

    stage: str
    evaluated_at: float
    criteria: Sequence[CriterionResult]
    reasons: Sequence[Reason]

    @property
    def go(self) -> bool:
        return not self.reasons and all(c.passed for c in self.criteria)

    def to_dict(self) -> dict[str, Any]:
        """The ``data`` object of the API answer and of the gate event."""
        return {
            "stage": self.stage,
            "decision": "go" if self.go else "no-go",
            "reasons": [r.to_dict() for r in self.reasons],
            "evaluated_at": rfc3339(self.evaluated_at),
            "criteria": [c.to_dict() for c in self.criteria],
        }


def evaluate_gate(policy: StagePolicy, query: GateQuery, now: float) -> GateDecision:
    """Check every criterion of ``policy`` at ``now``."""
    criteria: list[CriterionResult] = []
    reasons: list[Reason] = []
    firing = _alerts_firing(policy, query, now, criteria, reasons)
    _alerts_cooldown(policy, query, now, firing, criteria, reasons)
    for rule in policy.slo:
        _slo(rule, query, now, criteria, reasons)
    if policy.min_duration is not None:
        _min_duration(policy, policy.min_duration, query, now, criteria, reasons)
    return GateDecision(policy.stage, now, tuple(criteria), tuple(reasons))


def _run(query: GateQuery, expr: str, now: float) -> tuple[Sequence[Sample], str | None]:
    """The samples of ``expr`` at ``now``, or the error that stopped it."""
    try:
        return query(expr, now).samples, None
    except Exception as exc:  # fail closed on anything a datasource can raise
        return (), f"{type(exc).__name__}: {exc}"


def _query_error(name: str, expr: str, error: str) -> Reason:
    return Reason("query_error", name, f"query of {name} failed ({error}): {expr}")


def _alerts_firing(
    policy: StagePolicy,
    query: GateQuery,
    now: float,
    criteria: list[CriterionResult],
    reasons: list[Reason],
) -> set[tuple[tuple[str, str], ...]]:
    name, expr = "blocking_alerts_firing", policy.firing_expr
    samples, error = _run(query, expr, now)
    if error is not None:
        reasons.append(_query_error(name, expr, error))
    for sample in sorted(samples, key=lambda s: s.labels):
        labels = _alert_labels(sample)
        alertname = labels.get("alertname", "")
        message = f"{alertname} is firing"
        reasons.append(Reason("alert_firing", name, message, alertname, labels, sample.value))
    passed = error is None and not samples
    count = float(len(samples)) if error is None else None
    criteria.append(CriterionResult(name, "alert_firing", expr, "<=", 0.0, count, passed, error))
    return {_key(s) for s in samples}


def _alerts_cooldown(
    policy: StagePolicy,
    query: GateQuery,
    now: float,
    firing: set[tuple[tuple[str, str], ...]],
    criteria: list[CriterionResult],
    reasons: list[Reason],
) -> None:
    expr = policy.cooldown_expr
    if expr is None:
        return
    name, cooldown = "blocking_alerts_cooldown", format_duration(policy.cooldown)
    samples, error = _run(query, expr, now)
    if error is not None:
        reasons.append(_query_error(name, expr, error))
    recent = [s for s in sorted(samples, key=lambda s: s.labels) if _key(s) not in firing]
    for sample in recent:
        labels = _alert_labels(sample)
        alertname = labels.get("alertname", "")
        message = f"{alertname} fired within the last {cooldown} (cooldown)"
        reasons.append(Reason("alert_cooldown", name, message, alertname, labels, sample.value))
    passed = error is None and not recent
    count = float(len(recent)) if error is None else None
    criteria.append(CriterionResult(name, "alert_cooldown", expr, "<=", 0.0, count, passed, error))


def _slo(
    rule: SloRule,
    query: GateQuery,
    now: float,
    criteria: list[CriterionResult],
    reasons: list[Reason],
) -> None:
    samples, error = _run(query, rule.expr, now)
    if error is not None:
        reasons.append(_query_error(rule.name, rule.expr, error))
    elif not samples:
        message = f"{rule.name}: no data (fail closed): {rule.expr}"
        reasons.append(Reason("no_data", rule.name, message))
    failing = [s for s in samples if not s.value <= rule.max]  # NaN fails too
    for sample in sorted(failing, key=lambda s: s.labels):
        message = f"{rule.name} is {format_f(sample.value)}, above the maximum {format_f(rule.max)}"
        labels = _plain_labels(sample)
        reasons.append(Reason("slo_burn", rule.name, message, None, labels, sample.value))
    value = _worst(samples)
    passed = error is None and bool(samples) and not failing
    criteria.append(
        CriterionResult(rule.name, "slo_burn", rule.expr, "<=", rule.max, value, passed, error)
    )


def _min_duration(
    policy: StagePolicy,
    minimum: float,
    query: GateQuery,
    now: float,
    criteria: list[CriterionResult],
    reasons: list[Reason],
) -> None:
    name, expr = "min_duration", policy.stage_started_expr
    samples, error = _run(query, expr, now)
    started = max((s.value for s in samples), default=None)
    ran = now - started if started is not None else None
    if error is not None:
        reasons.append(_query_error(name, expr, error))
    elif ran is None:
        reasons.append(Reason("no_data", name, f"{name}: no data (fail closed): {expr}"))
    elif not ran >= minimum:
        message = (
            f"the previous stage has run {format_duration(max(ran, 0.0))}, "
            f"less than the minimum {format_duration(minimum)}"
        )
        reasons.append(Reason("min_duration", name, message, value=ran))
    passed = ran is not None and ran >= minimum
    criteria.append(CriterionResult(name, "min_duration", expr, ">=", minimum, ran, passed, error))


def _alert_labels(sample: Sample) -> dict[str, str]:
    return {k: v for k, v in sample.labels if k not in _HIDDEN_LABELS}


def _plain_labels(sample: Sample) -> dict[str, str]:
    return {k: v for k, v in sample.labels if k != "__name__"}


def _key(sample: Sample) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(_alert_labels(sample).items()))


def _worst(samples: Sequence[Sample]) -> float | None:
    """The highest value, NaN if any is NaN, None without samples."""
    values = [s.value for s in samples]
    if any(math.isnan(v) for v in values):
        return math.nan
    return max(values, default=None)


def json_number(value: float | None) -> float | str | None:
    """JSON-safe: a finite float as a number, NaN and infinities spelled as Prometheus does."""
    if value is None or math.isfinite(value):
        return value
    return format_f(value)


def rfc3339(ts: float) -> str:
    """A Unix timestamp as RFC 3339 in UTC with milliseconds.

    >>> rfc3339(0.0)
    '1970-01-01T00:00:00.000Z'
    """
    when = dt.datetime.fromtimestamp(ts, tz=dt.UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
