"""An httpx transport that speaks HTTP/1.1 through aiohttp, for cheaper HTTP checks.

httpx keeps what the checker relies on (cookies, redirects, auth, decoding). The
transport opens one new connection per request itself (resolve, TCP, TLS, each
reported as an httpcore-style ``trace`` event) and lends it to aiohttp, whose C
parser reads the answer. It owns the socket from creation to close: however the
request ends (answer read, error, cancellation), the socket is closed before the
request returns or the response is closed. Nothing is left for the event loop to
finish later: with a graceful TLS close, the shutdown could still be waiting for
the peer's close_notify when a short-lived event loop ends.

>>> transport = AiohttpTransport(TLSConfig())
>>> client = httpx.AsyncClient(transport=transport)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ipaddress
import socket
import ssl
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aiohappyeyeballs
import aiohttp
import httpx
from aiohttp.client_proto import ResponseHandler
from aiohttp.tracing import Trace
from multidict import CIMultiDict
from yarl import URL

from agent.checks.tlsutil import build_ssl_context
from agent.config import TLSConfig
from agent.lifecycle import Component

TraceCallback = Callable[[str, dict[str, Any]], Awaitable[None]]

_HAPPY_EYEBALLS_DELAY = 0.25  # RFC 8305's recommended connection attempt delay
_DEFAULT_PORTS = {"http": 80, "https": 443}


class _OwnedSocket(socket.socket):
    """A socket that resolves ``closed`` when it is closed: the last act of its transport."""

    __slots__ = ("closed",)
    closed: asyncio.Future[None]

    def close(self) -> None:
        super().close()
        closed = getattr(self, "closed", None)
        if closed is not None and not closed.done() and not closed.get_loop().is_closed():
            closed.set_result(None)


def _owned_socket(addr_info: Any) -> socket.socket:
    """aiohappyeyeballs' socket factory: every attempt's socket reports its close."""
    family, type_, proto = addr_info[0], addr_info[1], addr_info[2]
    sock = _OwnedSocket(family, type_, proto)
    sock.closed = asyncio.get_running_loop().create_future()
    return sock


def _text(exc: BaseException) -> str:
    return str(exc) or exc.__class__.__name__


class _Exchange:
    """One request's connection: opened by :meth:`connect`, lent to aiohttp, closed by
    :meth:`aclose`, which returns only once the socket is closed."""

    __slots__ = ("loop", "protocol", "raw", "sock", "ssl_object", "timeout", "trace", "transport")

    def __init__(self, request: httpx.Request) -> None:
        self.loop = asyncio.get_running_loop()
        self.trace: TraceCallback | None = request.extensions.get("trace")
        self.timeout: float | None = request.extensions.get("timeout", {}).get("connect")
        self.sock: _OwnedSocket | None = None
        self.raw: asyncio.Transport | None = None  # the TCP transport, under any TLS
        self.transport: asyncio.Transport | None = None  # what aiohttp writes to
        self.protocol: ResponseHandler | None = None  # until aiohttp takes it
        self.ssl_object: ssl.SSLObject | None = None

    async def emit(self, event: str) -> None:
        if self.trace is not None:
            await self.trace(event, {})

    async def connect(self, request: httpx.Request, context: ssl.SSLContext) -> None:
        """Resolve, connect and (for https) handshake; failures raise httpx errors."""
        url = request.url
        if url.scheme not in _DEFAULT_PORTS or not url.raw_host:
            raise httpx.UnsupportedProtocol(f"cannot send a request to {url.scheme}://")
        host = url.raw_host.decode("ascii")
        port = url.port or _DEFAULT_PORTS[url.scheme]
        infos = await self._resolve(host, port)
        protocol = ResponseHandler(self.loop)
        tls = url.scheme == "https"
        await self._connect_tcp(infos, protocol, tls)
        if tls:
            sni = request.extensions.get("sni_hostname")
            await self._start_tls(context, sni if isinstance(sni, str) else host)
            assert self.transport is not None
            self.transport.set_protocol(protocol)
            protocol.connection_made(self.transport)
        self.protocol = protocol

    async def _resolve(self, host: str, port: int) -> list[Any]:
        await self.emit("connection.resolve.started")
        try:
            async with asyncio.timeout(self.timeout):
                infos = await _addresses(self.loop, host, port)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"resolving {host} timed out") from exc
        except OSError as exc:
            raise httpx.ConnectError(_text(exc)) from exc
        await self.emit("connection.resolve.complete")
        return infos

    async def _connect_tcp(self, infos: list[Any], protocol: ResponseHandler, tls: bool) -> None:
        await self.emit("connection.connect_tcp.started")
        try:
            async with asyncio.timeout(self.timeout):
                sock = await aiohappyeyeballs.start_connection(
                    infos,
                    happy_eyeballs_delay=_HAPPY_EYEBALLS_DELAY,
                    loop=self.loop,
                    socket_factory=_owned_socket,
                )
                assert isinstance(sock, _OwnedSocket)
                self.sock = sock
                # create_connection makes the transport before its first await: from
                # here on the transport closes the socket, whatever happens.
                first = asyncio.Protocol if tls else lambda: protocol
                self.raw, _ = await self.loop.create_connection(first, sock=sock)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout("connect timed out") from exc
        except OSError as exc:
            raise httpx.ConnectError(_text(exc)) from exc
        self.transport = self.raw
        await self.emit("connection.connect_tcp.complete")

    async def _start_tls(self, context: ssl.SSLContext, server_hostname: str) -> None:
        assert self.raw is not None
        await self.emit("connection.start_tls.started")
        try:
            async with asyncio.timeout(self.timeout):
                # A placeholder protocol until the handshake succeeds: a failed one then
                # never touches aiohttp's protocol.
                transport = await self.loop.start_tls(
                    self.raw, asyncio.Protocol(), context, server_hostname=server_hostname
                )
        except TimeoutError as exc:
            raise httpx.ConnectTimeout("TLS handshake timed out") from exc
        except OSError as exc:  # ssl.SSLError included: the checker quotes its reason
            raise httpx.ConnectError(_text(exc)) from exc
        if transport is None:
            raise httpx.ConnectError("connection closed during the TLS handshake")
        self.transport = transport
        self.ssl_object = transport.get_extra_info("ssl_object")
        await self.emit("connection.start_tls.complete")

    async def aclose(self) -> None:
        """Abort the connection (no graceful TLS shutdown) and wait until its socket is closed."""
        self.ssl_object = None
        if self.raw is not None:
            self.raw.abort()  # does nothing if the transport is already closing or closed
        elif self.sock is not None:
            # create_connection failed: the transport it made has already scheduled the
            # socket's close, and this one, queued after it, only closes a socket that
            # no transport took.
            self.loop.call_soon(self.sock.close)
        if self.sock is not None:
            await self.sock.closed


async def _addresses(loop: asyncio.AbstractEventLoop, host: str, port: int) -> list[Any]:
    """getaddrinfo's answer for ``host``; an IP address is parsed without a lookup."""
    try:
        ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    else:
        flags = socket.AI_NUMERICHOST
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=flags)
    if not infos:
        raise OSError(f"no address found for {host}")
    return infos


