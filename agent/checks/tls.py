"""TLS check: handshake with verification, report the chain's expiry, warn before it.

>>> TlsChecker(TlsCheck(target="example.com:443", min_days_remaining=14)).kind
'tls'
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from agent.checks.base import ProbeReport
from agent.checks.tcp import close_stream, open_stream, split_host_port
from agent.checks.tlsutil import build_ssl_context, record_chain_expiry, server_hostname
from agent.config import TlsCheck
from agent.errors import CheckFailed, ComponentStateError

log = structlog.get_logger(__name__)

_DAY = 86400.0


class TlsChecker:
    """Connects with TLS, verifies chain and hostname, and checks days to expiry.

    ``clock`` returns Unix seconds; tests pass a fixed one.

    >>> TlsChecker(TlsCheck(target="db:5432"), clock=lambda: 0.0).kind
    'tls'
    """

    kind = "tls"

    def __init__(self, spec: TlsCheck, *, clock: Callable[[], float] = time.time) -> None:
        self._spec = spec
        self._host, self._port = split_host_port(spec.target)
        self._clock = clock
        self._closed = False

    async def probe(self, report: ProbeReport) -> None:
        if self._closed:
            raise ComponentStateError("tls checker is closed")
        tls = self._spec.tls_config
        ctx = build_ssl_context(tls)
        _, writer = await open_stream(
            self._host,
            self._port,
            report,
            ssl_context=ctx,
            sni=server_hostname(tls, self._host),
        )
        try:
            ssl_object = writer.get_extra_info("ssl_object")
            if ssl_object is not None:
                record_chain_expiry(ssl_object, report)
        except BaseException:
            writer.transport.abort()
            raise
        await close_stream(writer)
        self._check_days_left(report)

    def _check_days_left(self, report: ProbeReport) -> None:
        minimum = self._spec.min_days_remaining
        expiry = report.ssl_earliest_cert_expiry
        if minimum is None:
            return
        if expiry is None:
            raise CheckFailed("the server presented no certificate")
        days_left = (expiry - self._clock()) / _DAY
        log.debug("tls_days_left", days_left=round(days_left, 2), minimum=minimum)
        if days_left < 0:
            raise CheckFailed(f"certificate expired {-days_left:.1f} days ago")
        if days_left < minimum:
            raise CheckFailed(
                f"certificate expires in {days_left:.1f} days, "
                f"less than min_days_remaining {minimum:g}"
            )

    async def aclose(self) -> None:
        self._closed = True
