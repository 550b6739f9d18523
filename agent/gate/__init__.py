"""The rollout gate: go or no-go for the next stage of the pilot's rollout (docs/gate.md).

:func:`stage_policy` resolves a stage's configuration into PromQL, and
:func:`evaluate_gate` decides from a query function and ``now``, without I/O.
"""

from agent.gate.evaluate import (
    CriterionResult,
    GateDecision,
    GateQuery,
    Reason,
    evaluate_gate,
)
from agent.gate.policy import SloRule, StagePolicy, stage_policy

__all__ = [
    "CriterionResult",
    "GateDecision",
    "GateQuery",
    "Reason",
    "SloRule",
    "StagePolicy",
    "evaluate_gate",
    "stage_policy",
]