# Set by the transport around aiohttp's request; read by the connector and the trace
# hook, which run in the request's task.
_current: contextvars.ContextVar[_Exchange | None] = contextvars.ContextVar(
    "aiohttp_exchange", default=None
)


class _LendingConnector(aiohttp.BaseConnector):
    """Gives aiohttp the connection the transport opened for the current request."""

    async def _create_connection(
        self,
        req: aiohttp.ClientRequest,
        traces: list[Trace],
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 - aiohttp's signature
    ) -> ResponseHandler:
        exchange = _current.get()
        protocol = exchange.protocol if exchange is not None else None
        if exchange is None or protocol is None:
            raise aiohttp.ClientConnectionError("one connection per request: none is left")
        exchange.protocol = None
        return protocol


async def _on_headers_sent(*_: Any) -> None:
    exchange = _current.get()
    if exchange is not None:
        await exchange.emit("http11.receive_response_headers.started")


def _trace_config() -> aiohttp.TraceConfig:
    config = aiohttp.TraceConfig()
    config.on_request_headers_sent.append(_on_headers_sent)
    config.freeze()
    return config


def _mapped(exc: Exception) -> httpx.TransportError:
    """The httpx error for an aiohttp failure after the connection was made."""
    if isinstance(exc, aiohttp.ClientResponseError):  # a malformed response
        # Its str() quotes the URL, query string included: keep the message only.
        return httpx.RemoteProtocolError(exc.message or exc.__class__.__name__)
    text = _text(exc)
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return httpx.ReadTimeout(text)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return httpx.RemoteProtocolError(text)
    return httpx.ReadError(text)


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """aiohttp errors as httpx errors chained to them."""
    try:
        yield
    except (aiohttp.ClientError, OSError) as exc:
        raise _mapped(exc) from exc


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
    """An aiohttp response body, read chunk by chunk as it arrives."""

    def __init__(self, response: aiohttp.ClientResponse, exchange: _Exchange) -> None:
        self._response = response
        self._exchange = exchange
        self._started = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        if not self._started:
            self._started = True
            await self._exchange.emit("http11.receive_response_body.started")
        with _translated():
            chunk = await self._response.content.readany()
        if not chunk:
            await self._exchange.emit("http11.receive_response_body.complete")
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        """Release aiohttp's response, then close the connection and wait for its socket."""
        self._response.close()
        await self._exchange.aclose()
        await self._exchange.emit("http11.response_closed.complete")


