"""The ``pilot_gate`` section: the stages of the pilot's rollout and what lets each go.

A rollout script asks ``GET /api/v1/pilot/gate?stage=<name>`` before raising a
flag's percentage to that stage (docs/gate.md). Each stage takes the section's
defaults unless it sets its own value::

    pilot_gate:
      cooldown: 30m                     # no-go while a blocking alert fires, and 30m after
      block_matchers: ['gate="block"']  # which ALERTS block
      window: 1h                        # replaces $window in the SLO criteria
      stages:
        - name: pilot-5-customers
        - name: rollout-10
          window: 6h
          min_duration: 24h             # the previous stage must have run a day

Without ``stages`` the pilot's four apply: ``pilot-5-customers`` (1h window),
``rollout-10``, ``rollout-50`` and ``rollout-100`` (6h windows), each with the
error and latency budget burn criteria built on rules/slo.rules.yml.

>>> gate = GateConfig()
>>> [s.name for s in gate.stages]
['pilot-5-customers', 'rollout-10', 'rollout-50', 'rollout-100']
>>> gate.slo[1].expr
'pilot:http_requests:slow_ratio_rate$window / 0.05'
"""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import AfterValidator, Field, model_validator

from agent.config.types import Duration, StrictModel
from agent.config.watch import parse_matcher
from agent.promql.nodes import parse_query
from agent.promql.value import QueryError

WINDOW_PLACEHOLDER = "$window"
"""Replaced in a criterion's ``expr`` by the stage's window (``1h``, ``6h``, ...)."""

DEFAULT_BLOCK_MATCHERS = ('gate="block"',)
DEFAULT_STAGE_STARTED_EXPR = "max(feature_flag_last_change_timestamp_seconds)"

StageName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]*$", max_length=64)]
CriterionName = Annotated[str, Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$", max_length=64)]


def _promql(text: str) -> str:
    """A PromQL expression that parses once ``$window`` is replaced."""
    try:
        parse_query(text.replace(WINDOW_PLACEHOLDER, "1h"))
    except QueryError as exc:
        raise ValueError(f"invalid PromQL expression {text!r}: {exc}") from None
    return text


def _matcher(text: str) -> str:
    """An alert label matcher that also makes a valid selector (its regex compiles)."""
    parse_matcher(text)
    try:
        parse_query(f"ALERTS{{{text}}}")
    except QueryError as exc:
        raise ValueError(f"invalid matcher {text!r}: {exc}") from None
    return text.strip()


PromQL = Annotated[str, AfterValidator(_promql)]
AlertMatcher = Annotated[str, AfterValidator(_matcher)]


class SloCriterion(StrictModel):
    """One SLO criterion: an expression whose every sample must stay at or under ``max``."""

    name: CriterionName
    """Name shown in the gate's answer, e.g. `error_budget_burn`."""
    expr: PromQL
    """PromQL giving a burn rate (budget spent ÷ budget allowed); `$window`: the stage's window."""
    max: float
    """Highest value that passes; above it, or no data, or NaN, is no-go."""

    def __repr__(self) -> str:
        return self.name


def default_slo() -> list[SloCriterion]:
    """The pilot's SLOs (rules/slo.rules.yml): 0.1% errors, 5% of requests over 200 ms."""
    return [
        SloCriterion(
            name="error_budget_burn",
            expr="pilot:http_requests:error_ratio_rate$window / 0.001",
            max=1.0,
        ),
        SloCriterion(
            name="latency_budget_burn",
            expr="pilot:http_requests:slow_ratio_rate$window / 0.05",
            max=1.0,
        ),
    ]


class StageConfig(StrictModel):
    """One rollout stage; unset fields take the section's defaults."""

    name: StageName
    """Stage name, the `stage` parameter of the gate."""
    block_matchers: list[AlertMatcher] | None = None
    """Alert label matchers of the alerts that block this stage."""
    cooldown: Duration | None = None
    """No-go for this long after a blocking alert last fired."""
    window: Duration | None = None
    """Window of the SLO criteria (one of the recorded 5m, 30m, 1h, 6h with the defaults)."""
    slo: list[SloCriterion] | None = None
    """SLO criteria of this stage."""
    min_duration: Duration | None = None
    """How long the previous stage must have run (from `stage_started_expr`); unset: no minimum."""

    def __repr__(self) -> str:
        return self.name


def default_stages() -> list[StageConfig]:
    """The pilot's stages: 5 pilot customers, then 10%, 50% and 100% of customers."""
    return [
        StageConfig(name="pilot-5-customers", window=3600.0),
        StageConfig(name="rollout-10", window=6 * 3600.0),
        StageConfig(name="rollout-50", window=6 * 3600.0),
        StageConfig(name="rollout-100", window=6 * 3600.0),
    ]


class GateConfig(StrictModel):
    """The rollout gate: stages in order and the defaults they share (docs/gate.md)."""

    block_matchers: list[AlertMatcher] = Field(default_factory=lambda: [*DEFAULT_BLOCK_MATCHERS])
    """Label matchers (`name="value"`, `!=`, `=~`, `!~`) of the alerts that block a rollout."""
    cooldown: Duration = 1800.0
    """No-go while a blocking alert fires and for this long after it last fired."""
    window: Duration = 3600.0
    """Default window of the SLO criteria."""
    slo: list[SloCriterion] = Field(default_factory=default_slo)
    """Default SLO criteria (error and latency budget burn over the window, at most 1)."""
    stage_started_expr: PromQL = DEFAULT_STAGE_STARTED_EXPR
    """PromQL giving the Unix time the running (previous) stage started, for `min_duration`."""
    stages: list[StageConfig] = Field(default_factory=default_stages, min_length=1)
    """Stages in rollout order."""

    @model_validator(mode="after")
    def _unique(self) -> Self:
        names = [s.name for s in self.stages]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"stage names must be unique, repeated: {', '.join(twice)}")
        for slo in (self.slo, *(s.slo for s in self.stages)):
            criteria = [c.name for c in slo or ()]
            if len(set(criteria)) != len(criteria):
                raise ValueError(f"SLO criterion names must be unique: {criteria}")
        return self

    def stage(self, name: str) -> StageConfig | None:
        """The stage called ``name``, or None."""
        return next((s for s in self.stages if s.name == name), None)
