"""A real Prometheus scrapes ApiServer, with and without basic auth; the server's lifecycle."""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from agent.api.app import create_api
from agent.api.server import ApiServer
from agent.checks.history import CheckHistory
from agent.config import CheckConfig, TLSServerConfig, WebConfig
from agent.errors import ComponentStateError
from agent.model import CheckResult
from exporters.agent import AgentMetrics
from exporters.probe import ProbeCollector
from tests.prometheus import run_prometheus

pytestmark = pytest.mark.integration


@dataclass
class Agent:
    """Just enough of a running agent to serve the API."""

    web: WebConfig = field(default_factory=WebConfig)
    history: CheckHistory = field(default_factory=CheckHistory)
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    configured: list[CheckConfig] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.configured = [
            CheckConfig.model_validate({"name": "api", "http": {"url": "http://x/"}})
        ]
        self.history.record(CheckResult("api", "http", True, time.time(), 0.02, status_code=200))
        AgentMetrics(self.registry, version="0.1.0")
        ProbeCollector(self.history, self.checks, registry=self.registry)

    def checks(self) -> Sequence[CheckConfig]:
        return self.configured

    def is_ready(self) -> bool:
        return True

    async def reload(self) -> None:
        return None

    def request_shutdown(self) -> None:
        return None


def _server(web: WebConfig, port: int = 0) -> ApiServer:
    return ApiServer(create_api(Agent(web=web)), host="127.0.0.1", port=port, web=web)


PROMETHEUS_CONFIG = """
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: open
    static_configs: [{{targets: ["127.0.0.1:{open}"]}}]
  - job_name: secured
    basic_auth: {{username: prom, password: "{password}"}}
    static_configs: [{{targets: ["127.0.0.1:{secured}"]}}]
  - job_name: no-credentials
    static_configs: [{{targets: ["127.0.0.1:{secured}"]}}]
"""


async def _up_by_job(client: httpx.AsyncClient) -> dict[str, str]:
    r = await client.get("/api/v1/query", params={"query": "up"})
    r.raise_for_status()
    return {s["metric"]["job"]: s["value"][1] for s in r.json()["data"]["result"]}


async def test_prometheus_scrapes_open_and_basic_auth_targets(tmp_path: Path) -> None:
    """Prometheus sees both agents up (one via basic auth) and a credential-less scrape down."""
    password = "scrape-me"
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()
    secured_web = WebConfig(basic_auth_users={"prom": SecretStr(hashed)})
    async with _server(WebConfig()) as open_, _server(secured_web) as secured:
        config = PROMETHEUS_CONFIG.format(open=open_.port, secured=secured.port, password=password)
        async with run_prometheus(tmp_path, config) as client:
            want = {"open": "1", "secured": "1", "no-credentials": "0"}
            deadline = time.monotonic() + 30
            up: dict[str, str] = {}
            while up != want and time.monotonic() < deadline:
                await asyncio.sleep(0.25)
                up = await _up_by_job(client)
            assert up == want, (tmp_path / "prometheus.log").read_text()[-2000:]
            r = await client.get("/api/v1/query", params={"query": "probe_success"})
            jobs = {s["metric"]["job"] for s in r.json()["data"]["result"]}
            assert jobs == {"open", "secured"}


async def test_server_reports_port_stops_and_refuses_reopen() -> None:
    """Port 0 yields a real port; after close nothing listens, and the server cannot restart."""
    server = _server(WebConfig())
    async with server:
        async with httpx.AsyncClient() as client:
            r = await client.get(f"http://127.0.0.1:{server.port}/-/healthy")
        assert r.text == "pilot-agent is Healthy.\n"
    await server.aclose()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", server.port), 1):
        pass
    with pytest.raises(ComponentStateError):
        await server.start()


async def test_bind_failure_fails_clearly() -> None:
    """A port already taken fails start with an OSError naming the address."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
            async with _server(WebConfig(), port=port):
                pass


async def test_server_leaves_signal_handlers_alone() -> None:
    """uvicorn's SIGINT/SIGTERM handlers are never installed while serving."""
    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    async with _server(WebConfig()):
        during = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    assert during == before
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


async def test_server_serves_tls_from_web_config(tmp_path: Path) -> None:
    """tls_server_config's certificate and key are what the server presents."""
    cert_file, key_file = _self_signed(tmp_path)
    web = WebConfig(
        tls_server_config=TLSServerConfig(cert_file=str(cert_file), key_file=str(key_file))
    )
    trust = ssl.create_default_context(cafile=str(cert_file))
    async with _server(web) as server, httpx.AsyncClient(verify=trust) as client:
        r = await client.get(f"https://localhost:{server.port}/-/ready")
    assert r.status_code == 200
