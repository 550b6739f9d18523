"""The promtool-format rule test runner: semantics, comparison rules and output."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from agent.rulefmt import cli
from agent.rulefmt.unittest import almost_equal, run_test_file, run_test_text
from agent.rulefmt.unittest_format import go_duration, go_float, go_quote, prom_duration

DATA = Path(__file__).resolve().parents[1] / "data" / "rules"

RULES = """\
groups:
  - name: g
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: Down
        expr: up == 0
        for: 2m
        labels: {severity: page}
        annotations:
          summary: "{{ $labels.job }} is down ({{ $value }})"
"""


def _run(tmp_path: Path, body: str) -> list[str]:
    (tmp_path / "rules.yml").write_text(RULES)
    test = tmp_path / "test.yml"
    test.write_text("rule_files: [rules.yml]\n" + textwrap.dedent(body))
    return run_test_file(test).errors


ALERT_TEST = """\
tests:
  - name: down
    interval: 1m
    input_series:
      - series: 'up{job="api"}'
        values: '0x5'
    alert_rule_test:
      - eval_time: 2m
        alertname: Down
        exp_alerts:
          - exp_labels: {severity: page, job: api}
            exp_annotations: {summary: "api is down (0)"}
"""


def test_alert_test_passes_when_the_firing_alerts_match(tmp_path: Path) -> None:
    """An alert firing at eval_time with the expected labels and annotations passes."""
    assert _run(tmp_path, ALERT_TEST) == []


def test_alert_test_fails_while_the_alert_is_only_pending(tmp_path: Path) -> None:
    """At 1m the alert is pending (for: 2m): only firing alerts count, so the test fails."""
    errors = _run(tmp_path, ALERT_TEST.replace("eval_time: 2m", "eval_time: 1m"))
    assert errors == [
        "    name: down,\n"
        "    alertname: Down, time: 1m, \n"
        "        exp:[\n"
        "            0:\n"
        '              Labels:{alertname="Down", job="api", severity="page"}\n'
        '              Annotations:{summary="api is down (0)"}\n'
        "            ], \n"
        "        got:[]"
    ]


def test_alert_checked_between_ticks_uses_the_last_evaluation(tmp_path: Path) -> None:
    """eval_time 1m59s is judged on the 1m evaluation, where the alert is still pending."""
    errors = _run(tmp_path, ALERT_TEST.replace("eval_time: 2m", "eval_time: 1m59s"))
    assert len(errors) == 1 and "time: 1m59s" in errors[0]


def test_unexpected_firing_alert_fails(tmp_path: Path) -> None:
    """exp_alerts empty while the alert fires is a failure listing what fired."""
    body = ALERT_TEST.split("        exp_alerts:")[0] + "        exp_alerts: []\n"
    errors = _run(tmp_path, body)
    assert len(errors) == 1
    assert "exp:[], \n        got:[\n" in errors[0]


EXPR_TEST = """\
tests:
  - interval: 1m
    input_series:
      - series: 'up{job="api", instance="a"}'
        values: '1 1 1'
      - series: 'up{job="api", instance="b"}'
        values: '1 0 _'
      - series: 'up{job="web", instance="c"}'
        values: '1 1 stale'
    promql_expr_test:
      - expr: job:up:sum
        eval_time: 2m
        exp_samples:
          - labels: 'job:up:sum{job="api"}'
            value: 1
      - expr: up{job="web"}
        eval_time: 2m
      - expr: 0.1 + 0.2
        eval_time: 0s
        exp_samples:
          - labels: '{}'
            value: 0.3
"""


def test_expr_test_passes_with_records_gaps_staleness_and_scalars(tmp_path: Path) -> None:
    """Recorded series, a gap (`_`), a stale series (expected empty) and a scalar all match."""
    assert _run(tmp_path, EXPR_TEST) == []


def test_expr_test_fails_on_a_wrong_value_with_promtool_rendering(tmp_path: Path) -> None:
    """A wrong expected value fails; both sides are printed as promtool prints them."""
    errors = _run(tmp_path, EXPR_TEST.replace("            value: 1\n", "            value: 2\n"))
    assert errors == [
        '    expr: "job:up:sum", time: 2m,\n'
        '        exp: {__name__="job:up:sum", job="api"} 2E+00\n'
        '        got: {__name__="job:up:sum", job="api"} 1E+00'
    ]


def test_expr_test_fails_on_wrong_labels_and_reports_query_errors(tmp_path: Path) -> None:
    """Labels must match exactly; an expression that does not parse is reported as an error."""
    body = EXPR_TEST.replace('job:up:sum{job="api"}', 'job:up:sum{job="api", x="y"}')
    body = body.replace("expr: 0.1 + 0.2", "expr: sum(up")
    errors = _run(tmp_path, body)
    assert len(errors) == 2
    assert 'exp: {__name__="job:up:sum", job="api", x="y"} 1E+00' in errors[0]
    assert errors[1].startswith('    expr: "sum(up", time: 0s, err: ')


def test_rule_evaluation_error_stops_the_test_group(tmp_path: Path) -> None:
    """A rule that fails to evaluate ends the group with promtool's rule/time/err line."""
    (tmp_path / "rules.yml").write_text(
        "groups:\n  - name: g\n    rules:\n      - record: x\n        expr: '{__name__=~\"a|b\"}'\n"
    )
    (tmp_path / "t.yml").write_text(
        "rule_files: [rules.yml]\ntests:\n  - interval: 1m\n    input_series:\n"
        "      - {series: a, values: '1 1'}\n      - {series: b, values: '1 1'}\n"
        "    promql_expr_test:\n      - {expr: x, eval_time: 1m}\n"
    )
    errors = run_test_file(tmp_path / "t.yml").errors
    assert errors == [
        "    rule: x, time: 0s, err: vector contains metrics with the same labelset "
        "after applying rule labels"
    ]


