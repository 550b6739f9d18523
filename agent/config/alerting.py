"""``alerting:`` in Prometheus's format: where alerts go and how they are queued.

Prometheus splits this between flags (``--rules.alert.resend-delay``,
``--alertmanager.notification-queue-capacity``) and the ``alerting`` section of
its configuration file; the agent keeps all of it in one section.

>>> cfg = AlertingConfig.model_validate(
...     {"alertmanagers": [{"static_configs": [{"targets": ["127.0.0.1:9093"]}]}]}
... )
>>> cfg.alertmanagers[0].alerts_path, cfg.resend_delay
('/api/v2/alerts', 60.0)
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, field_validator, model_validator

from agent.config.checks import BasicAuth, TLSConfig
from agent.config.scrape import Authorization, RelabelConfig, StaticConfig
from agent.config.types import PositiveDuration, StrictModel


class AlertmanagerConfig(StrictModel):
    """Alertmanagers reached the same way, as Prometheus's ``alertmanager_config``.

    Each target has the labels ``__address__``, ``__scheme__`` and ``__alerts_path__``
    (plus its static labels) before ``relabel_configs``; alerts are posted to
    ``{__scheme__}://{__address__}{__alerts_path__}``.
    """

    static_configs: list[StaticConfig] = Field(default_factory=list)
    """Alertmanagers by host:port."""
    scheme: Literal["http", "https"] = "http"
    """URL scheme."""
    path_prefix: str = "/"
    """Path prefix in front of `/api/v2/alerts` (an Alertmanager behind a route prefix)."""
    timeout: PositiveDuration = 10.0
    """Timeout of one POST of alerts."""
    api_version: str = "v2"
    """Alertmanager API version; only `v2` (Alertmanager 0.16 and later) is supported."""
    basic_auth: BasicAuth | None = None
    """HTTP basic auth."""
    authorization: Authorization | None = None
    """Authorization header."""
    tls_config: TLSConfig = Field(default_factory=TLSConfig)
    """TLS settings."""
    relabel_configs: list[RelabelConfig] = Field(default_factory=list)
    """Relabelling of the Alertmanager targets (drop one, rewrite its address or path)."""

    @field_validator("api_version")
    @classmethod
    def _v2(cls, v: str) -> str:
        if v == "v1":
            raise ValueError(
                "api_version v1 is no longer supported (Alertmanager removed it): use v2"
            )
        if v != "v2":
            raise ValueError(f"unknown api_version {v!r}: use v2")
        return v

    @model_validator(mode="after")
    def _auth(self) -> Self:
        if self.basic_auth is not None and self.authorization is not None:
            raise ValueError("at most one of basic_auth and authorization may be set")
        return self

    @property
    def alerts_path(self) -> str:
        """``path_prefix`` joined with the v2 alerts endpoint, as Prometheus joins them."""
        prefix = self.path_prefix.strip("/")
        return f"/{prefix}/api/v2/alerts" if prefix else "/api/v2/alerts"


class AlertingConfig(StrictModel):
    """Alert delivery: resend delay, queue size, alert relabelling and the Alertmanagers.

    Without any Alertmanager, alerts are logged by the console notifier.
    """

    resend_delay: PositiveDuration = 60.0
    """How often a still-firing alert is sent again (Prometheus's --rules.alert.resend-delay)."""
    notification_queue_capacity: int = Field(default=10000, gt=0)
    """Alerts queued per Alertmanager; past it the oldest are dropped."""
    alert_relabel_configs: list[RelabelConfig] = Field(default_factory=list)
    """Relabelling of every alert (after external labels) before it is queued."""
    alertmanagers: list[AlertmanagerConfig] = Field(default_factory=list)
    """Alertmanagers to send alerts to."""
