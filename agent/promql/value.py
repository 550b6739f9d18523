"""PromQL's value types and the engine contract.

An instant query yields a :class:`Vector`, :class:`Scalar` or :class:`String`; a
range query always yields a :class:`Matrix`. A query that Prometheus would
reject (parse error, many-to-many matching, wrong argument types) raises
:class:`QueryError` with Prometheus's error type and message; nothing else may
escape the engine. Timestamps are integer milliseconds.

>>> v = Vector([Sample((("__name__", "up"),), 1.0, 1000)])
>>> v.samples[0].value
1.0
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from agent.tsdb.base import Labels, Queryable

ErrorType = Literal["bad_data", "execution", "timeout", "canceled", "internal"]


class QueryError(Exception):
    """A query Prometheus would reject, with its API error type (``bad_data``, ``execution``)."""

    def __init__(self, message: str, error_type: ErrorType = "execution") -> None:
        super().__init__(message)
        self.error_type: ErrorType = error_type


@dataclass(frozen=True, slots=True)
class Sample:
    """One element of an instant vector: labels, value, and the evaluation timestamp."""

    labels: Labels
    value: float
    timestamp: int


@dataclass(frozen=True, slots=True)
class Series:
    """One series of a range vector or range-query result: (timestamp, value) points."""

    labels: Labels
    points: Sequence[tuple[int, float]]


@dataclass(frozen=True, slots=True)
class Vector:
    samples: Sequence[Sample]


@dataclass(frozen=True, slots=True)
class Matrix:
    series: Sequence[Series]


@dataclass(frozen=True, slots=True)
class Scalar:
    value: float
    timestamp: int


@dataclass(frozen=True, slots=True)
class String:
    value: str
    timestamp: int


Value = Vector | Matrix | Scalar | String


@dataclass(frozen=True, slots=True)
class QueryResult:
    """A query's value plus the annotations Prometheus attaches (warnings and infos)."""

    value: Value
    warnings: Sequence[str] = field(default_factory=tuple)
    infos: Sequence[str] = field(default_factory=tuple)


class Engine(Protocol):
    """Evaluates PromQL over a :class:`~agent.tsdb.base.Queryable`."""

    def instant(self, storage: Queryable, query: str, t_ms: int) -> QueryResult: ...

    def range(
        self, storage: Queryable, query: str, start_ms: int, end_ms: int, step_ms: int
    ) -> QueryResult: ...
