"""The HTTP and flow cases of test_checks.py again, with the aiohttp transport.

Each case runs test_checks.py's own test function, with its ``build_checker``
replaced by one that passes ``http_transport=aiohttp_transport``; the fixture checks
that the transport was really used.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import pytest

from agent.checks.aiohttp_transport import AiohttpTransport, aiohttp_transport
from agent.checks.factory import build_checker
from agent.config import CheckConfig, TLSConfig
from tests.integration import test_checks as base
from tests.integration.conftest import Certs, Servers

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
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


@pytest.mark.parametrize("kind", ["http", "flow"])
async def test_silent_target_times_out_promptly_without_leaks(servers: Servers, kind: str) -> None:
    """A silent target times out within about a second and leaves no task or socket."""
    await base.test_silent_target_times_out_promptly_without_leaks(servers, kind)


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


async def test_https_server_name_is_the_name_verified(servers: Servers, certs: Certs) -> None:
    """server_name wrong.example is what the valid (localhost) certificate is checked against."""
    tls = {"ca_file": certs.ca, "server_name": "wrong.example"}
    reason, _ = await base.fails("http", url=f"{servers.https_url}/health", tls_config=tls)
    assert reason.startswith("TLS certificate verify failed: Hostname mismatch")
