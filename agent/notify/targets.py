"""Which Alertmanagers to post to, and the HTTP client for each set of them.

Each ``static_configs`` target becomes the labels ``__address__``, ``__scheme__``
and ``__alerts_path__`` (with the group's own labels), goes through the set's
``relabel_configs`` as in Prometheus, and, if it survives, the URL
``{__scheme__}://{__address__}{__alerts_path__}``. That URL names the
Alertmanager everywhere: in metrics (label ``alertmanager``) and in logs. An
Alertmanager listed twice is posted to once.

>>> from agent.config.alerting import AlertingConfig
>>> cfg = AlertingConfig.model_validate(
...     {"alertmanagers": [{"static_configs": [{"targets": ["am:9093"]}], "path_prefix": "/x"}]}
... )
>>> [t.url for t in resolve_targets(cfg)]
['http://am:9093/x/api/v2/alerts']
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import structlog

from agent import __version__
from agent.checks.tlsutil import build_ssl_context
from agent.config.alerting import AlertingConfig, AlertmanagerConfig
from agent.scrape.relabel import relabel

log = structlog.get_logger(__name__)

USER_AGENT = f"pilot-agent/{__version__}"


@dataclass(frozen=True, slots=True)
class AlertmanagerTarget:
    """One Alertmanager: its alerts endpoint URL and the settings of its set."""

    url: str
    config: AlertmanagerConfig


def resolve_targets(alerting: AlertingConfig) -> list[AlertmanagerTarget]:
    """Every distinct Alertmanager of every set, in configuration order."""
    out: dict[str, AlertmanagerTarget] = {}
    for index, am in enumerate(alerting.alertmanagers):
        for group in am.static_configs:
            for address in group.targets:
                url = _target_url(index, am, {**group.labels, "__address__": address})
                if url is not None and url not in out:
                    out[url] = AlertmanagerTarget(url, am)
    return list(out.values())


def _target_url(index: int, am: AlertmanagerConfig, labels: dict[str, str]) -> str | None:
    labels.update(__scheme__=am.scheme, __alerts_path__=am.alerts_path)
    final = relabel(labels, am.relabel_configs)
    if final is None:
        return None
    address, scheme = final.get("__address__", ""), final.get("__scheme__", "")
    path = final.get("__alerts_path__", "")
    if not address or "/" in address or "@" in address or scheme not in ("http", "https"):
        log.warning(
            "alertmanager_target_invalid",
            alertmanagers=index,
            address=address.rpartition("@")[2],  # never credentials
            scheme=scheme,
        )
        return None
    if not path.startswith("/"):
        path = "/" + path
    return f"{scheme}://{address}{path}"


def alertmanager_client(
    config: AlertmanagerConfig, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The HTTP client of one set of Alertmanagers: auth, TLS, JSON headers, its timeout.

    Raises :class:`~agent.errors.CheckFailed` when a TLS file cannot be loaded.
    """
    headers = {"User-Agent": USER_AGENT, "Content-Type": "application/json"}
    auth: httpx.BasicAuth | None = None
    if config.basic_auth is not None:
        password = config.basic_auth.password
        secret = password.get_secret_value() if password is not None else ""
        auth = httpx.BasicAuth(config.basic_auth.username, secret)
    creds = config.authorization.credentials if config.authorization is not None else None
    if config.authorization is not None and creds is not None:
        headers["Authorization"] = f"{config.authorization.type} {creds.get_secret_value()}"
    return httpx.AsyncClient(
        verify=build_ssl_context(config.tls_config),
        auth=auth,
        headers=headers,
        timeout=config.timeout,
        trust_env=False,
        transport=transport,
    )
