"""``scrape_configs`` in Prometheus's format (the subset that matters to the pilot)."""

from __future__ import annotations

import re
from typing import Annotated, Literal, Self

from pydantic import BeforeValidator, Field, SecretStr, field_validator, model_validator

from agent.config.checks import BasicAuth, TLSConfig
from agent.config.types import Duration, LabelName, Regex, StrictModel, secret_or_file

_UNITS = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "KiB": 1 << 10, "MiB": 1 << 20}


def parse_size(value: object) -> int:
    """Prometheus's byte sizes: ``10MB``, ``512KB``, ``0`` (no limit), or a plain integer.

    >>> parse_size("10MB")
    10485760
    """
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        m = re.fullmatch(r"(\d+)\s*(B|KB|MB|GB|KiB|MiB)?", value.strip())
        if m:
            return int(m.group(1)) * _UNITS[m.group(2) or "B"]
    raise ValueError(f"expected a size such as 10MB, got {value!r}")


ByteSize = Annotated[int, BeforeValidator(parse_size)]
RelabelAction = Literal[
    "replace",
    "keep",
    "drop",
    "labeldrop",
    "labelkeep",
    "labelmap",
    "hashmod",
    "keepequal",
    "dropequal",
    "lowercase",
    "uppercase",
]


class RelabelConfig(StrictModel):
    """One relabelling step, exactly as Prometheus's ``relabel_configs`` entry."""

    source_labels: list[str] = Field(default_factory=list)
    """Labels whose values are joined with `separator` and matched against `regex`."""
    separator: str = ";"
    """Separator between the source labels' values."""
    target_label: str | None = None
    """Label written by replace, hashmod, lowercase, uppercase, keepequal, dropequal."""
    regex: Regex = "(.*)"
    """Regex matched against the joined source values (fully anchored)."""
    modulus: int | None = Field(default=None, gt=0)
    """Modulus for hashmod."""
    replacement: str = "$1"
    """Replacement for replace and labelmap; `$1`, `${name}` refer to regex groups."""
    action: RelabelAction = "replace"
    """What to do (Prometheus's relabel actions)."""

    @model_validator(mode="after")
    def _needs(self) -> Self:
        if self.action in ("replace", "hashmod", "lowercase", "uppercase") and not (
            self.target_label
        ):
            raise ValueError(f"relabel action {self.action} requires target_label")
        if self.action in ("keepequal", "dropequal") and not self.target_label:
            raise ValueError(f"relabel action {self.action} requires target_label")
        if self.action == "hashmod" and self.modulus is None:
            raise ValueError("relabel action hashmod requires modulus")
        return self


class Authorization(StrictModel):
    """HTTP ``Authorization`` header, as Prometheus's ``authorization`` block."""

    type: str = "Bearer"
    """Authorization scheme."""
    credentials: SecretStr | None = None
    """Credentials (prefer credentials_file)."""
    credentials_file: str | None = None
    """File holding the credentials."""

    @model_validator(mode="after")
    def _resolve(self) -> Self:
        creds = secret_or_file(self.credentials, self.credentials_file, "credentials")
        object.__setattr__(self, "credentials", creds)
        return self


def _target(v: str) -> str:
    host, sep, port = v.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"target must be host:port, got {v!r}")
    return v


class StaticConfig(StrictModel):
    targets: list[Annotated[str, BeforeValidator(_target)]] = Field(default_factory=list)
    """host:port of each target."""
    labels: dict[LabelName, str] = Field(default_factory=dict)
    """Labels added to every target of this group."""


class FileSDConfig(StrictModel):
    """Targets from JSON or YAML files (Prometheus's file_sd format), re-read on change."""

    files: list[str] = Field(min_length=1)
    """Files (globs allowed), relative to the config file."""
    refresh_interval: Duration = 300.0
    """How often the files are re-read even without a change notification."""


class ScrapeConfig(StrictModel):
    """One scrape job."""

    job_name: str = Field(min_length=1)
    """Job name (label `job`)."""
    scrape_interval: Duration | None = None
    """How often to scrape; default: `global.scrape_interval`."""
    scrape_timeout: Duration | None = None
    """Timeout of one scrape; default: 10s, at most the interval."""
    metrics_path: str = "/metrics"
    """HTTP path."""
    scheme: Literal["http", "https"] = "http"
    """URL scheme."""
    params: dict[str, list[str]] = Field(default_factory=dict)
    """URL query parameters."""
    basic_auth: BasicAuth | None = None
    """HTTP basic auth."""
    authorization: Authorization | None = None
    """Authorization header."""
    tls_config: TLSConfig = Field(default_factory=TLSConfig)
    """TLS settings."""
    static_configs: list[StaticConfig] = Field(default_factory=list)
    """Fixed targets."""
    file_sd_configs: list[FileSDConfig] = Field(default_factory=list)
    """Targets from files."""
    honor_labels: bool = False
    """On label clashes keep the target's labels (else they become `exported_*`)."""
    honor_timestamps: bool = True
    """Use timestamps the target exposes."""
    relabel_configs: list[RelabelConfig] = Field(default_factory=list)
    """Relabelling of targets before scraping."""
    metric_relabel_configs: list[RelabelConfig] = Field(default_factory=list)
    """Relabelling of scraped samples before storing."""
    sample_limit: int = Field(default=0, ge=0)
    """Fail the scrape past this many samples (after metric relabelling); 0: no limit."""
    label_limit: int = Field(default=0, ge=0)
    """Fail the scrape when a sample has more labels; 0: no limit."""
    body_size_limit: ByteSize = 0
    """Fail the scrape when the (uncompressed) body is larger; 0: no limit."""

    @field_validator("metrics_path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError("metrics_path must start with /")
        return v

    @model_validator(mode="after")
    def _auth(self) -> Self:
        if self.basic_auth is not None and self.authorization is not None:
            raise ValueError("at most one of basic_auth and authorization may be set")
        return self
