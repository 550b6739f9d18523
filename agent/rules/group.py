"""One rule group's evaluation (Prometheus's rules/group.go), without any scheduling.

:meth:`GroupEvaluator.evaluate` runs the group's rules in order at one
timestamp, so a recording rule's output is visible to the rules after it.
Each rule's samples are appended at ``now - query_offset``; a series written
by a rule in its previous evaluation but not in this one gets a stale marker
(Prometheus's ``seriesInPreviousEval``). A failing rule is marked ``err`` and
the group goes on; a failed rule writes nothing and marks nothing stale.

The only clock read here is :func:`time.perf_counter`, to report how long an
evaluation took; every semantic time is the ``now`` argument.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import promql_parser

from agent.promql.value import Engine, QueryError, Vector
from agent.rules.alerting import AlertingRuleState, TemplateContext
from agent.rules.model import (
    Alert,
    AlertingRule,
    OutgoingAlert,
    QueryFunc,
    RecordingRule,
    Rule,
    RuleGroup,
)
from agent.rules.recording import Output, RuleError, as_vector, eval_ms, merged_labels, record
from agent.tsdb.base import Appender, Labels, Queryable, labels_from

log = logging.getLogger(__name__)

ANY_METRIC = "*"
"""In :meth:`GroupEvaluator.metric_names`: a selector without a fixed name (any metric)."""


@dataclass(frozen=True)
class RuleStatus:
    """One rule's health after its last evaluation: ``ok``, ``err`` or ``unknown`` (never run)."""

    rule: Rule
    health: str
    last_error: str | None
    last_evaluation: float | None
    evaluation_seconds: float


def group_key(group: RuleGroup) -> str:
    """Prometheus's ``GroupKey``: group names are unique per file only."""
    return f"{group.file};{group.name}"


def engine_query_func(engine: Engine, storage: Queryable) -> QueryFunc:
    """A :data:`QueryFunc` over ``engine`` and ``storage``, as Prometheus's ``EngineQueryFunc``.

    A scalar result becomes one sample without labels; any other non-vector is a
    :class:`~agent.promql.value.QueryError`.
    """

    def query(expr: str, t: float) -> Vector:
        value = engine.instant(storage, expr, eval_ms(t)).value
        try:
            return as_vector(value)
        except RuleError as exc:
            raise QueryError(str(exc)) from exc

    return query


def selected_metric_names(expr: str) -> frozenset[str]:
    """The ``__name__`` values ``expr`` selects; :data:`ANY_METRIC` for a selector without one.

    >>> sorted(selected_metric_names('rate(a[5m]) / b + {__name__="c"} + {job="x"}'))
    ['*', 'a', 'b', 'c']
    """
    names: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            names.update(_selector_names(node))

    try:
        promql_parser.walk(promql_parser.parse(expr), visit, None)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:  # a parse error (the rule fails when evaluated) or a parser panic
        return frozenset()
    return frozenset(names)


def _selector_names(node: promql_parser.VectorSelector) -> set[str]:
    if node.name:
        return {node.name}
    out: set[str] = set()
    for group in node.matchers.or_matchers or [node.matchers.matchers]:
        fixed = [m.value for m in group if m.name == "__name__" and str(m.op).endswith("Equal")]
        out.add(fixed[0] if fixed else ANY_METRIC)
    return out


@dataclass(eq=False)
class _Slot:
    """One rule of the group with everything that changes between evaluations."""

    rule: Rule
    labels: dict[str, str]
    alerting: AlertingRuleState | None
    health: str = "unknown"
    last_error: str | None = None
    last_evaluation: float | None = None
    evaluation_seconds: float = 0.0
    sendable: bool = False
    previous: set[Labels] = field(default_factory=set)

    @property
    def identity(self) -> tuple[str, str, Labels]:
        """Which rule a reloaded rule continues: kind, name and labels, as Prometheus matches
        them (a changed expression keeps the alerts' state)."""
        kind = "alert" if isinstance(self.rule, AlertingRule) else "record"
        return kind, self.rule.name, labels_from(self.labels)


