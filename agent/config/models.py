"""The whole configuration file: AgentConfig and its sections."""

from __future__ import annotations

import re
from typing import Annotated, Self

from pydantic import (
    BeforeValidator,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from agent.config.alerting import AlertingConfig
from agent.config.checks import BasicAuth, CheckConfig, TLSConfig
from agent.config.events_kafka import KafkaSinkConfig
from agent.config.gate import GateConfig
from agent.config.scrape import ScrapeConfig
from agent.config.state import StateConfig
from agent.config.types import (
    Duration,
    LabelName,
    PositiveDuration,
    StrictModel,
    listen_address,
    secret_or_file,
)
from agent.config.watch import WatchConfig

# --------------------------------------------------------------------------- the rest


class GlobalConfig(StrictModel):
    scrape_interval: Duration = 15.0
    """Default scrape interval (scraping comes with scrape_configs)."""
    evaluation_interval: Duration = 15.0
    """Default rule evaluation interval."""
    external_labels: dict[LabelName, str] = Field(default_factory=dict)
    """Labels added to alerts and events leaving the agent."""


class TLSServerConfig(StrictModel):
    cert_file: str
    """Server certificate file."""
    key_file: str
    """Server key file."""


class WebConfig(StrictModel):
    """HTTP server security, as Prometheus exporter-toolkit's web configuration."""

    tls_server_config: TLSServerConfig | None = None
    """Serve HTTPS with this certificate."""
    basic_auth_users: dict[str, SecretStr] = Field(default_factory=dict)
    """User → bcrypt hash; when set, every endpoint needs basic auth."""
    enable_lifecycle: bool = False
    """Enable POST /-/reload and /-/quit."""
    external_url: str | None = None
    """URL the agent is reached at, for alert generator links (default: from `listen`)."""

    @field_validator("basic_auth_users")
    @classmethod
    def _bcrypt(cls, v: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for user, hashed in v.items():
            if not hashed.get_secret_value().startswith(("$2a$", "$2b$", "$2y$")):
                raise ValueError(f"password of user {user!r} must be a bcrypt hash")
        return v


class JsonlSinkConfig(StrictModel):
    path: str = "pilot-events.jsonl"
    """Event log file."""
    max_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    """Rotate past this size."""
    backups: int = Field(default=5, ge=0)
    """Rotated files kept."""
    fsync: bool = False
    """fsync after each event."""


class EventsConfig(StrictModel):
    source: str = "pilot-agent"
    """CloudEvents `source` of every event."""
    jsonl: JsonlSinkConfig = Field(default_factory=JsonlSinkConfig)
    """The JSON-lines event log."""
    kafka: KafkaSinkConfig | None = None
    """Deliver every event to a Kafka topic too, spooling to disk while it is unreachable."""


class RuleDatasourceConfig(StrictModel):
    """A Prometheus-compatible query API that rules read instead of the local store."""

    url: str
    """Base URL, e.g. `http://prometheus:9090` (the agent calls `/api/v1/query`)."""
    timeout: Duration = 30.0
    """Timeout of one query."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra request headers."""
    basic_auth: BasicAuth | None = None
    """HTTP basic auth."""
    bearer_token: SecretStr | None = None
    """Bearer token (prefer bearer_token_file)."""
    bearer_token_file: str | None = None
    """File holding the bearer token."""
    tls_config: TLSConfig = Field(default_factory=TLSConfig)
    """TLS settings."""

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError(f"url must be an absolute http:// or https:// URL, got {v!r}")
        return v

    @model_validator(mode="after")
    def _secrets(self) -> Self:
        token = secret_or_file(self.bearer_token, self.bearer_token_file, "bearer_token")
        object.__setattr__(self, "bearer_token", token)
        return self


class StorageConfig(StrictModel):
    """The in-memory time-series store and its query engine."""

    retention: PositiveDuration = 6 * 3600.0
    """How long samples are kept (Prometheus's --storage.tsdb.retention.time)."""
    lookback_delta: PositiveDuration = 300.0
    """How far back an instant selector looks (Prometheus's --query.lookback-delta)."""


class AgentConfig(StrictModel):
    """The whole configuration file."""

    global_: GlobalConfig = Field(default_factory=GlobalConfig, alias="global")
    """Defaults shared with Prometheus's `global` section."""
    listen: Annotated[str, BeforeValidator(listen_address)] = "127.0.0.1:9700"
    """Address of the HTTP server."""
    web: WebConfig = Field(default_factory=WebConfig)
    """HTTP server security, as exporter-toolkit's web config."""
    checks: list[CheckConfig] = Field(default_factory=list)
    """Synthetic checks."""
    events: EventsConfig = Field(default_factory=EventsConfig)
    """Event stream."""
    storage: StorageConfig = Field(default_factory=StorageConfig)
    """In-memory time-series store."""
    watch: WatchConfig = Field(default_factory=WatchConfig)
    """Changes in scraped metrics that become events (default: the pilot's watch list)."""
    # Sections that later capabilities fill in; accepted now so files stay forward compatible.
    scrape_configs: list[ScrapeConfig] = Field(default_factory=list)
    """Scrape jobs, as Prometheus's `scrape_configs`."""
    rule_files: list[str] = Field(default_factory=list)
    """Rule files in Prometheus's format; globs allowed, relative to the config file."""
    rule_datasource: RuleDatasourceConfig | None = None
    """Evaluate rules against this query API instead of the local store."""
    alerting: AlertingConfig = Field(default_factory=AlertingConfig)
    """Alert delivery to Alertmanager, as Prometheus's `alerting` section."""
    state: StateConfig = Field(default_factory=StateConfig)
    """Where alert, check and watch state is kept; leader election."""
    pilot_gate: GateConfig = Field(default_factory=GateConfig)
    """The rollout gate: stages and the criteria that let each go (docs/gate.md)."""

    @property
    def listen_host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return (host.strip("[]") or "0.0.0.0", int(port))
