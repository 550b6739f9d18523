"""Build the checker for one configured check.

>>> from agent.config import CheckConfig
>>> checker = build_checker(CheckConfig(name="cache", tcp={"target": "127.0.0.1:6379"}))
>>> checker.kind
'tcp'
"""

from __future__ import annotations

from agent.checks.base import Checker
from agent.checks.flow import FlowChecker
from agent.checks.http import HttpChecker, TransportFactory
from agent.checks.postgres import PostgresChecker
from agent.checks.redis import RedisChecker
from agent.checks.tcp import TcpChecker
from agent.checks.tls import TlsChecker
from agent.checks.websocket import WebsocketChecker
from agent.config import (
    CheckConfig,
    FlowCheck,
    HttpCheck,
    PostgresCheck,
    RedisCheck,
    TcpCheck,
    TlsCheck,
    WebsocketCheck,
)


def build_checker(check: CheckConfig, *, http_transport: TransportFactory | None = None) -> Checker:
    """The checker for ``check``'s kind.

    ``http_transport`` builds the httpx transport of http and flow checks from their
    ``tls_config``; by default httpx's own transport is used.
    """
    spec = check.spec
    if isinstance(spec, HttpCheck):
        return HttpChecker(spec, transport_factory=http_transport)
    if isinstance(spec, FlowCheck):
        return FlowChecker(spec, transport_factory=http_transport)
    if isinstance(spec, TcpCheck):
        return TcpChecker(spec)
    if isinstance(spec, TlsCheck):
        return TlsChecker(spec)
    if isinstance(spec, WebsocketCheck):
        return WebsocketChecker(spec)
    if isinstance(spec, RedisCheck):
        return RedisChecker(spec)
    if isinstance(spec, PostgresCheck):
        return PostgresChecker(spec)
    raise AssertionError(f"unknown check kind {check.kind!r}")
