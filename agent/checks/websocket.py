"""WebSocket check: open the connection, optionally send, await a matching message.

Messages that do not match ``expect`` are skipped; the runner's timeout ends a
wait that never sees one.

>>> WebsocketChecker(WebsocketCheck(url="wss://example.com/ws", expect="pong")).kind
'websocket'
"""

from __future__ import annotations

import logging
import ssl
import time
from typing import Any

import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
)

from agent.checks.base import ProbeReport
from agent.checks.http import redact_url
from agent.checks.tcp import os_reason
from agent.checks.tlsutil import build_ssl_context, translate_tls_error, verify_error
from agent.config import WebsocketCheck
from agent.errors import CheckConnectError, CheckFailed, ComponentStateError
from agent.promql.regex import compile_go

log = structlog.get_logger(__name__)

# websockets logs every handshake header (Authorization included) and frame at DEBUG:
# give it a logger of its own that never goes below WARNING.
_WIRE_LOG = logging.getLogger(f"{__name__}.wire")
_WIRE_LOG.setLevel(logging.WARNING)


class WebsocketChecker:
    """Connects to a WebSocket endpoint per run and waits for an expected message.

    >>> WebsocketChecker(WebsocketCheck(url="ws://localhost:8080/")).kind
    'websocket'
    """

    kind = "websocket"

    def __init__(self, spec: WebsocketCheck) -> None:
        self._spec = spec
        self._expect = compile_go(spec.expect) if spec.expect is not None else None
        self._closed = False

    async def probe(self, report: ProbeReport) -> None:
        if self._closed:
            raise ComponentStateError("websocket checker is closed")
        ws = await self._connect(report)
        try:
            await self._exchange(ws)
        except BaseException:
            ws.transport.abort()
            raise
        await ws.close()

    async def _connect(self, report: ProbeReport) -> ClientConnection:
        spec = self._spec
        where = redact_url(spec.url)
        kwargs: dict[str, Any] = {}
        if spec.url.startswith("wss:"):
            kwargs["ssl"] = build_ssl_context(spec.tls_config)
            if spec.tls_config.server_name:
                kwargs["server_hostname"] = spec.tls_config.server_name
        started = time.perf_counter()
        try:
            ws = await connect(
                spec.url,
                additional_headers=spec.headers,
                proxy=None,
                open_timeout=None,  # the runner bounds the whole run
                ping_interval=None,  # one short exchange: no keepalive task
                close_timeout=1,
                logger=_WIRE_LOG,
                **kwargs,
            )
        except InvalidURI:
            # The library's message quotes the URL with its userinfo: do not chain it.
            raise CheckFailed(f"invalid url {where}") from None
        except InvalidStatus as exc:
            report.status_code = exc.response.status_code
            raise CheckFailed(
                f"handshake with {where} refused: HTTP {exc.response.status_code}"
            ) from exc
        except InvalidHandshake as exc:
            raise CheckFailed(f"handshake with {where} failed: {exc.__class__.__name__}") from exc
        except OSError as exc:
            if isinstance(exc, ssl.SSLError) or verify_error(exc) is not None:
                raise translate_tls_error(exc) from exc
            raise CheckConnectError(f"connect to {where} failed: {os_reason(exc)}") from exc
        report.phases["connect"] = time.perf_counter() - started
        if ws.response is not None:
            report.status_code = ws.response.status_code
        return ws

    async def _exchange(self, ws: ClientConnection) -> None:
        try:
            if self._spec.send is not None:
                await ws.send(self._spec.send)
            if self._expect is None:
                return
            skipped = 0
            while True:
                message = await ws.recv()
                text = message if isinstance(message, str) else message.decode(errors="replace")
                if self._expect.search(text):
                    log.debug("websocket_expect_matched", skipped=skipped)
                    return
                skipped += 1
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else "none"
            waiting = " before a matching message" if self._expect is not None else ""
            raise CheckFailed(f"connection closed (code {code}){waiting}") from exc

    async def aclose(self) -> None:
        self._closed = True
