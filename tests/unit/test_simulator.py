"""The pilot simulator: API behaviour, faults, metrics, background traffic and serving."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import json
import logging
import random
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from starlette.types import Message
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from agent.demo import jwt, simulator
from agent.demo.certs import write_self_signed_cert
from agent.demo.faults import FaultSettings
from agent.demo.simulator import (
    Simulator,
    build_server,
    create_simulator_app,
    serve,
    websocket_reply,
)
from agent.demo.traffic import BUCKETS, ENDPOINTS, TrafficGenerator
from tests.support import free_port, wait_for_port

REPO = Path(__file__).resolve().parents[2]
LOGIN = {"username": "pilot", "password": "pilot-demo"}


@contextlib.asynccontextmanager
async def client_for(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=sim.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def login(client: httpx.AsyncClient) -> dict[str, str]:
    response = await client.post("/api/v1/auth/login", json=LOGIN)
    assert response.status_code == 200
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def ws_session(sim: Simulator, texts: list[str]) -> list[Message]:
    """Drive one WebSocket session through the ASGI app; return every message it sent."""
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    messages: list[Message] = [
        {"type": "websocket.connect"},
        *({"type": "websocket.receive", "text": t} for t in texts),
        {"type": "websocket.disconnect", "code": 1000},
    ]
    for message in messages:
        inbox.put_nowait(message)
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope: dict[str, Any] = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "path": "/ws",
        "raw_path": b"/ws",
        "root_path": "",
        "scheme": "ws",
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "subprotocols": [],
        "extensions": {"websocket.http.response": {}},
    }
    await asyncio.wait_for(sim.app(scope, inbox.get, send), 5)
    return sent


def samples(text: str, name: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    ]


def count(sim: Simulator, **labels: str) -> float:
    total = 0.0
    for metric in sim.metrics.registry.collect():
        for s in metric.samples:
            if s.name == "http_requests_total" and labels.items() <= s.labels.items():
                total += s.value
    return total


def mean_duration(sim: Simulator) -> float:
    text = generate_latest(sim.metrics.registry).decode()
    total = sum(s[2] for s in samples(text, "http_request_duration_seconds_sum"))
    return total / sum(s[2] for s in samples(text, "http_request_duration_seconds_count"))


# --------------------------------------------------------------------------- API


async def test_health_and_readiness_answer_ok() -> None:
    """/health and /api/v1/health/ready answer the documented bodies."""
    sim = create_simulator_app().state.simulator
    assert isinstance(sim, Simulator)
    async with client_for(sim) as client:
        assert (await client.get("/health")).json() == {"status": "ok"}
        ready = await client.get("/api/v1/health/ready")
    assert ready.json() == {"status": "ready", "checks": {"database": "ok", "redis": "ok"}}


async def test_login_issues_hs256_token_valid_for_an_hour() -> None:
    """The demo credentials get a bearer HS256 JWT whose exp is one hour after iat."""
    sim = Simulator(clock=lambda: 1_000_000.0)
    async with client_for(sim) as client:
        body = (await client.post("/api/v1/auth/login", json=LOGIN)).json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600
    header = body["access_token"].split(".")[0]
    assert json.loads(base64.urlsafe_b64decode(header + "==")) == {"alg": "HS256", "typ": "JWT"}
    claims = jwt.decode(body["access_token"], sim.tokens.secret, now=1_000_000.0)
    assert claims == {"sub": "pilot", "iat": 1_000_000, "exp": 1_003_600}


@pytest.mark.parametrize(
    "body",
    [{"username": "pilot", "password": "wrong"}, {"username": "x", "password": "pilot-demo"}],
)
async def test_login_rejects_wrong_credentials(body: dict[str, str]) -> None:
    """A wrong username or password is answered 401."""
    async with client_for(Simulator()) as client:
        assert (await client.post("/api/v1/auth/login", json=body)).status_code == 401


async def test_orders_reject_missing_malformed_foreign_and_expired_tokens() -> None:
    """Order endpoints answer 401 without a valid, unexpired bearer token."""
    now = [1_000_000.0]
    sim = Simulator(clock=lambda: now[0])
    foreign = jwt.encode({"sub": "pilot", "exp": 2_000_000}, b"another secret")
    async with client_for(sim) as client:
        good = await login(client)
        bad_headers: list[dict[str, str]] = [
            {},
            {"Authorization": "Basic cGlsb3Q6cGlsb3QtZGVtbw=="},
            {"Authorization": "Bearer not.a.jwt"},
            {"Authorization": f"Bearer {foreign}"},
        ]
        for headers in bad_headers:
            response = await client.post("/api/v1/orders", json={}, headers=headers)
            assert response.status_code == 401, headers
            assert response.headers["www-authenticate"] == "Bearer"
        now[0] += 3600
        assert (await client.get("/api/v1/orders/x", headers=good)).status_code == 401


async def test_order_lifecycle_create_get_cancel() -> None:
    """An order is created pending, read back, cancelled once, and unknown ids are 404."""
    async with client_for(Simulator(rng=random.Random(3))) as client:
        auth = await login(client)
        created = await client.post(
            "/api/v1/orders", json={"customer_id": "c-1", "cylinders": 2}, headers=auth
        )
        assert created.status_code == 201
        order = created.json()
        assert order["status"] == "pending" and order["cylinders"] == 2
        fetched = await client.get(f"/api/v1/orders/{order['id']}", headers=auth)
        assert fetched.json() == order
        cancel = await client.post(f"/api/v1/orders/{order['id']}/cancel", headers=auth)
        assert (cancel.status_code, cancel.json()["status"]) == (200, "cancelled")
        again = await client.post(f"/api/v1/orders/{order['id']}/cancel", headers=auth)
        assert again.status_code == 409
        assert (await client.get("/api/v1/orders/ord_nope", headers=auth)).status_code == 404
        bad = await client.post("/api/v1/orders", json={"cylinders": 0}, headers=auth)
        assert bad.status_code == 422


def test_order_store_forgets_oldest_beyond_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """The in-memory order store keeps only the newest MAX_ORDERS orders."""
    monkeypatch.setattr(simulator, "MAX_ORDERS", 3)
    sim = Simulator(rng=random.Random(1))
    ids = [
        sim.create_order(simulator.CreateOrder(customer_id="c", cylinders=1)).id for _ in "abcde"
    ]
    assert list(sim.orders) == ids[2:]


async def test_websocket_answers_ping_in_text_and_json() -> None:
    """/ws accepts and answers "ping" with "pong" and {"type":"ping"} with {"type":"pong"}."""
    sent = await ws_session(Simulator(), ["ping", '{"type": "ping"}', "hello"])
    assert sent[0]["type"] == "websocket.accept"
    replies = [m["text"] for m in sent[1:]]
    assert replies[0] == "pong"
    assert json.loads(replies[1]) == {"type": "pong"}
    assert json.loads(replies[2])["type"] == "error"
    assert websocket_reply(None) == replies[2]


# --------------------------------------------------------------------------- faults


async def test_outage_answers_503_except_metrics_and_admin() -> None:
    """An outage turns every API request into 503 while /metrics and /admin keep working."""
    async with client_for(Simulator()) as client:
        assert (await client.put("/admin/faults", json={"outage": True})).json()["outage"]
        assert (await client.get("/health")).status_code == 503
        assert (await client.post("/api/v1/auth/login", json=LOGIN)).status_code == 503
        assert (await client.get("/metrics")).status_code == 200
        assert (await client.get("/admin/faults")).status_code == 200
        assert (await client.delete("/admin/faults")).json() == {
            "latency_ms": 0.0,
            "error_rate": 0.0,
            "outage": False,
            "ws_refuse": False,
        }
        assert (await client.get("/health")).status_code == 200


async def test_latency_delays_api_but_not_metrics_or_admin() -> None:
    """latency_ms delays API requests by that much and leaves /metrics and /admin alone."""
    async with client_for(Simulator()) as client:
        await client.put("/admin/faults", json={"latency_ms": 100})
        started = time.perf_counter()
        assert (await client.get("/health")).status_code == 200
        assert time.perf_counter() - started >= 0.1
        await client.put("/admin/faults", json={"latency_ms": 60_000})
        metrics = await asyncio.wait_for(client.get("/metrics"), 5)
        faults = await asyncio.wait_for(client.get("/admin/faults"), 5)
    assert metrics.status_code == 200 and faults.json()["latency_ms"] == 60_000


async def test_error_rate_answers_that_fraction_with_500() -> None:
    """error_rate 1 fails every request and 0.5 fails about half of them."""
    async with client_for(Simulator(rng=random.Random(11))) as client:
        await client.put("/admin/faults", json={"error_rate": 1.0})
        assert (await client.get("/api/v1/health/ready")).status_code == 500
        await client.put("/admin/faults", json={"error_rate": 0.5})
        statuses = [(await client.get("/health")).status_code for _ in range(200)]
    assert set(statuses) == {200, 500}
    assert 60 < statuses.count(500) < 140


async def test_fault_updates_are_validated_and_partial() -> None:
    """PUT /admin/faults rejects unknown fields and out-of-range values and merges the rest."""
    async with client_for(Simulator()) as client:
        for bad in ({"error_rate": 1.5}, {"latency_ms": -1}, {"bogus": True}):
            assert (await client.put("/admin/faults", json=bad)).status_code == 422, bad
        await client.put("/admin/faults", json={"latency_ms": 5})
        after = (await client.put("/admin/faults", json={"ws_refuse": True})).json()
    assert after == {"latency_ms": 5.0, "error_rate": 0.0, "outage": False, "ws_refuse": True}


async def test_ws_refuse_closes_handshake_but_spares_http() -> None:
    """ws_refuse closes the WebSocket handshake before accept while HTTP stays healthy."""
    sim = Simulator()
    async with client_for(sim) as client:
        await client.put("/admin/faults", json={"ws_refuse": True})
        assert (await client.get("/health")).status_code == 200
    sent = await ws_session(sim, ["ping"])
    assert sent == [{"type": "websocket.close", "code": 1008}]


async def test_outage_and_errors_refuse_websocket_handshakes() -> None:
    """An outage or an injected error closes the WebSocket handshake before accept."""
    sim = Simulator()
    for faults in ({"outage": True}, {"error_rate": 1.0}):
        async with client_for(sim) as client:
            await client.put("/admin/faults", json=faults)
        assert await ws_session(sim, ["ping"]) == [{"type": "websocket.close", "code": 1008}]
        sim.faults.reset()


# --------------------------------------------------------------------------- metrics


async def test_metrics_label_handler_with_route_template() -> None:
    """Requests are counted under the route template, including 404s and faulted answers."""
    sim = Simulator(rng=random.Random(5))
    async with client_for(sim) as client:
        auth = await login(client)
        for _ in range(2):
            order = await client.post(
                "/api/v1/orders", json={"customer_id": "c", "cylinders": 1}, headers=auth
            )
            await client.get(f"/api/v1/orders/{order.json()['id']}", headers=auth)
        await client.get("/api/v1/orders/ord_missing", headers=auth)
        await client.get("/no/such/path")
        await client.put("/admin/faults", json={"outage": True})
        await client.get("/api/v1/orders/ord_x", headers=auth)
        text = (await client.get("/metrics")).text
    counts = {
        (s[1]["handler"], s[1]["method"], s[1]["status"]): s[2]
        for s in samples(text, "http_requests_total")
    }
    assert counts[("/api/v1/orders/{id}", "GET", "200")] == 2
    assert counts[("/api/v1/orders/{id}", "GET", "404")] == 1
    assert counts[("/api/v1/orders/{id}", "GET", "503")] == 1
    assert counts[("/api/v1/orders", "POST", "201")] == 2
    assert counts[("none", "GET", "404")] == 1
    assert not any("ord_" in handler for handler, _, _ in counts)


async def test_metrics_histogram_has_documented_buckets_on_own_registry() -> None:
    """The duration histogram uses the documented buckets and stays off the global registry."""
    sim = Simulator()
    async with client_for(sim) as client:
        await client.get("/health")
        text = (await client.get("/metrics")).text
    buckets = samples(text, "http_request_duration_seconds_bucket")
    health = [s for s in buckets if s[1]["handler"] == "/health"]
    assert [float(s[1]["le"]) for s in health] == [*BUCKETS, float("inf")]
    assert health[-1][2] == 1
    labels = {"handler": "/health", "method": "GET", "status": "200"}
    assert REGISTRY.get_sample_value("http_requests_total", labels) is None


def test_traffic_tick_records_rate_across_endpoints() -> None:
    """A tick records rate x elapsed synthetic requests over the configured handlers."""
    sim = Simulator(rng=random.Random(2))
    gen = TrafficGenerator(sim.metrics, FaultSettings, rng=random.Random(2), rate=20.0)
    assert gen.tick(0.3) + gen.tick(0.3) + gen.tick(0.4) == 20
    assert gen.tick(500.0) == 10_000
    assert count(sim) == 10_020
    handlers = {e.handler for e in ENDPOINTS}
    assert {h for h in handlers if count(sim, handler=h) > 0} == handlers
    assert count(sim, status="500") < 50
    assert 0.035 < mean_duration(sim) < 0.07


@pytest.mark.parametrize(
    ("faults", "check"),
    [
        (FaultSettings(outage=True), lambda sim: count(sim, status="503") == count(sim)),
        (FaultSettings(error_rate=1.0), lambda sim: count(sim, status="500") == count(sim)),
    ],
)
def test_traffic_follows_active_faults(
    faults: FaultSettings, check: Callable[[Simulator], bool]
) -> None:
    """Synthetic traffic answers 503 during an outage and 500 at full error rate."""
    sim = Simulator()
    TrafficGenerator(sim.metrics, lambda: faults, rng=random.Random(4)).tick(10.0)
    assert count(sim) == 200 and check(sim)


def test_traffic_latency_shifts_with_injected_latency() -> None:
    """Injected latency is added to every synthetic request's duration."""
    sim = Simulator()
    faults = FaultSettings(latency_ms=800)
    TrafficGenerator(sim.metrics, lambda: faults, rng=random.Random(4)).tick(10.0)
    text = generate_latest(sim.metrics.registry).decode()
    buckets = samples(text, "http_request_duration_seconds_bucket")
    assert all(s[2] == 0 for s in buckets if float(s[1]["le"]) <= 0.5)
    assert 0.835 < mean_duration(sim) < 0.87


