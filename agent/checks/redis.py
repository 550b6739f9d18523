"""Redis check: a fresh connection per run (AUTH, SELECT, optional TLS), then PING.

>>> RedisChecker(RedisCheck(target="127.0.0.1:6379")).kind
'redis'
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Any

import structlog
from redis.asyncio.connection import Connection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    AuthenticationError,
    RedisError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from agent.checks.base import ProbeReport
from agent.checks.tcp import CLOSE_GRACE, split_host_port
from agent.checks.tlsutil import (
    build_ssl_context,
    server_hostname,
    translate_tls_error,
    verify_error,
)
from agent.config import RedisCheck
from agent.errors import (
    CheckConnectError,
    CheckError,
    CheckFailed,
    CheckTimeout,
    ComponentStateError,
)
from agent.state.connection import TLSConnection

log = structlog.get_logger(__name__)


class RedisChecker:
    """Opens a new connection per run, authenticates, selects ``db`` and sends PING.

    >>> RedisChecker(RedisCheck(target="cache:6379", db=2)).kind
    'redis'
    """

    kind = "redis"

    def __init__(self, spec: RedisCheck) -> None:
        self._spec = spec
        self._host, self._port = split_host_port(spec.target)
        self._closed = False

    def _connection(self) -> Connection:
        spec = self._spec
        kwargs: dict[str, Any] = {
            "host": self._host,
            "port": self._port,
            "db": spec.db,
            "username": spec.username,
            "password": spec.password.get_secret_value() if spec.password is not None else None,
            "socket_timeout": None,  # the runner bounds the whole run
            "socket_connect_timeout": None,
            "retry": Retry(NoBackoff(), 0),  # one attempt: a check must not hide failures
            "protocol": 2,  # AUTH + SELECT + PING work on every Redis; HELLO needs 6.0+
        }
        if not spec.tls:
            return Connection(**kwargs)
        return TLSConnection(
            ssl_context=build_ssl_context(spec.tls_config),
            sni=server_hostname(spec.tls_config, self._host),
            **kwargs,
        )

    async def probe(self, report: ProbeReport) -> None:
        if self._closed:
            raise ComponentStateError("redis checker is closed")
        conn = self._connection()
        try:
            await self._ping(conn, report)
        except BaseException:
            await _disconnect(conn, nowait=True)
            raise
        await _disconnect(conn, nowait=False)

    async def _ping(self, conn: Connection, report: ProbeReport) -> None:
        started = time.perf_counter()
        try:
            await conn.connect()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
            report.phases["connect"] = time.perf_counter() - started
            started = time.perf_counter()
            await conn.send_command("PING")
            answer = await conn.read_response()
        except (RedisError, OSError) as exc:
            raise _translate(exc, self._spec.target) from exc
        report.phases["processing"] = time.perf_counter() - started
        if answer not in (b"PONG", "PONG", True):
            raise CheckFailed("PING was not answered with PONG")

    async def aclose(self) -> None:
        self._closed = True


async def _disconnect(conn: Connection, *, nowait: bool) -> None:
    """Close the connection; drop it at once if closing stalls or we are cancelled."""
    try:
        async with asyncio.timeout(CLOSE_GRACE):
            await conn.disconnect(nowait=nowait)
    except (RedisError, OSError, TimeoutError) as exc:
        log.debug("redis_disconnect_failed", error=exc.__class__.__name__)
        await conn.disconnect(nowait=True)
    except asyncio.CancelledError:
        await conn.disconnect(nowait=True)
        raise


def _translate(exc: BaseException, target: str) -> CheckError:
    """redis-py's errors as reasons; messages come from the server or the OS, never config."""
    if verify_error(exc) is not None or isinstance(exc, ssl.SSLError):
        return translate_tls_error(exc)
    if isinstance(exc, AuthenticationError):
        return CheckFailed(f"authentication failed: {exc}")
    if isinstance(exc, RedisTimeoutError):
        return CheckTimeout(f"redis at {target} timed out")
    if isinstance(exc, RedisConnectionError | OSError):
        return CheckConnectError(str(exc) or f"connect to {target} failed")
    if isinstance(exc, ResponseError):
        return CheckFailed(f"redis error: {exc}")
    return CheckFailed(f"redis error: {exc.__class__.__name__}")
