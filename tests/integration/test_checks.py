"""Every check kind against real servers: passing, failing, and cut short by a timeout."""

from __future__ import annotations

import asyncio
import gc
import os
import time
from typing import Any

import pytest

from agent.checks.base import Checker, ProbeReport
from agent.checks.factory import build_checker
from agent.config import CheckConfig
from agent.errors import CheckConnectError, CheckFailed
from tests.integration.conftest import REDIS_PASSWORD, Certs, Servers
from tests.support import free_port

pytestmark = pytest.mark.integration

DAY = 86400.0


def checker(kind: str, **spec: Any) -> Checker:
    return build_checker(CheckConfig.model_validate({"name": "t", kind: spec}))


async def passes(kind: str, **spec: Any) -> ProbeReport:
    """Probe once (bounded like the runner does) and return the report."""
    c = checker(kind, **spec)
    report = ProbeReport()
    try:
        async with asyncio.timeout(10):
            await c.probe(report)
    finally:
        await c.aclose()
    return report


async def fails(
    kind: str, error: type[Exception] = CheckFailed, **spec: Any
) -> tuple[str, ProbeReport]:
    """Probe once, expecting ``error``; return its reason and the report."""
    report = ProbeReport()
    with pytest.raises(error) as info:
        c = checker(kind, **spec)
        try:
            async with asyncio.timeout(10):
                await c.probe(report)
        finally:
            await c.aclose()
    return str(info.value), report


def refused() -> str:
    return f"127.0.0.1:{free_port()}"


# --------------------------------------------------------------------------- http


async def test_http_passes_every_assertion_and_measures_phases(servers: Servers) -> None:
    """A real JSON endpoint passes status, regex, JSONPath, header and duration assertions."""
    expect = {
        "status": [200],
        "body_regex": '"status":"ok"',
        "body_not_regex": "error",
        "json": {"$.count": 3, "$.items[-1].id": 2},
        "headers": {"X-Version": r"^1\.2\.3$"},
        "max_duration": "5s",
    }
    report = await passes("http", url=f"{servers.http_url}/health", expect=expect)
    assert report.status_code == 200
    assert {"connect", "processing", "transfer"} <= report.phases.keys()


async def test_http_fails_on_a_real_error_status(servers: Servers) -> None:
    """A 503 from the server fails the check and reports 503."""
    reason, report = await fails("http", url=f"{servers.http_url}/status/503")
    assert (reason, report.status_code) == ("status 503, expected 2xx", 503)


async def test_http_follows_a_real_redirect(servers: Servers) -> None:
    """A 302 to /health is followed and the final 200 is checked."""
    report = await passes(
        "http", url=f"{servers.http_url}/redirect", expect={"json": {"$.count": 3}}
    )
    assert report.status_code == 200


async def test_http_basic_auth_is_accepted_and_required(servers: Servers) -> None:
    """The server accepts our Basic credentials and answers 401 without them."""
    url = f"{servers.http_url}/basic"
    await passes("http", url=url, basic_auth={"username": "u", "password": "p"})
    reason, _ = await fails("http", url=url)
    assert reason == "status 401, expected 2xx"


async def test_http_body_over_the_limit_fails(servers: Servers) -> None:
    """A 2 MiB chunked body fails a 100000-byte max_body_bytes."""
    reason, _ = await fails("http", url=f"{servers.http_url}/big", max_body_bytes=100000)
    assert reason == "body exceeds 100000 bytes"


async def test_http_too_slow_fails_max_duration(servers: Servers) -> None:
    """An endpoint that takes 0.3 s fails a 100ms max_duration."""
    url = f"{servers.http_url}/slow"
    reason, _ = await fails("http", url=url, expect={"max_duration": "100ms"})
    assert "more than max_duration 100ms" in reason


async def test_https_with_ca_measures_tls_and_certificate_expiry(
    servers: Servers, certs: Certs
) -> None:
    """HTTPS verified against our CA records the tls phase and the leaf's expiry (30 days)."""
    report = await passes(
        "http", url=f"{servers.https_url}/health", tls_config={"ca_file": certs.ca}
    )
    assert {"connect", "tls", "processing", "transfer"} <= report.phases.keys()
    assert report.ssl_earliest_cert_expiry is not None
    assert abs(report.ssl_earliest_cert_expiry - (time.time() + 30 * DAY)) < DAY


async def test_https_untrusted_certificate_fails_unless_verification_is_off(
    servers: Servers,
) -> None:
    """Without our CA the handshake fails verification; insecure_skip_verify lets it pass."""
    url = f"{servers.https_url}/health"
    reason, _ = await fails("http", url=url)
    assert reason.startswith("TLS certificate verify failed: ")
    await passes("http", url=url, tls_config={"insecure_skip_verify": True})


