"""The contract between the parser, the scrape loops and whoever listens to scrapes.

The parser turns a body into :class:`ScrapedSample` values or raises
:class:`ParseError` (the whole scrape then fails, as in Prometheus). After each
scrape, successful or not, the loop hands a :class:`ScrapeReport` to its
listeners (the change watcher, the rule manager's trigger).

>>> s = ScrapedSample((("__name__", "up"),), 1.0, None)
>>> s.name
'up'
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from agent.errors import AgentError
from agent.tsdb.base import Labels, metric_name


class ParseError(AgentError):
    """A scrape body is not valid exposition text; ``line`` is 1-based when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line is not None else message)
        self.line = line


@dataclass(frozen=True, slots=True)
class ScrapedSample:
    """One sample as exposed: labels (``__name__`` included, sorted), value, timestamp."""

    labels: Labels
    value: float
    timestamp_ms: int | None

    @property
    def name(self) -> str:
        return metric_name(self.labels)


@dataclass(frozen=True, slots=True)
class ParseResult:
    """What a body holds: samples in exposition order, plus ``# TYPE`` per family name."""

    samples: Sequence[ScrapedSample]
    types: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ScrapeReport:
    """One finished scrape of one target.

    ``samples`` are the stored samples (after metric relabelling, target labels
    attached) as ``(labels, value)``; empty when the scrape failed. ``t_ms`` is
    the scrape's timestamp.
    """

    job: str
    instance: str
    target_labels: Labels
    t_ms: int
    success: bool
    error: str | None
    duration_seconds: float
    samples: Sequence[tuple[Labels, float]] = ()


ScrapeListener = Callable[[ScrapeReport], None]
