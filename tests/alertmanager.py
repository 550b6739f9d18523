"""A real Alertmanager, and a webhook receiver that records its notifications.

For integration, e2e and benchmark code that needs to see what reaches
Alertmanager and what Alertmanager delivers. Both are async context managers
that run in the caller's event loop (the webhook) or as a child process
(Alertmanager, ``prometheus-alertmanager`` from PATH: missing is a failure)::

    from tests.alertmanager import WebhookRecorder, run_alertmanager, webhook_config

    async with (
        WebhookRecorder() as hook,
        run_alertmanager(tmp_path, webhook_config(hook.url)) as (am_url, _process),
    ):
        ...  # point the agent at am_url (host:port is am_url without "http://")
        arrival = await hook.wait_for(lambda a: a.has_alert(alertname="ApiDown"), within=60)
        arrival.received_at          # Unix time the notification arrived
        arrival.alerts[0]["status"]  # "firing" or "resolved"

``webhook_config`` routes every alert on its own (``group_by: ['...']``) with no
``group_wait``, so a notification follows an alert's arrival at once;
``send_resolved`` is on. ``run_alertmanager`` takes an optional exporter-toolkit
web config (``basic_auth_users``, ``tls_server_config``) and then checks
readiness with ``auth`` and ``verify`` (e.g. ``ssl.create_default_context(cafile=ca)``).
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, Self

import httpx
from aiohttp import web

from tests.support import free_port, require_binary


def webhook_config(
    url: str, *, group_interval: str = "1s", repeat_interval: str = "1h", group_wait: str = "0s"
) -> str:
    """An Alertmanager configuration sending every alert, alone, to the webhook at ``url``."""
    return (
        "route:\n"
        "  receiver: webhook\n"
        "  group_by: ['...']\n"
        f"  group_wait: {group_wait}\n"
        f"  group_interval: {group_interval}\n"
        f"  repeat_interval: {repeat_interval}\n"
        "receivers:\n"
        "  - name: webhook\n"
        "    webhook_configs:\n"
        f"      - url: {url}\n"
        "        send_resolved: true\n"
    )


class RunningAlertmanager(NamedTuple):
    """Base URL (``http://127.0.0.1:port`` or https) and the process."""

    url: str
    process: asyncio.subprocess.Process


@asynccontextmanager
async def run_alertmanager(
    tmp_path: Path,
    config_yaml: str,
    *,
    web_config_yaml: str | None = None,
    auth: tuple[str, str] | None = None,
    verify: ssl.SSLContext | bool = True,
) -> AsyncIterator[RunningAlertmanager]:
    """Alertmanager on a free loopback port, clustering off, files under ``tmp_path``.

    With ``web_config_yaml`` it is passed as ``--web.config.file``; a web config
    with ``tls_server_config`` makes the URL https. Logs go to
    ``tmp_path/alertmanager.log``; a start that fails shows its last lines.
    """
    binary = require_binary("prometheus-alertmanager")
    port = free_port()
    config = tmp_path / "alertmanager.yml"
    config.write_text(config_yaml, encoding="utf-8")
    args = [
        f"--config.file={config}",
        f"--storage.path={tmp_path / 'alertmanager-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    scheme = "http"
    if web_config_yaml is not None:
        (tmp_path / "web.yml").write_text(web_config_yaml, encoding="utf-8")
        args.append(f"--web.config.file={tmp_path / 'web.yml'}")
        scheme = "https" if "tls_server_config" in web_config_yaml else "http"
    log_path = tmp_path / "alertmanager.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            binary, *args, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"{scheme}://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, auth=auth, verify=verify, timeout=5) as client:
            await _until_ready(client, proc, log_path)
        yield RunningAlertmanager(url, proc)
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def _until_ready(
    client: httpx.AsyncClient, proc: asyncio.subprocess.Process, log: Path
) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            raise AssertionError(f"Alertmanager exited with {proc.returncode}:\n{_tail(log)}")
        try:
            if (await client.get("/-/ready")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.05)
    raise TimeoutError(f"Alertmanager not ready after 20s:\n{_tail(log)}")


def _tail(path: Path) -> str:
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-20:])


# --------------------------------------------------------------------------- the webhook


@dataclass(frozen=True)
class Arrival:
    """One webhook notification: when it arrived (Unix seconds), its path and JSON body."""

    received_at: float
    path: str
    body: dict[str, Any]

    @property
    def alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = self.body.get("alerts", [])
        return alerts

    @property
    def status(self) -> str:
        """``firing`` or ``resolved`` (the group's status)."""
        return str(self.body.get("status", ""))

    def has_alert(self, status: str | None = None, **labels: str) -> bool:
        """Whether an alert of this notification has these labels (and ``status``)."""
        return any(
            all(a.get("labels", {}).get(k) == v for k, v in labels.items())
            and (status is None or a.get("status") == status)
            for a in self.alerts
        )


class WebhookRecorder:
    """An aiohttp server on a free loopback port recording every POST (any path) it gets."""

    def __init__(self) -> None:
        self.arrivals: list[Arrival] = []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.json()
        async with self._changed:
            self.arrivals.append(Arrival(time.time(), request.path, body))
            self._changed.notify_all()
        return web.Response(text="ok")

    async def wait_for(self, match: Callable[[Arrival], bool], within: float = 30.0) -> Arrival:
        """The first arrival (earlier ones included) for which ``match`` holds.

        Fails with the arrivals so far when none matches within ``within`` seconds.
        """
        try:
            async with asyncio.timeout(within), self._changed:
                while True:
                    found = next((a for a in self.arrivals if match(a)), None)
                    if found is not None:
                        return found
                    await self._changed.wait()
        except TimeoutError:
            bodies = [a.body for a in self.arrivals]
            raise AssertionError(f"no matching notification in {within}s; got {bodies}") from None
