"""The alert state machine of one alerting rule (Prometheus's rules/alerting.go).

Each evaluation at ``now`` queries at ``now - query_offset``. Every sample of
the result is an alert instance identified by its labels (the sample's minus
``__name__``, the rule's labels expanded as templates, ``alertname``):

* new → PENDING, ``active_at = now``; an existing active one gets the new
  value and annotations;
* PENDING for at least ``for`` → FIRING, ``fired_at = now``;
* gone: PENDING is dropped; FIRING stays FIRING while ``keep_firing_for``
  has not passed since it was first missed, then becomes INACTIVE with
  ``resolved_at = now`` and is kept (and re-sent as resolved) for
  :data:`~agent.rules.model.RESOLVED_RETENTION_SECONDS`.

Every pending or firing alert is written as ``ALERTS{alertstate=...} 1`` and
``ALERTS_FOR_STATE = active_at``. No function here reads the clock.

>>> from agent.promql.value import Sample, Vector
>>> state = AlertingRuleState(AlertingRule(name="Down", expr="up == 0", for_seconds=60))
>>> result = Vector([Sample((("__name__", "up"), ("job", "api")), 0.0, 0)])
>>> _ = state.eval(100.0, lambda q, t: result)
>>> [(a.state.value, a.active_at) for a in state.active.values()]
[('pending', 100.0)]
>>> _ = state.eval(160.0, lambda q, t: result)
>>> [(a.state.value, a.fired_at) for a in state.active.values()]
[('firing', 160.0)]
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote_plus

from agent.promql.value import Sample
from agent.rules.model import (
    RESOLVED_RETENTION_SECONDS,
    Alert,
    AlertingRule,
    AlertState,
    OutgoingAlert,
    QueryFunc,
)
from agent.rules.recording import Output, RuleError, as_vector
from agent.rules.template import expand
from agent.tsdb.base import Labels, labels_from

ALERTS_METRIC = "ALERTS"
ALERTS_FOR_STATE_METRIC = "ALERTS_FOR_STATE"


@dataclass(frozen=True, slots=True)
class TemplateContext:
    """What alert templates see besides ``$labels`` and ``$value``.

    ``query`` backs the ``query`` template function; None leaves it out.
    """

    external_labels: Mapping[str, str] = field(default_factory=dict)
    external_url: str = ""
    query: QueryFunc | None = None


def step(alert: Alert, present: bool, now: float, rule: AlertingRule) -> Alert | None:
    """``alert`` advanced to ``now``; None when it is to be forgotten.

    ``present`` says whether the rule's query returned the alert's label set.
    """
    a = dataclasses.replace(alert)
    if present:
        a.keep_firing_since = None
        if a.state is AlertState.PENDING and now - a.active_at >= rule.for_seconds:
            a.state, a.fired_at = AlertState.FIRING, now
        return a
    keep_firing = False
    if a.state is AlertState.FIRING and rule.keep_firing_for_seconds > 0:
        if a.keep_firing_since is None:
            a.keep_firing_since = now
        keep_firing = now - a.keep_firing_since < rule.keep_firing_for_seconds
    if a.state is AlertState.PENDING or (
        a.resolved_at is not None and now - a.resolved_at > RESOLVED_RETENTION_SECONDS
    ):
        return None
    if a.state is not AlertState.INACTIVE and not keep_firing:
        a.state, a.resolved_at = AlertState.INACTIVE, now
    return a


def needs_sending(alert: Alert, now: float, resend_delay: float) -> bool:
    """Prometheus's ``needsSending``: never pending; resolved since last sent; else resend delay."""
    if alert.state is AlertState.PENDING:
        return False
    if alert.last_sent_at is None:
        return True
    if alert.resolved_at is not None and alert.resolved_at > alert.last_sent_at:
        return True
    return alert.last_sent_at + resend_delay < now


def generator_url(external_url: str, expr: str) -> str:
    """The link Alertmanager shows: the expression in the graph page's table tab."""
    return f"{external_url}/graph?g0.expr={quote_plus(expr)}&g0.tab=1"