async def test_http_refused_connection_is_a_connect_error() -> None:
    """Nothing listening means CheckConnectError naming the URL."""
    target = refused()
    reason, _ = await fails("http", CheckConnectError, url=f"http://{target}/x")
    assert reason.startswith(f"connect to http://{target}/x failed")


# --------------------------------------------------------------------------- flow


LOGIN: dict[str, Any] = {
    "name": "login",
    "method": "POST",
    "body": '{"user": "u", "password": "p"}',
    "headers": {"Content-Type": "application/json"},
    "capture": {"token": {"json": "$.token"}, "sid": {"header": "X-Session"}},
}
ME: dict[str, Any] = {
    "name": "me",
    "headers": {"Authorization": "Bearer ${token}", "X-Session": "${sid}"},
    "expect": {"json": {"$.user": "u"}},
}


async def test_flow_logs_in_and_uses_the_captured_token(servers: Servers) -> None:
    """A real login's token and session header authorize the next step."""
    steps = [
        {**LOGIN, "url": f"{servers.http_url}/login"},
        {**ME, "url": f"{servers.http_url}/me"},
    ]
    report = await passes("flow", steps=steps)
    assert [(s.name, s.success, s.status_code) for s in report.steps] == [
        ("login", True, 200),
        ("me", True, 200),
    ]


async def test_flow_stops_at_the_first_failing_step(servers: Servers) -> None:
    """Wrong credentials fail the login step; the next step is never run."""
    bad_login = {**LOGIN, "url": f"{servers.http_url}/login", "body": '{"user": "u"}'}
    steps = [bad_login, {**ME, "url": f"{servers.http_url}/me"}]
    reason, report = await fails("flow", steps=steps)
    assert reason == "step login: status 401, expected 2xx"
    assert [(s.name, s.success) for s in report.steps] == [("login", False)]


# --------------------------------------------------------------------------- tcp


async def test_tcp_send_and_expect_against_redis(redis_server: str) -> None:
    """Sending PING to a real redis-server is answered by +PONG."""
    report = await passes("tcp", target=redis_server, send="PING\r\n", expect=r"^\+PONG")
    assert "connect" in report.phases


async def test_tcp_fails_when_the_peer_closes_without_a_match(redis_server: str) -> None:
    """QUIT makes redis answer +OK and hang up, so an expected PONG never comes."""
    reason, _ = await fails("tcp", target=redis_server, send="QUIT\r\n", expect="PONG")
    assert reason == "connection closed after 5 bytes without a match for 'PONG'"


async def test_tcp_with_tls_verifies_the_server(servers: Servers, certs: Certs) -> None:
    """tls: true handshakes with our CA; an untrusted self-signed server fails."""
    report = await passes(
        "tcp",
        target=f"localhost:{servers.tls['valid']}",
        tls=True,
        tls_config={"ca_file": certs.ca},
    )
    assert {"connect", "tls"} <= report.phases.keys()
    reason, _ = await fails(
        "tcp",
        target=f"localhost:{servers.tls['self_signed']}",
        tls=True,
        tls_config={"ca_file": certs.ca},
    )
    assert reason.startswith("TLS certificate verify failed: self")


async def test_tcp_refused_connection_is_a_connect_error() -> None:
    """Nothing listening means CheckConnectError."""
    await fails("tcp", CheckConnectError, target=refused())


# --------------------------------------------------------------------------- tls


async def test_tls_reports_chain_expiry(servers: Servers, certs: Certs) -> None:
    """A valid chain passes and reports earliest and verified-chain expiry (30 days away)."""
    report = await passes(
        "tls", target=f"localhost:{servers.tls['valid']}", tls_config={"ca_file": certs.ca}
    )
    assert report.ssl_earliest_cert_expiry is not None
    assert report.ssl_last_chain_expiry is not None
    assert abs(report.ssl_earliest_cert_expiry - (time.time() + 30 * DAY)) < DAY
    assert report.ssl_last_chain_expiry <= report.ssl_earliest_cert_expiry + 1
    assert {"connect", "tls"} <= report.phases.keys()


async def test_tls_last_chain_expiry_covers_the_verified_chain(
    servers: Servers, certs: Certs
) -> None:
    """A 30-day leaf from a CA with 10 days left: the presented leaf sets the earliest
    expiry, the verified chain (leaf and CA) sets the last chain expiry."""
    report = await passes(
        "tls",
        target=f"localhost:{servers.tls['outlives_ca']}",
        tls_config={"ca_file": certs.short_ca},
    )
    assert report.ssl_earliest_cert_expiry is not None
    assert report.ssl_last_chain_expiry is not None
    assert abs(report.ssl_earliest_cert_expiry - (time.time() + 30 * DAY)) < DAY
    assert abs(report.ssl_last_chain_expiry - (time.time() + 10 * DAY)) < DAY


