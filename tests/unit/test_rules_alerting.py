"""The alert state machine of one alerting rule, its series, and its sending, at explicit times."""

from __future__ import annotations

import math
from collections.abc import Mapping

import pytest

from agent.promql.engine import PromQLEngine
from agent.promql.value import QueryError, Vector
from agent.rules.alerting import generator_url, needs_sending, step
from agent.rules.group import GroupEvaluator, engine_query_func
from agent.rules.model import (
    RESOLVED_RETENTION_SECONDS,
    Alert,
    AlertingRule,
    AlertState,
    RuleGroup,
)
from agent.tsdb.base import Matcher, is_stale, labels_from
from agent.tsdb.store import SeriesStore

API = {"job": "api", "instance": "a:1"}


class World:
    """A series store, the PromQL engine, and one group over them."""

    def __init__(self) -> None:
        self.store = SeriesStore()
        self.query = engine_query_func(PromQLEngine(), self.store)

    def up(self, t: float, value: float, labels: Mapping[str, str] = API) -> None:
        assert self.store.append(labels_from({"__name__": "up", **labels}), round(t * 1000), value)

    def group(self, *rules: AlertingRule, **kw: object) -> GroupEvaluator:
        group = RuleGroup("g", "rules.yml", list(rules), **kw)  # type: ignore[arg-type]
        return GroupEvaluator(
            group,
            query=self.query,
            appender=self.store,
            external_url="http://agent:9090",
            external_labels={"site": "tw"},
        )

    def series(self, name: str) -> dict[tuple[tuple[str, str], ...], list[tuple[int, float]]]:
        found = self.store.select([Matcher("__name__", "=", name)], 0, 10**13)
        return {s.labels: list(zip(s.timestamps, s.values, strict=True)) for s in found}


def states(ev: GroupEvaluator) -> list[tuple[str, float, float | None, float | None]]:
    return [(a.state.value, a.active_at, a.fired_at, a.resolved_at) for _, a in ev.active_alerts()]


DOWN = AlertingRule(name="Down", expr="up == 0", for_seconds=60.0)


@pytest.fixture
def world() -> World:
    return World()


def test_inactive_to_pending_when_the_query_returns_the_series(world: World) -> None:
    """A new result sample becomes a PENDING alert active at the evaluation time."""
    ev = world.group(DOWN)
    world.up(0, 1)
    ev.evaluate(0)
    assert ev.active_alerts() == []
    world.up(10, 0)
    ev.evaluate(10)
    ((rule, alert),) = ev.active_alerts()
    assert rule is DOWN
    assert alert.labels == labels_from({"alertname": "Down", **API})
    assert (alert.state, alert.active_at, alert.value) == (AlertState.PENDING, 10, 0.0)


def test_pending_fires_exactly_when_for_has_passed(world: World) -> None:
    """PENDING becomes FIRING at the first evaluation with now - active_at >= for."""
    ev = world.group(DOWN)
    for t in (0, 30, 59.999):
        world.up(t, 0)
        ev.evaluate(t)
        assert states(ev) == [("pending", 0, None, None)]
    world.up(60, 0)
    ev.evaluate(60)
    assert states(ev) == [("firing", 0, 60, None)]


def test_pending_alert_is_dropped_when_the_condition_clears(world: World) -> None:
    """A PENDING alert whose series left the result is forgotten, not resolved."""
    ev = world.group(DOWN)
    world.up(0, 0)
    ev.evaluate(0)
    world.up(30, 1)
    ev.evaluate(30)
    assert ev.active_alerts() == []


def test_for_zero_fires_at_the_first_evaluation(world: World) -> None:
    """With for: 0 a new alert is FIRING at once, fired_at = active_at = now."""
    ev = world.group(AlertingRule(name="Down", expr="up == 0"))
    world.up(5, 0)
    ev.evaluate(5)
    assert states(ev) == [("firing", 5, 5, None)]


