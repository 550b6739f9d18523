"""Rule files become RuleGroups; every problem is reported with file, path and line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from agent.errors import ConfigError, ConfigProblem
from agent.rulefmt import cli
from agent.rulefmt.loader import expand_rule_paths, load_rule_files, parse_rule_text
from agent.rules.model import AlertingRule, RecordingRule

DATA = Path(__file__).resolve().parents[1] / "data" / "rules"


def _problems(text: str) -> list[ConfigProblem]:
    return parse_rule_text(textwrap.dedent(text).lstrip("\n"), "r.yml")[1]


def _where(problems: list[ConfigProblem]) -> list[tuple[str, int | None]]:
    return [(p.path, p.line) for p in problems]


def test_valid_file_gives_groups_with_durations_in_seconds() -> None:
    """A valid file yields RuleGroups with rules, labels and durations converted to seconds."""
    groups = load_rule_files([DATA / "api.rules.yml"])
    assert [g.name for g in groups] == ["api-records", "api-alerts"]
    records, alerts = groups
    assert records.interval_seconds is None and alerts.interval_seconds == 60.0
    assert records.file == str(DATA / "api.rules.yml")
    assert records.rules[0] == RecordingRule(
        "job:http_errors:rate150s", "sum by (job) (rate(http_errors_total[150s]))"
    )
    down = alerts.rules[0]
    assert isinstance(down, AlertingRule)
    assert (down.name, down.for_seconds, down.keep_firing_for_seconds) == ("InstanceDown", 180, 0)
    assert down.labels == {"severity": "page"}
    assert down.annotations["value"] == "{{ $value }}"
    flapping = alerts.rules[2]
    assert isinstance(flapping, AlertingRule) and flapping.keep_firing_for_seconds == 180.0


def test_group_options_limit_offset_and_labels_are_read() -> None:
    """interval, limit, query_offset and group labels reach the RuleGroup."""
    groups, problems = parse_rule_text(
        textwrap.dedent(
            """\
            groups:
              - name: g
                interval: 1m30s
                limit: 10
                query_offset: 500ms
                labels: {team: core}
                rules:
                  - record: "x:y"
                    expr: "1"
                    labels: {n: 2, ok: true}
            """
        ),
        "r.yml",
    )
    assert problems == []
    group = groups[0]
    assert (group.interval_seconds, group.limit, group.query_offset_seconds) == (90.0, 10, 0.5)
    assert group.labels == {"team": "core"}
    assert group.rules[0].labels == {"n": "2", "ok": "true"}


def test_bad_promql_is_reported_at_the_expr_line() -> None:
    """An expression the parser rejects is reported with the parser's message and its line."""
    problems = _problems(
        """
        groups:
          - name: g
            rules:
              - record: a
                expr: sum(up
              - alert: B
                expr: rate(up) > 0
        """
    )
    assert _where(problems) == [("groups[0].rules[0].expr", 5), ("groups[0].rules[1].expr", 7)]
    assert "could not parse expression: unclosed left parenthesis" in problems[0].message
    assert "expected type matrix" in problems[1].message


def test_unknown_fields_are_errors_at_every_level() -> None:
    """Unknown keys at file, group and rule level are each reported where they are."""
    problems = _problems(
        """
        version: 2
        groups:
          - name: g
            owner: me
            rules:
              - alert: A
                expr: up == 0
                severity: page
        """
    )
    assert _where(problems) == [
        ("version", 1),
        ("groups[0].owner", 4),
        ("groups[0].rules[0].severity", 8),
    ]
    assert problems[2].message == "unknown field 'severity'"


def test_duplicate_and_empty_group_names() -> None:
    """A group name repeated in one file, and a missing name, are both located."""
    problems = _problems(
        """
        groups:
          - name: api
            rules: []
          - rules: []
          - name: api
        """
    )
    assert _where(problems) == [("groups[1].name", 4), ("groups[2].name", 5)]
    assert problems[0].message == "group name must not be empty"
    assert "'api' is repeated in the same file (first at groups[0])" in problems[1].message


