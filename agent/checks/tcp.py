"""TCP check: connect (optionally with TLS), optionally send, optionally await a regex.

Also home of the stream helpers the TLS, Redis and Postgres checks share:
``split_host_port``, ``open_stream`` and ``close_stream``.

>>> checker = TcpChecker(TcpCheck(target="127.0.0.1:6379", send="PING\\r\\n", expect="PONG"))
>>> checker.kind
'tcp'
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time

import structlog

from agent.checks.base import ProbeReport
from agent.checks.tlsutil import build_ssl_context, server_hostname, translate_tls_error
from agent.config import TcpCheck
from agent.errors import CheckConnectError, CheckFailed, ComponentStateError
from agent.promql.regex import compile_go

log = structlog.get_logger(__name__)

MAX_EXPECT_BYTES = 1024 * 1024
CLOSE_GRACE = 1.0
_CHUNK = 64 * 1024


def split_host_port(target: str) -> tuple[str, int]:
    """``host:port`` (or ``[v6]:port``) into its parts.

    >>> split_host_port("[::1]:5432")
    ('::1', 5432)
    """
    host, _, port = target.rpartition(":")
    return host.strip("[]"), int(port)


def os_reason(exc: OSError) -> str:
    """A short human reason for a socket error."""
    return exc.strerror or str(exc) or exc.__class__.__name__


async def open_stream(
    host: str,
    port: int,
    report: ProbeReport,
    *,
    ssl_context: ssl.SSLContext | None = None,
    sni: str | None = None,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect, then upgrade to TLS if asked, recording ``connect`` and ``tls`` phases."""
    started = time.perf_counter()
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        raise CheckConnectError(f"connect to {host}:{port} failed: {os_reason(exc)}") from exc
    report.phases["connect"] = time.perf_counter() - started
    if ssl_context is None:
        return reader, writer
    started = time.perf_counter()
    try:
        await writer.start_tls(ssl_context, server_hostname=sni or host)
    except BaseException as exc:
        writer.transport.abort()
        if isinstance(exc, OSError):  # ssl.SSLError is an OSError
            raise translate_tls_error(exc) from exc
        raise
    report.phases["tls"] = time.perf_counter() - started
    return reader, writer


async def close_stream(writer: asyncio.StreamWriter) -> None:
    """Close politely, but give up after :data:`CLOSE_GRACE` seconds (a TLS peer that
    never answers our close_notify) or when cancelled: then drop the connection at once."""
    writer.close()
    try:
        async with asyncio.timeout(CLOSE_GRACE):
            await writer.wait_closed()
    except (OSError, TimeoutError):  # reset while closing, or no answer: nothing to report
        writer.transport.abort()
    except asyncio.CancelledError:
        writer.transport.abort()
        raise


class TcpChecker:
    """Opens a TCP connection, optionally sends a line and awaits an answer.

    >>> TcpChecker(TcpCheck(target="db:5432")).kind
    'tcp'
    """

    kind = "tcp"

    def __init__(self, spec: TcpCheck) -> None:
        self._spec = spec
        self._host, self._port = split_host_port(spec.target)
        self._expect = compile_go(spec.expect) if spec.expect is not None else None
        self._closed = False

    async def probe(self, report: ProbeReport) -> None:
        if self._closed:
            raise ComponentStateError("tcp checker is closed")
        tls = self._spec.tls_config
        ctx = build_ssl_context(tls) if self._spec.tls else None
        sni = server_hostname(tls, self._host) if ctx is not None else None
        reader, writer = await open_stream(self._host, self._port, report, ssl_context=ctx, sni=sni)
        try:
            await self._converse(reader, writer)
        except BaseException:
            writer.transport.abort()
            raise
        await close_stream(writer)

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self._spec.send is not None:
                writer.write(self._spec.send.encode())
                await writer.drain()
            if self._expect is not None:
                await read_until_match(reader, self._expect)
        except OSError as exc:
            raise CheckConnectError(f"connection failed: {os_reason(exc)}") from exc

    async def aclose(self) -> None:
        self._closed = True


async def read_until_match(reader: asyncio.StreamReader, pattern: re.Pattern[str]) -> None:
    """Read chunks until the text received so far matches ``pattern``."""
    received = bytearray()
    while True:
        chunk = await reader.read(_CHUNK)
        if not chunk:
            raise CheckFailed(
                f"connection closed after {len(received)} bytes without a match for "
                f"{pattern.pattern!r}"
            )
        received += chunk
        if pattern.search(received.decode("utf-8", errors="replace")):
            log.debug("tcp_expect_matched", received_bytes=len(received))
            return
        if len(received) > MAX_EXPECT_BYTES:
            raise CheckFailed(
                f"no match for {pattern.pattern!r} in the first {MAX_EXPECT_BYTES} bytes"
            )