def test_file_level_problems_are_reported(tmp_path: Path) -> None:
    """Unknown fields (with line), repeated group_eval_order names and missing alertname fail."""
    unknown = run_test_text("rule_files: []\nbogus: 1\n", str(tmp_path / "t.yml"))
    assert unknown.errors == [f"{tmp_path / 't.yml'}:2: bogus: unknown field 'bogus'"]
    repeated = run_test_text("group_eval_order: [a, a]\n", str(tmp_path / "t.yml"))
    assert repeated.errors == ["group name repeated in evaluation order: a"]
    no_name = run_test_text(
        "tests:\n  - name: t\n    alert_rule_test: [{eval_time: 1m}]\n", str(tmp_path / "t.yml")
    )
    assert no_name.errors == [
        "an item under alert_rule_test misses required attribute alertname "
        "at eval_time 1m (in TestGroup t)"
    ]


def test_unmatched_rule_file_pattern_is_a_warning(tmp_path: Path) -> None:
    """A rule_files pattern matching nothing warns and the tests still run."""
    outcome = run_test_text(
        "rule_files: ['nothing/*.yml']\ntests:\n  - promql_expr_test:\n"
        "      - {expr: vector(1), eval_time: 0s, exp_samples: [{labels: '{}', value: 1}]}\n",
        str(tmp_path / "t.yml"),
    )
    assert outcome.passed
    assert outcome.warnings == [f"no file match pattern {tmp_path / 'nothing/*.yml'}"]


def test_invalid_input_series_is_reported(tmp_path: Path) -> None:
    """A series value the expanding notation cannot read fails the test group."""
    outcome = run_test_text(
        "tests:\n  - input_series: [{series: up, values: '1 x2'}]\n", str(tmp_path / "t.yml")
    )
    assert len(outcome.errors) == 1 and "invalid input series 'up' '1 x2'" in outcome.errors[0]


def test_test_rules_output_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    """test rules prints promtool's Unit Testing/SUCCESS lines; a failing file exits 1."""
    good, bad = str(DATA / "pass_keep_firing.test.yml"), str(DATA / "fail_wrong_value.test.yml")
    assert cli.test_rules_main([good]) == 0
    assert capsys.readouterr().out == f"Unit Testing:  {good}\n  SUCCESS\n\n"
    assert cli.test_rules_main([good, bad]) == 1
    out, err = capsys.readouterr()
    assert out.endswith(f"Unit Testing:  {bad}\n\n")
    assert err.startswith('  FAILED:\n    expr: "job:http_errors:rate150s", time: 5m,\n')
    assert cli.test_rules_main([]) == 2


def test_values_compare_almost_equal() -> None:
    """Values match within Prometheus's relative epsilon; NaN matches NaN."""
    assert almost_equal(0.1 + 0.2, 0.3) and almost_equal(float("nan"), float("nan"))
    assert not almost_equal(1.0, 1.001) and not almost_equal(0.0, 1e-300)


def test_go_renderings() -> None:
    """Floats, durations and quoting render as Go and Prometheus render them."""
    assert [go_float(v) for v in (1.0, 0.5, -1234.5, 1e21, 3e-7, float("-inf"))] == [
        "1E+00",
        "5E-01",
        "-1.2345E+03",
        "1E+21",
        "3E-07",
        "-Inf",
    ]
    assert [prom_duration(ms) for ms in (0, 500, 90_000, 86_400_000, 604_800_000)] == [
        "0s",
        "500ms",
        "1m30s",
        "1d",
        "1w",
    ]
    assert [go_duration(ms) for ms in (0, 250, 60_000, 3_661_500)] == [
        "0s",
        "250ms",
        "1m0s",
        "1h1m1.5s",
    ]
    assert go_quote('a"b\n\x01') == '"a\\"b\\n\\x01"'