class AiohttpTransport(Component, httpx.AsyncBaseTransport):
    """httpx transport over one aiohttp session, a new connection per request.

    It starts on entry or on its first request; once closed it refuses requests.

    >>> client = httpx.AsyncClient(transport=AiohttpTransport(TLSConfig()))  # doctest: +SKIP
    >>> await client.get("https://example.com/")  # doctest: +SKIP
    <Response [200 OK]>
    """

    name = "aiohttp transport"

    def __init__(self, tls: TLSConfig | ssl.SSLContext | None = None) -> None:
        if isinstance(tls, ssl.SSLContext):
            self._ssl = tls
        else:
            self._ssl = build_ssl_context(tls or TLSConfig())
        self._session: aiohttp.ClientSession | None = None

    async def _on_start(self) -> None:
        session = aiohttp.ClientSession(
            connector=_LendingConnector(force_close=True, limit=0),
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            trust_env=False,
            trace_configs=[_trace_config()],
            timeout=aiohttp.ClientTimeout(total=None),
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        )
        # aiohttp resends an idempotent request once when its connection drops before
        # the answer (meant for reused keep-alive connections). A probe must report
        # the first failure, and each request here has exactly one connection.
        session._retry_connection = False
        self._session = session

    async def _on_close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: types.TracebackType | None = None,
    ) -> None:
        await self.aclose()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.state != "running":
            await self.start()  # ComponentStateError once closed
        session = self._session
        assert session is not None
        exchange = _Exchange(request)
        try:
            await exchange.connect(request, self._ssl)
            response = await self._send(session, request, exchange)
            await exchange.emit("http11.receive_response_headers.complete")
        except BaseException:
            await exchange.aclose()
            raise
        version = response.version or aiohttp.HttpVersion11
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=AiohttpByteStream(response, exchange),
            extensions={
                "http_version": f"HTTP/{version.major}.{version.minor}".encode("ascii"),
                "reason_phrase": (response.reason or "").encode("ascii", "replace"),
                "network_stream": _NetworkStream(exchange),
            },
        )

    async def _send(
        self, session: aiohttp.ClientSession, request: httpx.Request, exchange: _Exchange
    ) -> aiohttp.ClientResponse:
        read_timeout = request.extensions.get("timeout", {}).get("read")
        body = await request.aread()
        token = _current.set(exchange)
        try:
            with _translated():
                return await session.request(
                    request.method,
                    URL(str(request.url), encoded=True),
                    headers=CIMultiDict(request.headers.multi_items()),
                    data=body or None,
                    allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=None, sock_read=read_timeout),
                )
        finally:
            _current.reset(token)


def aiohttp_transport(tls: TLSConfig) -> AiohttpTransport:
    """The ``http_transport`` factory for :func:`agent.checks.factory.build_checker`."""
    return AiohttpTransport(tls)