class GroupEvaluator:
    """Evaluates one :class:`RuleGroup` at the times it is given and keeps its alerts.

    ``query`` runs the rules' expressions; ``template_query`` backs the
    ``query`` template function (defaults to ``query``, as in Prometheus).

    >>> from agent.promql.engine import PromQLEngine
    >>> from agent.tsdb.store import SeriesStore
    >>> store = SeriesStore()
    >>> group = RuleGroup("g", "f.yml", [RecordingRule("two", "vector(2)")])
    >>> ev = GroupEvaluator(group, query=engine_query_func(PromQLEngine(), store), appender=store)
    >>> ev.evaluate(60.0)
    >>> [(s.rule.name, s.health) for s in ev.rule_statuses()], len(store)
    ([('two', 'ok')], 1)
    """

    def __init__(
        self,
        group: RuleGroup,
        *,
        query: QueryFunc,
        appender: Appender,
        default_interval: float = 60.0,
        external_labels: Mapping[str, str] = {},
        external_url: str = "",
        template_query: QueryFunc | None = None,
    ) -> None:
        self.group = group
        self.interval: float = group.interval_seconds or default_interval
        self.external_url = external_url
        self.last_evaluation: float | None = None
        self.last_duration: float = 0.0
        self._query = query
        self._appender = appender
        self._templates = TemplateContext(
            dict(external_labels), external_url, template_query or query
        )
        self._slots = [self._slot(rule) for rule in group.rules]
        self._stale: list[Labels] = []
        self._names = frozenset().union(*(selected_metric_names(r.expr) for r in group.rules))

    def _slot(self, rule: Rule) -> _Slot:
        labels = merged_labels(self.group, rule)
        alerting = AlertingRuleState(rule, labels) if isinstance(rule, AlertingRule) else None
        return _Slot(rule, labels, alerting)

    @property
    def key(self) -> str:
        """``file;name``, the group's identity."""
        return group_key(self.group)

    # -- evaluation ----------------------------------------------------------------

    def evaluate(self, now: float) -> None:
        """Run every rule in order at ``now``; never raises (failures become rule health)."""
        started = time.perf_counter()
        for slot in self._slots:
            self._evaluate_rule(slot, now)
        self._write_stale(self._stale, now)
        self._stale = []
        self.last_evaluation = now
        self.last_duration = time.perf_counter() - started

    def _evaluate_rule(self, slot: _Slot, now: float) -> None:
        started = time.perf_counter()
        try:
            out = self._outputs(slot, now)
            self._write(slot, out, eval_ms(now - self.group.query_offset_seconds))
        except (QueryError, RuleError) as exc:
            self._failed(slot, str(exc))
        except Exception as exc:  # a bug must not stop the group
            log.exception(
                "rule_evaluation_crashed", extra={"group": self.key, "rule": slot.rule.name}
            )
            self._failed(slot, f"{type(exc).__name__}: {exc}")
        else:
            slot.health, slot.last_error, slot.sendable = "ok", None, True
        finally:
            slot.evaluation_seconds = time.perf_counter() - started
            slot.last_evaluation = now

    def _failed(self, slot: _Slot, error: str) -> None:
        slot.health, slot.last_error, slot.sendable = "err", error, False
        log.warning(
            "rule_evaluation_failed",
            extra={"group": self.key, "rule": slot.rule.name, "error": error},
        )

    def _outputs(self, slot: _Slot, now: float) -> Output:
        offset, limit = self.group.query_offset_seconds, self.group.limit
        if slot.alerting is not None:
            return slot.alerting.eval(
                now, self._query, query_offset=offset, limit=limit, templates=self._templates
            )
        assert isinstance(slot.rule, RecordingRule)
        vector = as_vector(self._query(slot.rule.expr, now - offset))
        return record(slot.rule, slot.labels, vector, limit)

    def _write(self, slot: _Slot, out: Output, t_ms: int) -> None:
        current: set[Labels] = set()
        rejected = 0
        for labels, value in out:
            if not self._appender.append(labels, t_ms, value):
                rejected += 1  # out of order or duplicate: Prometheus drops and goes on
            current.add(labels)
        for labels in sorted(slot.previous - current):
            self._appender.append_stale(labels, t_ms)
        slot.previous = current
        if rejected:
            log.debug(
                "rule_samples_rejected",
                extra={"group": self.key, "rule": slot.rule.name, "count": rejected},
            )

    def _write_stale(self, series: Iterable[Labels], now: float) -> None:
        t_ms = eval_ms(now - self.group.query_offset_seconds)
        try:
            for labels in series:
                self._appender.append_stale(labels, t_ms)
        except Exception:
            log.exception("rule_stale_markers_failed", extra={"group": self.key})

    def mark_stale(self, now: float) -> None:
        """Mark every series this group wrote last time stale (the group was removed)."""
        series = [*self._stale, *(lb for slot in self._slots for lb in sorted(slot.previous))]
        self._write_stale(series, now)
        self._stale = []
        for slot in self._slots:
            slot.previous = set()

    # -- alerts --------------------------------------------------------------------

    def active_alerts(self) -> list[tuple[AlertingRule, Alert]]:
        """Copies of every alert kept: pending, firing, and resolved ones still retained."""
        return [
            (slot.alerting.rule, dataclasses.replace(alert))
            for slot in self._slots
            if slot.alerting is not None
            for _, alert in sorted(slot.alerting.active.items())
        ]

    def alerts_to_send(self, now: float, resend_delay: float) -> list[OutgoingAlert]:
        """Alerts of rules that evaluated fine last time and are due (re)sending at ``now``."""
        return [
            alert
            for slot in self._slots
            if slot.alerting is not None and slot.sendable
            for alert in slot.alerting.alerts_to_send(
                now, resend_delay, self.interval, self.external_url
            )
        ]

    def alert_states(self) -> dict[str, list[Alert]]:
        """Copies of each alerting rule's alerts, by :meth:`state_keys` key (for a state store)."""
        return {
            key: [dataclasses.replace(a) for _, a in sorted(slot.alerting.active.items())]
            for key, slot in self._state_slots().items()
            if slot.alerting is not None
        }

    def restore_alerts(self, key: str, alerts: Iterable[Alert]) -> None:
        """Put stored alerts back into the rule ``key`` names; alerts it already has win."""
        slot = self._state_slots().get(key)
        if slot is None or slot.alerting is None:
            return
        for alert in alerts:
            labels = labels_from(dict(alert.labels))
            restored = dataclasses.replace(alert, labels=labels)
            slot.alerting.active.setdefault(labels, restored)

    def state_keys(self) -> list[str]:
        """A key per alerting rule: its name, ``name#2``… for later rules of the same name."""
        return list(self._state_slots())

    def _state_slots(self) -> dict[str, _Slot]:
        out: dict[str, _Slot] = {}
        for slot in self._slots:
            if slot.alerting is None:
                continue
            key, n = slot.rule.name, 1
            while key in out:
                n += 1
                key = f"{slot.rule.name}#{n}"
            out[key] = slot
        return out

    # -- status and reload ---------------------------------------------------------

    def rule_statuses(self) -> list[RuleStatus]:
        """Each rule's health, in group order."""
        return [
            RuleStatus(s.rule, s.health, s.last_error, s.last_evaluation, s.evaluation_seconds)
            for s in self._slots
        ]

    def copy_state_from(self, other: GroupEvaluator) -> None:
        """Take over ``other``'s alerts and staleness tracking (on reload).

        Rules are matched by kind, name and labels, duplicates in order, as
        Prometheus's ``CopyState`` does (a changed expression keeps its alerts).
        Series of ``other``'s rules left unmatched are marked stale at the next
        evaluation.
        """
        self.last_evaluation, self.last_duration = other.last_evaluation, other.last_duration
        pool: dict[tuple[str, str, Labels], list[_Slot]] = {}
        for old in other._slots:
            pool.setdefault(old.identity, []).append(old)
        for slot in self._slots:
            matches = pool.get(slot.identity)
            if not matches:
                continue
            old = matches.pop(0)
            slot.previous = set(old.previous)
            if slot.alerting is not None and old.alerting is not None:
                slot.alerting.active = {
                    k: dataclasses.replace(a) for k, a in old.alerting.active.items()
                }
        self._stale = list(other._stale)
        for leftovers in pool.values():
            for old in leftovers:
                self._stale.extend(sorted(old.previous))

    def metric_names(self) -> frozenset[str]:
        """Metric names the rules read; ``"*"`` when some selector has no fixed name."""
        return self._names
