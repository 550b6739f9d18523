"""The `alerting:` section: Prometheus's shape, defaults, located errors, secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from agent.config import parse_config
from agent.errors import ConfigError
from agent.notify.targets import resolve_targets
from agent.secrets import collect_secrets

FULL = """\
alerting:
  resend_delay: 30s
  notification_queue_capacity: 500
  alert_relabel_configs:
    - source_labels: [severity]
      regex: debug
      action: drop
  alertmanagers:
    - static_configs:
        - targets: ["127.0.0.1:9093", "am-2:9093"]
          labels: {dc: tw}
      scheme: https
      path_prefix: /alertmanager/
      timeout: 5s
      api_version: v2
      basic_auth: {username: agent, password: hunter2-basic}
      tls_config: {insecure_skip_verify: true}
      relabel_configs:
        - source_labels: [__address__]
          regex: am-2:.*
          action: drop
    - static_configs: [{targets: ["127.0.0.1:9094"]}]
      authorization: {credentials: tok-bearer-42}
"""


def test_full_section_parses_into_prometheus_shape() -> None:
    """Every field of the example parses with the values and defaults Prometheus has."""
    cfg = parse_config(FULL, "agent.yml").alerting
    assert (cfg.resend_delay, cfg.notification_queue_capacity) == (30.0, 500)
    assert cfg.alert_relabel_configs[0].action == "drop"
    first, second = cfg.alertmanagers
    assert first.scheme == "https" and first.timeout == 5.0
    assert first.alerts_path == "/alertmanager/api/v2/alerts"
    assert first.static_configs[0].labels == {"dc": "tw"}
    assert second.authorization is not None and second.authorization.type == "Bearer"
    assert (second.scheme, second.timeout, second.alerts_path) == ("http", 10.0, "/api/v2/alerts")


def test_defaults_without_the_section() -> None:
    """No `alerting:` means resend every 1m, a 10000-alert queue and no Alertmanager."""
    cfg = parse_config("{}", "agent.yml").alerting
    assert (cfg.resend_delay, cfg.notification_queue_capacity) == (60.0, 10000)
    assert cfg.alertmanagers == [] and cfg.alert_relabel_configs == []


def test_targets_are_relabelled_into_alert_urls() -> None:
    """Relabelling drops a target; the rest become scheme://address/prefix/api/v2/alerts."""
    cfg = parse_config(FULL, "agent.yml").alerting
    assert [t.url for t in resolve_targets(cfg)] == [
        "https://127.0.0.1:9093/alertmanager/api/v2/alerts",
        "http://127.0.0.1:9094/api/v2/alerts",
    ]


def test_relabelling_can_rewrite_path_and_duplicates_collapse() -> None:
    """__alerts_path__ and __scheme__ can be rewritten; an Alertmanager listed twice is one."""
    text = """\
alerting:
  alertmanagers:
    - static_configs: [{targets: ["a:1", "a:1"]}, {targets: ["a:1"]}]
      relabel_configs:
        - {target_label: __alerts_path__, replacement: /prefix/api/v2/alerts}
        - {target_label: __scheme__, replacement: https}
"""
    targets = resolve_targets(parse_config(text, "agent.yml").alerting)
    assert [t.url for t in targets] == ["https://a:1/prefix/api/v2/alerts"]


def test_api_version_v1_is_a_located_error() -> None:
    """api_version v1 is refused with its path and line, like any other mistake."""
    text = (
        "alerting:\n"
        "  alertmanagers:\n"
        "    - static_configs: [{targets: ['am:9093']}]\n"
        "      api_version: v1\n"
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text, "agent.yml")
    (problem,) = info.value.problems
    assert (problem.path, problem.line) == ("alerting.alertmanagers[0].api_version", 4)
    assert "v1 is no longer supported" in problem.message


def test_every_mistake_is_reported_with_its_path() -> None:
    """A bad timeout, target, scheme, capacity and an unknown field are each one located problem."""
    text = """\
alerting:
  notification_queue_capacity: 0
  resend_delay: soon
  alertmanagers:
    - static_configs: [{targets: ["no-port"]}]
      timeout: 10x
      scheme: ftp
      bogus: 1
    - basic_auth: {username: u, password: p}
      authorization: {credentials: t}
"""
    with pytest.raises(ConfigError) as info:
        parse_config(text, "agent.yml")
    got = {(p.path, p.line) for p in info.value.problems}
    assert got == {
        ("alerting.notification_queue_capacity", 2),
        ("alerting.resend_delay", 3),
        ("alerting.alertmanagers[0].static_configs[0].targets[0]", 5),
        ("alerting.alertmanagers[0].timeout", 6),
        ("alerting.alertmanagers[0].scheme", 7),
        ("alerting.alertmanagers[0].bogus", 8),
        ("alerting.alertmanagers[1]", 9),
    }
    assert str(info.value).startswith("agent.yml:2: alerting.notification_queue_capacity:")


def test_zero_timeout_is_refused() -> None:
    """A zero timeout would fail every POST at once: it is a config error."""
    text = "alerting:\n  alertmanagers:\n    - timeout: 0s\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, "agent.yml")
    assert [p.path for p in info.value.problems] == ["alerting.alertmanagers[0].timeout"]


def test_secrets_are_collected_and_files_read(tmp_path: Path) -> None:
    """Passwords and credentials (inline or from files) reach the log scrubber, never repr."""
    (tmp_path / "pw").write_text("from-file-pass\n")
    (tmp_path / "tok").write_text("from-file-token\n")
    text = FULL + (
        f"    - basic_auth: {{username: u, password_file: {tmp_path / 'pw'}}}\n"
        f"    - authorization: {{credentials_file: {tmp_path / 'tok'}}}\n"
    )
    cfg = parse_config(text, "agent.yml")
    found = collect_secrets(cfg)
    wanted = {"hunter2-basic", "tok-bearer-42", "from-file-pass", "from-file-token"}
    assert wanted <= found
    assert not any(secret in repr(cfg.alerting) for secret in wanted)


def test_missing_secret_file_is_located() -> None:
    """A credentials_file that cannot be read is reported at its Alertmanager."""
    text = (
        "alerting:\n  alertmanagers:\n    - authorization: {credentials_file: /nonexistent/token}\n"
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text, "agent.yml")
    (problem,) = info.value.problems
    assert problem.path == "alerting.alertmanagers[0].authorization"
    assert "cannot read secret file" in problem.message


def test_invalid_relabelled_targets_are_skipped_and_logged() -> None:
    """Relabelled to credentials in the address, a path in it or an unknown scheme: skipped."""
    text = """\
alerting:
  alertmanagers:
    - static_configs: [{targets: ["a:1"]}]
      relabel_configs: [{target_label: __address__, replacement: "u:p@a:1"}]
    - static_configs: [{targets: ["b:1"]}]
      relabel_configs: [{target_label: __address__, replacement: "b:1/x"}]
    - static_configs: [{targets: ["c:1"]}]
      relabel_configs: [{target_label: __scheme__, replacement: ftp}]
    - static_configs: [{targets: ["d:1"]}]
"""
    with capture_logs() as logs:
        targets = resolve_targets(parse_config(text, "agent.yml").alerting)
    assert [t.url for t in targets] == ["http://d:1/api/v2/alerts"]
    invalid = [e for e in logs if e["event"] == "alertmanager_target_invalid"]
    assert [e["alertmanagers"] for e in invalid] == [0, 1, 2]
    assert invalid[0]["address"] == "a:1"  # credentials never reach the log