@pytest.mark.parametrize(
    ("server", "message"),
    [
        ("expired", "certificate has expired"),
        ("wrong_host", "Hostname mismatch"),
        ("self_signed", "self"),
    ],
)
async def test_tls_verification_failures_fail_with_the_ssl_reason(
    servers: Servers, certs: Certs, server: str, message: str
) -> None:
    """Expired, wrong-hostname and self-signed certificates fail with OpenSSL's reason."""
    reason, _ = await fails(
        "tls", target=f"localhost:{servers.tls[server]}", tls_config={"ca_file": certs.ca}
    )
    assert reason.startswith(f"TLS certificate verify failed: {message}")


async def test_tls_server_name_overrides_the_checked_hostname(
    servers: Servers, certs: Certs
) -> None:
    """server_name wrong.example makes the wrong-host certificate acceptable."""
    tls = {"ca_file": certs.ca, "server_name": "wrong.example"}
    await passes("tls", target=f"127.0.0.1:{servers.tls['wrong_host']}", tls_config=tls)


async def test_tls_min_days_remaining(servers: Servers, certs: Certs) -> None:
    """A certificate with two days left fails min_days_remaining 7 and passes 1."""
    target, tls = f"localhost:{servers.tls['soon']}", {"ca_file": certs.ca}
    reason, report = await fails("tls", target=target, tls_config=tls, min_days_remaining=7)
    assert reason == "certificate expires in 2.0 days, less than min_days_remaining 7"
    assert report.ssl_earliest_cert_expiry is not None
    await passes("tls", target=target, tls_config=tls, min_days_remaining=1)


async def test_tls_insecure_skip_verify_still_reports_an_expired_certificate(
    servers: Servers,
) -> None:
    """Without verification an expired certificate connects, reports its past expiry,
    and fails min_days_remaining."""
    target, tls = f"localhost:{servers.tls['expired']}", {"insecure_skip_verify": True}
    report = await passes("tls", target=target, tls_config=tls)
    assert report.ssl_earliest_cert_expiry is not None
    assert report.ssl_earliest_cert_expiry < time.time()
    assert report.ssl_last_chain_expiry is None
    reason, _ = await fails("tls", target=target, tls_config=tls, min_days_remaining=0)
    assert reason.startswith("certificate expired ")


# --------------------------------------------------------------------------- websocket


async def test_websocket_skips_other_messages_until_one_matches(servers: Servers) -> None:
    """The echo of what we sent matches even though the server first sends 'noise'."""
    url = f"ws://127.0.0.1:{servers.ws}/echo"
    report = await passes("websocket", url=url, send="hello", expect="^hello$")
    assert report.status_code == 101


@pytest.mark.parametrize(("path", "status"), [("/forbidden", 403), ("/unavailable", 503)])
async def test_websocket_refused_handshake_reports_the_status(
    servers: Servers, path: str, status: int
) -> None:
    """An HTTP 403 or 503 instead of the upgrade fails with that status."""
    url = f"ws://127.0.0.1:{servers.ws}{path}"
    reason, report = await fails("websocket", url=url, expect="x")
    assert reason == f"handshake with {url} refused: HTTP {status}"
    assert report.status_code == status


async def test_websocket_closed_before_a_match_fails(servers: Servers) -> None:
    """A server that says goodbye before sending what we expect fails with its close code."""
    url = f"ws://127.0.0.1:{servers.ws}/bye"
    reason, _ = await fails("websocket", url=url, expect="never")
    assert reason == "connection closed (code 1001) before a matching message"


async def test_wss_verifies_the_server(servers: Servers, certs: Certs) -> None:
    """wss:// passes with our CA and fails certificate verification without it."""
    url = f"wss://localhost:{servers.wss}/echo"
    await passes("websocket", url=url, send="ping", expect="ping", tls_config={"ca_file": certs.ca})
    reason, _ = await fails("websocket", url=url)
    assert reason.startswith("TLS certificate verify failed: ")


async def test_websocket_refused_connection_is_a_connect_error() -> None:
    """Nothing listening means CheckConnectError."""
    await fails("websocket", CheckConnectError, url=f"ws://{refused()}/")


# --------------------------------------------------------------------------- redis


async def test_redis_ping(redis_server: str) -> None:
    """PING on a fresh connection to a real redis-server passes."""
    report = await passes("redis", target=redis_server, db=1)
    assert "connect" in report.phases


async def test_redis_password(redis_auth_server: str) -> None:
    """The right password passes; a wrong or missing one fails without showing it."""
    await passes("redis", target=redis_auth_server, password=REDIS_PASSWORD)
    reason, _ = await fails("redis", target=redis_auth_server, password="wrong-pw")
    assert reason.startswith("authentication failed")
    assert "wrong-pw" not in reason
    reason, _ = await fails("redis", target=redis_auth_server)
    assert reason == "authentication failed: Authentication required."


