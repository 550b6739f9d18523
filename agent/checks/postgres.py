"""PostgreSQL check: connect with asyncpg, run one query, always close.

>>> PostgresChecker(PostgresCheck(target="127.0.0.1:5432")).kind
'postgres'
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import structlog

from agent.checks.base import ProbeReport
from agent.checks.tcp import CLOSE_GRACE, os_reason, split_host_port
from agent.checks.tlsutil import translate_tls_error, verify_error
from agent.config import PostgresCheck
from agent.errors import (
    CheckConnectError,
    CheckError,
    CheckFailed,
    CheckTimeout,
    ComponentStateError,
)

log = structlog.get_logger(__name__)


class PostgresChecker:
    """Connects per run (``sslmode`` as libpq), runs ``query`` and closes the connection.

    >>> PostgresChecker(PostgresCheck(target="db:5432", query="SELECT 1")).kind
    'postgres'
    """

    kind = "postgres"

    def __init__(self, spec: PostgresCheck) -> None:
        self._spec = spec
        self._host, self._port = split_host_port(spec.target)
        self._closed = False

    async def probe(self, report: ProbeReport) -> None:
        if self._closed:
            raise ComponentStateError("postgres checker is closed")
        conn = await self._connect(report)
        try:
            started = time.perf_counter()
            await conn.execute(self._spec.query)
            report.phases["processing"] = time.perf_counter() - started
        except BaseException as exc:
            conn.terminate()
            if isinstance(exc, Exception):
                raise _translate(exc, self._spec.target) from exc
            raise
        try:
            await conn.close(timeout=CLOSE_GRACE)
        except Exception as exc:  # the query passed; an untidy goodbye does not fail the check
            log.debug("postgres_close_failed", error=exc.__class__.__name__)
            conn.terminate()
        except asyncio.CancelledError:
            conn.terminate()
            raise

    async def _connect(self, report: ProbeReport) -> Any:
        spec = self._spec
        started = time.perf_counter()
        try:
            conn = await asyncpg.connect(
                host=self._host,
                port=self._port,
                user=spec.user,
                database=spec.database,
                password=spec.password.get_secret_value() if spec.password is not None else None,
                ssl=spec.sslmode,
            )
        except Exception as exc:
            raise _translate(exc, spec.target) from exc
        report.phases["connect"] = time.perf_counter() - started
        return conn

    async def aclose(self) -> None:
        self._closed = True


def _translate(exc: Exception, target: str) -> CheckError:
    """asyncpg's errors as reasons. Server messages name users, never passwords."""
    if verify_error(exc) is not None:
        return translate_tls_error(exc)
    if isinstance(exc, asyncpg.PostgresError):
        return CheckFailed(f"postgres error {exc.sqlstate}: {exc}")
    if isinstance(exc, TimeoutError):
        return CheckTimeout(f"postgres at {target} timed out")
    if isinstance(exc, OSError):
        return CheckConnectError(f"connect to {target} failed: {os_reason(exc)}")
    if isinstance(exc, asyncpg.InterfaceError):
        return CheckConnectError(f"postgres at {target}: {exc}")
    log.debug("postgres_unexpected_error", error=exc.__class__.__name__)
    return CheckFailed(f"postgres at {target} failed: {exc.__class__.__name__}")
