"""A stage's gate policy: the configuration resolved into the queries the gate runs.

The queries are plain PromQL over ``ALERTS`` and recording rules, so the same
policy gives the same answer against the agent's store or a Prometheus server.

>>> from agent.config.gate import GateConfig
>>> policy = stage_policy(GateConfig(), "rollout-10")
>>> policy.firing_expr
'ALERTS{alertstate="firing",gate="block"}'
>>> policy.cooldown_expr
'max_over_time(ALERTS{alertstate="firing",gate="block"}[30m])'
>>> policy.slo[0].expr
'pilot:http_requests:error_ratio_rate6h / 0.001'
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.config.gate import WINDOW_PLACEHOLDER, GateConfig
from agent.config.types import format_duration


@dataclass(frozen=True, slots=True)
class SloRule:
    """One SLO criterion with the stage's window filled in."""

    name: str
    expr: str
    max: float


@dataclass(frozen=True, slots=True)
class StagePolicy:
    """Everything the gate checks for one stage; times in seconds."""

    stage: str
    block_matchers: tuple[str, ...]
    cooldown: float
    window: float
    slo: tuple[SloRule, ...]
    min_duration: float | None
    stage_started_expr: str

    @property
    def firing_expr(self) -> str:
        """The blocking alerts firing now."""
        return "ALERTS{" + ",".join(('alertstate="firing"', *self.block_matchers)) + "}"

    @property
    def cooldown_expr(self) -> str | None:
        """The blocking alerts that fired within the cooldown (None: no cooldown)."""
        if self.cooldown <= 0:
            return None
        return f"max_over_time({self.firing_expr}[{format_duration(self.cooldown)}])"


def stage_policy(config: GateConfig, name: str) -> StagePolicy | None:
    """The policy of stage ``name`` with the section's defaults applied, or None."""
    stage = config.stage(name)
    if stage is None:
        return None
    window = stage.window if stage.window is not None else config.window
    criteria = stage.slo if stage.slo is not None else config.slo
    matchers = stage.block_matchers if stage.block_matchers is not None else config.block_matchers
    return StagePolicy(
        stage=stage.name,
        block_matchers=tuple(matchers),
        cooldown=stage.cooldown if stage.cooldown is not None else config.cooldown,
        window=window,
        slo=tuple(
            SloRule(c.name, c.expr.replace(WINDOW_PLACEHOLDER, format_duration(window)), c.max)
            for c in criteria
        ),
        min_duration=stage.min_duration,
        stage_started_expr=config.stage_started_expr,
    )