def test_firing_alert_resolves_and_is_kept_for_retention_then_deleted(world: World) -> None:
    """FIRING → INACTIVE with resolved_at; kept 15 minutes, deleted once past that."""
    ev = world.group(AlertingRule(name="Down", expr="up == 0"))
    world.up(0, 0)
    ev.evaluate(0)
    world.up(60, 1)
    ev.evaluate(60)
    assert states(ev) == [("inactive", 0, 0, 60)]
    ev.evaluate(60 + RESOLVED_RETENTION_SECONDS)
    assert states(ev) == [("inactive", 0, 0, 60)]
    ev.evaluate(60 + RESOLVED_RETENTION_SECONDS + 1)
    assert ev.active_alerts() == []


def test_keep_firing_for_keeps_firing_then_resolves(world: World) -> None:
    """A cleared FIRING alert stays FIRING until keep_firing_for has passed since the first miss."""
    rule = AlertingRule(name="Down", expr="up == 0", keep_firing_for_seconds=120.0)
    ev = world.group(rule)
    world.up(0, 0)
    ev.evaluate(0)
    world.up(60, 1)
    ev.evaluate(60)
    ((_, alert),) = ev.active_alerts()
    assert (alert.state, alert.keep_firing_since, alert.resolved_at) == (
        AlertState.FIRING,
        60,
        None,
    )
    ev.evaluate(179.999)
    assert states(ev) == [("firing", 0, 0, None)]
    ev.evaluate(180)
    assert states(ev) == [("inactive", 0, 0, 180)]


def test_keep_firing_since_resets_when_the_alert_returns(world: World) -> None:
    """An alert back in the result while kept firing starts its keep_firing_for afresh."""
    rule = AlertingRule(name="Down", expr="up == 0", keep_firing_for_seconds=120.0)
    ev = world.group(rule)
    world.up(0, 0)
    ev.evaluate(0)
    world.up(60, 1)
    ev.evaluate(60)
    world.up(100, 0)
    ev.evaluate(100)
    assert ev.active_alerts()[0][1].keep_firing_since is None
    world.up(150, 1)
    ev.evaluate(150)
    ev.evaluate(260)
    assert states(ev) == [("firing", 0, 0, None)]
    ev.evaluate(270)
    assert states(ev) == [("inactive", 0, 0, 270)]


def test_alert_returning_while_resolved_starts_pending_with_a_new_active_at(world: World) -> None:
    """A resolved alert whose series comes back is replaced by a new PENDING one."""
    ev = world.group(DOWN)
    world.up(0, 0)
    ev.evaluate(0)
    world.up(60, 0)
    ev.evaluate(60)
    world.up(120, 1)
    ev.evaluate(120)
    assert states(ev) == [("inactive", 0, 60, 120)]
    world.up(180, 0)
    ev.evaluate(180)
    assert states(ev) == [("pending", 180, None, None)]


def test_step_is_a_pure_function_of_alert_presence_and_time() -> None:
    """step() returns a new alert (or None) and leaves its argument alone."""
    alert = Alert(labels_from({"alertname": "Down"}), {}, AlertState.PENDING, 0.0, active_at=0.0)
    fired = step(alert, True, 60.0, DOWN)
    assert fired is not None and fired.state is AlertState.FIRING
    assert alert.state is AlertState.PENDING
    assert step(alert, False, 30.0, DOWN) is None


def test_labels_and_annotations_are_expanded_with_labels_and_value(world: World) -> None:
    """Rule labels and annotations are templates over $labels and $value; annotations update."""
    rule = AlertingRule(
        name="Down",
        expr="up < 1",
        labels={"team": "ops", "target": "{{ $labels.instance }}"},
        annotations={"summary": "{{ $labels.job }} is {{ $value }}"},
    )
    ev = world.group(rule)
    world.up(0, 0.5)
    ev.evaluate(0)
    ((_, alert),) = ev.active_alerts()
    assert dict(alert.labels) == {"alertname": "Down", "team": "ops", "target": "a:1", **API}
    assert alert.annotations == {"summary": "api is 0.5"}
    world.up(60, 0.25)
    ev.evaluate(60)
    assert ev.active_alerts()[0][1].annotations == {"summary": "api is 0.25"}


