"""An httpx transport that sends requests with aiohttp, for cheaper HTTP checks.

httpx keeps doing what the checker relies on (cookies, redirects, auth, decoding);
aiohttp only moves bytes. Like the default transport it opens a new connection per
request, reports httpcore-style ``trace`` events (so the checker measures
``connect``, ``tls``, ``processing`` and ``transfer``), exposes the TLS object as
``response.extensions["network_stream"]``, and raises httpx exceptions that keep
the library's reason.

>>> transport = aiohttp_transport(TLSConfig())
>>> client = httpx.AsyncClient(transport=transport)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ssl
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Literal

import aiohappyeyeballs
import aiohttp
import httpx
from multidict import CIMultiDict
from yarl import URL

from agent.checks.tlsutil import build_ssl_context
from agent.config import TLSConfig
from agent.errors import ComponentStateError

Trace = Callable[[str, dict[str, Any]], Awaitable[None]]
SSLSetting = TLSConfig | ssl.SSLContext | Literal[False]


class _Exchange:
    """What one request's connection and hooks learn: its trace callback, its TLS object."""

    __slots__ = ("ssl_object", "trace", "transport")

    def __init__(self, trace: Trace | None) -> None:
        self.trace = trace
        self.ssl_object: ssl.SSLObject | None = None
        self.transport: asyncio.BaseTransport | None = None

    async def emit(self, event: str) -> None:
        if self.trace is not None:
            await self.trace(event, {})


# Set by the transport around aiohttp's request; read by the connector and trace hooks,
# which run in the same task (or in tasks copying its context).
_current: contextvars.ContextVar[_Exchange | None] = contextvars.ContextVar(
    "aiohttp_exchange", default=None
)


class _PhasedConnector(aiohttp.TCPConnector):
    """A TCPConnector whose connect step reports TCP and TLS separately.

    aiohttp connects the socket (aiohappyeyeballs) and then runs the TLS handshake
    inside ``loop.create_connection``; this override awaits the same two steps
    with trace events between them (``connect_tcp.started`` comes from the
    ``on_connection_create_start`` hook, before name resolution). It replaces aiohttp's private
    ``_wrap_create_connection`` (same signature and errors, aiohttp 3.10+).
    """

    async def _wrap_create_connection(
        self,
        *args: Any,
        addr_infos: list[Any],
        req: aiohttp.ClientRequest,
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 - aiohttp's signature
        client_error: type[Exception] = aiohttp.ClientConnectorError,
        **kwargs: Any,
    ) -> tuple[asyncio.Transport, Any]:
        exchange = _current.get() or _Exchange(None)
        tls = bool(kwargs.get("ssl"))
        try:
            async with asyncio.timeout(timeout.sock_connect):
                sock = await aiohappyeyeballs.start_connection(
                    addr_infos=addr_infos, happy_eyeballs_delay=0.25, loop=self._loop
                )
                await exchange.emit("connection.connect_tcp.complete")
                if tls:
                    await exchange.emit("connection.start_tls.started")
                transport, proto = await self._loop.create_connection(*args, **kwargs, sock=sock)
                if tls:
                    await exchange.emit("connection.start_tls.complete")
        except ssl.SSLCertVerificationError as exc:
            raise aiohttp.ClientConnectorCertificateError(req.connection_key, exc) from exc
        except ssl.SSLError as exc:
            raise aiohttp.ClientConnectorSSLError(req.connection_key, exc) from exc
        except OSError as exc:
            if exc.errno is None and isinstance(exc, TimeoutError):
                raise
            raise client_error(req.connection_key, exc) from exc
        exchange.transport = transport
        exchange.ssl_object = transport.get_extra_info("ssl_object")
        return transport, proto


async def _on_connection_create_start(*_: Any) -> None:
    # Before name resolution, as httpcore's connect_tcp includes it.
    exchange = _current.get()
    if exchange is not None:
        await exchange.emit("connection.connect_tcp.started")


async def _on_headers_sent(*_: Any) -> None:
    exchange = _current.get()
    if exchange is not None:
        await exchange.emit("http11.receive_response_headers.started")


def _trace_config() -> aiohttp.TraceConfig:
    config = aiohttp.TraceConfig()
    config.on_connection_create_start.append(_on_connection_create_start)
    config.on_request_headers_sent.append(_on_headers_sent)
    config.freeze()
    return config


# --------------------------------------------------------------------------- errors