def test_rule_kind_and_expr_problems() -> None:
    """Missing expr, both record and alert, neither of them, and recording-only misuse."""
    problems = _problems(
        """
        groups:
          - name: g
            rules:
              - alert: NoExpr
              - record: r
                alert: A
                expr: up
              - expr: up
              - record: "bad name"
                expr: up
                for: 1m
                keep_firing_for: 1m
                annotations: {a: b}
        """
    )
    assert [(p.path, p.line, p.message) for p in problems] == [
        ("groups[0].rules[0].expr", 4, "field 'expr' must be set in rule"),
        ("groups[0].rules[1].alert", 6, "only one of 'record' and 'alert' must be set"),
        ("groups[0].rules[2]", 8, "one of 'record' or 'alert' must be set"),
        ("groups[0].rules[3].record", 9, "invalid recording rule name: bad name"),
        ("groups[0].rules[3].for", 11, "invalid field 'for' in recording rule"),
        (
            "groups[0].rules[3].keep_firing_for",
            12,
            "invalid field 'keep_firing_for' in recording rule",
        ),
        ("groups[0].rules[3].annotations", 13, "invalid field 'annotations' in recording rule"),
    ]


def test_invalid_label_and_annotation_names() -> None:
    """Label names must be Prometheus label names (and not __name__); so must annotation names."""
    problems = _problems(
        """
        groups:
          - name: g
            labels: {"bad.group": x}
            rules:
              - alert: A
                expr: up
                labels:
                  team-name: core
                  __name__: x
                annotations:
                  "1st": y
        """
    )
    assert [(p.path, p.line, p.message) for p in problems] == [
        ("groups[0].labels.bad.group", 3, "invalid label name: bad.group"),
        ("groups[0].rules[0].labels.team-name", 8, "invalid label name: team-name"),
        ("groups[0].rules[0].labels.__name__", 9, "invalid label name: __name__"),
        ("groups[0].rules[0].annotations.1st", 11, "invalid annotation name: 1st"),
    ]


def test_bad_templates_in_alerting_rules() -> None:
    """A label or annotation template that does not parse is an error of the alerting rule."""
    problems = _problems(
        """
        groups:
          - name: g
            rules:
              - alert: A
                expr: up
                labels: {sev: "{{ nope }}"}
                annotations:
                  summary: "{{ $labels.job "
              - record: r
                expr: up
                labels: {ok: "{{ not a template for records"}
        """
    )
    assert _where(problems) == [
        ("groups[0].rules[0].labels.sev", 6),
        ("groups[0].rules[0].annotations.summary", 8),
    ]
    nope = 'function "nope" not defined'
    assert problems[0].message == f"label 'sev': template: __alert_A:1: {nope}"
    assert problems[1].message == "annotation 'summary': template: __alert_A:1: unclosed action"


def test_bad_durations_and_types_do_not_hide_other_problems() -> None:
    """A bad `for` is reported, and the invalid expr beside it is still checked."""
    problems = _problems(
        """
        groups:
          - name: g
            interval: 5
            limit: many
            rules:
              - alert: A
                expr: up ==
                for: 5 minutes
              - just a string
        """
    )
    assert _where(problems) == [
        ("groups[0].interval", 3),
        ("groups[0].limit", 4),
        ("groups[0].rules[0].expr", 7),
        ("groups[0].rules[0].for", 8),
        ("groups[0].rules[1]", 9),
    ]
    assert "not a valid duration" in problems[3].message


def test_yaml_errors_and_non_mapping_files() -> None:
    """Broken YAML, and a file that is not a mapping, are problems with a line."""
    assert _where(_problems("groups: [\n")) == [("", 2)]
    assert [p.message for p in _problems("- a\n")] == ["expected a mapping, got a list"]
    assert _problems("") == [] and _problems("groups:\n") == []