def test_group_labels_are_added_and_rule_labels_win(world: World) -> None:
    """Group labels join every alert's labels; a rule label of the same name overrides them."""
    rule = AlertingRule(name="Down", expr="up == 0", labels={"team": "ops"})
    ev = world.group(rule, labels={"team": "all", "tier": "1"})
    world.up(0, 0)
    ev.evaluate(0)
    assert dict(ev.active_alerts()[0][1].labels)["team"] == "ops"
    assert dict(ev.active_alerts()[0][1].labels)["tier"] == "1"


def test_same_labelset_after_applying_alert_labels_is_an_error(world: World) -> None:
    """Two samples that only differ in a label the rule overrides make the rule fail."""
    world.up(0, 0)
    world.up(0, 0, {"job": "api", "instance": "b:1"})
    rule = AlertingRule(name="Down", expr="up == 0", labels={"instance": "all"})
    ev = world.group(rule)
    ev.evaluate(0)
    (status,) = ev.rule_statuses()
    assert status.health == "err"
    assert status.last_error == (
        "vector contains metrics with the same labelset after applying alert labels"
    )
    assert ev.active_alerts() == []


def test_limit_exceeded_fails_the_rule_and_drops_its_alerts(world: World) -> None:
    """More active alerts than the group's limit: error and no alerts (Prometheus)."""
    ev = world.group(AlertingRule(name="Down", expr="up == 0"), limit=1)
    world.up(0, 0)
    ev.evaluate(0)
    assert len(ev.active_alerts()) == 1
    world.up(60, 0)
    world.up(60, 0, {"job": "api", "instance": "b:1"})
    ev.evaluate(60)
    (status,) = ev.rule_statuses()
    assert (status.health, status.last_error) == ("err", "exceeded limit of 1 with 2 alerts")
    assert ev.active_alerts() == []
    assert ev.alerts_to_send(60, 60) == []


def test_query_offset_queries_the_past_and_writes_there(world: World) -> None:
    """query_offset shifts the query and the ALERTS samples, not active_at."""
    ev = world.group(AlertingRule(name="Down", expr="up == 0"), query_offset_seconds=30.0)
    world.up(100, 0)
    ev.evaluate(110)
    assert ev.active_alerts() == []
    ev.evaluate(130)
    assert states(ev) == [("firing", 130, 130, None)]
    ((_, points),) = world.series("ALERTS").items()
    assert points == [(100_000, 1.0)]


def test_alerts_series_follow_the_state_and_go_stale(world: World) -> None:
    """ALERTS carries alertstate and ALERTS_FOR_STATE active_at; vanished ones get stale markers."""
    ev = world.group(DOWN)
    world.up(0.5, 0)
    ev.evaluate(0.5)
    world.up(60.5, 0)
    ev.evaluate(60.5)
    world.up(120, 1)
    ev.evaluate(120)
    alerts = world.series("ALERTS")
    pending = labels_from(
        {"__name__": "ALERTS", "alertname": "Down", "alertstate": "pending", **API}
    )
    firing = labels_from({"__name__": "ALERTS", "alertname": "Down", "alertstate": "firing", **API})
    assert set(alerts) == {pending, firing}
    assert alerts[pending][0] == (500, 1.0)
    assert alerts[pending][1][0] == 60_500 and is_stale(alerts[pending][1][1])
    assert alerts[firing][0] == (60_500, 1.0)
    assert alerts[firing][1][0] == 120_000 and is_stale(alerts[firing][1][1])
    ((for_labels, for_points),) = world.series("ALERTS_FOR_STATE").items()
    assert dict(for_labels) == {"__name__": "ALERTS_FOR_STATE", "alertname": "Down", **API}
    assert for_points[:2] == [(500, 0.0), (60_500, 0.0)]
    assert is_stale(for_points[2][1])


