"""The HTTP and flow checkers against httpx.MockTransport (no sockets)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import certifi
import httpx
import pytest
import structlog

from agent.checks.base import Checker, ProbeReport
from agent.checks.factory import build_checker
from agent.checks.flow import FlowChecker
from agent.checks.http import HttpChecker, redact_url
from agent.checks.postgres import PostgresChecker
from agent.checks.redis import RedisChecker
from agent.checks.tcp import TcpChecker
from agent.checks.tls import TlsChecker
from agent.checks.tlsutil import build_ssl_context
from agent.checks.websocket import WebsocketChecker
from agent.config import CheckConfig, TLSConfig
from agent.errors import (
    CheckConnectError,
    CheckFailed,
    CheckTimeout,
    ComponentStateError,
)

Handler = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]
URL = "http://svc.test/health"
JSON_BODY = {"status": "ok", "count": 3, "items": [{"id": 1}, {"id": 2}]}


class Mock:
    """A transport factory serving ``handler`` and remembering every request."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []
        self.transports = 0

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.handler(request)
        return await answer if isinstance(answer, Awaitable) else answer

    def __call__(self, tls: TLSConfig) -> httpx.AsyncBaseTransport:
        self.transports += 1
        return httpx.MockTransport(self._handle)


def ok_json(_request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=JSON_BODY, headers={"X-Version": "1.2.3"})


def http_checker(mock: Mock, **http: Any) -> Checker:
    http.setdefault("url", URL)
    return build_checker(CheckConfig(name="api", http=http), http_transport=mock)


async def probe(checker: Checker) -> ProbeReport:
    report = ProbeReport()
    try:
        await checker.probe(report)
    finally:
        await checker.aclose()
    return report


async def failure(
    checker: Checker, error: type[Exception] = CheckFailed
) -> tuple[str, ProbeReport]:
    report = ProbeReport()
    with pytest.raises(error) as info:
        await probe_into(checker, report)
    return str(info.value), report


async def probe_into(checker: Checker, report: ProbeReport) -> None:
    try:
        await checker.probe(report)
    finally:
        await checker.aclose()


# --------------------------------------------------------------------------- status


async def test_any_2xx_passes_when_no_status_is_expected() -> None:
    """With an empty status list a 204 passes, and its status and transfer time are reported."""
    report = await probe(http_checker(Mock(lambda r: httpx.Response(204))))
    assert report.status_code == 204
    assert "transfer" in report.phases


async def test_non_2xx_fails_and_still_reports_the_status() -> None:
    """A 500 fails the check with the status in the reason, and status_code is set."""
    reason, report = await failure(http_checker(Mock(lambda r: httpx.Response(500))))
    assert reason == "status 500, expected 2xx"
    assert report.status_code == 500


async def test_explicit_status_list_replaces_the_2xx_rule() -> None:
    """expect.status [404] accepts a 404 and rejects a 200."""
    await probe(http_checker(Mock(lambda r: httpx.Response(404)), expect={"status": [404]}))
    reason, _ = await failure(http_checker(Mock(ok_json), expect={"status": [404, 410]}))
    assert reason == "status 200, expected one of 404, 410"


# --------------------------------------------------------------------------- body and json


async def test_body_regex_must_match_and_body_not_regex_must_not() -> None:
    """body_regex passes on a match, fails without one; body_not_regex fails on a match."""
    await probe(http_checker(Mock(ok_json), expect={"body_regex": r'"status":\s*"ok"'}))
    reason, _ = await failure(http_checker(Mock(ok_json), expect={"body_regex": "degraded"}))
    assert reason == "body does not match 'degraded'"
    reason, _ = await failure(http_checker(Mock(ok_json), expect={"body_not_regex": "count"}))
    assert reason == "body matches 'count'"


async def test_json_paths_compare_json_values() -> None:
    """expect.json passes when every path holds the expected JSON value."""
    expect = {"json": {"$.status": "ok", "$.count": 3, "$.items[-1].id": 2}}
    await probe(http_checker(Mock(ok_json), expect=expect))


async def test_json_string_never_equals_a_number() -> None:
    """{"$.count": "3"} fails against the number 3, and the reason shows both values."""
    reason, _ = await failure(http_checker(Mock(ok_json), expect={"json": {"$.count": "3"}}))
    assert reason == 'json $.count is 3, expected "3"'


