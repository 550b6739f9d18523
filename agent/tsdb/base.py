"""The storage contract between the store, its writers and the PromQL engine.

Timestamps are integer milliseconds since the Unix epoch, as in Prometheus.
A series is identified by its label set, ``__name__`` included; :data:`Labels` is
that set as a tuple of ``(name, value)`` pairs sorted by name, so it is hashable
and cheap to compare. A stale marker is Prometheus's special NaN
(:data:`STALE_NAN`), written when a series disappears; :func:`is_stale` tells it
from an ordinary NaN.

>>> labels = labels_from({"__name__": "up", "job": "api"})
>>> labels
(('__name__', 'up'), ('job', 'api'))
>>> is_stale(STALE_NAN), is_stale(float("nan"))
(True, False)
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

Labels = tuple[tuple[str, str], ...]

_STALE_BITS = 0x7FF0000000000002
STALE_NAN: float = struct.unpack("<d", struct.pack("<Q", _STALE_BITS))[0]


def is_stale(value: float) -> bool:
    """Whether ``value`` is Prometheus's stale marker (not just any NaN)."""
    return value != value and struct.pack("<d", value) == struct.pack("<Q", _STALE_BITS)


def labels_from(mapping: Mapping[str, str]) -> Labels:
    """A :data:`Labels` tuple from a mapping; empty values are dropped, as in Prometheus."""
    return tuple(sorted((k, v) for k, v in mapping.items() if v != ""))


def metric_name(labels: Labels) -> str:
    """The ``__name__`` of a label set ("" if none); cheap, as it is sorted first.

    >>> metric_name((("__name__", "up"), ("job", "api")))
    'up'
    """
    if labels and labels[0][0] == "__name__":
        return labels[0][1]
    # Only label names sorting before "_" (upper-case ones) can come first.
    return next((v for k, v in labels if k == "__name__"), "")


MatchOp = Literal["=", "!=", "=~", "!~"]


@dataclass(frozen=True, slots=True)
class Matcher:
    """A label matcher. Regexes are fully anchored, as in Prometheus.

    A missing label matches as the empty string: ``{env=""}`` selects series
    without ``env``.

    >>> Matcher("job", "=~", "api|web").matches("web"), Matcher("job", "!=", "x").matches("")
    (True, True)
    """

    name: str
    op: MatchOp
    value: str
    _re: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.op in ("=~", "!~"):
            object.__setattr__(self, "_re", re.compile(f"(?s:{self.value})"))

    def matches(self, value: str) -> bool:
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        assert self._re is not None
        hit = self._re.fullmatch(value) is not None
        return hit if self.op == "=~" else not hit


@dataclass(frozen=True, slots=True)
class SeriesData:
    """The samples of one series inside a time range, oldest first.

    ``timestamps`` and ``values`` are parallel sequences (arrays or memoryviews
    in the store, lists in tests); stale markers are included as stored.
    """

    labels: Labels
    timestamps: Sequence[int]
    values: Sequence[float]


class Queryable(Protocol):
    """What the PromQL engine reads. ``select`` returns series in ``[mint_ms, maxt_ms]``."""

    def select(
        self, matchers: Sequence[Matcher], mint_ms: int, maxt_ms: int
    ) -> Iterable[SeriesData]: ...

    def label_names(self, matchers: Sequence[Matcher] = ()) -> list[str]: ...

    def label_values(self, name: str, matchers: Sequence[Matcher] = ()) -> list[str]: ...


class Appender(Protocol):
    """What writers (checks, scrapes, recording rules) use to add samples."""

    def append(self, labels: Labels, t_ms: int, value: float) -> bool:
        """Add a sample; False (and counted) when it is out of order or a duplicate."""
        ...

    def append_stale(self, labels: Labels, t_ms: int) -> bool:
        """Mark an existing series stale at ``t_ms`` (it disappeared); False if not written."""
        ...