async def test_lifespan_runs_one_traffic_task_while_any_server_serves() -> None:
    """Background traffic runs while at least one lifespan is active and stops after the last."""
    sim = Simulator(traffic_rate=2000.0, traffic_interval=0.01)
    async with sim.lifespan(sim.app):
        async with sim.lifespan(sim.app):
            await asyncio.sleep(0.05)
        before = count(sim)
        await asyncio.sleep(0.05)
        assert count(sim) > before > 0
    stopped = count(sim)
    await asyncio.sleep(0.05)
    assert count(sim) == stopped


# --------------------------------------------------------------------------- serving


@contextlib.asynccontextmanager
async def running(sim: Simulator) -> AsyncIterator[int]:
    port = free_port()
    server = build_server(sim.app, "127.0.0.1", port)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield port
    finally:
        server.should_exit = True
        await task


async def test_build_server_serves_over_network_without_taking_signals(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """build_server serves /health and /ws on a real port, refuses WebSockets under faults
    with 403 and no logged error, and leaves SIGINT/SIGTERM alone."""
    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    sim = Simulator()
    async with running(sim) as port, httpx.AsyncClient() as client:
        assert (await client.get(f"http://127.0.0.1:{port}/health")).json() == {"status": "ok"}
        assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
        async with ws_connect(f"ws://127.0.0.1:{port}/ws") as ws:
            await ws.send("ping")
            assert await ws.recv() == "pong"
        for faults in ({"ws_refuse": True}, {"outage": True}):
            await client.put(f"http://127.0.0.1:{port}/admin/faults", json=faults)
            with pytest.raises(InvalidStatus) as refused:
                async with ws_connect(f"ws://127.0.0.1:{port}/ws"):
                    pass
            assert refused.value.response.status_code == 403
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_self_signed_cert_covers_localhost_for_30_days(tmp_path: Path) -> None:
    """The generated certificate names localhost and 127.0.0.1, lasts 30 days, key is private."""
    cert_path, key_path = write_self_signed_cert(tmp_path)
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    remaining = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
    assert dt.timedelta(days=29, hours=23) < remaining <= dt.timedelta(days=30)
    key = load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.public_key() == cert.public_key()
    assert key_path.stat().st_mode & 0o077 == 0


async def test_serve_runs_http_and_https_until_stopped() -> None:
    """serve answers on the plain and TLS ports with a localhost certificate and stops cleanly."""
    port, tls_port = free_port(), free_port()
    stop = asyncio.Event()
    task = asyncio.create_task(serve("127.0.0.1", port, tls_port, stop=stop))
    try:
        await asyncio.to_thread(wait_for_port, tls_port)
        async with httpx.AsyncClient(verify=False) as client:
            assert (await client.get(f"http://127.0.0.1:{port}/health")).status_code == 200
            assert (await client.get(f"https://127.0.0.1:{tls_port}/health")).status_code == 200
        pem = await asyncio.to_thread(ssl.get_server_certificate, ("127.0.0.1", tls_port))
        cert = x509.load_pem_x509_certificate(pem.encode())
        assert cert.subject.rfc4514_string() == "CN=localhost"
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def test_main_reports_a_busy_port_and_exits_1() -> None:
    """main returns 1 with a logged reason when its port is already taken."""
    port = free_port()
    with (
        socket.create_server(("127.0.0.1", port)),
        structlog.testing.capture_logs() as logs,
    ):
        assert simulator.main(["--port", str(port)]) == 1
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["simulator_start_failed"]


def test_module_runs_until_sigterm_and_exits_0() -> None:
    """`python -m agent.demo.simulator` serves until SIGTERM, then exits 0."""
    port, tls_port = free_port(), free_port()
    cmd = [sys.executable, "-m", "agent.demo.simulator", "--port", str(port)]
    with subprocess.Popen(
        [*cmd, "--tls-port", str(tls_port)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    ) as proc:
        try:
            wait_for_port(port)
            wait_for_port(tls_port)
            with httpx.Client() as client:
                assert client.get(f"http://127.0.0.1:{port}/health").status_code == 200
            proc.send_signal(signal.SIGTERM)
            output, _ = proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, output.decode()
    assert b"simulator_stopped" in output
