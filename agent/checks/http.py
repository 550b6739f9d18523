"""HTTP check: one request on a fresh connection, measured by phase, with assertions.

The request/assert logic (:func:`send_request`, :func:`check_answer`) is shared
with flow checks. Like blackbox_exporter, every run opens a new connection, so
``connect`` and ``tls`` are measured each time.

>>> checker = HttpChecker(HttpRequest(url="https://example.com/health"))
>>> checker.kind
'http'
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import structlog

from agent.checks.base import ProbeReport
from agent.checks.jsonpath import JsonPathError, JsonPathMissing, find, json_equal
from agent.checks.tlsutil import (
    build_ssl_context,
    record_chain_expiry,
    translate_tls_error,
    verify_error,
)
from agent.config import HttpExpect, HttpRequest, TLSConfig, format_duration
from agent.errors import (
    CheckConnectError,
    CheckError,
    CheckFailed,
    CheckTimeout,
    ComponentStateError,
)
from agent.promql.regex import compile_go

log = structlog.get_logger(__name__)

TransportFactory = Callable[[TLSConfig], httpx.AsyncBaseTransport]

USER_AGENT = "pilot-agent"
_NO_KEEPALIVE = httpx.Limits(max_keepalive_connections=0)
# httpcore trace events (``<prefix>.<name>.started|complete``) that bound a phase.
_TRACED_PHASES = {
    "connection.resolve": "resolve",
    "connection.connect_tcp": "connect",
    "connection.start_tls": "tls",
    "http11.receive_response_headers": "processing",
    "http2.receive_response_headers": "processing",
}
_MAX_SHOWN_VALUE = 64


def default_transport(tls: TLSConfig) -> httpx.AsyncBaseTransport:
    """httpx's own transport: verifies per ``tls``, never keeps a connection alive."""
    return httpx.AsyncHTTPTransport(verify=build_ssl_context(tls), limits=_NO_KEEPALIVE)


def redact_url(url: str) -> str:
    """A URL safe to show: no userinfo, no query string, no fragment.

    >>> redact_url("https://user:pw@example.com:8443/a?token=x")
    'https://example.com:8443/a'
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class HttpClients:
    """httpx clients built on first use, one per TLS configuration, closed together.

    >>> clients = HttpClients()
    >>> clients.get(TLSConfig()) is clients.get(TLSConfig())
    True
    """

    def __init__(self, transport_factory: TransportFactory | None = None) -> None:
        self._factory = transport_factory or default_transport
        self._clients: dict[TLSConfig, httpx.AsyncClient] = {}
        self._closed = False

    def get(self, tls: TLSConfig) -> httpx.AsyncClient:
        if self._closed:
            raise ComponentStateError("HTTP checker is closed")
        client = self._clients.get(tls)
        if client is None:
            client = httpx.AsyncClient(
                transport=self._factory(tls),
                timeout=None,  # the runner bounds the whole run
                trust_env=False,
                headers={"User-Agent": USER_AGENT},
            )
            self._clients[tls] = client
        return client

    def forget_cookies(self) -> None:
        """Start a run with no cookies from earlier runs."""
        for client in self._clients.values():
            client.cookies.clear()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()


class HttpAnswer:
    """What one request got back: status, headers, the (bounded) body, total duration."""

    __slots__ = ("_json", "body", "duration_seconds", "encoding", "headers", "status_code")

    def __init__(
        self,
        status_code: int,
        headers: httpx.Headers,
        body: bytes,
        encoding: str | None,
        duration_seconds: float,
    ) -> None:
        self.status_code = status_code
        self.headers = headers
        self.body = body
        self.encoding = encoding
        self.duration_seconds = duration_seconds
        self._json: tuple[Any] | None = None

    def text(self) -> str:
        try:
            return self.body.decode(self.encoding or "utf-8", errors="replace")
        except LookupError:  # a charset Python does not know
            return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body decoded as JSON; :class:`CheckFailed` if it is not JSON."""
        if self._json is None:
            try:
                self._json = (json.loads(self.body),)
            except ValueError as exc:
                raise CheckFailed("body is not valid JSON") from exc
        return self._json[0]


