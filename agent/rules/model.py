"""Rules as plain values, and the functions the rule engine is given.

Rule files (Prometheus's format) are parsed at the edge (``agent.rulefmt``) into
these frozen dataclasses; the core evaluates them. Durations are seconds,
times are Unix seconds (float), as everywhere in the agent outside the store.

The engine never reads the clock or does I/O itself: it is handed a
:data:`QueryFunc` (PromQL at a time), an :class:`~agent.tsdb.base.Appender`
for recording rules and ``ALERTS`` series, and a :data:`NotifyFunc` that takes
the alerts to send, as Prometheus's rule manager is.

>>> rule = AlertingRule(name="ApiDown", expr="probe_success == 0", for_seconds=10.0)
>>> rule.keep_firing_for_seconds
0.0
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from agent.promql.value import Vector
from agent.tsdb.base import Labels

RESOLVED_RETENTION_SECONDS = 15 * 60.0
"""How long a resolved alert is kept and re-sent as resolved (Prometheus: 15m)."""


@dataclass(frozen=True, slots=True)
class RecordingRule:
    """``record: name`` / ``expr`` / ``labels``: the result is written back as series ``name``."""

    name: str
    expr: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AlertingRule:
    """``alert: name`` with ``for``, ``keep_firing_for``, labels and annotations (templates)."""

    name: str
    expr: str
    for_seconds: float = 0.0
    keep_firing_for_seconds: float = 0.0
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


Rule = RecordingRule | AlertingRule


@dataclass(frozen=True, slots=True)
class RuleGroup:
    """A group: its rules run in order, every ``interval_seconds``.

    ``interval_seconds`` None means the global evaluation interval. ``limit``
    0 means no limit. ``labels`` are added to every rule's output (group labels,
    Prometheus 3.x). ``query_offset_seconds`` evaluates queries that far in the past.
    """

    name: str
    file: str
    rules: Sequence[Rule]
    interval_seconds: float | None = None
    limit: int = 0
    query_offset_seconds: float = 0.0
    labels: Mapping[str, str] = field(default_factory=dict)


class AlertState(enum.Enum):
    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"


@dataclass(slots=True)
class Alert:
    """One alert instance of an alerting rule (mutable: the state machine updates it).

    Times are Unix seconds; ``None`` stands for Go's zero time in Prometheus.
    ``labels`` include ``alertname``, the rule's labels and the group's labels.
    """

    labels: Labels
    annotations: Mapping[str, str]
    state: AlertState
    value: float
    active_at: float
    fired_at: float | None = None
    resolved_at: float | None = None
    last_sent_at: float | None = None
    valid_until: float | None = None
    keep_firing_since: float | None = None


@dataclass(frozen=True, slots=True)
class OutgoingAlert:
    """What is handed to the notifier: Alertmanager v2's ``postableAlert`` in plain form.

    ``ends_at`` is the resolve time once resolved, else ``valid_until`` (now + 4 *
    max(evaluation interval, resend delay)), as Prometheus sends it.
    """

    labels: Labels
    annotations: Mapping[str, str]
    starts_at: float
    ends_at: float
    generator_url: str


QueryFunc = Callable[[str, float], Vector]
"""Evaluate an instant query at a Unix time; raises ``agent.promql.value.QueryError``."""

NotifyFunc = Callable[[Sequence[OutgoingAlert]], None]
"""Hand alerts to the notifier (queueing and delivery are its business)."""
