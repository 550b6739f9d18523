"""The aiohttp transport's own logic, without sockets: errors, body stream, lifecycle.

What needs a peer (connect, TLS, phases, sockets closed) is in
tests/integration/test_checks_aiohttp.py.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp.client_proto import ResponseHandler
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from agent.checks import aiohttp_transport as module
from agent.checks.aiohttp_transport import AiohttpByteStream, AiohttpTransport
from agent.checks.tlsutil import build_ssl_context
from agent.config import TLSConfig
from agent.errors import ComponentStateError

SECRET_URL = URL("http://x/?token=s3cret")
REQUEST_INFO = aiohttp.RequestInfo(SECRET_URL, "GET", CIMultiDictProxy(CIMultiDict()), SECRET_URL)


@pytest.mark.parametrize(
    ("error", "expected", "text"),
    [
        (aiohttp.SocketTimeoutError("quiet"), httpx.ReadTimeout, "quiet"),
        (aiohttp.ServerDisconnectedError(), httpx.RemoteProtocolError, "Server disconnected"),
        (aiohttp.ClientPayloadError("cut short"), httpx.RemoteProtocolError, "cut short"),
        (
            aiohttp.ClientResponseError(REQUEST_INFO, (), message="bad status line"),
            httpx.RemoteProtocolError,
            "bad status line",
        ),
        (aiohttp.ClientOSError(104, "reset by peer"), httpx.ReadError, "reset by peer"),
        (ConnectionResetError(104, "reset"), httpx.ReadError, "reset"),
        (aiohttp.ClientConnectionError(), httpx.ReadError, "ClientConnectionError"),
    ],
)
def test_aiohttp_errors_map_to_httpx_errors_keeping_the_reason(
    error: Exception, expected: type[Exception], text: str
) -> None:
    """Each aiohttp failure after connecting becomes the httpx error the checker expects,
    with its text (never the URL's query), chained to the original."""
    with pytest.raises(expected) as info, module._translated():
        raise error
    assert text in str(info.value)
    assert "s3cret" not in str(info.value)
    assert info.value.__cause__ is error


class FakeContent:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def readany(self) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""


class FakeResponse:
    """The part of aiohttp.ClientResponse the byte stream uses."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.content = FakeContent(chunks)
        self.closed = False

    def close(self) -> None:
        self.closed = True


def exchange(events: list[str]) -> Any:
    async def trace(event: str, _info: dict[str, Any]) -> None:
        events.append(event)

    return module._Exchange(httpx.Request("GET", "http://x/", extensions={"trace": trace}))


async def test_body_stream_yields_chunks_then_reports_and_closes() -> None:
    """The body comes chunk by chunk between body started/complete events; closing the
    stream closes aiohttp's response and reports response_closed."""
    events: list[str] = []
    response = FakeResponse([b"ab", b"cd"])
    stream = AiohttpByteStream(response, exchange(events))  # type: ignore[arg-type]
    assert [chunk async for chunk in stream] == [b"ab", b"cd"]
    await stream.aclose()
    assert response.closed
    assert events == [
        "http11.receive_response_body.started",
        "http11.receive_response_body.complete",
        "http11.response_closed.complete",
    ]


async def test_unsupported_scheme_is_refused_before_connecting() -> None:
    """Only http and https are spoken: anything else is httpx.UnsupportedProtocol."""
    request = httpx.Request("GET", "ftp://example.com/file")
    with pytest.raises(httpx.UnsupportedProtocol):
        await module._Exchange(request).connect(request, build_ssl_context(TLSConfig()))


async def test_an_ip_address_is_not_looked_up() -> None:
    """IPv4 and IPv6 literals become their address directly, for the requested port."""
    loop = asyncio.get_running_loop()
    v4 = await module._addresses(loop, "127.0.0.1", 8080)
    v6 = await module._addresses(loop, "::1", 443)
    assert [(i[0], i[4][:2]) for i in v4] == [(socket.AF_INET, ("127.0.0.1", 8080))]
    assert [(i[0], i[4][:2]) for i in v6] == [(socket.AF_INET6, ("::1", 443))]


async def test_lifecycle_is_new_running_closed_and_final() -> None:
    """The transport starts on entry (or first request), aclose is idempotent, and a
    closed transport refuses requests."""
    unused = AiohttpTransport(TLSConfig())
    await unused.aclose()
    await unused.aclose()
    assert unused.state == "closed"
    states = []
    async with AiohttpTransport(TLSConfig()) as transport:
        states.append(transport.state)
    states.append(transport.state)
    assert states == ["running", "closed"]
    with pytest.raises(ComponentStateError):
        await transport.handle_async_request(httpx.Request("GET", "http://127.0.0.1:9/"))


async def test_the_connector_lends_one_connection_per_request() -> None:
    """aiohttp gets the connection the transport opened, once; asking again (a retry)
    fails instead of reconnecting behind the check's back."""
    loop = asyncio.get_running_loop()
    connector = module._LendingConnector(force_close=True, limit=0)
    current = exchange([])
    current.protocol = ResponseHandler(loop)
    token = module._current.set(current)
    try:
        lent = await connector._create_connection(None, [], None)  # type: ignore[arg-type]
        assert lent is not None and current.protocol is None
        with pytest.raises(aiohttp.ClientConnectionError):
            await connector._create_connection(None, [], None)  # type: ignore[arg-type]
    finally:
        module._current.reset(token)
        await connector.close()