def test_load_rule_files_raises_with_every_problem_of_every_file(tmp_path: Path) -> None:
    """Problems of several files are collected into one ConfigError."""
    (tmp_path / "a.yml").write_text("groups:\n  - name: a\n    rules:\n      - alert: X\n")
    (tmp_path / "b.yml").write_text("groups:\n  - name: b\n    bogus: 1\n")
    with pytest.raises(ConfigError) as info:
        load_rule_files(["a.yml", "b.yml", "missing.yml"], base_dir=tmp_path)
    assert [(Path(p.file).name, p.path, p.line) for p in info.value.problems] == [
        ("missing.yml", "", None),
        ("a.yml", "groups[0].rules[0].expr", 4),
        ("b.yml", "groups[0].bogus", 3),
    ]
    assert str(info.value.problems[1]).endswith(
        "a.yml:4: groups[0].rules[0].expr: field 'expr' must be set in rule"
    )


def test_glob_patterns_expand_sorted_relative_to_base_dir(tmp_path: Path) -> None:
    """`rules/*.yml` is expanded, sorted, relative to base_dir; an empty glob is allowed."""
    rules = tmp_path / "rules"
    rules.mkdir()
    for name in ("b.yml", "a.yml"):
        (rules / name).write_text(f"groups:\n  - name: {name[0]}\n    rules: []\n")
    (rules / "notes.txt").write_text("not rules")
    groups = load_rule_files(["rules/*.yml", "none/*.yml"], base_dir=tmp_path)
    assert [g.name for g in groups] == ["a", "b"]
    files, unmatched = expand_rule_paths(["rules/[ab].yml", "rules/?.yml"], tmp_path)
    assert [Path(f).name for f in files] == ["a.yml", "b.yml"]
    assert unmatched == []


@pytest.mark.parametrize(
    "name",
    [
        "invalid_promql",
        "invalid_unknown_field",
        "invalid_duplicate_group",
        "invalid_missing_expr",
        "invalid_record_and_alert",
        "invalid_label_name",
        "invalid_template",
        "invalid_record_name",
        "invalid_duration",
        "invalid_yaml",
    ],
)
def test_every_invalid_data_file_is_rejected_with_lines(name: str) -> None:
    """Each deliberately invalid rule file has at least one problem, each with a line."""
    with pytest.raises(ConfigError) as info:
        load_rule_files([DATA / f"{name}.rules.yml"])
    assert info.value.problems
    assert all(p.line is not None for p in info.value.problems)


def test_check_rules_output_is_promtool_shaped(capsys: pytest.CaptureFixture[str]) -> None:
    """check rules prints Checking/SUCCESS on stdout, FAILED and problems on stderr, exit 1."""
    good, bad = str(DATA / "api.rules.yml"), str(DATA / "invalid_missing_expr.rules.yml")
    assert cli.check_rules_main([good]) == 0
    assert capsys.readouterr().out == f"Checking {good}\n  SUCCESS: 7 rules found\n\n"
    assert cli.check_rules_main([good, bad]) == 1
    out, err = capsys.readouterr()
    assert out.endswith(f"Checking {bad}\n\n")
    assert err == f"  FAILED:\n{bad}:4: groups[0].rules[0].expr: field 'expr' must be set in rule\n"


def test_check_rules_warns_about_duplicate_rules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two rules with one name and label set are a warning, not a failure (as promtool)."""
    path = tmp_path / "dup.yml"
    rule = "      - record: x\n        expr: up\n        labels: {a: b}\n"
    path.write_text("groups:\n  - name: g\n    rules:\n" + rule + rule)
    assert cli.check_rules_main([str(path)]) == 0
    out, err = capsys.readouterr()
    assert "SUCCESS: 2 rules found" in out
    assert "1 duplicate rule(s) found" in err and "\ta: b" in err


def test_check_rules_without_files_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """No file at all is a usage error (exit 2), not a silent success."""
    assert cli.check_rules_main([]) == 2
    assert "at least one file" in capsys.readouterr().err
