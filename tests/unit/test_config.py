"""Configuration loading: every problem reported with path and line, env and secret files."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import format_duration, load_config, parse_config, parse_duration
from agent.errors import ConfigError

THREE_MISTAKES = """\
global:
  scrape_interval: 15x
checks:
  - name: api
    http:
      url: http://127.0.0.1:8700/health
  - name: orders
    interval: 10s
    http:
      url: ftp://example
  - name: db
    interval: 5s
    timeout: 6s
    postgres:
      target: 127.0.0.1:5432
"""


def test_three_mistakes_give_three_located_problems(tmp_path: Path) -> None:
    """Three different mistakes are all reported, each with its path and YAML line."""
    f = tmp_path / "bad.yml"
    f.write_text(THREE_MISTAKES)
    with pytest.raises(ConfigError) as info:
        load_config(f)
    got = [(p.path, p.line) for p in info.value.problems]
    assert got == [
        ("global.scrape_interval", 2),
        ("checks[1].http.url", 10),
        ("checks[2].timeout", 13),
    ]
    assert all(p.file == str(f) for p in info.value.problems)
    assert str(info.value.problems[0]).startswith(f"{f}:2: global.scrape_interval:")


def test_unknown_field_and_missing_kind_are_reported() -> None:
    """Unknown fields and a check without a kind are each one problem."""
    text = "checks:\n  - name: a\n    bogus: 1\n  - name: b\n    interval: 5s\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, "x.yml")
    messages = {p.path: p.message for p in info.value.problems}
    assert messages["checks[0].bogus"] == "unknown field 'bogus'"
    assert "exactly one of http" in messages["checks[1]"]


def test_duplicate_check_names_are_reported_with_other_errors() -> None:
    """A duplicate name is found even when other fields are invalid too."""
    text = (
        "checks:\n"
        "  - {name: a, http: {url: 'http://x/'}}\n"
        "  - {name: a, interval: nope, http: {url: 'http://x/'}}\n"
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text, "x.yml")
    paths = [p.path for p in info.value.problems]
    assert "checks[1].name" in paths and "checks[1].interval" in paths


def test_invalid_yaml_is_located() -> None:
    """Broken YAML is one problem with its line, not a traceback."""
    with pytest.raises(ConfigError) as info:
        parse_config("checks:\n  - name: [unclosed\n", "x.yml")
    assert len(info.value.problems) == 1
    assert info.value.problems[0].line is not None


def test_env_expansion_and_flow_captures() -> None:
    """${VAR} comes from the environment; ${capture} in a flow is kept for run time."""
    text = """
checks:
  - name: flow
    flow:
      steps:
        - name: login
          url: http://${HOST}/login
          capture: {token: {json: $.access_token}}
        - name: me
          url: http://${HOST}/me
          headers: {Authorization: "Bearer ${token}"}
"""
    cfg = parse_config(text, "x.yml", env={"HOST": "api:80"})
    flow = cfg.checks[0].flow
    assert flow is not None
    assert flow.steps[0].url == "http://api:80/login"
    assert flow.steps[1].headers["Authorization"] == "Bearer ${token}"


def test_unset_env_var_is_an_error_and_dollar_dollar_is_literal() -> None:
    """An unset variable is reported at its location; $$ stands for a literal $."""
    text = "checks:\n  - name: a\n    http: {url: 'http://h/${NOPE}', body: 'cost $$5'}\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, "x.yml", env={})
    assert [p.path for p in info.value.problems] == ["checks[0].http.url"]
    assert "NOPE" in info.value.problems[0].message
    cfg = parse_config(text.replace("${NOPE}", "ok"), "x.yml", env={})
    assert cfg.checks[0].http is not None and cfg.checks[0].http.body == "cost $5"


def test_capture_used_before_it_is_taken_is_an_error() -> None:
    """A flow step may only use values captured by earlier steps."""
    text = """
checks:
  - name: flow
    flow:
      steps:
        - {name: a, url: 'http://h/${id}'}
        - {name: b, url: 'http://h/', capture: {id: {json: $.id}}}
"""
    with pytest.raises(ConfigError) as info:
        parse_config(text, "x.yml", env={})
    assert "captured only by a later step" in info.value.problems[0].message


def test_secret_file_is_read_and_hidden(tmp_path: Path) -> None:
    """*_file secrets are read from disk and never shown by repr."""
    secret = tmp_path / "pw"
    secret.write_text("s3cret-value\n")
    text = (
        f"checks:\n  - name: r\n    redis: {{target: '127.0.0.1:6379', password_file: {secret}}}\n"
    )
    cfg = parse_config(text, "x.yml", env={})
    redis = cfg.checks[0].redis
    assert redis is not None and redis.password is not None
    assert redis.password.get_secret_value() == "s3cret-value"
    assert "s3cret" not in repr(cfg)


def test_missing_secret_file_is_located() -> None:
    """A *_file that cannot be read is a located problem."""
    text = "checks:\n  - name: r\n    redis: {target: '127.0.0.1:6379', password_file: /nope}\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, "x.yml", env={})
    assert info.value.problems[0].path == "checks[0].redis"
    assert "/nope" in info.value.problems[0].message


def test_timeout_defaults_below_interval() -> None:
    """Without a timeout, a check gets one shorter than its interval."""
    cfg = parse_config("checks: [{name: a, interval: 5s, tcp: {target: 'h:1'}}]", "x.yml")
    assert cfg.checks[0].run_timeout == 4.0


def test_reserved_labels_are_rejected() -> None:
    """Check labels may not shadow the labels the agent sets itself."""
    text = "checks: [{name: a, labels: {check: x}, tcp: {target: 'h:1'}}]"
    with pytest.raises(ConfigError):
        parse_config(text, "x.yml")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("15s", 15.0), ("1m30s", 90.0), ("500ms", 0.5), ("2h", 7200.0), ("1d", 86400.0)],
)
def test_durations_parse_like_prometheus(text: str, seconds: float) -> None:
    """Prometheus duration strings parse to seconds and render back."""
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("bad", ["", "15", "1.5s", "s", "-1s", "1m1h"])
def test_bad_durations_are_rejected(bad: str) -> None:
    """Anything but a Prometheus duration is refused."""
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_scrape_jobs_are_validated_with_locations() -> None:
    """Duplicate job names and a timeout longer than the interval are located problems."""
    text = """
global: {scrape_interval: 10s}
scrape_configs:
  - job_name: api
    static_configs: [{targets: ['127.0.0.1:8700']}]
  - job_name: api
    scrape_timeout: 15s
    relabel_configs: [{action: hashmod, source_labels: [instance]}]
"""
    with pytest.raises(ConfigError) as info:
        parse_config(text, "x.yml")
    got = {(p.path, p.line) for p in info.value.problems}
    assert ("scrape_configs[1].job_name", 6) in got
    assert any(
        p.path.startswith("scrape_configs[1].relabel_configs[0]") for p in info.value.problems
    )
    fixed = text.replace("job_name: api\n    scrape", "job_name: web\n    scrape").replace(
        "relabel_configs: [{action: hashmod, source_labels: [instance]}]", "metrics_path: /m"
    )
    with pytest.raises(ConfigError) as info:
        parse_config(fixed, "x.yml")
    assert [(p.path, p.line) for p in info.value.problems] == [
        ("scrape_configs[1].scrape_timeout", 7)
    ]
