"""The pilot simulator: a small stand-in for the Lucky Gas v3 API.

It answers the endpoints the demo's synthetic checks probe (health, readiness,
login, the order lifecycle, a WebSocket), exposes Prometheus metrics with
background traffic, lets the demo inject faults through ``/admin/faults``, and
imitates the pilot's flags, migration, dual-write and breakers (driven through
``/admin/pilot``; the metrics are in ``docs/metrics-contract.md``).

Run it with ``python -m agent.demo.simulator --port 8700 --tls-port 8743``.

>>> app = create_simulator_app(rng=random.Random(7))
>>> app.state.simulator.faults.settings.outage
False
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import random
import secrets
import signal
import socket
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import structlog
import uvicorn
from fastapi import Depends, FastAPI, HTTPException, WebSocket
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ConfigDict, Field

from agent.demo.certs import write_self_signed_cert
from agent.demo.faults import FaultInjector, FaultMiddleware, add_fault_routes
from agent.demo.jwt import TokenIssuer, add_login_route, bearer_subject
from agent.demo.pilot_admin import PilotAdmin, PilotTicker, add_pilot_routes
from agent.demo.pilot_state import PilotCollector, PilotState
from agent.demo.traffic import (
    MetricsMiddleware,
    RequestMetrics,
    TrafficGenerator,
    TrafficLifespan,
    add_metrics_route,
)
from agent.logs import configure_logging

log = structlog.get_logger(__name__)

MAX_ORDERS = 10_000


class CreateOrder(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customer_id: str = Field(min_length=1, max_length=64)
    cylinders: int = Field(ge=1, le=50)


@dataclass(slots=True)
class Order:
    id: str
    customer_id: str
    cylinders: int
    status: str
    created_at: str


class Simulator:
    """The simulator's state (orders, tokens, faults, pilot, metrics) and the app serving it.

    >>> sim = Simulator(rng=random.Random(1))
    >>> sim.app.state.simulator is sim
    True
    """

    def __init__(
        self,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        traffic_rate: float = 20.0,
        traffic_interval: float = 0.25,
        pilot_interval: float = 1.0,
    ) -> None:
        self.rng = rng if rng is not None else random.Random()
        self.clock = clock
        self.tokens = TokenIssuer(secrets.token_bytes(32), clock=clock)
        self.faults = FaultInjector(rng=self.rng)
        self.metrics = RequestMetrics(CollectorRegistry())
        self.orders: dict[str, Order] = {}
        self.pilot = PilotState(
            rng=self.rng,
            clock=clock,
            faults=lambda: self.faults.settings,
            request_rate=traffic_rate,
        )
        self.metrics.registry.register(PilotCollector(self.pilot))
        self.pilot_ticker = PilotTicker(self.pilot, interval=pilot_interval)
        self.lifespan = TrafficLifespan(
            lambda: TrafficGenerator(
                self.metrics,
                lambda: self.faults.settings,
                rng=self.rng,
                rate=traffic_rate,
                interval=traffic_interval,
            )
        )
        self.app = self._build_app()

    def create_order(self, request: CreateOrder) -> Order:
        """Store a new pending order, forgetting the oldest beyond ``MAX_ORDERS``."""
        order_id = f"ord_{self.rng.getrandbits(48):012x}"
        while order_id in self.orders:
            order_id = f"ord_{self.rng.getrandbits(48):012x}"
        created = dt.datetime.fromtimestamp(self.clock(), dt.UTC).isoformat()
        order = Order(order_id, request.customer_id, request.cylinders, "pending", created)
        self.orders[order_id] = order
        while len(self.orders) > MAX_ORDERS:
            del self.orders[next(iter(self.orders))]
        return order

    def _build_app(self) -> FastAPI:
        app = FastAPI(
            title="Lucky Gas v3 (pilot simulator)",
            lifespan=self._lifespan,
            docs_url=None,
            redoc_url=None,
        )
        # Routes go straight onto the app, never through include_router, so that
        # MetricsMiddleware can match each request to its route template.
        _add_health_routes(app)
        add_login_route(app, self.tokens)
        _add_order_routes(app, self)
        add_fault_routes(app, self.faults)
        add_pilot_routes(app, PilotAdmin(self.pilot))
        app.add_api_websocket_route("/ws", _websocket)
        add_metrics_route(app, self.metrics)
        # Added last, so it runs first: faulted requests are counted too.
        app.add_middleware(FaultMiddleware, injector=self.faults)
        app.add_middleware(MetricsMiddleware, metrics=self.metrics, routes=app.routes)
        app.state.simulator = self
        return app

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        """Background traffic and the pilot's evolution, while any server serves the app."""
        async with self.lifespan(app), self.pilot_ticker(app):
            yield


