"""The ``watch`` section: which scraped state changes become events.

A watch rule names a metric (with optional matchers), the labels that identify
the entity (``key``), and exactly one kind of change, the way a check takes
exactly one of ``http``, ``flow``, …::

    watch:
      state_file: pilot-watch-state.json
      rules:
        - name: breaker_state
          metric: circuit_breaker_state
          key: [dependency]            # subject "breaker/sms"
          subject: breaker
          value_change:
            type: io.luckygas.pilot.breaker.state_changed
            value_names: {0: closed, 1: half_open, 2: open}

The kinds:

``value_change``
    any change of the value; ``rising``/``falling`` override ``type`` by direction.
``increase``
    the value rose by at least ``min_increase`` since the last event (counts).
``threshold``
    the value crossed one of ``thresholds`` upwards or, past ``hysteresis``, down.
``stale_timestamp``
    the metric is a Unix timestamp older than ``max_age`` at scrape time,
    optionally only ``when`` another metric's condition holds.
``histogram_delta``
    a counter increased; the event reports the change of a histogram's
    ``_sum``/``_count`` over the same interval.

Without a ``watch`` section (or without ``rules``) the pilot's defaults in
``agent/watch/pilot.yml`` apply.

>>> rule = WatchRule.model_validate({"name": "lag", "metric": "dual_write_lag_seconds",
...     "threshold": {"thresholds": [30], "above": "io.luckygas.pilot.dual_write.lag_above"}})
>>> rule.kind, rule.subject_prefix
('threshold', 'lag')
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, Field, field_validator, model_validator

from agent.config.types import LabelName, PositiveDuration, StrictModel
from agent.tsdb.base import MatchOp

WATCH_KINDS = ("value_change", "increase", "threshold", "stale_timestamp", "histogram_delta")

MetricName = Annotated[str, Field(pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")]
EventType = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)+$")]

_MATCHER_RE = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*$')


_OPS: dict[str, MatchOp] = {"=": "=", "!=": "!=", "=~": "=~", "!~": "!~"}


def parse_matcher(text: str) -> tuple[str, MatchOp, str]:
    """``label="value"`` (or ``!=``, ``=~``, ``!~``) as name, operator and unescaped value.

    >>> parse_matcher('state=~"fail.*"')
    ('state', '=~', 'fail.*')
    """
    m = _MATCHER_RE.match(text)
    if m is None:
        raise ValueError(f'matcher must look like label="value" (or !=, =~, !~), got {text!r}')
    try:
        value = json.loads(f'"{m.group(3)}"')
    except ValueError:
        raise ValueError(
            f"invalid escape in matcher {text!r} (write \\\\ for a backslash)"
        ) from None
    op = _OPS[m.group(2)]
    if op in ("=~", "!~"):
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression in {text!r}: {exc}") from None
    return str(m.group(1)), op, str(value)


def _matcher(v: str) -> str:
    parse_matcher(v)
    return v


MatcherText = Annotated[str, AfterValidator(_matcher)]


class WatchCondition(StrictModel):
    """A condition on another metric of the same scrape, e.g. customers still pending.

    It holds when some series of ``metric`` matching ``matchers``, with the rule's
    key labels equal to the watched series', compares true against ``value``.
    """

    metric: MetricName
    """Metric the condition reads."""
    matchers: list[MatcherText] = Field(default_factory=list)
    """Label matchers in PromQL syntax, e.g. `state="pending"`."""
    op: Literal[">", ">=", "<", "<=", "==", "!="] = ">"
    """Comparison of the series' value with `value`."""
    value: float = 0.0
    """Right-hand side of the comparison."""


class ValueChange(StrictModel):
    """Any change of the value: 0→1 enabled, 10→50 rollout, breaker 0→2."""

    type: EventType | None = None
    """Event type of a change not covered by `rising` or `falling`."""
    rising: EventType | None = None
    """Event type when the value went up (e.g. `…flag.enabled`)."""
    falling: EventType | None = None
    """Event type when the value went down (e.g. `…flag.disabled`)."""
    value_names: dict[float, str] = Field(default_factory=dict)
    """Value → name carried as `before_name`/`after_name` (e.g. 2 → open)."""

    @model_validator(mode="after")
    def _some_type(self) -> Self:
        if self.type is None and (self.rising is None or self.falling is None):
            raise ValueError("set type, or both rising and falling (or type with either)")
        return self