class _PhaseTrace:
    """An httpcore ``trace`` callback adding phase durations to the report."""

    def __init__(self, report: ProbeReport) -> None:
        self._report = report
        self._started: dict[str, float] = {}

    async def __call__(self, event: str, info: dict[str, Any]) -> None:
        name, _, stage = event.rpartition(".")
        phase = _TRACED_PHASES.get(name)
        if phase is None:
            return
        now = time.perf_counter()
        if stage == "started":
            self._started[phase] = now
        elif stage == "complete" and phase in self._started:
            phases = self._report.phases
            phases[phase] = phases.get(phase, 0.0) + now - self._started.pop(phase)


async def send_request(
    client: httpx.AsyncClient, req: HttpRequest, report: ProbeReport
) -> HttpAnswer:
    """Send ``req`` once and read at most ``max_body_bytes`` of the answer.

    Phases, the status code and certificate expiry go into ``report`` as soon as
    they are known. Transport failures become :class:`CheckConnectError` (or
    :class:`CheckFailed` for a bad certificate); a too-large body is :class:`CheckFailed`.
    """
    request = _build_request(client, req, report)
    auth = _auth(req)
    started = time.perf_counter()
    try:
        response = await client.send(
            request, auth=auth, follow_redirects=req.follow_redirects, stream=True
        )
    except (httpx.HTTPError, OSError) as exc:
        raise _translate(exc, req.url) from exc
    try:
        report.status_code = response.status_code
        _record_certificate(response, report)
        body = await _read_body(response, req.max_body_bytes, report)
    except (httpx.HTTPError, OSError) as exc:
        raise _translate(exc, req.url) from exc
    finally:
        await response.aclose()
    duration = time.perf_counter() - started
    log.debug("http_answer", status=response.status_code, duration_seconds=round(duration, 6))
    return HttpAnswer(
        response.status_code, response.headers, body, response.charset_encoding, duration
    )


def _build_request(
    client: httpx.AsyncClient, req: HttpRequest, report: ProbeReport
) -> httpx.Request:
    headers = dict(req.headers)
    if req.bearer_token is not None:
        headers["Authorization"] = f"Bearer {req.bearer_token.get_secret_value()}"
    extensions: dict[str, Any] = {"trace": _PhaseTrace(report)}
    if req.tls_config.server_name:
        extensions["sni_hostname"] = req.tls_config.server_name
    try:
        return client.build_request(
            req.method, req.url, headers=headers, content=req.body, extensions=extensions
        )
    except httpx.InvalidURL:
        # The library's message may quote the URL with its userinfo: do not chain it.
        raise CheckFailed(f"invalid url {redact_url(req.url)}") from None


def _auth(req: HttpRequest) -> httpx.BasicAuth | None:
    if req.basic_auth is None:
        return None
    password = req.basic_auth.password
    return httpx.BasicAuth(
        req.basic_auth.username, password.get_secret_value() if password is not None else ""
    )


def _translate(exc: Exception, url: str) -> CheckError:
    """A library error as a reason that names no secret (no header values, no userinfo)."""
    where = redact_url(url)
    if isinstance(exc, httpx.TimeoutException):
        return CheckTimeout(f"request to {where} timed out")
    if isinstance(exc, httpx.TooManyRedirects):
        return CheckFailed(f"too many redirects from {where}")
    if verify_error(exc) is not None:
        return translate_tls_error(exc)
    if isinstance(exc, httpx.ConnectError | OSError):
        return CheckConnectError(f"connect to {where} failed: {_message(exc)}")
    if isinstance(exc, httpx.ReadError | httpx.WriteError | httpx.RemoteProtocolError):
        return CheckConnectError(f"connection to {where} failed: {_message(exc)}")
    if isinstance(exc, httpx.DecodingError):
        return CheckFailed("cannot decode the response body")
    if isinstance(exc, httpx.UnsupportedProtocol):
        return CheckFailed(f"unsupported URL scheme in {where}")
    return CheckFailed(f"request to {where} failed: {exc.__class__.__name__}")