def _reason(exc: BaseException) -> BaseException:
    """The library error behind an aiohttp wrapper (the OSError or SSL error)."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return exc.certificate_error
    if isinstance(exc, aiohttp.ClientConnectorError):
        return exc.os_error
    return exc


def _mapped(exc: Exception, reading: bool) -> httpx.TransportError:
    cause = _reason(exc)
    text = str(cause) or cause.__class__.__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(text)
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return httpx.ReadTimeout(text)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(text)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return httpx.RemoteProtocolError(text)
    if isinstance(exc, aiohttp.ClientResponseError):  # a malformed response
        return httpx.RemoteProtocolError(exc.message or text)
    if isinstance(exc, aiohttp.NonHttpUrlClientError | aiohttp.InvalidURL):
        return httpx.UnsupportedProtocol(text)
    if isinstance(exc, aiohttp.ClientOSError | OSError):
        return httpx.ReadError(text) if reading else httpx.ConnectError(text)
    return httpx.ReadError(text) if reading else httpx.NetworkError(text)


@contextlib.contextmanager
def _translated(reading: bool = False) -> Iterator[None]:
    """aiohttp errors as httpx errors chained to the underlying cause."""
    try:
        yield
    except (aiohttp.ClientError, OSError) as exc:
        if isinstance(exc, httpx.HTTPError):  # pragma: no cover - not an aiohttp error
            raise
        raise _mapped(exc, reading) from _reason(exc)


# --------------------------------------------------------------------------- response


class _NetworkStream:
    """``response.extensions["network_stream"]``: only ``get_extra_info`` is offered."""

    def __init__(self, exchange: _Exchange) -> None:
        self._exchange = exchange

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._exchange.ssl_object
        transport = self._exchange.transport
        return transport.get_extra_info(info) if transport is not None else None


class AiohttpByteStream(httpx.AsyncByteStream):
    """An aiohttp response body read chunk by chunk as it arrives."""

    def __init__(self, response: aiohttp.ClientResponse, exchange: _Exchange) -> None:
        self._response = response
        self._exchange = exchange

    async def __aiter__(self) -> AsyncIterator[bytes]:
        await self._exchange.emit("http11.receive_response_body.started")
        with _translated(reading=True):
            async for chunk in self._response.content.iter_any():
                yield chunk
        await self._exchange.emit("http11.receive_response_body.complete")

    async def aclose(self) -> None:
        # force_close: the connection is never reused, so close rather than drain.
        self._response.close()
        self._exchange.ssl_object = None
        self._exchange.transport = None
        await self._exchange.emit("http11.response_closed.complete")


# --------------------------------------------------------------------------- transport


class AiohttpTransport(httpx.AsyncBaseTransport):
    """httpx transport over one aiohttp session, a new connection per request.

    >>> client = httpx.AsyncClient(transport=AiohttpTransport(TLSConfig()))  # doctest: +SKIP
    >>> await client.get("https://example.com/")  # doctest: +SKIP
    <Response [200 OK]>
    """

    def __init__(self, tls: SSLSetting | None = None) -> None:
        self._ssl: ssl.SSLContext | Literal[False]
        if tls is None or isinstance(tls, TLSConfig):
            self._ssl = build_ssl_context(tls or TLSConfig())
        else:
            self._ssl = tls
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def _open(self) -> aiohttp.ClientSession:
        if self._closed:
            raise ComponentStateError("aiohttp transport is closed")
        if self._session is None:
            # Resolve on every run, as httpx does: a DNS failure fails the check at once.
            connector = _PhasedConnector(
                ssl=self._ssl, force_close=True, limit=0, use_dns_cache=False
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                trust_env=False,
                trace_configs=[_trace_config()],
                timeout=aiohttp.ClientTimeout(total=None),
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._open()
        exchange = _Exchange(request.extensions.get("trace"))
        token = _current.set(exchange)
        try:
            response = await self._send(session, request, exchange)
        finally:
            _current.reset(token)
        await exchange.emit("http11.receive_response_headers.complete")
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=AiohttpByteStream(response, exchange),
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": (response.reason or "").encode("ascii", "replace"),
                "network_stream": _NetworkStream(exchange),
            },
        )

    async def _send(
        self, session: aiohttp.ClientSession, request: httpx.Request, exchange: _Exchange
    ) -> aiohttp.ClientResponse:
        timeouts = request.extensions.get("timeout", {})
        body = await request.aread()
        headers = CIMultiDict(request.headers.multi_items())
        sni = request.extensions.get("sni_hostname")
        with _translated():
            return await session.request(
                request.method,
                URL(str(request.url), encoded=True),
                headers=headers,
                data=body or None,
                allow_redirects=False,
                compress=None,
                server_hostname=sni if isinstance(sni, str) else None,
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    sock_connect=timeouts.get("connect"),
                    sock_read=timeouts.get("read"),
                ),
            )

    async def aclose(self) -> None:
        """Close the session and its connector; later calls do nothing."""
        if self._closed:
            return
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: types.TracebackType | None = None,
    ) -> None:
        await self.aclose()


def aiohttp_transport(tls: TLSConfig) -> AiohttpTransport:
    """The ``http_transport`` factory for :func:`agent.checks.factory.build_checker`."""
    return AiohttpTransport(tls)
