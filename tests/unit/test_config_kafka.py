"""``events.kafka``: parsing, located errors, secrets from files, producer settings."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from agent.config import parse_config
from agent.config.events_kafka import KafkaSinkConfig
from agent.errors import ConfigError
from agent.events.kafka_client import producer_options
from agent.secrets import collect_secrets

FULL = """\
events:
  kafka:
    bootstrap_servers: ["127.0.0.1:9092", "kafka-2:9093"]
    topic: pilot.events
    client_id: pilot-agent
    compression: zstd
    idempotence: true
    acks: all
    linger: 5ms
    security_protocol: SASL_PLAINTEXT
    sasl: {{mechanism: SCRAM-SHA-512, username: agent, password_file: {pw}}}
    spool:
      directory: spool-dir
      max_bytes: 64MiB
      segment_bytes: 4MiB
      fsync_interval: 0s
"""


def test_full_section_parses_with_secret_from_file(tmp_path: Path) -> None:
    """Every field of the documented shape parses; the SASL password comes from its file."""
    pw = tmp_path / "pw"
    pw.write_text("kafka-secret-9\n")
    cfg = parse_config(FULL.format(pw=pw), "x.yml", env={}).events.kafka
    assert cfg is not None
    assert cfg.bootstrap_servers == ["127.0.0.1:9092", "kafka-2:9093"]
    assert (cfg.compression, cfg.linger, cfg.acks) == ("zstd", 0.005, "all")
    assert cfg.sasl is not None and cfg.sasl.password is not None
    assert cfg.sasl.password.get_secret_value() == "kafka-secret-9"
    assert "kafka-secret-9" not in repr(cfg)
    assert cfg.spool.max_bytes == 64 << 20 and cfg.spool.segment_bytes == 4 << 20
    assert cfg.spool.fsync_interval == 0.0
    assert cfg.spool.path(Path("/etc/pilot")) == Path("/etc/pilot/spool-dir")


def test_kafka_is_off_by_default_and_defaults_match_the_docs() -> None:
    """Without the section there is no Kafka sink; an empty section takes the defaults."""
    assert parse_config("{}", "x.yml", env={}).events.kafka is None
    cfg = parse_config("events: {kafka: {}}", "x.yml", env={}).events.kafka
    assert cfg is not None
    assert (cfg.topic, cfg.compression, cfg.idempotence, cfg.delivery_timeout) == (
        "pilot.events",
        "none",
        True,
        5.0,
    )
    assert (cfg.spool.directory, cfg.spool.max_bytes, cfg.spool.fsync_interval) == (
        "pilot-spool",
        256 << 20,
        1.0,
    )


def test_sasl_password_is_collected_for_the_scrubber() -> None:
    """The SASL password is found by collect_secrets, so logs never show it."""
    text = (
        "events:\n  kafka:\n    security_protocol: SASL_SSL\n"
        "    sasl: {username: u, password: sasl-pass-77}\n"
    )
    assert "sasl-pass-77" in collect_secrets(parse_config(text, "x.yml", env={}))


MISTAKES = """\
events:
  kafka:
    bootstrap_servers: [nohostport]
    topic: "bad topic!"
    compression: snappy
    acks: 1
    linger: 5 ms
    security_protocol: SASL_SSL
    spool:
      max_bytes: 1MiB
      segment_bytes: 1MiB
"""


def test_every_mistake_is_reported_with_its_line() -> None:
    """Each wrong field is one problem located at its path and YAML line."""
    with pytest.raises(ConfigError) as info:
        parse_config(MISTAKES, "x.yml", env={})
    got = {p.path: p.line for p in info.value.problems}
    assert got == {
        "events.kafka.bootstrap_servers[0]": 3,
        "events.kafka.topic": 4,
        "events.kafka.compression": 5,
        "events.kafka.acks": 6,
        "events.kafka.linger": 7,
        "events.kafka.spool": 9,
    }


def test_sasl_protocol_without_credentials_is_an_error() -> None:
    """SASL_* without a sasl section, or sasl with PLAINTEXT, is rejected with a reason."""
    with pytest.raises(ConfigError, match="needs a sasl section"):
        parse_config("events: {kafka: {security_protocol: SASL_SSL}}", "x.yml", env={})
    text = "events: {kafka: {sasl: {username: u, password: p}}}"
    with pytest.raises(ConfigError, match="needs security_protocol SASL_PLAINTEXT or SASL_SSL"):
        parse_config(text, "x.yml", env={})


def test_sasl_password_and_file_are_exclusive_and_one_is_required(tmp_path: Path) -> None:
    """password and password_file together, neither, or an unreadable file are errors."""
    pw = tmp_path / "pw"
    pw.write_text("x")
    base = "events: {kafka: {security_protocol: SASL_PLAINTEXT, sasl: {username: u"
    for sasl, message in [
        (f", password: p, password_file: {pw}", "at most one of password and password_file"),
        ("", "one of password and password_file is required"),
        (", password_file: /nonexistent/pw", "cannot read secret file"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_config(base + sasl + "}}}", "x.yml", env={})


def test_producer_options_carry_acks_compression_and_sasl() -> None:
    """The producer gets acks=all, the codec, linger in ms, and the SASL credentials."""
    cfg = KafkaSinkConfig.model_validate(
        {
            "compression": "lz4",
            "linger": "20ms",
            "idempotence": False,
            "security_protocol": "SASL_PLAINTEXT",
            "sasl": {"mechanism": "SCRAM-SHA-256", "username": "u", "password": "pw-1"},
        }
    )
    opts = producer_options(cfg)
    assert opts["acks"] == "all" and opts["enable_idempotence"] is False
    assert (opts["compression_type"], opts["linger_ms"]) == ("lz4", 20)
    assert opts["sasl_mechanism"] == "SCRAM-SHA-256"
    assert (opts["sasl_plain_username"], opts["sasl_plain_password"]) == ("u", "pw-1")
    assert opts["request_timeout_ms"] == 5000
    assert producer_options(KafkaSinkConfig())["compression_type"] is None


def test_ssl_protocol_gets_a_verifying_context() -> None:
    """SSL and SASL_SSL build a TLS context from tls_config (verifying by default)."""
    opts = producer_options(KafkaSinkConfig(security_protocol="SSL"))
    assert isinstance(opts["ssl_context"], ssl.SSLContext)
    assert opts["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    assert "ssl_context" not in producer_options(KafkaSinkConfig())
