"""The synthetic check part of the configuration: one model per kind, and CheckConfig."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Self

from pydantic import (
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from agent.config.types import (
    CHECK_NAME_RE,
    RESERVED_LABELS,
    Duration,
    HostPort,
    LabelName,
    Regex,
    StrictModel,
    secret_or_file,
)
from agent.model import CHECK_KINDS

# --------------------------------------------------------------------------- check kinds


class TLSConfig(StrictModel):
    """Client-side TLS settings, as Prometheus's ``tls_config``."""

    ca_file: str | None = None
    """CA certificate file to verify the server with."""
    cert_file: str | None = None
    """Client certificate file (with key_file)."""
    key_file: str | None = None
    """Client key file (with cert_file)."""
    server_name: str | None = None
    """Server name for SNI and verification."""
    insecure_skip_verify: bool = False
    """Skip certificate verification."""

    @model_validator(mode="after")
    def _pair(self) -> Self:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be set together")
        return self


class BasicAuth(StrictModel):
    username: str
    """User name."""
    password: SecretStr | None = None
    """Password (prefer password_file)."""
    password_file: str | None = None
    """File holding the password."""

    @model_validator(mode="after")
    def _resolve(self) -> Self:
        object.__setattr__(
            self, "password", secret_or_file(self.password, self.password_file, "password")
        )
        return self


class HttpExpect(StrictModel):
    """Assertions on an HTTP answer. An empty ``status`` list means any 2xx."""

    status: list[Annotated[int, Field(ge=100, le=599)]] = Field(default_factory=list)
    """Accepted status codes; empty means any 2xx."""
    body_regex: Regex | None = None
    """The body must match this regex."""
    body_not_regex: Regex | None = None
    """The body must not match this regex."""
    json_: dict[str, Any] = Field(default_factory=dict, alias="json")
    """JSONPath → expected JSON value, e.g. `{$.status: ready}`."""
    headers: dict[str, Regex] = Field(default_factory=dict)
    """Header name → regex its value must match."""
    max_duration: Duration | None = None
    """Fail when the request takes longer."""

    @field_validator("json_")
    @classmethod
    def _paths(cls, v: dict[str, Any]) -> dict[str, Any]:
        for path in v:
            if not path.startswith("$"):
                raise ValueError(f"JSONPath {path!r} must start with '$'")
        return v


class HttpRequest(StrictModel):
    """One HTTP request with its assertions (an ``http`` check, or one flow step)."""

    url: str
    """Absolute http(s) URL."""
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    """HTTP method."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Request headers."""
    body: str | None = None
    """Request body."""
    basic_auth: BasicAuth | None = None
    """HTTP basic auth."""
    bearer_token: SecretStr | None = None
    """Bearer token (prefer bearer_token_file)."""
    bearer_token_file: str | None = None
    """File holding the bearer token."""
    tls_config: TLSConfig = Field(default_factory=TLSConfig)
    """TLS settings; verification is on by default."""
    follow_redirects: bool = True
    """Follow redirects."""
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    """Read at most this much body; past it the check fails."""
    expect: HttpExpect = Field(default_factory=HttpExpect)
    """Assertions on the answer."""

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+", v) and not v.startswith("${"):
            raise ValueError(f"url must be an absolute http:// or https:// URL, got {v!r}")
        return v

    @model_validator(mode="after")
    def _secrets(self) -> Self:
        token = secret_or_file(self.bearer_token, self.bearer_token_file, "bearer_token")
        object.__setattr__(self, "bearer_token", token)
        if token is not None and self.basic_auth is not None:
            raise ValueError("at most one of basic_auth and bearer_token may be set")
        return self


class HttpCheck(HttpRequest):
    pass


class Capture(StrictModel):
    """Where a flow step takes a value for later steps: a JSONPath or a header."""

    json_: str | None = Field(default=None, alias="json")
    """JSONPath into the step's JSON body."""
    header: str | None = None
    """Response header name."""

    @model_validator(mode="after")
    def _one(self) -> Self:
        if (self.json_ is None) == (self.header is None):
            raise ValueError("a capture takes exactly one of json or header")
        if self.json_ is not None and not self.json_.startswith("$"):
            raise ValueError(f"JSONPath {self.json_!r} must start with '$'")
        return self


class FlowStep(HttpRequest):
    name: Annotated[str, Field(pattern=r"^[a-zA-Z0-9_][a-zA-Z0-9_.:-]*$")]
    """Step name (label `step`)."""
    capture: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], Capture] = Field(
        default_factory=dict
    )
    """Name → where to capture a value for later steps as `${name}`."""


_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class FlowCheck(StrictModel):
    """An ordered multi-step HTTP transaction; ``${name}`` refers to earlier captures."""

    steps: list[FlowStep] = Field(min_length=1)
    """Ordered HTTP steps; each takes every http field plus name and capture."""

    @model_validator(mode="after")
    def _steps(self) -> Self:
        seen_steps: set[str] = set()
        known: set[str] = set()
        captured = {name for step in self.steps for name in step.capture}
        for i, step in enumerate(self.steps):
            if step.name in seen_steps:
                raise ValueError(f"steps[{i}]: duplicate step name {step.name!r}")
            seen_steps.add(step.name)
            texts = [step.url, step.body or "", *step.headers.values()]
            for text in texts:
                for var in _VAR_RE.findall(text):
                    # Names captured nowhere were already reported as unset environment variables.
                    if var in captured and var not in known:
                        raise ValueError(
                            f"steps[{i}] ({step.name}): ${{{var}}} is captured only by a later step"
                        )
            known.update(step.capture)
        return self


