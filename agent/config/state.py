"""The ``state`` section: where alert, check and watch state outlives the process.

Without ``redis`` the state lives in memory (optionally snapshotted to a file so
one machine survives restarts); with ``redis`` it is shared, which is what lets
a standby take over, and ``leader_election`` picks the one agent doing leader-only
work::

    state:
      redis:
        url: rediss://redis:6380/0
        password_file: /run/secrets/redis
      leader_election:
        enabled: true
        lease_ttl: 15s
        renew_interval: 5s

>>> StateConfig.model_validate({"snapshot_file": "state.json"}).snapshot_interval
10.0
"""

from __future__ import annotations

import re
from typing import Self

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from agent.config.checks import TLSConfig
from agent.config.types import PositiveDuration, StrictModel, secret_or_file

_URL_RE = re.compile(r"^rediss?://[^/\s]+(/\d+)?/?$")


class RedisStateConfig(StrictModel):
    """A Redis server holding the shared state (standalone Redis 6 or later)."""

    url: str = "redis://127.0.0.1:6379/0"
    """`redis://host:port/db`, or `rediss://` for TLS."""
    username: str | None = None
    """ACL user name (Redis 6+)."""
    password: SecretStr | None = None
    """Password (prefer password_file)."""
    password_file: str | None = None
    """File holding the password."""
    key_prefix: str = "pilot-agent:"
    """Prefix of every key the agent writes."""
    tls_config: TLSConfig = Field(default_factory=TLSConfig)
    """TLS settings for `rediss://` URLs."""
    timeout: PositiveDuration = 2.0
    """Connect and command timeout; also how long start-up waits for state."""

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not _URL_RE.match(v):
            raise ValueError(f"url must look like redis://host:port/db or rediss://..., got {v!r}")
        return v

    @model_validator(mode="after")
    def _secrets(self) -> Self:
        password = secret_or_file(self.password, self.password_file, "password")
        object.__setattr__(self, "password", password)
        return self

    @property
    def tls(self) -> bool:
        return self.url.startswith("rediss://")


class LeaderElectionConfig(StrictModel):
    """One agent of several holds a lease in Redis and does the leader-only work."""

    enabled: bool = False
    """Take part in leader election (requires `state.redis`)."""
    lease_ttl: PositiveDuration = 15.0
    """How long a lease lives without renewal; a dead leader is replaced within twice this."""
    renew_interval: PositiveDuration = 5.0
    """How often the leader renews and a standby polls; less than lease_ttl / 2."""
    identity: str | None = None
    """Name of this agent in the lease; default (or empty): hostname and process id."""

    @field_validator("renew_interval")
    @classmethod
    def _below_half_ttl(cls, v: float, info: ValidationInfo) -> float:
        ttl = info.data.get("lease_ttl")
        if ttl is not None and not v < ttl / 2:
            raise ValueError(f"renew_interval must be less than lease_ttl / 2 ({ttl / 2:g}s)")
        return v


class StateConfig(StrictModel):
    """Where alert, check and watch state is kept across restarts and between agents."""

    redis: RedisStateConfig | None = None
    """Shared state in Redis; absent: an embedded in-memory store."""
    snapshot_file: str | None = None
    """In-memory store only: a JSON snapshot read at start (relative to the config file)."""
    snapshot_interval: PositiveDuration = 10.0
    """How often a changed in-memory state is written to snapshot_file."""
    leader_election: LeaderElectionConfig = Field(default_factory=LeaderElectionConfig)
    """Leader election among agents sharing state.redis."""

    @field_validator("snapshot_file")
    @classmethod
    def _memory_only(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None and info.data.get("redis") is not None:
            raise ValueError("snapshot_file applies to the in-memory store only; drop it or redis")
        return v

    @field_validator("leader_election")
    @classmethod
    def _needs_redis(cls, v: LeaderElectionConfig, info: ValidationInfo) -> LeaderElectionConfig:
        if v.enabled and "redis" in info.data and info.data["redis"] is None:
            raise ValueError("leader_election needs state.redis (the lease lives in Redis)")
        return v
