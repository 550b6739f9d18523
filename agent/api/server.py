"""Runs the API app under uvicorn inside the agent's own event loop.

:class:`ApiServer` binds the listening socket itself, so a port already in use
fails at once with a clear :class:`OSError` (uvicorn would call ``sys.exit``), and
port 0 gives a free port that :attr:`ApiServer.port` reports. uvicorn's signal
handling is switched off: the agent owns SIGINT and SIGTERM.

::

    async with ApiServer(create_api(agent), host="127.0.0.1", port=0, web=cfg.web) as server:
        log.info("listening", port=server.port)
        await stop.wait()
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import structlog
import uvicorn
from fastapi import FastAPI

from agent.config import WebConfig
from agent.errors import ComponentStateError
from agent.lifecycle import Component

log = structlog.get_logger(__name__)


class _UvicornServer(uvicorn.Server):
    """uvicorn's server minus its signal handlers, plus an event set once it listens."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.listening.set()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from exc


class ApiServer(Component):
    """An async context manager serving ``app`` on ``host:port`` until closed.

    >>> import asyncio
    >>> from fastapi import FastAPI
    >>> server = ApiServer(FastAPI(), host="127.0.0.1", port=0, web=WebConfig())
    >>> asyncio.run(server.aclose())  # closing a server never started is fine
    """

    def __init__(
        self,
        app: FastAPI,
        *,
        host: str,
        port: int,
        web: WebConfig,
        startup_timeout: float = 10.0,
        shutdown_timeout: float = 5.0,
    ) -> None:
        self._app = app
        self._host = host
        self._requested_port = port
        self._web = web
        self._startup_timeout = startup_timeout
        self._shutdown_timeout = shutdown_timeout
        self._server: _UvicornServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        """The port actually bound (useful when 0 was asked for)."""
        if self._port is None:
            raise ComponentStateError("the API server has not been started")
        return self._port

    async def _on_start(self) -> None:
        """Bind, start serving in a background task and wait until it accepts connections."""
        sock = _bind(self._host, self._requested_port)
        try:
            server = _UvicornServer(self._config())
            server.config.load()  # fails here, not in the task, on unreadable TLS files
        except BaseException:
            sock.close()
            raise
        self._port = sock.getsockname()[1]
        self._server = server
        self._task = asyncio.create_task(server.serve(sockets=[sock]), name="api-server")
        self._task.add_done_callback(self._on_done)
        await self._wait_listening(server, self._task)
        log.info("api_server_started", host=self._host, port=self._port, tls=self._tls)

    @property
    def _tls(self) -> bool:
        return self._web.tls_server_config is not None

    def _config(self) -> uvicorn.Config:
        tls = self._web.tls_server_config
        return uvicorn.Config(
            self._app,
            host=self._host,
            port=self._requested_port,
            log_config=None,  # the agent configures logging; uvicorn must not
            log_level="warning",
            access_log=False,
            lifespan="off",
            ws="none",
            http="h11",
            server_header=False,
            timeout_graceful_shutdown=max(1, round(self._shutdown_timeout)),
            ssl_certfile=tls.cert_file if tls else None,
            ssl_keyfile=tls.key_file if tls else None,
        )

    async def _wait_listening(self, server: _UvicornServer, task: asyncio.Task[None]) -> None:
        listening = asyncio.create_task(server.listening.wait())
        try:
            await asyncio.wait(
                {listening, task},
                timeout=self._startup_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        except BaseException:  # cancelled while starting: leave nothing running
            await self.aclose()
            raise
        finally:
            listening.cancel()
        if server.listening.is_set():
            return
        await self.aclose()
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise RuntimeError("the API server failed to start") from task.exception()
        raise TimeoutError(f"the API server did not start within {self._startup_timeout}s")

    def _on_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("api_server_crashed", exc_info=exc)

    async def _on_close(self) -> None:
        """Stop accepting, let requests in flight finish, and wait."""
        server, task = self._server, self._task
        if server is None or task is None:
            return
        server.should_exit = True
        done, _ = await asyncio.wait({task}, timeout=self._shutdown_timeout + 1.0)
        if not done:
            server.force_exit = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        log.info("api_server_stopped", port=self._port)
