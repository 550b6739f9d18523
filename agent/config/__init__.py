"""Configuration: the only place where YAML becomes objects.

The file is shaped like Prometheus's configuration where the two overlap
(``global``, durations such as ``15s`` or ``1m30s``, ``*_file`` secrets).
Loading collects *every* problem, each with its path (``checks[2].http.url``)
and YAML line, and raises one :class:`~agent.errors.ConfigError` carrying them all.

>>> cfg = parse_config("checks: [{name: api, http: {url: 'http://x/'}}]", "inline.yml")
>>> cfg.checks[0].timeout < cfg.checks[0].interval
True
"""

from agent.config.checks import (
    BasicAuth,
    Capture,
    CheckConfig,
    FlowCheck,
    FlowStep,
    HttpCheck,
    HttpExpect,
    HttpRequest,
    KindConfig,
    PostgresCheck,
    RedisCheck,
    TcpCheck,
    TlsCheck,
    TLSConfig,
    WebsocketCheck,
)
from agent.config.loader import load_config, parse_config
from agent.config.models import (
    AgentConfig,
    EventsConfig,
    GlobalConfig,
    JsonlSinkConfig,
    RuleDatasourceConfig,
    StorageConfig,
    TLSServerConfig,
    WebConfig,
)
from agent.config.scrape import RelabelConfig, ScrapeConfig
from agent.config.types import Duration, format_duration, parse_duration

__all__ = [
    "AgentConfig",
    "BasicAuth",
    "Capture",
    "CheckConfig",
    "Duration",
    "EventsConfig",
    "FlowCheck",
    "FlowStep",
    "GlobalConfig",
    "HttpCheck",
    "HttpExpect",
    "HttpRequest",
    "JsonlSinkConfig",
    "KindConfig",
    "PostgresCheck",
    "RedisCheck",
    "RelabelConfig",
    "RuleDatasourceConfig",
    "ScrapeConfig",
    "StorageConfig",
    "TLSConfig",
    "TLSServerConfig",
    "TcpCheck",
    "TlsCheck",
    "WebConfig",
    "WebsocketCheck",
    "format_duration",
    "load_config",
    "parse_config",
    "parse_duration",
]