class Increase(StrictModel):
    """The value rose by at least ``min_increase`` since the last event or decrease."""

    type: EventType
    """Event type of the increase."""
    min_increase: float = Field(default=1.0, gt=0)
    """Smallest rise that is reported; smaller rises accumulate."""


class Threshold(StrictModel):
    """Crossing thresholds: above when value > threshold, below when <= threshold - hysteresis."""

    thresholds: list[float] = Field(min_length=1)
    """Thresholds in increasing order."""
    hysteresis: float = Field(default=0.0, ge=0)
    """How far under a threshold the value must fall to count as back below it."""
    above: EventType
    """Event type when the value rose above one or more thresholds."""
    below: EventType | None = None
    """Event type when it fell back below one or more (none: not reported)."""

    @field_validator("thresholds")
    @classmethod
    def _increasing(cls, v: list[float]) -> list[float]:
        if any(b <= a for a, b in itertools.pairwise(v)):
            raise ValueError("thresholds must be strictly increasing")
        return v


class StaleTimestamp(StrictModel):
    """The watched metric is a Unix timestamp in seconds (e.g. the last batch's)."""

    max_age: PositiveDuration
    """Stale when the timestamp is older than this at scrape time."""
    when: WatchCondition | None = None
    """Only stale while this holds (e.g. customers pending); none: always."""
    stale: EventType
    """Event type when it became stale."""
    fresh: EventType | None = None
    """Event type when it is fresh again or `when` stopped holding (none: not reported)."""


class HistogramDelta(StrictModel):
    """A counter increased; report how a histogram's _sum and _count moved meanwhile."""

    histogram: MetricName
    """Histogram base name; `<histogram>_sum` and `_count` with the same key labels are read."""
    type: EventType
    """Event type of the increase."""


class WatchRule(StrictModel):
    """One watched metric and the kind of change that becomes an event."""

    name: Annotated[str, Field(pattern=r"^[a-zA-Z0-9_][a-zA-Z0-9_.:-]*$")]
    """Unique rule name, carried in each event as `rule`."""
    metric: MetricName
    """Metric (name) to watch."""
    matchers: list[MatcherText] = Field(default_factory=list)
    """Label matchers in PromQL syntax, e.g. `state="failed"`."""
    key: list[LabelName] = Field(default_factory=list)
    """Labels identifying the entity, e.g. `[flag]`; their values form the subject."""
    subject: str | None = None
    """Subject prefix, e.g. `flag` gives `flag/new_order_flow`; default: the rule name."""
    context: list[MetricName] = Field(default_factory=list)
    """Other metrics whose values (same key labels, same scrape) are added to each event."""
    value_change: ValueChange | None = None
    """Report any change of the value."""
    increase: Increase | None = None
    """Report an increase by at least N."""
    threshold: Threshold | None = None
    """Report crossing thresholds up and down."""
    stale_timestamp: StaleTimestamp | None = None
    """Report a timestamp growing too old, and fresh again."""
    histogram_delta: HistogramDelta | None = None
    """Report a counter's increase with a histogram's delta."""

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        kinds = [k for k in WATCH_KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            found = ", ".join(kinds) if kinds else "none"
            raise ValueError(
                f"a watch rule takes exactly one of {', '.join(WATCH_KINDS)} (found: {found})"
            )
        return self

    @property
    def kind(self) -> str:
        return next(k for k in WATCH_KINDS if getattr(self, k) is not None)

    @property
    def subject_prefix(self) -> str:
        return self.subject if self.subject is not None else self.name


class WatchConfig(StrictModel):
    """Change watching: scraped state changes that become events."""

    rules: list[WatchRule] | None = None
    """Watch rules; when omitted, the pilot's defaults (`agent/watch/pilot.yml`)."""
    state_file: str | None = "pilot-watch-state.json"
    """JSON file keeping the last seen state across restarts; null: memory only."""

    @field_validator("rules")
    @classmethod
    def _unique(cls, v: list[WatchRule] | None) -> list[WatchRule] | None:
        seen: set[str] = set()
        for rule in v or ():
            if rule.name in seen:
                raise ValueError(f"duplicate watch rule name {rule.name!r}")
            seen.add(rule.name)
        return v
