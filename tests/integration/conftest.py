"""Real servers for the check integration tests, started once per session on free ports.

- ``certs``: a private CA and leaf certificates made with ``cryptography`` (valid,
  expired, wrong hostname, self-signed, expiring in two days).
- ``servers``: one background event loop serving a Starlette app over HTTP and HTTPS
  (uvicorn), WebSocket endpoints (``websockets``), bare TLS endpoints for each
  certificate, and a "silent" TCP server that accepts and never answers.
- ``redis_server``, ``redis_auth_server``, ``redis_tls_server``, ``redis_tls_auth_server``:
  ``redis-server`` processes; ``restartable_redis`` one a test can kill and start again.
- ``postgres_server``: a throwaway cluster made with ``initdb`` and run with ``pg_ctl``.

A missing server binary fails the tests (``require_binary``); it never skips them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import glob
import ipaddress
import os
import shutil
import ssl
import subprocess
import tempfile
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request as WsRequest
from websockets.http11 import Response as WsResponse

from tests.kafka import kafka_broker, kafka_chaos_broker  # noqa: F401  (fixtures)
from tests.support import free_port, require_binary, wait_for_port

T = TypeVar("T")

# --------------------------------------------------------------------------- certificates


@dataclass(frozen=True)
class Pair:
    cert: str
    key: str


@dataclass(frozen=True)
class Certs:
    """PEM files: ``ca`` signed every leaf but ``self_signed``."""

    ca: str
    valid: Pair  # localhost and 127.0.0.1, 30 days left
    expired: Pair
    wrong_host: Pair  # only wrong.example
    self_signed: Pair
    soon: Pair  # two days left
    short_ca: str  # a second CA with ten days left...
    outlives_ca: Pair  # ...that signed this 30-day leaf


Issued = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]


def _issue(
    cn: str, issuer: Issued | None, names: list[x509.GeneralName], days: tuple[int, int]
) -> Issued:
    """A certificate valid from ``days[0]`` to ``days[1]`` days from now (self-signed if no
    issuer); a certificate without names is a CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    issuer_name, signer = (issuer[0].subject, issuer[1]) if issuer else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + dt.timedelta(days=days[0]))
        .not_valid_after(now + dt.timedelta(days=days[1]))
        .add_extension(x509.BasicConstraints(ca=not names, path_length=None), critical=True)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(signer, hashes.SHA256()), key


def _write(dir: Path, stem: str, issued: Issued) -> Pair:
    cert, key = issued
    cert_path, key_path = dir / f"{stem}.pem", dir / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pkcs8, no_password = serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, pkcs8, no_password))
    return Pair(str(cert_path), str(key_path))


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """A CA plus valid, expired, wrong-host, self-signed and soon-expiring server certs,
    and a 30-day leaf from a second CA that expires in 10 days."""
    dir = tmp_path_factory.mktemp("certs")
    ca = _issue("pilot-agent test CA", None, [], (-1, 365))
    short_ca = _issue("pilot-agent short-lived CA", None, [], (-1, 10))
    local = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    wrong: list[x509.GeneralName] = [x509.DNSName("wrong.example")]
    return Certs(
        ca=_write(dir, "ca", ca).cert,
        valid=_write(dir, "valid", _issue("valid", ca, local, (-1, 30))),
        expired=_write(dir, "expired", _issue("expired", ca, local, (-30, -1))),
        wrong_host=_write(dir, "wrong", _issue("wrong", ca, wrong, (-1, 30))),
        self_signed=_write(dir, "self", _issue("self", None, local, (-1, 30))),
        soon=_write(dir, "soon", _issue("soon", ca, local, (-1, 2))),
        short_ca=_write(dir, "short-ca", short_ca).cert,
        outlives_ca=_write(dir, "outlives", _issue("outlives", short_ca, local, (-1, 30))),
    )


def server_context(pair: Pair) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pair.cert, pair.key)
    return ctx


# --------------------------------------------------------------------------- the web app

HEALTH = {"status": "ok", "count": 3, "items": [{"id": 1}, {"id": 2}]}
TOKEN = "tok-123"


async def _health(_request: Request) -> Response:
    return JSONResponse(HEALTH, headers={"X-Version": "1.2.3"})


async def _status(request: Request) -> Response:
    return Response(status_code=int(request.path_params["code"]))


async def _redirect(_request: Request) -> Response:
    return RedirectResponse("/health", status_code=302)


async def _login(request: Request) -> Response:
    if await request.json() != {"user": "u", "password": "p"}:
        return JSONResponse({"error": "bad credentials"}, status_code=401)
    return JSONResponse({"token": TOKEN}, headers={"X-Session": "s9"})


