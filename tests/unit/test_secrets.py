"""Secrets found in the config are scrubbed from anything the agent writes."""

from __future__ import annotations

from pathlib import Path

from agent.config import parse_config
from agent.secrets import REDACTED, Scrubber, collect_secrets


def test_collects_secret_fields_headers_and_url_passwords(tmp_path: Path) -> None:
    """SecretStr fields, credential headers and URL passwords are all collected."""
    (tmp_path / "tok").write_text("token-from-file")
    text = f"""
checks:
  - name: a
    http:
      url: https://user:urlpass99@api.example/health
      headers: {{Authorization: "Bearer hdr-token-1", Accept: json}}
  - name: b
    http: {{url: 'http://h/', bearer_token_file: {tmp_path / "tok"}}}
  - name: r
    redis: {{target: 'h:6379', password: redis-pass}}
"""
    secrets = collect_secrets(parse_config(text, "x.yml", env={}))
    assert {"urlpass99", "hdr-token-1", "token-from-file", "redis-pass"} <= secrets
    assert "json" not in secrets


def test_scrubber_replaces_values_nested_and_sensitive_keys() -> None:
    """Known values, URL credentials and sensitive header keys are redacted anywhere."""
    s = Scrubber({"hunter22"})
    out = s.scrub(
        {
            "event": "x hunter22 y",
            "request": {"headers": {"Authorization": "Basic abc", "Accept": "json"}},
            "list": ["https://u:pw@host/path", ("hunter22",)],
        }
    )
    assert out["event"] == f"x {REDACTED} y"
    assert out["request"]["headers"] == {"Authorization": REDACTED, "Accept": "json"}
    assert out["list"] == [f"https://{REDACTED}@host/path", (REDACTED,)]
