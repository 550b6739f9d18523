"""Rule unit tests in ``promtool test rules`` format, run against our engine and rules.

A test file names ``rule_files`` (globs allowed, relative to the test file), an
``evaluation_interval`` (default 1m), a ``group_eval_order`` and ``tests``. Each
test group loads its ``input_series`` (the expanding notation: ``1+2x3``, ``_``,
``stale``) into a fresh :class:`~agent.tsdb.store.SeriesStore`, then steps every
rule group from 0 to the largest ``eval_time`` every ``evaluation_interval``, as
promtool does (a group's own ``interval`` does not change when it runs). An
``alert_rule_test`` compares the *firing* alerts of ``alertname`` after the last
evaluation at or before its ``eval_time``; a ``promql_expr_test`` runs its
query once every evaluation is done. Labels must match exactly, values within
Prometheus's ``almost.Equal`` tolerance, order does not matter.

>>> outcome = run_test_text(
...     "tests:\\n- interval: 1m\\n  input_series:\\n  - series: up\\n    values: 1 2 3\\n"
...     "  promql_expr_test:\\n  - expr: up\\n    eval_time: 2m\\n"
...     "    exp_samples: [{labels: up, value: 3}]\\n", "t.yml")
>>> outcome.errors
[]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import Field

from agent.config.loader import compose_yaml
from agent.errors import ConfigError
from agent.promql.engine import PromQLEngine
from agent.promql.testfile_values import expand_values, split_series
from agent.promql.value import QueryError
from agent.rulefmt.loader import (
    ProblemCollector,
    PromDuration,
    StrictModel,
    Text,
    TextMap,
    expand_rule_paths,
    load_rule_file,
    validate_at,
)
from agent.rulefmt.unittest_format import (
    AlertView,
    LabelPairs,
    alert_mismatch,
    expr_error,
    expr_mismatch,
    prom_duration,
    rule_error,
)
from agent.rules.group import GroupEvaluator, engine_query_func
from agent.rules.model import AlertState, QueryFunc, RuleGroup
from agent.tsdb.store import SeriesStore

DEFAULT_EVALUATION_INTERVAL_MS = 60_000

# --------------------------------------------------------------------------- the file


class InputSeries(StrictModel):
    """``series: 'up{job="api"}'`` and ``values: '0 1+1x5 _ stale'``."""

    series: Text = ""
    values: Text = ""


class ExpectedAlert(StrictModel):
    """One expected firing alert: its labels (without ``alertname``) and annotations."""

    exp_labels: TextMap = Field(default_factory=dict)
    exp_annotations: TextMap = Field(default_factory=dict)


class AlertTestCase(StrictModel):
    """``alert_rule_test`` entry: the firing alerts of ``alertname`` at ``eval_time``."""

    eval_time: PromDuration = 0.0
    alertname: Text = ""
    exp_alerts: list[ExpectedAlert] = Field(default_factory=list)


class ExpectedSample(StrictModel):
    """``labels: 'metric{a="b"}'`` and ``value``."""

    labels: Text = ""
    value: float = 0.0


class PromqlTestCase(StrictModel):
    """``promql_expr_test`` entry: ``expr`` at ``eval_time`` yields ``exp_samples``."""

    expr: Text = ""
    eval_time: PromDuration = 0.0
    exp_samples: list[ExpectedSample] = Field(default_factory=list)


class TestGroup(StrictModel):
    """One entry of ``tests``: input series and the assertions on them."""

    __test__ = False  # not a pytest class

    interval: PromDuration = 0.0
    input_series: list[InputSeries] = Field(default_factory=list)
    alert_rule_test: list[AlertTestCase] = Field(default_factory=list)
    promql_expr_test: list[PromqlTestCase] = Field(default_factory=list)
    external_labels: TextMap = Field(default_factory=dict)
    external_url: Text = ""
    name: Text = ""


class TestFile(StrictModel):
    """A whole rule test file."""

    __test__ = False

    rule_files: list[Text] = Field(default_factory=list)
    evaluation_interval: PromDuration = 0.0
    group_eval_order: list[Text] = Field(default_factory=list)
    tests: list[TestGroup] = Field(default_factory=list)
    fuzzy_compare: bool = False


@dataclass
class TestOutcome:
    """What running one test file produced: failures (empty when it passed) and warnings."""

    __test__ = False

    file: str
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.errors


# --------------------------------------------------------------------------- comparison

EPSILON = 1e-6
_MIN_NORMAL = 2.2250738585072014e-308


def almost_equal(a: float, b: float) -> bool:
    """Prometheus's ``almost.Equal`` with promqltest's epsilon; two NaNs are equal."""
    if math.isnan(a) and math.isnan(b):
        return True
    if a == b:
        return True
    diff = abs(a - b)
    total = abs(a) + abs(b)
    if a == 0 or b == 0 or total < _MIN_NORMAL:
        return diff < EPSILON * _MIN_NORMAL
    return diff / min(total, 1.7976931348623157e308) < EPSILON


def samples_equal(
    expected: Sequence[tuple[LabelPairs, float]], got: Sequence[tuple[LabelPairs, float]]
) -> bool:
    """Same label sets, values almost equal; both sides are sorted by labels."""
    if len(expected) != len(got):
        return False
    return all(
        el == gl and almost_equal(ev, gv) for (el, ev), (gl, gv) in zip(expected, got, strict=True)
    )


# --------------------------------------------------------------------------- running


@dataclass
class _Context:
    """What every test group of one file shares."""

    groups: list[RuleGroup]
    eval_ms: int
    order: Mapping[str, int]


def _load_series(store: SeriesStore, series: Sequence[InputSeries], step_ms: int) -> str | None:
    for item in series:
        try:
            labels, text = split_series(f"{item.series.strip()} {item.values.strip() or '_'}")
            values = expand_values(text)
        except ValueError as exc:
            return f"invalid input series {item.series!r} {item.values!r}: {exc}"
        for i, value in enumerate(values):
            if value is not None:
                store.append(labels, i * step_ms, value)
    return None


def _ordered(groups: Sequence[RuleGroup], order: Mapping[str, int]) -> list[RuleGroup]:
    """promtool's order: by position in ``group_eval_order``, unlisted groups counting as 0."""
    return sorted(groups, key=lambda g: order.get(g.name, 0))


