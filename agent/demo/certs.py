"""A throwaway self-signed certificate for the simulator's HTTPS listener.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as tmp:
...     cert, key = write_self_signed_cert(Path(tmp))
...     cert.name, key.name
('simulator.crt', 'simulator.key')
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

DEFAULT_HOSTS = ("localhost", "127.0.0.1")


def _subject_alt_names(hosts: Sequence[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def build_self_signed_cert(
    key: ec.EllipticCurvePrivateKey,
    *,
    hosts: Sequence[str] = DEFAULT_HOSTS,
    days: int = 30,
    now: dt.datetime | None = None,
) -> x509.Certificate:
    """A certificate for ``hosts`` (the first is the CN), valid ``days`` from ``now``."""
    start = now if now is not None else dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - dt.timedelta(minutes=5))
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(_subject_alt_names(hosts), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def write_self_signed_cert(
    directory: Path, *, hosts: Sequence[str] = DEFAULT_HOSTS, days: int = 30
) -> tuple[Path, Path]:
    """Write ``simulator.crt`` and ``simulator.key`` (PEM) into ``directory``; return both paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = build_self_signed_cert(key, hosts=hosts, days=days)
    cert_path = directory / "simulator.crt"
    key_path = directory / "simulator.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_bytes)
    return cert_path, key_path