async def test_json_missing_path_and_non_json_body_fail() -> None:
    """A missing path names the path; a body that is not JSON fails clearly."""
    reason, _ = await failure(http_checker(Mock(ok_json), expect={"json": {"$.items[7].id": 1}}))
    assert reason == "json $.items[7].id: $.items has 2 items, no index 7"
    html = Mock(lambda r: httpx.Response(200, text="<html>"))
    reason, _ = await failure(http_checker(html, expect={"json": {"$.status": "ok"}}))
    assert reason == "body is not valid JSON"


# --------------------------------------------------------------------------- headers, duration


async def test_header_must_exist_and_match_without_quoting_its_value() -> None:
    """A matching header passes; a missing or mismatching one fails and never shows the value."""
    await probe(http_checker(Mock(ok_json), expect={"headers": {"x-version": r"^1\.2\."}}))
    reason, _ = await failure(http_checker(Mock(ok_json), expect={"headers": {"X-Trace": "."}}))
    assert reason == "header X-Trace is missing"
    reason, _ = await failure(http_checker(Mock(ok_json), expect={"headers": {"X-Version": "^2"}}))
    assert reason == "header X-Version does not match '^2'"
    assert "1.2.3" not in reason


async def test_slow_answer_fails_max_duration() -> None:
    """An answer slower than max_duration fails with the measured and allowed durations."""

    async def slow(_request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.05)
        return httpx.Response(200)

    reason, _ = await failure(http_checker(Mock(slow), expect={"max_duration": "10ms"}))
    assert reason.startswith("took 0.0") and reason.endswith("more than max_duration 10ms")


# --------------------------------------------------------------------------- body size limit


async def test_declared_body_over_the_limit_fails() -> None:
    """A Content-Length above max_body_bytes fails before the body is read."""
    big = Mock(lambda r: httpx.Response(200, content=b"x" * 2048))
    reason, report = await failure(http_checker(big, max_body_bytes=1024))
    assert reason == "body exceeds 1024 bytes"
    assert report.status_code == 200


async def test_streamed_body_stops_being_read_past_the_limit() -> None:
    """An endless chunked body fails at the limit; no more than one chunk past it is pulled."""
    pulled = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal pulled
        while True:
            pulled += 1
            yield b"y" * 1000

    mock = Mock(lambda r: httpx.Response(200, content=endless()))
    async with asyncio.timeout(5):
        reason, _ = await failure(http_checker(mock, max_body_bytes=4500))
    assert reason == "body exceeds 4500 bytes"
    assert pulled <= 6


# --------------------------------------------------------------------------- redirects