def test_sending_resend_delay_valid_until_and_resolved(world: World) -> None:
    """Firing alerts are sent, re-sent after resend_delay, and sent resolved with ends_at."""
    ev = world.group(AlertingRule(name="Down", expr="up == 0"))
    world.up(0, 0)
    ev.evaluate(0)
    (sent,) = ev.alerts_to_send(0, 60)
    assert (sent.starts_at, sent.ends_at) == (0, 240)
    world.up(60, 0)
    ev.evaluate(60)
    assert ev.alerts_to_send(60, 60) == []
    world.up(120, 0)
    ev.evaluate(120)
    (resent,) = ev.alerts_to_send(120, 60)
    assert (resent.starts_at, resent.ends_at) == (0, 120 + 4 * 60)
    world.up(150, 1)
    ev.evaluate(150)
    (resolved,) = ev.alerts_to_send(150, 60)
    assert (resolved.starts_at, resolved.ends_at) == (0, 150)
    assert ev.alerts_to_send(200, 60) == []
    assert [a.ends_at for a in ev.alerts_to_send(211, 60)] == [150]


def test_pending_alerts_are_never_sent(world: World) -> None:
    """Only firing and resolved alerts go to the notifier."""
    ev = world.group(DOWN)
    world.up(0, 0)
    ev.evaluate(0)
    assert ev.alerts_to_send(0, 60) == []


def test_valid_until_uses_the_longer_of_interval_and_resend_delay(world: World) -> None:
    """ends_at of a firing alert is now + 4 * max(group interval, resend delay)."""
    ev = world.group(AlertingRule(name="Down", expr="up == 0"), interval_seconds=300.0)
    world.up(0, 0)
    ev.evaluate(0)
    (sent,) = ev.alerts_to_send(0, 60)
    assert sent.ends_at == 1200


def test_needs_sending_follows_prometheus() -> None:
    """Resolved since last sent → send; otherwise only once last_sent_at + delay < now."""
    a = Alert((), {}, AlertState.FIRING, 1.0, active_at=0.0, fired_at=0.0, last_sent_at=10.0)
    assert not needs_sending(a, 70.0, 60.0)
    assert needs_sending(a, 70.001, 60.0)
    a.state, a.resolved_at = AlertState.INACTIVE, 20.0
    assert needs_sending(a, 21.0, 60.0)


def test_generator_url_links_the_expression(world: World) -> None:
    """generator_url is external URL + /graph?g0.expr=<query-escaped expr>&g0.tab=1."""
    expr = 'up{job="api"} == 0'
    assert generator_url("http://agent:9090", expr) == (
        "http://agent:9090/graph?g0.expr=up%7Bjob%3D%22api%22%7D+%3D%3D+0&g0.tab=1"
    )
    ev = world.group(AlertingRule(name="Down", expr=expr))
    world.up(0, 0)
    ev.evaluate(0)
    assert ev.alerts_to_send(0, 60)[0].generator_url == generator_url("http://agent:9090", expr)


def test_scalar_result_is_one_alert_without_sample_labels(world: World) -> None:
    """A scalar expression yields one alert labelled only by alertname (and rule labels)."""
    ev = world.group(AlertingRule(name="Always", expr="1", labels={"team": "ops"}))
    ev.evaluate(0)
    ((_, alert),) = ev.active_alerts()
    assert dict(alert.labels) == {"alertname": "Always", "team": "ops"}
    assert alert.value == 1.0 and not math.isnan(alert.value)


def test_alerts_of_a_rule_that_failed_are_kept_but_not_sent(world: World) -> None:
    """A query error leaves the alerts as they were; they are sent again after a good evaluation."""
    failing = False

    def query(expr: str, t: float) -> Vector:
        if failing:
            raise QueryError("storage unavailable")
        return world.query(expr, t)

    group = RuleGroup("g", "rules.yml", [AlertingRule(name="Down", expr="up == 0")])
    ev = GroupEvaluator(group, query=query, appender=world.store)
    world.up(0, 0)
    ev.evaluate(0)
    assert len(ev.alerts_to_send(0, 60)) == 1
    failing = True
    ev.evaluate(120)
    assert states(ev) == [("firing", 0, 0, None)]
    assert ev.alerts_to_send(120, 60) == []
    failing = False
    world.up(180, 0)
    ev.evaluate(180)
    assert len(ev.alerts_to_send(180, 60)) == 1
