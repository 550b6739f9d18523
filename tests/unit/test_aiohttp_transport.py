"""The aiohttp transport against tiny asyncio servers on 127.0.0.1: events, errors, close."""

from __future__ import annotations

import asyncio
import gzip
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohappyeyeballs
import aiohttp
import httpx
import pytest
from aiohttp.client_reqrep import ConnectionKey

from agent.checks import aiohttp_transport as module
from agent.checks.aiohttp_transport import AiohttpTransport, aiohttp_transport
from agent.config import TLSConfig
from agent.errors import ComponentStateError

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def serve(handler: Handler) -> AsyncIterator[str]:
    """A server on a free port running ``handler`` per connection; yields its base URL."""
    tasks: set[asyncio.Task[None]] = set()

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handler(reader, writer)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(run, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


def answer(raw: bytes, seen: list[bytes] | None = None) -> Handler:
    """A handler that reads the request head, then writes ``raw`` and hangs up."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if seen is not None:
            seen.append(head)
        writer.write(raw)
        await writer.drain()

    return handle


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nhello"


@asynccontextmanager
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = aiohttp_transport(TLSConfig())
    async with httpx.AsyncClient(transport=transport, trust_env=False) as c:
        yield c


async def test_trace_events_come_in_httpcore_order() -> None:
    """A plain HTTP request reports connect, response headers, body and close in order."""
    events: list[str] = []

    async def trace(event: str, _info: dict[str, Any]) -> None:
        events.append(event)

    async with serve(answer(OK)) as url, client() as c:
        response = await c.get(url, extensions={"trace": trace})
    assert response.text == "hello"
    assert events == [
        "connection.connect_tcp.started",
        "connection.connect_tcp.complete",
        "http11.receive_response_headers.started",
        "http11.receive_response_headers.complete",
        "http11.receive_response_body.started",
        "http11.receive_response_body.complete",
        "http11.response_closed.complete",
    ]


async def test_headers_pass_through_unchanged() -> None:
    """httpx's request headers go out once each; repeated response headers are all kept."""
    seen: list[bytes] = []
    async with serve(answer(OK, seen)) as url, client() as c:
        response = await c.post(url, content=b"xyz", headers={"User-Agent": "probe"})
    head = seen[0].decode().lower()
    assert head.count("content-length: 3") == 1
    assert head.count("user-agent:") == 1 and "user-agent: probe" in head
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]


async def test_httpx_decodes_a_gzip_body() -> None:
    """aiohttp leaves the body compressed, so httpx decodes it once."""
    body = gzip.compress(b"compressed hello")
    raw = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(body)
    async with serve(answer(raw + body)) as url, client() as c:
        response = await c.get(url)
    assert response.text == "compressed hello"


async def test_redirects_are_left_to_httpx() -> None:
    """A 302 comes back as is; the transport does not follow it."""
    raw = b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n"
    async with serve(answer(raw)) as url, client() as c:
        response = await c.get(url)
    assert (response.status_code, response.headers["location"]) == (302, "/elsewhere")


async def test_a_big_body_can_be_abandoned_after_one_chunk() -> None:
    """Streaming stops after the first chunk of a 4 MiB body and closes cleanly."""
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (4 << 20) + b"z" * (4 << 20)
    async with serve(answer(raw)) as url, client() as c, c.stream("GET", url) as response:
        async for chunk in response.aiter_raw():
            assert 0 < len(chunk) < 4 << 20
            break


async def test_refused_connection_is_a_connect_error() -> None:
    """Nothing listening: httpx.ConnectError with the OS reason, chained to it."""
    async with serve(answer(OK)) as url:
        pass  # the port is now free
    async with client() as c:
        with pytest.raises(httpx.ConnectError) as info:
            await c.get(url)
    assert isinstance(info.value.__cause__, ConnectionRefusedError)
    assert "Connect call failed" in str(info.value)


async def test_hang_up_without_an_answer_is_a_protocol_error() -> None:
    """A server that closes after reading the request gives RemoteProtocolError."""
    async with serve(answer(b"")) as url, client() as c:
        with pytest.raises(httpx.RemoteProtocolError):
            await c.get(url)


async def test_a_body_cut_short_is_a_protocol_error() -> None:
    """Fewer bytes than Content-Length promised fails while reading the body."""
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"
    async with serve(answer(raw)) as url, client() as c:
        with pytest.raises(httpx.RemoteProtocolError):
            await c.get(url)


async def test_read_timeout_comes_from_the_request_timeout() -> None:
    """A server that never answers hits the request's read timeout: ReadTimeout."""

    async def silent(reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
        await reader.read()

    async with serve(silent) as url, client() as c:
        with pytest.raises(httpx.ReadTimeout):
            await c.get(url, timeout=httpx.Timeout(5, read=0.1))


async def test_connect_timeout_comes_from_the_request_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A connect that never completes hits the request's connect timeout: ConnectTimeout."""

    async def never(**_: Any) -> None:
        await asyncio.sleep(10)

    monkeypatch.setattr(aiohappyeyeballs, "start_connection", never)
    async with client() as c:
        with pytest.raises(httpx.ConnectTimeout):
            await c.get("http://127.0.0.1:9/", timeout=httpx.Timeout(5, connect=0.05))


KEY = ConnectionKey("h", 443, True, True, None, None, None)


@pytest.mark.parametrize(
    ("error", "expected", "text"),
    [
        (
            aiohttp.ClientConnectorCertificateError(
                KEY, ssl.SSLCertVerificationError(1, "certificate verify failed: x")
            ),
            httpx.ConnectError,
            "certificate verify failed: x",
        ),
        (
            aiohttp.ClientConnectorSSLError(KEY, ssl.SSLError(1, "handshake failure")),
            httpx.ConnectError,
            "handshake failure",
        ),
        (aiohttp.ClientConnectorError(KEY, OSError(104, "reset")), httpx.ConnectError, "reset"),
        (aiohttp.ConnectionTimeoutError("slow"), httpx.ConnectTimeout, "slow"),
        (aiohttp.SocketTimeoutError("quiet"), httpx.ReadTimeout, "quiet"),
        (aiohttp.ServerDisconnectedError(), httpx.RemoteProtocolError, "Server disconnected"),
        (aiohttp.NonHttpUrlClientError("ftp://x"), httpx.UnsupportedProtocol, "ftp://x"),
    ],
)
def test_aiohttp_errors_map_to_httpx_errors_keeping_the_reason(
    error: Exception, expected: type[Exception], text: str
) -> None:
    """Each aiohttp error becomes the httpx error the checker expects, with its cause text."""
    with pytest.raises(expected) as info, module._translated():
        raise error
    assert text in str(info.value)


def test_certificate_errors_are_chained_to_the_ssl_error() -> None:
    """The SSL verification error is the cause, so the checker can quote OpenSSL's reason."""
    cert_error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    with pytest.raises(httpx.ConnectError) as info, module._translated():
        raise aiohttp.ClientConnectorCertificateError(KEY, cert_error)
    assert info.value.__cause__ is cert_error


async def test_close_is_idempotent_and_final() -> None:
    """aclose twice is fine, before or after use; a closed transport refuses requests."""
    unused = AiohttpTransport(False)
    await unused.aclose()
    await unused.aclose()
    transport = AiohttpTransport(TLSConfig())
    async with serve(answer(OK)) as url:
        async with httpx.AsyncClient(transport=transport) as c:
            assert (await c.get(url)).status_code == 200
        await transport.aclose()
        request = httpx.Request("GET", url)
        with pytest.raises(ComponentStateError):
            await transport.handle_async_request(request)