async def test_redis_bad_database_fails(redis_server: str) -> None:
    """SELECT of a database the server does not have fails the check."""
    reason, _ = await fails("redis", target=redis_server, db=999)
    assert "DB index is out of range" in reason


async def test_redis_over_tls(redis_tls_server: str, certs: Certs) -> None:
    """A TLS-only redis-server passes with our CA and fails verification without it."""
    target = redis_tls_server.replace("127.0.0.1", "localhost")
    await passes("redis", target=target, tls=True, tls_config={"ca_file": certs.ca})
    reason, _ = await fails("redis", target=target, tls=True)
    assert reason.startswith("TLS certificate verify failed: ")


async def test_redis_refused_connection_is_a_connect_error() -> None:
    """Nothing listening means CheckConnectError."""
    await fails("redis", CheckConnectError, target=refused())


# --------------------------------------------------------------------------- postgres


@pytest.mark.parametrize("sslmode", ["disable", "prefer", "require"])
async def test_postgres_query_passes(postgres_server: str, sslmode: str) -> None:
    """SELECT 1 on a real cluster passes with and without TLS."""
    report = await passes("postgres", target=postgres_server, sslmode=sslmode)
    assert {"connect", "processing"} <= report.phases.keys()


async def test_postgres_failing_query_and_unknown_database(postgres_server: str) -> None:
    """A query on a missing table and a missing database fail with their SQLSTATE."""
    reason, _ = await fails("postgres", target=postgres_server, query="SELECT * FROM nope")
    assert reason.startswith("postgres error 42P01")
    # sslmode disable: with "prefer", asyncpg retries a refused TLS attempt in clear text and
    # closes the TLS one in the background, which may outlive this test's event loop.
    reason, _ = await fails(
        "postgres", target=postgres_server, database="nowhere", sslmode="disable"
    )
    assert reason.startswith("postgres error 3D000")


async def test_postgres_refused_connection_is_a_connect_error() -> None:
    """Nothing listening means CheckConnectError."""
    await fails("postgres", CheckConnectError, target=refused(), sslmode="disable")


# --------------------------------------------------------------------------- timeouts


def _open_sockets() -> int:
    """Sockets this process holds open (client and in-process server sides)."""
    fds = os.listdir("/proc/self/fd")
    count = 0
    for fd in fds:
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:
            continue
    return count


async def _sockets_settle_to(limit: int) -> int:
    """Open sockets once back to ``limit`` (closes finish in callbacks), or after 3 s."""
    deadline = time.monotonic() + 3
    while True:
        count = _open_sockets()
        if count <= limit or time.monotonic() > deadline:
            return count
        await asyncio.sleep(0.02)


def _silent_spec(kind: str, addr: str) -> dict[str, Any]:
    specs: dict[str, dict[str, Any]] = {
        "http": {"url": f"http://{addr}/"},
        "flow": {"steps": [{"name": "a", "url": f"http://{addr}/"}]},
        "tcp": {"target": addr, "expect": "never"},
        "tls": {"target": addr},
        "websocket": {"url": f"ws://{addr}/"},
        "redis": {"target": addr},
        "postgres": {"target": addr, "sslmode": "disable"},
    }
    return specs[kind]


@pytest.mark.parametrize("kind", ["http", "flow", "tcp", "tls", "websocket", "redis", "postgres"])
async def test_silent_target_times_out_promptly_without_leaks(servers: Servers, kind: str) -> None:
    """Under asyncio.timeout(1), as the runner calls it, a silent target gives TimeoutError
    within about a second, and no task or socket is left behind."""
    c = checker(kind, **_silent_spec(kind, f"127.0.0.1:{servers.silent}"))
    await asyncio.sleep(0.05)  # let closes from earlier tests finish before the baseline
    baseline = _open_sockets()
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(1):
            await c.probe(ProbeReport())
    assert time.monotonic() - started < 1.5
    await c.aclose()
    gc.collect()
    assert await _sockets_settle_to(baseline) <= baseline
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []


async def test_timeout_keeps_the_steps_a_flow_completed(servers: Servers) -> None:
    """When a flow's second step hangs, the report still holds the first step's result."""
    steps = [
        {"name": "health", "url": f"{servers.http_url}/health"},
        {"name": "hang", "url": f"http://127.0.0.1:{servers.silent}/"},
    ]
    c = checker("flow", steps=steps)
    report = ProbeReport()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(1):
            await c.probe(report)
    await c.aclose()
    assert [(s.name, s.success, s.reason) for s in report.steps] == [
        ("health", True, None),
        ("hang", False, "did not finish"),
    ]
