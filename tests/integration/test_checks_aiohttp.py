"""HTTP and flow checks on the aiohttp transport, against real servers.

The HTTP and flow cases of test_checks.py run again here: each re-collects
test_checks.py's own test function with its ``build_checker`` replaced by one that
passes ``http_transport=aiohttp_transport`` (the ``with_aiohttp`` fixture checks that
the transport was really used). Then what that transport adds: TLS and DNS reasons, the resolve
phase, sockets closed before a check returns, and the wire behaviour against tiny
asyncio servers on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.checks.aiohttp_transport import AiohttpTransport, aiohttp_transport
from agent.checks.base import ProbeReport
from agent.checks.factory import build_checker
from agent.config import CheckConfig, TLSConfig
from agent.errors import CheckConnectError, CheckError
from tests.integration import test_checks as base
from tests.integration.conftest import Certs, Servers

pytestmark = pytest.mark.integration


@pytest.fixture
def with_aiohttp(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[AiohttpTransport]]:
    """Make test_checks.py build http and flow checkers on the aiohttp transport."""
    made: list[AiohttpTransport] = []

    def factory(tls: TLSConfig) -> AiohttpTransport:
        transport = aiohttp_transport(tls)
        made.append(transport)
        return transport

    def build(check: CheckConfig, **_: Any) -> Any:
        return build_checker(check, http_transport=factory)

    monkeypatch.setattr(base, "build_checker", build)
    yield made
    assert made, "the aiohttp transport was not used"


def _same(test: Any) -> Any:
    """A test of test_checks.py, re-collected here under the same name and docstring."""

    @pytest.mark.usefixtures("with_aiohttp")
    @functools.wraps(test)
    async def run(*args: Any, **kwargs: Any) -> None:
        await test(*args, **kwargs)

    return run


test_http_passes_every_assertion_and_measures_phases = _same(
    base.test_http_passes_every_assertion_and_measures_phases
)
test_http_fails_on_a_real_error_status = _same(base.test_http_fails_on_a_real_error_status)
test_http_follows_a_real_redirect = _same(base.test_http_follows_a_real_redirect)
test_http_basic_auth_is_accepted_and_required = _same(
    base.test_http_basic_auth_is_accepted_and_required
)
test_http_body_over_the_limit_fails = _same(base.test_http_body_over_the_limit_fails)
test_http_too_slow_fails_max_duration = _same(base.test_http_too_slow_fails_max_duration)
test_https_with_ca_measures_tls_and_certificate_expiry = _same(
    base.test_https_with_ca_measures_tls_and_certificate_expiry
)
test_https_untrusted_certificate_fails_unless_verification_is_off = _same(
    base.test_https_untrusted_certificate_fails_unless_verification_is_off
)
test_http_refused_connection_is_a_connect_error = _same(
    base.test_http_refused_connection_is_a_connect_error
)
test_flow_logs_in_and_uses_the_captured_token = _same(
    base.test_flow_logs_in_and_uses_the_captured_token
)
test_flow_stops_at_the_first_failing_step = _same(base.test_flow_stops_at_the_first_failing_step)
test_timeout_keeps_the_steps_a_flow_completed = _same(
    base.test_timeout_keeps_the_steps_a_flow_completed
)


@pytest.mark.usefixtures("with_aiohttp")
@pytest.mark.parametrize("kind", ["http", "flow"])
async def test_silent_target_times_out_promptly_without_leaks(servers: Servers, kind: str) -> None:
    """A silent target times out within about a second and leaves no task or socket."""
    await base.test_silent_target_times_out_promptly_without_leaks(servers, kind)


# --------------------------------------------------------------------------- reasons


@pytest.mark.usefixtures("with_aiohttp")
@pytest.mark.parametrize(
    ("server", "message"),
    [
        ("expired", "certificate has expired"),
        ("wrong_host", "Hostname mismatch"),
        ("self_signed", "self"),
    ],
)
async def test_https_verification_failures_fail_with_the_ssl_reason(
    servers: Servers, certs: Certs, server: str, message: str
) -> None:
    """Expired, wrong-hostname and self-signed certificates fail with OpenSSL's reason."""
    url = f"https://localhost:{servers.tls[server]}/"
    reason, _ = await base.fails("http", url=url, tls_config={"ca_file": certs.ca})
    assert reason.startswith(f"TLS certificate verify failed: {message}")


@pytest.mark.usefixtures("with_aiohttp")
async def test_https_server_name_is_the_name_verified(servers: Servers, certs: Certs) -> None:
    """server_name wrong.example is what the valid (localhost) certificate is checked against."""
    tls = {"ca_file": certs.ca, "server_name": "wrong.example"}
    reason, _ = await base.fails("http", url=f"{servers.https_url}/health", tls_config=tls)
    assert reason.startswith("TLS certificate verify failed: Hostname mismatch")