def _add_health_routes(app: FastAPI) -> None:
    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/v1/health/ready")
    async def ready() -> dict[str, Any]:
        return {"status": "ready", "checks": {"database": "ok", "redis": "ok"}}


def _add_order_routes(app: FastAPI, sim: Simulator) -> None:
    def find(order_id: str) -> Order:
        if order_id not in sim.orders:
            raise HTTPException(404, "order not found")
        return sim.orders[order_id]

    authed = [Depends(bearer_subject(sim.tokens))]

    @app.post("/api/v1/orders", status_code=201, dependencies=authed)
    async def create_order(body: CreateOrder) -> dict[str, Any]:
        return asdict(sim.create_order(body))

    @app.get("/api/v1/orders/{id}", dependencies=authed)
    async def get_order(id: str) -> dict[str, Any]:
        return asdict(find(id))

    @app.post("/api/v1/orders/{id}/cancel", dependencies=authed)
    async def cancel_order(id: str) -> dict[str, Any]:
        order = find(id)
        if order.status == "cancelled":
            raise HTTPException(409, "order already cancelled")
        order.status = "cancelled"
        return asdict(order)


def websocket_reply(text: str | None) -> str:
    """The answer to one WebSocket message: ``ping`` gets ``pong``, in text or JSON."""
    if text == "ping":
        return "pong"
    with contextlib.suppress(ValueError):
        message = json.loads(text or "")
        if isinstance(message, dict) and message.get("type") == "ping":
            return json.dumps({"type": "pong"})
    return json.dumps({"type": "error", "detail": "unsupported message"})


async def _websocket(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        await websocket.send_text(websocket_reply(message.get("text")))


def create_simulator_app(*, rng: random.Random | None = None) -> FastAPI:
    """A fresh simulator's app; its :class:`Simulator` is at ``app.state.simulator``."""
    return Simulator(rng=rng).app


# --------------------------------------------------------------------------- serving


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves SIGINT and SIGTERM to the embedding process.

    >>> server = build_server(create_simulator_app(), "127.0.0.1", 0)
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def build_server(
    app: FastAPI,
    host: str,
    port: int,
    *,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
) -> uvicorn.Server:
    """A quiet uvicorn server for ``app`` that does not touch signal handlers."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=3,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
    )
    return EmbeddedServer(config)


def _bind(host: str, port: int) -> socket.socket:
    """A bound (not yet listening) TCP socket, so address errors surface here as OSError."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


async def _run_until_stopped(
    listeners: list[tuple[uvicorn.Server, socket.socket]], stop: asyncio.Event
) -> None:
    tasks = [asyncio.create_task(s.serve(sockets=[sock])) for s, sock in listeners]
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for server, _ in listeners:
            server.should_exit = True
        stopper.cancel()
        results = await asyncio.gather(*tasks, stopper, return_exceptions=True)
    for result in results:
        if isinstance(result, Exception):
            raise result


async def serve(
    host: str, port: int, tls_port: int | None = None, *, stop: asyncio.Event | None = None
) -> None:
    """Serve a fresh simulator over HTTP (and HTTPS on ``tls_port``) until ``stop`` is set.

    Runs until cancelled when ``stop`` is None. The HTTPS listener uses a
    self-signed certificate for localhost and 127.0.0.1, made at start.
    """
    app = create_simulator_app()
    with (
        tempfile.TemporaryDirectory(prefix="pilot-simulator-") as tmp,
        contextlib.ExitStack() as sockets,
    ):
        listeners = [(build_server(app, host, port), sockets.enter_context(_bind(host, port)))]
        if tls_port is not None:
            cert, key = write_self_signed_cert(Path(tmp))
            tls_server = build_server(
                app, host, tls_port, ssl_certfile=str(cert), ssl_keyfile=str(key)
            )
            listeners.append((tls_server, sockets.enter_context(_bind(host, tls_port))))
        log.info("simulator_started", host=host, port=port, tls_port=tls_port)
        await _run_until_stopped(listeners, stop if stop is not None else asyncio.Event())
        log.info("simulator_stopped")


async def _serve_until_signalled(host: str, port: int, tls_port: int | None) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        await serve(host, port, tls_port, stop=stop)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m agent.demo.simulator",
        description="Serve a simulated Lucky Gas v3 API for the pilot-agent demo.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8700, help="plain HTTP port")
    parser.add_argument("--tls-port", type=int, default=None, help="HTTPS port (self-signed)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the simulator until SIGINT or SIGTERM; return the process exit status."""
    args = _parser().parse_args(argv)
    try:
        asyncio.run(_serve_until_signalled(args.host, args.port, args.tls_port))
    except OSError as exc:
        log.error("simulator_start_failed", error=str(exc))
        return 1
    return 0


if __name__ == "__main__":
    configure_logging()
    raise SystemExit(main())
