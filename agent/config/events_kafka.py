"""``events.kafka``: delivery of the event stream to a Kafka topic, with a disk spool.

>>> cfg = KafkaSinkConfig.model_validate({"topic": "pilot.events", "linger": "5ms"})
>>> cfg.linger, cfg.spool.max_bytes
(0.005, 268435456)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator

from agent.config.checks import TLSConfig
from agent.config.scrape import ByteSize
from agent.config.types import Duration, HostPort, PositiveDuration, StrictModel, secret_or_file

_TOPIC_RE = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")
_MIN_SEGMENT = 4096


class KafkaSaslConfig(StrictModel):
    """SASL authentication with the brokers (needs a `SASL_*` security_protocol)."""

    mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    """SASL mechanism."""
    username: str
    """User name."""
    password: SecretStr | None = None
    """Password (prefer password_file)."""
    password_file: str | None = None
    """File holding the password."""

    @model_validator(mode="after")
    def _resolve(self) -> Self:
        password = secret_or_file(self.password, self.password_file, "password")
        if password is None:
            raise ValueError("one of password and password_file is required")
        object.__setattr__(self, "password", password)
        return self


class KafkaSpoolConfig(StrictModel):
    """The on-disk spool that holds events while the brokers cannot take them."""

    directory: str = "pilot-spool"
    """Spool directory; a relative path is relative to the config file's directory."""
    max_bytes: ByteSize = 256 * 1024 * 1024
    """Bound of the spool; when full, the oldest segments are dropped and counted."""
    segment_bytes: ByteSize = 16 * 1024 * 1024
    """Size of one segment file (the unit in which old events are dropped)."""
    fsync_interval: Duration = 1.0
    """How often spooled events are synced to disk; `0s` syncs every write."""

    @model_validator(mode="after")
    def _sizes(self) -> Self:
        if self.segment_bytes < _MIN_SEGMENT:
            raise ValueError(f"segment_bytes must be at least {_MIN_SEGMENT}")
        if self.max_bytes < 2 * self.segment_bytes:
            raise ValueError("max_bytes must be at least twice segment_bytes")
        return self

    def path(self, base_dir: Path) -> Path:
        """The spool directory, resolved against ``base_dir`` when relative.

        >>> KafkaSpoolConfig(directory="s").path(Path("/etc/pilot"))
        PosixPath('/etc/pilot/s')
        """
        directory = Path(self.directory)
        return directory if directory.is_absolute() else base_dir / directory


class KafkaSinkConfig(StrictModel):
    """Kafka delivery of every event (key: the event's subject; value: CloudEvents JSON)."""

    bootstrap_servers: list[HostPort] = Field(default_factory=lambda: ["127.0.0.1:9092"])
    """Brokers to bootstrap from (host:port)."""
    topic: str = "pilot.events"
    """Topic the events are produced to."""
    client_id: str = "pilot-agent"
    """Client id the brokers see."""
    compression: Literal["none", "gzip", "lz4", "zstd"] = "none"
    """Batch compression."""
    idempotence: bool = True
    """Idempotent producer (the broker drops retried duplicates and out-of-order writes)."""
    acks: Literal["all"] = "all"
    """Acknowledgements a write needs; always `all`."""
    linger: Duration = 0.005
    """How long the producer waits to fill a batch."""
    delivery_timeout: PositiveDuration = 5.0
    """A batch not acknowledged within this goes to the spool and the broker counts as down."""
    buffer_events: int = Field(default=10_000, ge=1)
    """Events held in memory before they overflow into the spool."""
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    """Transport security."""
    sasl: KafkaSaslConfig | None = None
    """SASL credentials (with `SASL_PLAINTEXT` or `SASL_SSL`)."""
    tls_config: TLSConfig = Field(default_factory=TLSConfig)
    """TLS settings (with `SSL` or `SASL_SSL`)."""
    spool: KafkaSpoolConfig = Field(default_factory=KafkaSpoolConfig)
    """The disk spool."""

    @field_validator("bootstrap_servers")
    @classmethod
    def _servers(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one bootstrap server is required")
        return v

    @field_validator("topic")
    @classmethod
    def _topic(cls, v: str) -> str:
        if not _TOPIC_RE.match(v) or v in (".", ".."):
            raise ValueError(f"invalid topic name {v!r} (letters, digits, '.', '_', '-')")
        return v

    @model_validator(mode="after")
    def _security(self) -> Self:
        uses_sasl = self.security_protocol.startswith("SASL_")
        if uses_sasl and self.sasl is None:
            raise ValueError(f"security_protocol {self.security_protocol} needs a sasl section")
        if not uses_sasl and self.sasl is not None:
            raise ValueError("sasl needs security_protocol SASL_PLAINTEXT or SASL_SSL")
        return self