async def test_unknown_host_fails_with_the_same_reason_as_httpx() -> None:
    """A name that does not resolve fails with the resolver's reason, as on httpx's transport."""
    check = CheckConfig.model_validate({"name": "t", "http": {"url": "http://nohost.invalid/"}})
    reasons = []
    for transport in (None, aiohttp_transport):
        checker = build_checker(check, http_transport=transport)
        with pytest.raises(CheckConnectError) as info:
            await checker.probe(ProbeReport())
        await checker.aclose()
        reasons.append(str(info.value))
    assert reasons[0] == reasons[1]
    assert reasons[1].startswith("connect to http://nohost.invalid/ failed: ")


# --------------------------------------------------------------------------- phases


@pytest.mark.usefixtures("with_aiohttp")
async def test_https_reports_every_phase_in_order(servers: Servers, certs: Certs) -> None:
    """A request to https://localhost reports resolve, connect, tls, processing and the
    body as started/complete pairs in that order, and the checker records their phases."""
    events: list[str] = []

    async def trace(event: str, _info: dict[str, Any]) -> None:
        events.append(event)

    async with httpx.AsyncClient(transport=AiohttpTransport(TLSConfig(ca_file=certs.ca))) as c:
        response = await c.get(f"{servers.https_url}/health", extensions={"trace": trace})
    assert response.json()["status"] == "ok"
    phases = ["resolve", "connect_tcp", "start_tls"]
    body = ["receive_response_headers", "receive_response_body"]
    expected = [f"connection.{p}.{s}" for p in phases for s in ("started", "complete")]
    expected += [f"http11.{p}.{s}" for p in body for s in ("started", "complete")]
    assert events == [*expected, "http11.response_closed.complete"]
    report = await base.passes(
        "http", url=f"{servers.https_url}/health", tls_config={"ca_file": certs.ca}
    )
    assert {"resolve", "connect", "tls", "processing", "transfer"} <= report.phases.keys()
    assert all(seconds >= 0 for seconds in report.phases.values())


# --------------------------------------------------------------------------- sockets


def client_sockets_to(port: int) -> int:
    """This process's TCP sockets whose peer is ``port`` (the client side only)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        for line in path.read_text().splitlines()[1:] if path.exists() else ():
            fields = line.split()
            if int(fields[2].rsplit(":", 1)[1], 16) == port and fields[9] in inodes:
                count += 1
    return count


def _targets(servers: Servers, certs: Certs) -> dict[str, tuple[int, dict[str, Any]]]:
    ca = {"ca_file": certs.ca}
    return {
        "http": (servers.http, {"url": f"{servers.http_url}/health"}),
        "https": (servers.https, {"url": f"{servers.https_url}/health", "tls_config": ca}),
        "https-insecure": (
            servers.https,
            {"url": f"{servers.https_url}/health", "tls_config": {"insecure_skip_verify": True}},
        ),
        "untrusted": (servers.https, {"url": f"{servers.https_url}/health"}),
        "expired": (
            servers.tls["expired"],
            {"url": f"https://localhost:{servers.tls['expired']}/"},
        ),
        "too-big": (servers.http, {"url": f"{servers.http_url}/big", "max_body_bytes": 1000}),
    }


@pytest.mark.parametrize(
    "target", ["http", "https", "https-insecure", "untrusted", "expired", "too-big"]
)
async def test_no_socket_outlives_a_check(servers: Servers, certs: Certs, target: str) -> None:
    """When a probe returns (passed, failed verification or an assertion), its socket is
    already closed: nothing is left for the event loop to close after the check."""
    port, spec = _targets(servers, certs)[target]
    checker = build_checker(
        CheckConfig.model_validate({"name": "t", "http": spec}), http_transport=aiohttp_transport
    )
    try:
        for _ in range(3):
            with contextlib.suppress(CheckError):
                await checker.probe(ProbeReport())
            assert client_sockets_to(port) == 0
    finally:
        await checker.aclose()


async def test_no_socket_outlives_a_timed_out_check(servers: Servers) -> None:
    """A probe cut short by the runner's timeout has closed its socket when TimeoutError
    reaches the runner."""
    spec = {"url": f"http://127.0.0.1:{servers.silent}/"}
    checker = build_checker(
        CheckConfig.model_validate({"name": "t", "http": spec}), http_transport=aiohttp_transport
    )
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await checker.probe(ProbeReport())
    assert client_sockets_to(servers.silent) == 0
    await checker.aclose()


# --------------------------------------------------------------------------- the wire

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def serve(handler: Handler) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A server on a free port running ``handler`` per connection; yields its base URL
    and the request heads it read (one per connection)."""
    tasks: set[asyncio.Task[None]] = set()
    heads: list[bytes] = []

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            heads.append(await reader.readuntil(b"\r\n\r\n"))
            await handler(reader, writer)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(run, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", heads
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


def answer(raw: bytes) -> Handler:
    """A handler that writes ``raw`` after the request head, then hangs up."""

    async def handle(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(raw)
        await writer.drain()

    return handle


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nhello"


@asynccontextmanager
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=aiohttp_transport(TLSConfig()), trust_env=False) as c:
        yield c


async def test_plain_http_reports_no_tls_events() -> None:
    """Plain HTTP to an IP address: resolve, connect, headers, body, close; no TLS."""
    events: list[str] = []

    async def trace(event: str, _info: dict[str, Any]) -> None:
        events.append(event.rpartition(".")[0])

    async with serve(answer(OK)) as (url, _), client() as c:
        response = await c.get(url, extensions={"trace": trace})
    assert response.text == "hello"
    assert list(dict.fromkeys(events)) == [
        "connection.resolve",
        "connection.connect_tcp",
        "http11.receive_response_headers",
        "http11.receive_response_body",
        "http11.response_closed",
    ]


async def test_headers_pass_through_unchanged() -> None:
    """httpx's request headers go out once each and aiohttp adds none of its own
    (no Content-Type for a bare body); repeated response headers are all kept."""
    async with serve(answer(OK)) as (url, heads), client() as c:
        response = await c.post(url, content=b"xyz", headers={"User-Agent": "probe"})
    head = heads[0].decode().lower()
    assert head.count("content-length: 3") == 1
    assert head.count("user-agent:") == 1 and "user-agent: probe" in head
    assert "content-type" not in head
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]


