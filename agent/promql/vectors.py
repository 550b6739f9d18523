"""The evaluator's internal values at one evaluation time, and annotations.

An instant vector is two parallel lists (labels, values) rather than a list
of per-sample objects; a range vector keeps, per series, the window of the
stored timestamp and value sequences.

>>> v = InstantVector([(("job", "a"),)], [1.0])
>>> len(v)
1
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agent.promql.value import QueryError
from agent.tsdb.base import Labels

if TYPE_CHECKING:
    from agent.promql.nodes import Node


@dataclass(slots=True)
class InstantVector:
    """Samples at one time: ``labels[i]`` has value ``values[i]``."""

    labels: list[Labels]
    values: list[float]

    def __len__(self) -> int:
        return len(self.values)


@dataclass(slots=True)
class RangeVector:
    """Per series, the samples in the window ``(start_ms, end_ms]``, stale markers removed."""

    labels: list[Labels]
    times: list[Sequence[int]]
    values: list[Sequence[float]]
    start_ms: int
    end_ms: int
    range_ms: int

    def __len__(self) -> int:
        return len(self.values)


Value = InstantVector | RangeVector | float | str


@dataclass(slots=True)
class Annotations:
    """Warnings and infos collected while evaluating one query (ordered, de-duplicated)."""

    warnings: dict[str, None] = field(default_factory=dict)
    infos: dict[str, None] = field(default_factory=dict)

    def warn(self, message: str) -> None:
        self.warnings.setdefault("PromQL warning: " + message)

    def info(self, message: str) -> None:
        self.infos.setdefault("PromQL info: " + message)


@dataclass(slots=True)
class CallContext:
    """What a function sees besides its arguments."""

    t_ms: int
    annotations: Annotations
    arg_nodes: tuple[Node, ...]
    range_query: bool = False
    start_ms: int = 0
    end_ms: int = 0
    step_ms: int = 0


def checked(vec: InstantVector) -> InstantVector:
    """``vec``, or the error Prometheus raises when two of its samples share a label set."""
    if len(set(vec.labels)) != len(vec.labels):
        raise QueryError("vector cannot contain metrics with the same labelset", "execution")
    return vec