def _message(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else exc.__class__.__name__


def _record_certificate(response: httpx.Response, report: ProbeReport) -> None:
    if response.url.scheme != "https":
        return
    stream = response.extensions.get("network_stream")
    get_extra_info = getattr(stream, "get_extra_info", None)
    ssl_object = get_extra_info("ssl_object") if get_extra_info is not None else None
    if ssl_object is not None:
        record_chain_expiry(ssl_object, report)


async def _read_body(response: httpx.Response, limit: int, report: ProbeReport) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise CheckFailed(f"body exceeds {limit} bytes")
    started = time.perf_counter()
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > limit:
            raise CheckFailed(f"body exceeds {limit} bytes")
    report.phases["transfer"] = report.phases.get("transfer", 0.0) + time.perf_counter() - started
    return bytes(body)


# --------------------------------------------------------------------------- assertions


def check_answer(expect: HttpExpect, answer: HttpAnswer) -> None:
    """Raise :class:`CheckFailed` for the first assertion of ``expect`` that does not hold."""
    _check_status(expect, answer.status_code)
    _check_body(expect, answer)
    _check_json(expect, answer)
    _check_headers(expect, answer.headers)
    if expect.max_duration is not None and answer.duration_seconds > expect.max_duration:
        raise CheckFailed(
            f"took {answer.duration_seconds:.3f}s, "
            f"more than max_duration {format_duration(expect.max_duration)}"
        )


def _check_status(expect: HttpExpect, status: int) -> None:
    if expect.status:
        if status not in expect.status:
            wanted = ", ".join(str(s) for s in expect.status)
            raise CheckFailed(f"status {status}, expected one of {wanted}")
    elif not 200 <= status < 300:
        raise CheckFailed(f"status {status}, expected 2xx")


def _check_body(expect: HttpExpect, answer: HttpAnswer) -> None:
    if expect.body_regex is None and expect.body_not_regex is None:
        return
    text = answer.text()
    if expect.body_regex is not None and not compile_go(expect.body_regex).search(text):
        raise CheckFailed(f"body does not match {expect.body_regex!r}")
    if expect.body_not_regex is not None and compile_go(expect.body_not_regex).search(text):
        raise CheckFailed(f"body matches {expect.body_not_regex!r}")


def _check_json(expect: HttpExpect, answer: HttpAnswer) -> None:
    if not expect.json_:
        return
    doc = answer.json()
    for path, wanted in expect.json_.items():
        try:
            actual = find(doc, path)
        except (JsonPathError, JsonPathMissing) as exc:
            raise CheckFailed(f"json {path}: {exc}") from exc
        if not json_equal(actual, wanted):
            raise CheckFailed(f"json {path} is {_show(actual)}, expected {_show(wanted)}")


def _show(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= _MAX_SHOWN_VALUE else text[: _MAX_SHOWN_VALUE - 3] + "..."


def _check_headers(expect: HttpExpect, headers: httpx.Headers) -> None:
    for name, pattern in expect.headers.items():
        value = headers.get(name)
        if value is None:
            raise CheckFailed(f"header {name} is missing")
        if not compile_go(pattern).search(value):
            # Never quote the value: headers may carry tokens.
            raise CheckFailed(f"header {name} does not match {pattern!r}")


class HttpChecker:
    """Probes one URL per run on a fresh connection and checks the answer.

    ``transport_factory`` replaces httpx's default transport (tests, benchmarks).

    >>> HttpChecker(HttpRequest(url="http://localhost/")).kind
    'http'
    """

    kind = "http"

    def __init__(
        self, spec: HttpRequest, *, transport_factory: TransportFactory | None = None
    ) -> None:
        self._spec = spec
        self._clients = HttpClients(transport_factory)

    async def probe(self, report: ProbeReport) -> None:
        client = self._clients.get(self._spec.tls_config)
        self._clients.forget_cookies()
        answer = await send_request(client, self._spec, report)
        check_answer(self._spec.expect, answer)

    async def aclose(self) -> None:
        await self._clients.aclose()