class AlertingRuleState:
    """The alerts of one :class:`AlertingRule`, keyed by label set, and its evaluation.

    ``labels`` are the rule's labels with the group's merged underneath
    (defaults to the rule's own). :meth:`eval` raises
    :class:`~agent.rules.recording.RuleError` or the query's error.

    >>> from agent.promql.value import Vector
    >>> state = AlertingRuleState(AlertingRule(name="Never", expr="vector(1) == 0"))
    >>> state.eval(0.0, lambda q, t: Vector([])), state.active
    ([], {})
    """

    def __init__(self, rule: AlertingRule, labels: Mapping[str, str] | None = None) -> None:
        self.rule = rule
        self.labels: dict[str, str] = dict(rule.labels if labels is None else labels)
        self.active: dict[Labels, Alert] = {}

    def eval(
        self,
        now: float,
        query: QueryFunc,
        *,
        query_offset: float = 0.0,
        limit: int = 0,
        templates: TemplateContext | None = None,
    ) -> Output:
        """Run the query, advance every alert, and return the ALERTS series to write."""
        ctx = templates or TemplateContext()
        vector = as_vector(query(self.rule.expr, now - query_offset))
        found = self._candidates(vector.samples, now, ctx)
        for key, new in found.items():
            old = self.active.get(key)
            if old is not None and old.state is not AlertState.INACTIVE:
                old.value, old.annotations = new.value, new.annotations
            else:
                self.active[key] = new
        live = self._advance(now, found.keys())
        if limit > 0 and len(live) > limit:
            self.active = {}
            raise RuleError(f"exceeded limit of {limit} with {len(live)} alerts")
        return self._series(live)

    def _candidates(
        self, samples: Iterable[Sample], now: float, ctx: TemplateContext
    ) -> dict[Labels, Alert]:
        out: dict[Labels, Alert] = {}
        for sample in samples:
            data = dict(sample.labels)
            lset = {k: v for k, v in data.items() if k != "__name__"}
            lset.update(
                {k: self._expand(v, data, sample.value, now, ctx) for k, v in self.labels.items()}
            )
            lset["alertname"] = self.rule.name
            key = labels_from(lset)
            if key in out:
                raise RuleError(
                    "vector contains metrics with the same labelset after applying alert labels"
                )
            annotations = {
                k: self._expand(v, data, sample.value, now, ctx)
                for k, v in self.rule.annotations.items()
            }
            out[key] = Alert(key, annotations, AlertState.PENDING, sample.value, active_at=now)
        return out

    def _expand(
        self, text: str, labels: Mapping[str, str], value: float, now: float, ctx: TemplateContext
    ) -> str:
        if "{{" not in text:
            return text  # nothing to expand; saves a template parse per label and sample
        return expand(
            text,
            name=f"__alert_{self.rule.name}",
            labels=labels,
            value=value,
            external_labels=ctx.external_labels,
            external_url=ctx.external_url,
            query=ctx.query,
            now=now,
        )

    def _advance(self, now: float, present: Collection[Labels]) -> list[Alert]:
        live: list[Alert] = []
        for key in sorted(self.active):
            alert = step(self.active[key], key in present, now, self.rule)
            if alert is None:
                del self.active[key]
                continue
            self.active[key] = alert
            if alert.state is not AlertState.INACTIVE:
                live.append(alert)
        return live

    def _series(self, live: Iterable[Alert]) -> Output:
        out: Output = []
        for alert in live:
            # Prometheus starts from the rule's unexpanded labels; the alert's own win.
            base = {**self.labels, **dict(alert.labels), "alertname": self.rule.name}
            state = {"__name__": ALERTS_METRIC, "alertstate": alert.state.value}
            out.append((labels_from({**base, **state}), 1.0))
            for_state = {**base, "__name__": ALERTS_FOR_STATE_METRIC}
            out.append((labels_from(for_state), float(math.floor(alert.active_at))))
        return out

    def alerts_to_send(
        self, now: float, resend_delay: float, interval: float, external_url: str
    ) -> list[OutgoingAlert]:
        """The alerts due for (re)sending at ``now``; marks them sent (Prometheus's sendAlerts)."""
        out: list[OutgoingAlert] = []
        url = generator_url(external_url, self.rule.expr)
        for key in sorted(self.active):
            alert = self.active[key]
            if not needs_sending(alert, now, resend_delay):
                continue
            alert.last_sent_at = now
            alert.valid_until = now + 4 * max(interval, resend_delay)
            ends_at = alert.resolved_at if alert.resolved_at is not None else alert.valid_until
            starts_at = alert.fired_at if alert.fired_at is not None else alert.active_at
            out.append(
                OutgoingAlert(alert.labels, dict(alert.annotations), starts_at, ends_at, url)
            )
        return out
