"""TLS helpers shared by the checks: client contexts, peer chains, certificate expiry.

>>> ctx = build_ssl_context(TLSConfig(insecure_skip_verify=True))
>>> ctx.verify_mode == ssl.CERT_NONE
True
"""

from __future__ import annotations

import functools
import os
import ssl
from dataclasses import dataclass
from typing import Any

import structlog
from cryptography import x509

from agent.checks.base import ProbeReport
from agent.config import TLSConfig
from agent.errors import CheckConnectError, CheckError, CheckFailed

log = structlog.get_logger(__name__)

_ENCODING_DER = 2  # _ssl.ENCODING_DER, for the private Certificate.public_bytes


def build_ssl_context(tls: TLSConfig) -> ssl.SSLContext:
    """A client context that verifies chain and hostname unless ``insecure_skip_verify``.

    Contexts are shared between checks with the same settings (loading the system's
    CA store takes tens of milliseconds) and rebuilt when a configured file changes.
    A file that cannot be loaded raises :class:`CheckFailed` naming the setting.
    """
    stamps = tuple(_mtime(p) for p in (tls.ca_file, tls.cert_file, tls.key_file))
    return _cached_context(tls, stamps)


def _mtime(path: str | None) -> float | None:
    try:
        return os.stat(path).st_mtime if path is not None else None
    except OSError:
        return None


@functools.lru_cache(maxsize=64)
def _cached_context(tls: TLSConfig, _stamps: tuple[float | None, ...]) -> ssl.SSLContext:
    try:
        ctx = ssl.create_default_context(cafile=tls.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise CheckFailed(f"tls_config: cannot load ca_file: {_os_reason(exc)}") from exc
    if tls.cert_file is not None:
        try:
            ctx.load_cert_chain(tls.cert_file, tls.key_file)
        except (OSError, ssl.SSLError) as exc:
            reason = _os_reason(exc)
            raise CheckFailed(f"tls_config: cannot load cert_file/key_file: {reason}") from exc
    if tls.insecure_skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _os_reason(exc: OSError) -> str:
    return exc.strerror or exc.__class__.__name__


def server_hostname(tls: TLSConfig, host: str) -> str:
    """The name sent as SNI and checked against the certificate."""
    return tls.server_name or host


def verify_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification error behind ``exc``, if there is one."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def translate_tls_error(exc: BaseException) -> CheckError:
    """Map a handshake failure: bad certificate → CheckFailed, anything else → connect error."""
    bad_cert = verify_error(exc)
    if bad_cert is not None:
        reason = bad_cert.verify_message or bad_cert.reason or "verification failed"
        return CheckFailed(f"TLS certificate verify failed: {reason}")
    if isinstance(exc, ssl.SSLError):
        return CheckConnectError(f"TLS handshake failed: {exc.reason or exc.__class__.__name__}")
    if isinstance(exc, OSError):
        return CheckConnectError(f"connection failed during TLS handshake: {_os_reason(exc)}")
    return CheckConnectError(f"TLS handshake failed: {exc.__class__.__name__}")


def not_after(der: bytes) -> float:
    """A DER certificate's notAfter as a Unix timestamp."""
    return x509.load_der_x509_certificate(der).not_valid_after_utc.timestamp()


@dataclass(frozen=True, slots=True)
class PeerChain:
    """Certificates the peer presented, and the chain we verified (None if not verified)."""

    presented: tuple[bytes, ...]
    verified: tuple[bytes, ...] | None


def peer_chain(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> PeerChain:
    """The peer's chain as DER blobs.

    Python 3.11 exposes the chains only privately (``_sslobj.get_verified_chain``);
    when that is missing we fall back to the leaf certificate alone.
    """
    leaf = ssl_object.getpeercert(binary_form=True)
    inner: Any = getattr(ssl_object, "_sslobj", ssl_object)
    presented = _chain(inner, "get_unverified_chain") or ((leaf,) if leaf else ())
    verified: tuple[bytes, ...] | None = None
    if ssl_object.context.verify_mode != ssl.CERT_NONE:
        verified = _chain(inner, "get_verified_chain") or ((leaf,) if leaf else None)
    return PeerChain(presented, verified)


def _chain(inner: Any, method: str) -> tuple[bytes, ...]:
    get = getattr(inner, method, None)
    if get is None:
        return ()
    try:
        certs = get() or []
        return tuple(_der(c) for c in certs)
    except (ValueError, ssl.SSLError, AttributeError, TypeError) as exc:
        log.debug("tls_chain_unavailable", method=method, error=exc.__class__.__name__)
        return ()


def _der(cert: Any) -> bytes:
    if isinstance(cert, bytes):  # Python 3.13+ returns DER bytes already
        return cert
    der: bytes = cert.public_bytes(_ENCODING_DER)
    return der


def record_chain_expiry(ssl_object: ssl.SSLObject | ssl.SSLSocket, report: ProbeReport) -> None:
    """Fill the report's expiry fields the way blackbox_exporter does.

    ``ssl_earliest_cert_expiry`` is the earliest notAfter of what the peer presented;
    ``ssl_last_chain_expiry`` is the earliest notAfter of the verified chain.
    """
    chain = peer_chain(ssl_object)
    try:
        if chain.presented:
            report.ssl_earliest_cert_expiry = min(not_after(c) for c in chain.presented)
        if chain.verified:
            report.ssl_last_chain_expiry = min(not_after(c) for c in chain.verified)
    except ValueError as exc:
        log.warning("tls_certificate_unparsable", error=exc.__class__.__name__)