async def test_httpx_decodes_a_gzip_body() -> None:
    """aiohttp leaves the body compressed, so httpx decodes it once."""
    body = gzip.compress(b"compressed hello")
    raw = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(body)
    async with serve(answer(raw + body)) as (url, _), client() as c:
        response = await c.get(url)
    assert response.text == "compressed hello"


async def test_redirects_are_left_to_httpx() -> None:
    """A 302 comes back as is; the transport does not follow it."""
    raw = b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n"
    async with serve(answer(raw)) as (url, heads), client() as c:
        response = await c.get(url)
    assert (response.status_code, response.headers["location"]) == (302, "/elsewhere")
    assert len(heads) == 1


async def test_a_big_body_abandoned_after_one_chunk_closes_its_socket() -> None:
    """Streaming stops after the first chunk of a 4 MiB body; closing the response
    closes the socket before it returns."""
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (4 << 20) + b"z" * (4 << 20)
    async with serve(answer(raw)) as (url, _), client() as c:
        async with c.stream("GET", url) as response:
            async for chunk in response.aiter_raw():
                assert 0 < len(chunk) < 4 << 20
                break
        assert client_sockets_to(int(url.rpartition(":")[2])) == 0


async def test_hang_up_without_an_answer_is_a_protocol_error_without_a_retry() -> None:
    """A server that closes after reading the request gives RemoteProtocolError, and the
    GET is not sent again on a second connection."""
    async with serve(answer(b"")) as (url, heads), client() as c:
        with pytest.raises(httpx.RemoteProtocolError):
            await c.get(url)
    assert len(heads) == 1


async def test_a_body_cut_short_is_a_protocol_error() -> None:
    """Fewer bytes than Content-Length promised fails while reading the body."""
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"
    async with serve(answer(raw)) as (url, _), client() as c:
        with pytest.raises(httpx.RemoteProtocolError):
            await c.get(url)


async def test_read_timeout_comes_from_the_request_timeout() -> None:
    """A server that never answers hits the request's read timeout: ReadTimeout."""

    async def silent(reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
        await reader.read()

    async with serve(silent) as (url, _), client() as c:
        with pytest.raises(httpx.ReadTimeout):
            await c.get(url, timeout=httpx.Timeout(5, read=0.1))


async def test_connect_timeout_bounds_the_tls_handshake(servers: Servers) -> None:
    """A TLS handshake with a peer that never answers hits the connect timeout, and
    its socket is closed when ConnectTimeout is raised."""
    async with client() as c:
        with pytest.raises(httpx.ConnectTimeout):
            url = f"https://127.0.0.1:{servers.silent}/"
            await c.get(url, timeout=httpx.Timeout(5, connect=0.2))
        assert client_sockets_to(servers.silent) == 0