async def _me(request: Request) -> Response:
    authorized = request.headers.get("authorization") == f"Bearer {TOKEN}"
    if not authorized or request.headers.get("x-session") != "s9":
        return JSONResponse({"error": "unauthorized"}, status_code=401)
    return JSONResponse({"user": "u"})


async def _basic(request: Request) -> Response:
    expected = "Basic " + base64.b64encode(b"u:p").decode()
    if request.headers.get("authorization") != expected:
        return Response(status_code=401, headers={"WWW-Authenticate": "Basic"})
    return Response("welcome")


async def _big(_request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(32):
            yield b"z" * 65536

    return StreamingResponse(chunks(), media_type="application/octet-stream")


async def _slow(_request: Request) -> Response:
    await asyncio.sleep(0.3)
    return Response("late")


def web_app() -> Starlette:
    """The HTTP endpoints the http and flow tests probe."""
    return Starlette(
        routes=[
            Route("/health", _health),
            Route("/status/{code:int}", _status),
            Route("/redirect", _redirect),
            Route("/login", _login, methods=["POST"]),
            Route("/me", _me),
            Route("/basic", _basic),
            Route("/big", _big),
            Route("/slow", _slow),
        ]
    )


# --------------------------------------------------------------------------- websocket handlers


async def _ws_handler(ws: ServerConnection) -> None:
    """Sends one unrelated message, then echoes every message back (/bye: closes instead)."""
    await ws.send("noise")
    if ws.request is not None and ws.request.path == "/bye":
        await ws.close(1001, "going away")
        return
    async for message in ws:
        await ws.send(message)


def _ws_gate(ws: ServerConnection, request: WsRequest) -> WsResponse | None:
    if request.path == "/forbidden":
        return ws.respond(HTTPStatus.FORBIDDEN, "forbidden\n")
    if request.path == "/unavailable":
        return ws.respond(HTTPStatus.SERVICE_UNAVAILABLE, "try later\n")
    return None


# --------------------------------------------------------------------------- the server loop


class ServerLoop:
    """An event loop in a daemon thread, so servers run beside each test's own loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="servers", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def close(self) -> None:
        self.run(self._cancel_rest())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=30)
        self.loop.close()

    async def _cancel_rest(self) -> None:
        me = asyncio.current_task()
        rest = [t for t in asyncio.all_tasks() if t is not me]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)
        await self.loop.shutdown_asyncgens()


async def _read_until_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Never writes a byte: reads until the client leaves, then closes.

    Serves the "silent" target, and the bare TLS endpoints after their handshake.
    """
    try:
        await reader.read()
    except OSError:  # includes ssl.SSLError
        pass
    finally:
        writer.close()


@dataclass(frozen=True)
class Servers:
    """Ports of everything the background loop serves, all on 127.0.0.1."""

    http: int
    https: int
    ws: int
    wss: int
    silent: int
    tls: dict[str, int]  # certificate name (valid, expired, ...) -> bare TLS port

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http}"

    @property
    def https_url(self) -> str:
        return f"https://localhost:{self.https}"