def _evaluators(
    tg: TestGroup, ctx: _Context, query: QueryFunc, store: SeriesStore
) -> list[GroupEvaluator]:
    default_interval = tg.interval or ctx.eval_ms / 1000
    return [
        GroupEvaluator(
            group,
            query=query,
            appender=store,
            default_interval=default_interval,
            external_labels=dict(tg.external_labels),
            external_url=tg.external_url,
            template_query=query,
        )
        for group in _ordered(ctx.groups, ctx.order)
    ]


def _firing(evaluators: Sequence[GroupEvaluator], alertname: str) -> list[AlertView]:
    got: list[AlertView] = []
    for ev in evaluators:
        for rule, alert in ev.active_alerts():
            if rule.name == alertname and alert.state is AlertState.FIRING:
                got.append((tuple(alert.labels), tuple(sorted(alert.annotations.items()))))
    return sorted(got)


def _expected_alerts(case: AlertTestCase) -> list[AlertView]:
    out: list[AlertView] = []
    for exp in case.exp_alerts:
        labels = {**exp.exp_labels, "alertname": case.alertname}
        out.append((tuple(sorted(labels.items())), tuple(sorted(exp.exp_annotations.items()))))
    return sorted(out)


def _check_alerts(
    tg: TestGroup, cases: Sequence[AlertTestCase], evaluators: Sequence[GroupEvaluator]
) -> list[str]:
    errors = []
    for case in cases:
        expected, got = _expected_alerts(case), _firing(evaluators, case.alertname)
        if expected != got:
            t_ms = round(case.eval_time * 1000)
            errors.append(alert_mismatch(tg.name, case.alertname, t_ms, expected, got))
    return errors


def _rule_errors(evaluators: Sequence[GroupEvaluator], t_ms: int) -> list[str]:
    errors = []
    for ev in evaluators:
        for status in ev.rule_statuses():
            if status.health == "err":
                errors.append(rule_error(status.rule.name, t_ms, status.last_error or ""))
    return errors


def _step(
    tg: TestGroup, ctx: _Context, evaluators: Sequence[GroupEvaluator]
) -> tuple[list[str], bool]:
    """Evaluate every group at 0, eval_ms, … up to the last eval_time, checking alerts.

    Returns the failures and whether a rule failed to evaluate (which ends the test
    group there, as in promtool).
    """
    by_time: dict[int, list[AlertTestCase]] = {}
    for case in tg.alert_rule_test:
        by_time.setdefault(round(case.eval_time * 1000), []).append(case)
    times = sorted(by_time)
    last = max([0, *times, *(round(c.eval_time * 1000) for c in tg.promql_expr_test)])
    errors: list[str] = []
    curr = 0
    for ts in range(0, last + 1, ctx.eval_ms):
        for ev in evaluators:
            ev.evaluate(ts / 1000)
        if failed := _rule_errors(evaluators, ts):
            return errors + failed, True
        while curr < len(times) and ts <= times[curr] < ts + ctx.eval_ms:
            errors += _check_alerts(tg, by_time[times[curr]], evaluators)
            curr += 1
    return errors, False


