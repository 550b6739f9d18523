"""A redis-py asyncio client from ``state.redis``: URL, ACL user, password, TLS, timeouts.

The client never retries on its own (``Retry(NoBackoff(), 0)``): the state store
and the lease have their own retry policy, and a command must fail within
``timeout`` rather than hide an outage behind redis-py's back-off.

>>> from agent.config.state import RedisStateConfig
>>> split_url("rediss://u:p%40ss@cache:6380/2")
('cache', 6380, 2, 'u', 'p@ss')
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.connection import Connection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from agent.config.checks import TLSConfig
from agent.config.state import RedisStateConfig


class TLSConnection(Connection):
    """A redis-py connection over our own SSL context (CA, client certificate, SNI)."""

    def __init__(self, *, ssl_context: ssl.SSLContext, sni: str, **kwargs: Any) -> None:
        self._ssl_context = ssl_context
        self._sni = sni
        super().__init__(**kwargs)

    def _connection_arguments(self) -> Mapping[str, Any]:
        # redis-py's hook for the keyword arguments of asyncio.open_connection.
        args = dict(super()._connection_arguments())
        args.update(ssl=self._ssl_context, server_hostname=self._sni)
        return args


def split_url(url: str) -> tuple[str, int, int, str | None, str | None]:
    """Host, port, database, user and password of a ``redis://`` or ``rediss://`` URL."""
    parts = urlsplit(url)
    db_text = parts.path.strip("/")
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    return parts.hostname or "127.0.0.1", parts.port or 6379, int(db_text or 0), user, password


def ssl_context(tls: TLSConfig) -> ssl.SSLContext:
    """A client context that verifies chain and host name unless ``insecure_skip_verify``."""
    ctx = ssl.create_default_context(cafile=tls.ca_file)
    if tls.cert_file is not None:
        ctx.load_cert_chain(tls.cert_file, tls.key_file)
    if tls.insecure_skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def redis_client(config: RedisStateConfig) -> Redis:
    """A client with its own pool; close it with ``await client.aclose()``.

    Raises OSError or ssl.SSLError when a TLS file cannot be loaded.
    """
    host, port, db, url_user, url_password = split_url(config.url)
    password = config.password.get_secret_value() if config.password is not None else None
    kwargs: dict[str, Any] = {
        "host": host,
        "port": port,
        "db": db,
        "username": config.username or url_user,
        "password": password if password is not None else url_password,
        "socket_timeout": config.timeout,
        "socket_connect_timeout": config.timeout,
        "retry": Retry(NoBackoff(), 0),
    }
    if config.tls:
        kwargs["connection_class"] = TLSConnection
        kwargs["ssl_context"] = ssl_context(config.tls_config)
        kwargs["sni"] = config.tls_config.server_name or host
    pool = ConnectionPool(**kwargs)
    return Redis.from_pool(pool)