class _Started:
    def __init__(self) -> None:
        self.uvicorns: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []
        self.servers: list[asyncio.Server | Server] = []

    async def uvicorn(self, port: int, pair: Pair | None) -> None:
        config = uvicorn.Config(
            web_app(),
            host="127.0.0.1",
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
            ws="none",
            ssl_certfile=pair.cert if pair else None,
            ssl_keyfile=pair.key if pair else None,
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        self.uvicorns.append((server, task))
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        for server, task in self.uvicorns:
            server.should_exit = True
            await task
        for s in self.servers:
            s.close()
            await s.wait_closed()


@pytest.fixture(scope="session")
def servers(certs: Certs) -> Iterator[Servers]:
    """HTTP(S), WebSocket, bare-TLS and silent servers in one background loop."""
    loop = ServerLoop()
    started = _Started()
    ports = Servers(
        http=free_port(),
        https=free_port(),
        ws=free_port(),
        wss=free_port(),
        silent=free_port(),
        tls={
            name: free_port()
            for name in ("valid", "expired", "wrong_host", "self_signed", "soon", "outlives_ca")
        },
    )

    async def start() -> None:
        await started.uvicorn(ports.http, None)
        await started.uvicorn(ports.https, certs.valid)
        valid_ctx = server_context(certs.valid)
        for port, ctx in ((ports.ws, None), (ports.wss, valid_ctx)):
            ws_server = await serve(
                _ws_handler, "127.0.0.1", port, process_request=_ws_gate, ssl=ctx
            )
            started.servers.append(ws_server)
        started.servers.append(
            await asyncio.start_server(_read_until_eof, "127.0.0.1", ports.silent)
        )
        for name, port in ports.tls.items():
            ctx = server_context(getattr(certs, name))
            started.servers.append(
                await asyncio.start_server(_read_until_eof, "127.0.0.1", port, ssl=ctx)
            )

    try:
        loop.run(start())
        yield ports
    finally:
        loop.run(started.stop())
        loop.close()


# --------------------------------------------------------------------------- redis


@contextlib.contextmanager
def _redis(args: list[str]) -> Iterator[int]:
    """A redis-server process on a free port (TLS-only when ``args`` set a tls-port)."""
    binary = require_binary("redis-server")
    port = free_port()
    base = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "warning"]
    if "--tls-port" in args:
        args = [str(port) if a == "{port}" else a for a in args] + ["--port", "0"]
    else:
        args = [*args, "--port", str(port)]
    proc = subprocess.Popen([binary, *base, *args], stdout=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """A redis-server without authentication; yields host:port."""
    with _redis([]) as port:
        yield f"127.0.0.1:{port}"


REDIS_PASSWORD = "s3cret-redis"


@pytest.fixture(scope="session")
def redis_auth_server() -> Iterator[str]:
    """A redis-server requiring the password REDIS_PASSWORD; yields host:port."""
    with _redis(["--requirepass", REDIS_PASSWORD]) as port:
        yield f"127.0.0.1:{port}"


@pytest.fixture(scope="session")
def redis_tls_server(certs: Certs) -> Iterator[str]:
    """A redis-server speaking only TLS with the valid certificate; yields host:port."""
    tls = ["--tls-port", "{port}", "--tls-cert-file", certs.valid.cert]
    tls += ["--tls-key-file", certs.valid.key, "--tls-ca-cert-file", certs.ca]
    with _redis([*tls, "--tls-auth-clients", "no"]) as port:
        yield f"127.0.0.1:{port}"


@pytest.fixture(scope="session")
def redis_tls_auth_server(certs: Certs) -> Iterator[str]:
    """A TLS-only redis-server that also requires REDIS_PASSWORD; yields host:port."""
    tls = ["--tls-port", "{port}", "--tls-cert-file", certs.valid.cert]
    tls += ["--tls-key-file", certs.valid.key, "--tls-ca-cert-file", certs.ca]
    with _redis([*tls, "--tls-auth-clients", "no", "--requirepass", REDIS_PASSWORD]) as port:
        yield f"127.0.0.1:{port}"


class RedisProcess:
    """A redis-server without persistence on a port of its own that a test can kill
    (SIGKILL: a crash, every key lost) and start again on the same port."""

    def __init__(self) -> None:
        self._binary = require_binary("redis-server")
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        base = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args = [*base, "--loglevel", "warning", "--port", str(self.port)]
        self._proc = subprocess.Popen([self._binary, *args], stdout=subprocess.DEVNULL)
        wait_for_port(self.port)

    def kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(timeout=10)
            self._proc = None


@pytest.fixture
def restartable_redis() -> Iterator[RedisProcess]:
    """A running RedisProcess for one test; killed at the end."""
    server = RedisProcess()
    server.start()
    try:
        yield server
    finally:
        server.kill()


# --------------------------------------------------------------------------- postgres


def _pg_binary(name: str) -> str:
    """``name`` from PATH, else from Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which(name) or max(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), default=None)
    return found or require_binary(name)


def _run_as_postgres(cmd: list[str]) -> None:
    """Root may not run initdb: run the command as user postgres when we are root."""
    if os.geteuid() == 0:
        cmd = [require_binary("runuser"), "-u", "postgres", "--", *cmd]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{cmd} failed ({done.returncode}): {done.stderr.strip()}")


@pytest.fixture(scope="session")
def postgres_server(certs: Certs) -> Iterator[str]:
    """A throwaway PostgreSQL cluster (trust auth, SSL on) on a free port; yields host:port."""
    initdb, pg_ctl = _pg_binary("initdb"), _pg_binary("pg_ctl")
    root = Path(tempfile.mkdtemp(prefix="pilot-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    port = free_port()
    try:
        _run_as_postgres([initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"])
        _install_server_cert(certs.valid, data)
        options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off "
            "-c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key"
        )
        start = [pg_ctl, "-D", str(data), "-l", str(root / "log"), "-w", "-o", options, "start"]
        _run_as_postgres(start)
        wait_for_port(port)
        yield f"127.0.0.1:{port}"
    finally:
        if (data / "postmaster.pid").exists():
            stop = [pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"]
            _run_as_postgres(stop)
        shutil.rmtree(root, ignore_errors=True)


def _install_server_cert(pair: Pair, data: Path) -> None:
    shutil.copy(pair.cert, data / "server.crt")
    shutil.copy(pair.key, data / "server.key")
    (data / "server.key").chmod(0o600)
    if os.geteuid() == 0:
        for name in ("server.crt", "server.key"):
            shutil.chown(data / name, "postgres", "postgres")