def redirecting(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/old":
        return httpx.Response(302, headers={"Location": "/health"})
    return httpx.Response(200)


async def test_redirects_are_followed_by_default() -> None:
    """A 302 is followed; the final status is reported and both URLs were requested."""
    mock = Mock(redirecting)
    report = await probe(http_checker(mock, url="http://svc.test/old"))
    assert report.status_code == 200
    assert [r.url.path for r in mock.requests] == ["/old", "/health"]


async def test_redirects_are_not_followed_when_disabled() -> None:
    """With follow_redirects false the 302 itself is checked against expect.status."""
    url = "http://svc.test/old"
    reason, report = await failure(http_checker(Mock(redirecting), url=url, follow_redirects=False))
    assert (reason, report.status_code) == ("status 302, expected 2xx", 302)
    await probe(
        http_checker(Mock(redirecting), url=url, follow_redirects=False, expect={"status": [302]})
    )


async def test_redirect_loop_fails() -> None:
    """A redirect loop ends in CheckFailed, not an endless run."""
    loop = Mock(lambda r: httpx.Response(302, headers={"Location": "/again"}))
    reason, _ = await failure(http_checker(loop))
    assert reason == "too many redirects from http://svc.test/health"


# --------------------------------------------------------------------------- request and auth


async def test_method_body_and_headers_are_sent() -> None:
    """The configured method, body and headers reach the server, with our User-Agent."""
    mock = Mock(ok_json)
    await probe(http_checker(mock, method="POST", body='{"q": 1}', headers={"Content-Type": "x/y"}))
    sent = mock.requests[0]
    assert (sent.method, sent.content, sent.headers["content-type"]) == ("POST", b'{"q": 1}', "x/y")
    assert sent.headers["user-agent"] == "pilot-agent"


async def test_basic_auth_and_bearer_token_set_the_authorization_header() -> None:
    """basic_auth sends Basic credentials; bearer_token sends a Bearer token."""
    mock = Mock(ok_json)
    await probe(http_checker(mock, basic_auth={"username": "u", "password": "p:w"}))
    expected = "Basic " + base64.b64encode(b"u:p:w").decode()
    assert mock.requests[0].headers["authorization"] == expected
    await probe(http_checker(mock, bearer_token="tok-123"))
    assert mock.requests[1].headers["authorization"] == "Bearer tok-123"


async def test_server_name_is_sent_as_sni_hostname() -> None:
    """tls_config.server_name reaches the transport as httpcore's sni_hostname extension."""
    mock = Mock(ok_json)
    await probe(http_checker(mock, url="https://10.0.0.1/", tls_config={"server_name": "api.test"}))
    assert mock.requests[0].extensions["sni_hostname"] == "api.test"


async def test_reasons_and_logs_carry_no_secrets() -> None:
    """Passwords, tokens, header values, URL userinfo and query never reach a reason or log."""
    secrets = ["pw-in-url", "qs-secret", "key-secret", "hunter2", "tok-secret"]

    def refuse(_request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    url = "http://user:pw-in-url@svc.test/x?token=qs-secret"
    reasons = []
    with structlog.testing.capture_logs() as logs:
        for handler in (refuse, lambda r: httpx.Response(401)):
            for auth in (
                {"basic_auth": {"username": "u", "password": "hunter2"}},
                {"bearer_token": "tok-secret"},
            ):
                checker = http_checker(
                    Mock(handler), url=url, headers={"X-Api-Key": "key-secret"}, **auth
                )
                report = ProbeReport()
                with pytest.raises((CheckFailed, CheckConnectError)) as info:
                    await probe_into(checker, report)
                reasons.append(str(info.value))
    assert reasons[0] == "connect to http://svc.test/x failed: connection refused"
    assert reasons[2] == "status 401, expected 2xx"
    text = json.dumps(reasons) + json.dumps(logs, default=str)
    assert not [s for s in secrets if s in text]


def test_redact_url_drops_userinfo_query_and_fragment() -> None:
    """redact_url keeps scheme, host, port and path only."""
    assert redact_url("https://a:b@h.test:8443/p/q?x=1#f") == "https://h.test:8443/p/q"


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("exc", "error", "reason"),
    [
        (httpx.ConnectError("refused"), CheckConnectError, "connect to {url} failed: refused"),
        (httpx.ReadError("reset"), CheckConnectError, "connection to {url} failed: reset"),
        (httpx.ReadTimeout("slow"), CheckTimeout, "request to {url} timed out"),
        (httpx.LocalProtocolError("bad header b'xyz'"), CheckFailed, "request to {url} failed: "),
    ],
)
async def test_transport_errors_are_translated(
    exc: Exception, error: type[Exception], reason: str
) -> None:
    """httpx errors become CheckConnectError / CheckTimeout / CheckFailed with a safe reason."""

    def fail(_request: httpx.Request) -> httpx.Response:
        raise exc

    text, _ = await failure(http_checker(Mock(fail)), error)
    assert text.startswith(reason.format(url=URL))
    assert "xyz" not in text


# --------------------------------------------------------------------------- lifecycle


async def test_one_client_is_reused_and_cookies_do_not_carry_over() -> None:
    """Three runs build one transport, and a cookie set in one run is not sent in the next."""
    mock = Mock(lambda r: httpx.Response(200, headers={"Set-Cookie": "sid=1; Path=/"}))
    checker = http_checker(mock)
    for _ in range(3):
        await checker.probe(ProbeReport())
    await checker.aclose()
    assert mock.transports == 1
    assert [r.headers.get("cookie") for r in mock.requests] == [None, None, None]


async def test_aclose_is_idempotent_and_final() -> None:
    """aclose may be called twice; a closed checker refuses to probe."""
    checker = http_checker(Mock(ok_json))
    await checker.probe(ProbeReport())
    await checker.aclose()
    await checker.aclose()
    with pytest.raises(ComponentStateError):
        await checker.probe(ProbeReport())


async def test_unreadable_ca_file_fails_with_a_clear_reason() -> None:
    """A tls_config naming a missing CA file fails the run, naming the setting."""
    checker = build_checker(
        CheckConfig(name="api", http={"url": URL, "tls_config": {"ca_file": "/nonexistent.pem"}})
    )
    reason, _ = await failure(checker)
    assert reason == "tls_config: cannot load ca_file: No such file or directory"


def test_ssl_contexts_are_shared_until_a_file_changes(tmp_path: Path) -> None:
    """Checks with equal tls_config share one SSLContext; a rewritten CA file gets a new one."""
    ca = tmp_path / "ca.pem"
    shutil.copy(certifi.where(), ca)
    first = build_ssl_context(TLSConfig(ca_file=str(ca)))
    assert build_ssl_context(TLSConfig(ca_file=str(ca))) is first
    os.utime(ca, (0, 12345))
    assert build_ssl_context(TLSConfig(ca_file=str(ca))) is not first


@pytest.mark.parametrize(
    ("kind", "spec", "cls"),
    [
        ("http", {"url": URL}, HttpChecker),
        ("flow", {"steps": [{"name": "a", "url": URL}]}, FlowChecker),
        ("tcp", {"target": "127.0.0.1:1"}, TcpChecker),
        ("tls", {"target": "127.0.0.1:1"}, TlsChecker),
        ("websocket", {"url": "ws://127.0.0.1:1/"}, WebsocketChecker),
        ("redis", {"target": "127.0.0.1:1"}, RedisChecker),
        ("postgres", {"target": "127.0.0.1:1"}, PostgresChecker),
    ],
)
async def test_factory_builds_the_checker_of_each_kind(
    kind: str, spec: dict[str, Any], cls: type[Checker]
) -> None:
    """build_checker returns <Kind>Checker with the matching kind."""
    checker = build_checker(CheckConfig.model_validate({"name": "c", kind: spec}))
    assert isinstance(checker, cls)
    assert checker.kind == kind
    await checker.aclose()


# --------------------------------------------------------------------------- flow


def shop(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/login":
        assert json.loads(request.content) == {"user": "u"}
        return httpx.Response(200, json={"token": "tok-1", "n": 7}, headers={"X-Session": "s9"})
    if request.url.path == "/orders/7":
        ok = request.headers.get("authorization") == "Bearer tok-1"
        return httpx.Response(200 if ok else 401, json={"session": request.content.decode()})
    return httpx.Response(404)


def flow_checker(mock: Mock, steps: list[dict[str, Any]]) -> Checker:
    check = CheckConfig.model_validate({"name": "shop", "flow": {"steps": steps}})
    return build_checker(check, http_transport=mock)


LOGIN = {
    "name": "login",
    "url": "http://svc.test/login",
    "method": "POST",
    "body": '{"user": "u"}',
    "capture": {"token": {"json": "$.token"}, "n": {"json": "$.n"}, "sid": {"header": "x-session"}},
}
ORDER = {
    "name": "order",
    "url": "http://svc.test/orders/${n}",
    "method": "POST",
    "headers": {"Authorization": "Bearer ${token}"},
    "body": "sid=${sid}",
    "expect": {"json": {"$.session": "sid=s9"}},
}


async def test_flow_passes_captures_to_later_steps() -> None:
    """JSON and header captures fill ${name} in a later step's URL, headers and body."""
    mock = Mock(shop)
    report = await probe(flow_checker(mock, [LOGIN, ORDER]))
    assert [(s.name, s.success, s.status_code) for s in report.steps] == [
        ("login", True, 200),
        ("order", True, 200),
    ]
    assert report.status_code == 200
    assert mock.transports == 1


async def test_first_failing_step_ends_the_flow() -> None:
    """A failing step is recorded with its reason, raises 'step name: reason', later steps skip."""
    mock = Mock(shop)
    missing = {"name": "missing", "url": "http://svc.test/nope"}
    reason, report = await failure(flow_checker(mock, [LOGIN, missing, ORDER]))
    assert reason == "step missing: status 404, expected 2xx"
    assert [(s.name, s.success, s.reason) for s in report.steps] == [
        ("login", True, None),
        ("missing", False, "status 404, expected 2xx"),
    ]
    assert report.status_code == 404
    assert len(mock.requests) == 2


async def test_missing_capture_fails_its_step() -> None:
    """A capture whose JSONPath finds nothing fails the step that captures it."""
    bad = {**LOGIN, "capture": {"token": {"json": "$.access_token"}}}
    reason, report = await failure(flow_checker(Mock(shop), [bad]))
    assert reason == "step login: capture token: $ has no key 'access_token'"
    assert report.steps[0].success is False
