"""The `state` section: defaults, located mistakes, secrets, and the stores it builds."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import parse_config
from agent.errors import ConfigError
from agent.secrets import collect_secrets
from agent.state.factory import build_lease, build_state_store
from agent.state.memory import MemoryStateStore
from agent.state.redis import RedisStateStore

MISTAKES = """\
state:
  redis:
    url: http://cache:6379
  snapshot_interval: 0s
  leader_election:
    enabled: true
    lease_ttl: 10s
    renew_interval: 5s
"""


def _problems(text: str) -> list[tuple[str, int | None, str]]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "agent.yml")
    return [(p.path, p.line, p.message) for p in info.value.problems]


def test_defaults_are_an_in_memory_store_without_election() -> None:
    """No state section: memory, no snapshot, election off with 15s/5s timing."""
    state = parse_config("{}", "agent.yml").state
    assert state.redis is None and state.snapshot_file is None
    election = state.leader_election
    assert (election.enabled, election.lease_ttl, election.renew_interval) == (False, 15.0, 5.0)


def test_mistakes_are_located_with_path_and_line() -> None:
    """A bad URL, a zero interval and renew_interval >= lease_ttl / 2 are each located."""
    got = _problems(MISTAKES)
    assert [(path, line) for path, line, _ in got] == [
        ("state.redis.url", 3),
        ("state.snapshot_interval", 4),
        ("state.leader_election.renew_interval", 8),
    ]
    assert "less than lease_ttl / 2" in got[2][2]


def test_election_needs_redis_and_snapshot_is_memory_only() -> None:
    """leader_election without redis, and snapshot_file with redis, are refused."""
    got = _problems("state:\n  leader_election:\n    enabled: true\n")
    assert got[0][:2] == ("state.leader_election", 2)
    text = "state:\n  redis: {url: 'redis://r:6379/0'}\n  snapshot_file: s.json\n"
    assert _problems(text)[0][:2] == ("state.snapshot_file", 3)


def test_password_file_is_read_and_collected_as_a_secret(tmp_path: Path) -> None:
    """password_file becomes the password, and the scrubber learns it (and URL passwords)."""
    secret = tmp_path / "pw"
    secret.write_text("redis-pa55word\n")
    cfg = parse_config(
        f"state:\n  redis:\n    url: 'rediss://u:url-pa55@r:6380/1'\n    password_file: {secret}\n",
        "agent.yml",
    )
    redis = cfg.state.redis
    assert redis is not None and redis.tls
    assert redis.password is not None and redis.password.get_secret_value() == "redis-pa55word"
    assert {"redis-pa55word", "url-pa55"} <= collect_secrets(cfg)
    assert "redis-pa55word" not in repr(cfg)
    assert _problems(f"state:\n  redis:\n    password: x\n    password_file: {secret}\n")[0][
        2
    ].startswith("at most one of password and password_file")


def test_factory_builds_memory_or_redis_and_resolves_the_snapshot_path(tmp_path: Path) -> None:
    """snapshot_file is relative to the config directory; redis gives the Redis store."""
    memory = build_state_store(
        parse_config("state: {snapshot_file: s.json}", "a.yml").state, base_dir=tmp_path
    )
    assert isinstance(memory, MemoryStateStore) and memory.path == tmp_path / "s.json"
    shared = parse_config(
        "state:\n  redis: {}\n  leader_election: {enabled: true, identity: a}\n", "a.yml"
    ).state
    assert isinstance(build_state_store(shared, base_dir=tmp_path), RedisStateStore)
    lease = build_lease(shared)
    assert lease is not None and lease.identity == "a"