class TcpCheck(StrictModel):
    target: HostPort
    """host:port to connect to."""
    send: str | None = None
    """Text to send after connecting."""
    expect: Regex | None = None
    """Regex the received data must match."""
    tls: bool = False
    """Connect with TLS."""
    tls_config: TLSConfig = Field(default_factory=TLSConfig)
    """TLS settings."""


class TlsCheck(StrictModel):
    """Connects with TLS and reports the certificate chain's expiry."""

    target: HostPort
    """host:port to connect to with TLS."""
    tls_config: TLSConfig = Field(default_factory=TLSConfig)
    """TLS settings."""
    min_days_remaining: float | None = Field(default=None, ge=0)
    """Fail when the earliest certificate expires sooner."""


class WebsocketCheck(StrictModel):
    url: str
    """ws:// or wss:// URL."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Handshake headers."""
    send: str | None = None
    """Message to send after connecting."""
    expect: Regex | None = None
    """Regex a received message must match."""
    tls_config: TLSConfig = Field(default_factory=TLSConfig)
    """TLS settings for wss://."""

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^wss?://[^/\s]+", v):
            raise ValueError(f"url must be a ws:// or wss:// URL, got {v!r}")
        return v


class RedisCheck(StrictModel):
    target: HostPort
    """host:port of Redis."""
    username: str | None = None
    """ACL user name."""
    password: SecretStr | None = None
    """Password (prefer password_file)."""
    password_file: str | None = None
    """File holding the password."""
    db: int = Field(default=0, ge=0)
    """Database number."""
    tls: bool = False
    """Connect with TLS."""
    tls_config: TLSConfig = Field(default_factory=TLSConfig)
    """TLS settings."""

    @model_validator(mode="after")
    def _resolve(self) -> Self:
        object.__setattr__(
            self, "password", secret_or_file(self.password, self.password_file, "password")
        )
        return self


class PostgresCheck(StrictModel):
    target: HostPort
    """host:port of PostgreSQL."""
    user: str = "postgres"
    """User name."""
    database: str = "postgres"
    """Database name."""
    password: SecretStr | None = None
    """Password (prefer password_file)."""
    password_file: str | None = None
    """File holding the password."""
    sslmode: Literal["disable", "prefer", "require", "verify-ca", "verify-full"] = "prefer"
    """libpq sslmode."""
    query: str = "SELECT 1"
    """Query to run; it must succeed."""

    @model_validator(mode="after")
    def _resolve(self) -> Self:
        object.__setattr__(
            self, "password", secret_or_file(self.password, self.password_file, "password")
        )
        return self


KindConfig = (
    HttpCheck | FlowCheck | TcpCheck | TlsCheck | WebsocketCheck | RedisCheck | PostgresCheck
)


class CheckConfig(StrictModel):
    """One synthetic check: common scheduling fields plus exactly one kind."""

    name: str
    """Unique check name (label `check`)."""
    interval: Duration = 30.0
    """How often the check runs."""
    timeout: Duration | None = None
    """Bound on the whole run; default: 80% of interval, at most 10s."""
    labels: dict[LabelName, str] = Field(default_factory=dict)
    """Extra labels on the check's metrics and events."""
    http: HttpCheck | None = None
    """An HTTP check."""
    flow: FlowCheck | None = None
    """A multi-step HTTP transaction."""
    tcp: TcpCheck | None = None
    """A TCP connect check."""
    tls: TlsCheck | None = None
    """A TLS certificate check."""
    websocket: WebsocketCheck | None = None
    """A WebSocket check."""
    redis: RedisCheck | None = None
    """A Redis PING check."""
    postgres: PostgresCheck | None = None
    """A PostgreSQL `SELECT 1` check."""

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, v: float | None, info: ValidationInfo) -> float | None:
        interval = info.data.get("interval")
        if v is not None and (v <= 0 or (interval is not None and v > interval)):
            raise ValueError("timeout must be positive and not longer than interval")
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not CHECK_NAME_RE.match(v):
            raise ValueError(f"invalid check name {v!r} (letters, digits, _ . : -)")
        return v

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        clash = sorted(RESERVED_LABELS & v.keys())
        if clash:
            raise ValueError(f"label names {clash} are reserved by the agent")
        return v

    @model_validator(mode="after")
    def _kind_and_timeout(self) -> Self:
        kinds = [k for k in CHECK_KINDS if getattr(self, k) is not None]
        if len(kinds) != 1:
            found = ", ".join(kinds) if kinds else "none"
            raise ValueError(
                f"a check takes exactly one of {', '.join(CHECK_KINDS)} (found: {found})"
            )
        if self.interval <= 0:
            raise ValueError("interval must be positive")
        if self.timeout is None:
            object.__setattr__(self, "timeout", min(10.0, self.interval * 0.8))
        return self

    @property
    def kind(self) -> str:
        return next(k for k in CHECK_KINDS if getattr(self, k) is not None)

    @property
    def spec(self) -> KindConfig:
        """The kind-specific part of this check."""
        spec: KindConfig = getattr(self, self.kind)
        return spec

    @property
    def run_timeout(self) -> float:
        assert self.timeout is not None  # filled by the validator
        return self.timeout