def _expected_samples(case: PromqlTestCase) -> list[tuple[LabelPairs, float]] | str:
    out = []
    for sample in case.exp_samples:
        try:
            labels, _ = split_series(f"{sample.labels.strip()} 0")
        except ValueError as exc:
            return f"labels {sample.labels!r}: {exc}"
        out.append((labels, sample.value))
    return sorted(out, key=lambda s: s[0])


def _check_expr(case: PromqlTestCase, query: QueryFunc) -> str | None:
    t_ms = round(case.eval_time * 1000)
    try:
        vector = query(case.expr, t_ms / 1000)
    except QueryError as exc:
        return expr_error(case.expr, t_ms, str(exc))
    expected = _expected_samples(case)
    if isinstance(expected, str):
        return expr_error(case.expr, t_ms, expected)
    got = sorted(((s.labels, s.value) for s in vector.samples), key=lambda s: s[0])
    if samples_equal(expected, got):
        return None
    return expr_mismatch(case.expr, t_ms, expected, got)


def run_test_group(tg: TestGroup, ctx: _Context) -> list[str]:
    """Run one entry of ``tests`` and return its failures."""
    for alert_case in tg.alert_rule_test:
        if not alert_case.alertname:
            where = f" (in TestGroup {tg.name})" if tg.name else ""
            return [
                "an item under alert_rule_test misses required attribute alertname "
                f"at eval_time {prom_duration(round(alert_case.eval_time * 1000))}{where}"
            ]
    store = SeriesStore()
    step_ms = round(tg.interval * 1000) or ctx.eval_ms
    if (problem := _load_series(store, tg.input_series, step_ms)) is not None:
        return [problem]
    engine = PromQLEngine(default_step_ms=ctx.eval_ms)
    query = engine_query_func(engine, store)
    evaluators = _evaluators(tg, ctx, query, store)
    errors, aborted = _step(tg, ctx, evaluators)
    if aborted:
        return errors
    for case in tg.promql_expr_test:
        if (failure := _check_expr(case, query)) is not None:
            errors.append(failure)
    return errors


# --------------------------------------------------------------------------- files


def _parse_test_file(text: str, file: str, outcome: TestOutcome) -> TestFile | None:
    try:
        data, lines = compose_yaml(text, file)
    except ConfigError as exc:
        outcome.errors += [str(p) for p in exc.problems]
        return None
    collector = ProblemCollector(file, lines)
    parsed = validate_at(TestFile, {} if data is None else data, (), collector)
    if collector.problems:
        outcome.errors += [str(p) for p in collector.problems]
        return None
    return parsed


def _load_rules(spec: TestFile, file: str, outcome: TestOutcome) -> list[RuleGroup] | None:
    files, unmatched = expand_rule_paths(spec.rule_files, Path(file).parent)
    outcome.warnings += [f"no file match pattern {p}" for p in unmatched]
    groups: list[RuleGroup] = []
    for rule_file in files:
        found, problems = load_rule_file(rule_file)
        groups += found
        outcome.errors += [str(p) for p in problems]
    return None if outcome.errors else groups


def _eval_order(spec: TestFile, outcome: TestOutcome) -> dict[str, int] | None:
    order: dict[str, int] = {}
    for i, name in enumerate(spec.group_eval_order):
        if name in order:
            outcome.errors.append(f"group name repeated in evaluation order: {name}")
            return None
        order[name] = i
    return order


def run_test_text(text: str, file: str) -> TestOutcome:
    """Run a rule test file's text (``file`` locates it and its relative rule files)."""
    outcome = TestOutcome(file)
    spec = _parse_test_file(text, file, outcome)
    if spec is None:
        return outcome
    groups = _load_rules(spec, file, outcome)
    order = _eval_order(spec, outcome)
    if groups is None or order is None:
        return outcome
    eval_ms = round(spec.evaluation_interval * 1000) or DEFAULT_EVALUATION_INTERVAL_MS
    ctx = _Context(groups, eval_ms, order)
    for tg in spec.tests:
        outcome.errors += run_test_group(tg, ctx)
    return outcome


def run_test_file(path: str | Path) -> TestOutcome:
    """Read and run one rule test file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        return TestOutcome(str(path), errors=[f"{path}: cannot read: {reason}"])
    return run_test_text(text, str(path))
