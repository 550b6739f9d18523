"""A group's evaluation: rule order, recording rules, failures, reload and the metrics it reads."""

from __future__ import annotations

import pytest

from agent.promql.engine import PromQLEngine
from agent.promql.value import QueryError, Vector
from agent.rules.group import ANY_METRIC, GroupEvaluator, engine_query_func
from agent.rules.model import AlertingRule, AlertState, RecordingRule, Rule, RuleGroup
from agent.tsdb.base import Labels, Matcher, is_stale, labels_from
from agent.tsdb.store import SeriesStore

UP_API = labels_from({"__name__": "up", "job": "api", "instance": "a:1"})
UP_WEB = labels_from({"__name__": "up", "job": "web", "instance": "b:1"})


@pytest.fixture
def store() -> SeriesStore:
    return SeriesStore()


def evaluator(
    store: SeriesStore, *rules: Rule, labels: dict[str, str] | None = None
) -> GroupEvaluator:
    group = RuleGroup("g", "rules.yml", list(rules), labels=labels or {})
    return GroupEvaluator(group, query=engine_query_func(PromQLEngine(), store), appender=store)


def points(store: SeriesStore, name: str) -> dict[Labels, list[tuple[int, float]]]:
    found = store.select([Matcher("__name__", "=", name)], 0, 10**13)
    return {s.labels: list(zip(s.timestamps, s.values, strict=True)) for s in found}


def test_rules_run_in_order_so_recorded_series_feed_later_rules(store: SeriesStore) -> None:
    """A recording rule's output at t is visible to an alerting rule after it at the same t."""
    store.append(UP_API, 0, 0.0)
    store.append(UP_WEB, 0, 0.0)
    ev = evaluator(
        store,
        RecordingRule("job:up:sum", "sum by (job) (up)"),
        AlertingRule("JobDown", "job:up:sum == 0"),
    )
    ev.evaluate(0)
    assert sorted(dict(a.labels)["job"] for _, a in ev.active_alerts()) == ["api", "web"]
    assert [s.health for s in ev.rule_statuses()] == ["ok", "ok"]


def test_recording_rule_writes_name_rule_and_group_labels(store: SeriesStore) -> None:
    """Output series: sample labels, __name__ = record, group labels under rule labels."""
    store.append(UP_API, 0, 1.0)
    ev = evaluator(
        store,
        RecordingRule("job:up", "up", labels={"env": "prod"}),
        labels={"env": "dev", "site": "tw"},
    )
    ev.evaluate(60)
    expected = labels_from(
        {"__name__": "job:up", "job": "api", "instance": "a:1", "env": "prod", "site": "tw"}
    )
    assert points(store, "job:up") == {expected: [(60_000, 1.0)]}


def test_recording_rule_scalar_result_is_one_unlabelled_series(store: SeriesStore) -> None:
    """A scalar result is recorded as one series carrying only the name and rule labels."""
    ev = evaluator(store, RecordingRule("answer", "42", labels={"k": "v"}))
    ev.evaluate(10)
    assert points(store, "answer") == {
        labels_from({"__name__": "answer", "k": "v"}): [(10_000, 42.0)]
    }


def test_recording_rule_duplicate_labelset_fails(store: SeriesStore) -> None:
    """Dropping the distinguishing label by a rule label collapses series: the rule errors."""
    store.append(UP_API, 0, 1.0)
    store.append(labels_from({"__name__": "up", "job": "api", "instance": "b:1"}), 0, 1.0)
    ev = evaluator(store, RecordingRule("job:up", "up", labels={"instance": "x"}))
    ev.evaluate(0)
    (status,) = ev.rule_statuses()
    assert status.health == "err"
    assert status.last_error == (
        "vector contains metrics with the same labelset after applying rule labels"
    )
    assert points(store, "job:up") == {}


def test_recorded_series_that_vanish_get_stale_markers(store: SeriesStore) -> None:
    """A series written in the previous evaluation but not in this one is marked stale."""
    store.append(UP_API, 0, 1.0)
    store.append(UP_WEB, 0, 1.0)
    ev = evaluator(store, RecordingRule("seen", 'up{job=~"api|web"}'))
    ev.evaluate(0)
    store.append(UP_WEB, 10_000, 1.0)
    store.append_stale(UP_API, 10_000)
    ev.evaluate(10)
    by_job = {dict(k)["job"]: v for k, v in points(store, "seen").items()}
    assert by_job["web"] == [(0, 1.0), (10_000, 1.0)]
    assert by_job["api"][0] == (0, 1.0)
    assert by_job["api"][1][0] == 10_000 and is_stale(by_job["api"][1][1])


def test_failing_rule_does_not_stop_the_group(store: SeriesStore) -> None:
    """A rule that errors reports health err and its message; the rules after it still run."""
    store.append(UP_API, 0, 1.0)
    ev = evaluator(
        store,
        RecordingRule("broken", 'label_replace(up, "x", "$1", "job", "(")'),
        RecordingRule("fine", "up"),
    )
    assert [s.health for s in ev.rule_statuses()] == ["unknown", "unknown"]
    ev.evaluate(30)
    broken, fine = ev.rule_statuses()
    assert broken.health == "err" and broken.last_error
    assert (fine.health, fine.last_error, fine.last_evaluation) == ("ok", None, 30)
    assert fine.evaluation_seconds >= 0
    assert ev.last_evaluation == 30 and ev.last_duration >= 0
    assert len(points(store, "fine")) == 1


def test_query_errors_are_rule_errors_not_exceptions(store: SeriesStore) -> None:
    """A query func that raises QueryError leaves the rule err with that message."""

    def failing(expr: str, t: float) -> Vector:
        raise QueryError("boom")

    group = RuleGroup("g", "f", [AlertingRule("A", "up")])
    ev = GroupEvaluator(group, query=failing, appender=store)
    ev.evaluate(0)
    assert (ev.rule_statuses()[0].health, ev.rule_statuses()[0].last_error) == ("err", "boom")


def test_engine_query_func_rejects_strings(store: SeriesStore) -> None:
    """Only vectors and scalars are rule results (Prometheus's EngineQueryFunc)."""
    query = engine_query_func(PromQLEngine(), store)
    with pytest.raises(QueryError, match="rule result is not a vector or scalar"):
        query('"text"', 0)


def test_copy_state_from_keeps_alerts_of_unchanged_rules(store: SeriesStore) -> None:
    """On reload, alerts move to the rule with the same name and labels (as Prometheus matches
    them, so a changed expression keeps its alerts); a rule with other labels starts over."""
    store.append(UP_API, 0, 0.0)
    down = AlertingRule("Down", "up == 0", for_seconds=60)
    other = AlertingRule("Other", "up == 0", for_seconds=60)
    relabelled = AlertingRule("Relabelled", "up == 0", for_seconds=60, labels={"a": "1"})
    old = evaluator(store, down, other, relabelled)
    old.evaluate(0)
    changed_expr = AlertingRule("Other", "up < 1", for_seconds=60)
    changed_labels = AlertingRule("Relabelled", "up == 0", for_seconds=60, labels={"a": "2"})
    new = evaluator(store, RecordingRule("r", "up"), down, changed_expr, changed_labels)
    new.copy_state_from(old)
    carried = sorted((r.name, a.active_at) for r, a in new.active_alerts())
    assert carried == [("Down", 0), ("Other", 0)]
    assert new.last_evaluation == 0
    store.append(UP_API, 60_000, 0.0)
    new.evaluate(60)
    got = {r.name: (a.state, a.active_at) for r, a in new.active_alerts()}
    assert got == {
        "Down": (AlertState.FIRING, 0),
        "Other": (AlertState.FIRING, 0),
        "Relabelled": (AlertState.PENDING, 60),
    }


def test_series_of_removed_rules_are_marked_stale_after_reload(store: SeriesStore) -> None:
    """A rule dropped on reload gets stale markers for its series at the next evaluation."""
    store.append(UP_API, 0, 1.0)
    old = evaluator(store, RecordingRule("gone", "up"), RecordingRule("kept", "up"))
    old.evaluate(0)
    new = evaluator(store, RecordingRule("kept", "up"))
    new.copy_state_from(old)
    new.evaluate(10)
    ((_, gone),) = points(store, "gone").items()
    assert gone[-1][0] == 10_000 and is_stale(gone[-1][1])
    ((_, kept),) = points(store, "kept").items()
    assert kept == [(0, 1.0), (10_000, 1.0)]


def test_mark_stale_ends_every_series_of_a_removed_group(store: SeriesStore) -> None:
    """mark_stale writes stale markers for all the group's last series."""
    store.append(UP_API, 0, 0.0)
    ev = evaluator(store, RecordingRule("r", "up"), AlertingRule("A", "up == 0"))
    ev.evaluate(0)
    ev.mark_stale(5)
    for name in ("r", "ALERTS", "ALERTS_FOR_STATE"):
        ((_, series),) = points(store, name).items()
        assert series[-1][0] == 5_000 and is_stale(series[-1][1])


def test_metric_names_lists_selected_names_and_any(store: SeriesStore) -> None:
    """metric_names covers plain, range, subquery and __name__ selectors; "*" for nameless."""
    ev = evaluator(
        store,
        RecordingRule("a", "sum(rate(http_requests_total[5m])) by (job)"),
        AlertingRule("B", 'max_over_time(probe_success[5m:1m]) < 1 or {__name__="x"}'),
    )
    assert ev.metric_names() == frozenset({"http_requests_total", "probe_success", "x"})
    nameless = evaluator(store, RecordingRule("c", '{job="api"}'))
    assert nameless.metric_names() == frozenset({ANY_METRIC})
    regex = evaluator(store, RecordingRule("d", '{__name__=~"up|down"}'))
    assert regex.metric_names() == frozenset({ANY_METRIC})


def test_interval_defaults_to_the_global_one(store: SeriesStore) -> None:
    """interval is the group's own or the default_interval given."""
    query = engine_query_func(PromQLEngine(), store)
    own = RuleGroup("g", "f", [], interval_seconds=15.0)
    assert GroupEvaluator(own, query=query, appender=store).interval == 15.0
    inherit = RuleGroup("g", "f", [])
    assert GroupEvaluator(inherit, query=query, appender=store, default_interval=30).interval == 30
