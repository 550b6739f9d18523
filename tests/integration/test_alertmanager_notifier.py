"""AlertmanagerNotifier against a real Alertmanager 0.25 delivering to a recording webhook."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import re
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import bcrypt
import httpx
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from agent.config.alerting import AlertingConfig
from agent.notify.alertmanager import AlertmanagerNotifier
from agent.rules.model import OutgoingAlert
from exporters.notify import NotifyMetricsExporter
from tests.alertmanager import WebhookRecorder, run_alertmanager, webhook_config
from tests.integration.conftest import Certs
from tests.support import free_port

pytestmark = pytest.mark.integration


def firing(name: str, now: float, **labels: str) -> OutgoingAlert:
    return OutgoingAlert(
        labels=tuple(sorted({"alertname": name, **labels}.items())),
        annotations={"summary": f"{name} is firing", "runbook_url": "https://runbooks.test/x"},
        starts_at=now - 5.0,
        ends_at=now + 240.0,
        generator_url=f"http://agent.test:9700/graph?g0.expr={name}",
    )


def alerting(*sets: dict[str, Any]) -> AlertingConfig:
    return AlertingConfig.model_validate({"alertmanagers": list(sets)})


def am_set(url: str, **settings: Any) -> dict[str, Any]:
    """One Alertmanager set posting to the Alertmanager at base ``url``."""
    return {"static_configs": [{"targets": [url.split("://", 1)[1]]}], **settings}


def unix(text: str) -> float:
    """Go's RFC 3339 (nanoseconds, Z) as Unix seconds, to the microsecond."""
    text = re.sub(r"(\.\d{6})\d+", r"\1", text.replace("Z", "+00:00"))
    return dt.datetime.fromisoformat(text).timestamp()


async def until(check: Callable[[], Awaitable[Any]], within: float = 30.0) -> Any:
    """Poll ``check`` (Alertmanager's API has no push) until it returns something truthy."""
    async with asyncio.timeout(within):
        while True:
            result = await check()
            if result:
                return result
            await asyncio.sleep(0.05)


def alert_in(url: str, name: str, **client: Any) -> Callable[[], Awaitable[dict[str, Any] | None]]:
    """A check for ``until``: the alert named ``name`` as GET /api/v2/alerts lists it."""

    async def check() -> dict[str, Any] | None:
        async with httpx.AsyncClient(timeout=5, **client) as http:
            answer = await http.get(f"{url}/api/v2/alerts")
        answer.raise_for_status()
        found = [a for a in answer.json() if a["labels"].get("alertname") == name]
        return found[0] if found else None

    return check


def sample(
    registry: CollectorRegistry, name: str, url: str | None = None, prefix: str = ""
) -> float:
    """A notifier metric, of the Alertmanager at base ``url`` (behind ``prefix``) if given."""
    labels = {"alertmanager": f"{url}{prefix}/api/v2/alerts"} if url else {}
    return registry.get_sample_value(name, labels) or 0.0


def counted(
    registry: CollectorRegistry, name: str, url: str, prefix: str = ""
) -> Callable[[], Awaitable[float]]:
    """A check for ``until``: the metric's value, truthy once it is above zero."""

    async def check() -> float:
        return sample(registry, name, url, prefix)

    return check


def metrics(registry: CollectorRegistry) -> NotifyMetricsExporter:
    return NotifyMetricsExporter(registry)


async def test_firing_alert_reaches_alertmanager_and_its_webhook(tmp_path: Path) -> None:
    """A firing alert shows in GET /api/v2/alerts with its labels, annotations, startsAt and
    generatorURL (external labels added), and Alertmanager notifies the webhook with it."""
    registry = CollectorRegistry()
    async with (
        WebhookRecorder() as hook,
        run_alertmanager(tmp_path, webhook_config(hook.url)) as (url, _),
        AlertmanagerNotifier(
            alerting(am_set(url)),
            external_labels={"site": "tw", "severity": "info"},
            metrics=metrics(registry),
        ) as notifier,
    ):
        sent = firing("NotifierFiring", time.time(), severity="critical")
        notifier.send([sent])
        seen = await until(alert_in(url, "NotifierFiring"))
        arrival = await hook.wait_for(lambda a: a.has_alert("firing", alertname="NotifierFiring"))
    labels = {"alertname": "NotifierFiring", "severity": "critical", "site": "tw"}
    assert seen["labels"] == labels
    assert seen["annotations"] == dict(sent.annotations)
    assert unix(seen["startsAt"]) == pytest.approx(sent.starts_at, abs=0.001)
    assert seen["generatorURL"] == sent.generator_url
    assert seen["status"]["state"] == "active"
    (delivered,) = arrival.alerts
    assert delivered["labels"] == labels
    assert delivered["annotations"] == dict(sent.annotations)
    assert delivered["generatorURL"] == sent.generator_url
    assert unix(delivered["startsAt"]) == pytest.approx(sent.starts_at, abs=0.001)
    assert sample(registry, "agent_notifications_sent_total", url) == 1
    assert sample(registry, "agent_notifications_errors_total", url) == 0


async def test_resolved_alert_resolves_it_in_alertmanager(tmp_path: Path) -> None:
    """The same alert sent again with endsAt in the past resolves it: the webhook gets it as
    resolved and Alertmanager no longer lists it as active."""
    async with (
        WebhookRecorder() as hook,
        run_alertmanager(tmp_path, webhook_config(hook.url)) as (url, _),
        AlertmanagerNotifier(alerting(am_set(url))) as notifier,
    ):
        alert = firing("NotifierResolves", time.time())
        notifier.send([alert])
        await hook.wait_for(lambda a: a.has_alert("firing", alertname="NotifierResolves"))
        notifier.send([dataclasses.replace(alert, ends_at=time.time() - 1.0)])
        arrival = await hook.wait_for(
            lambda a: a.has_alert("resolved", alertname="NotifierResolves")
        )

        async def inactive() -> bool:
            found = await alert_in(url, "NotifierResolves")()
            return found is None or found["status"]["state"] != "active"

        await until(inactive)
    assert unix(arrival.alerts[0]["endsAt"]) < time.time()


def _web_config(certs: Certs, user: str, password: str) -> str:
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    return (
        "tls_server_config:\n"
        f"  cert_file: {certs.valid.cert}\n"
        f"  key_file: {certs.valid.key}\n"
        "basic_auth_users:\n"
        f"  {user}: '{hashed}'\n"
    )


async def test_basic_auth_over_https_and_a_wrong_password_is_counted(
    tmp_path: Path, certs: Certs
) -> None:
    """With the right password (HTTPS, our CA) the alert lands; with a wrong one each POST is a
    401 counted as an error and logged without the password."""
    registry = CollectorRegistry()
    web = _web_config(certs, "agent", "s3cret-am-pass")
    tls = {"ca_file": certs.ca}
    ca = ssl.create_default_context(cafile=certs.ca)
    async with run_alertmanager(
        tmp_path,
        webhook_config("http://127.0.0.1:9/unused"),
        web_config_yaml=web,
        auth=("agent", "s3cret-am-pass"),
        verify=ca,
    ) as (url, _):
        right = am_set(url, scheme="https", tls_config=tls)
        right["basic_auth"] = {"username": "agent", "password": "s3cret-am-pass"}
        wrong = {**right, "basic_auth": {"username": "agent", "password": "not-the-pass"}}
        async with AlertmanagerNotifier(alerting(right)) as notifier:
            notifier.send([firing("NotifierBasicAuth", time.time())])
            client = {"auth": ("agent", "s3cret-am-pass"), "verify": ca}
            seen = await until(alert_in(url, "NotifierBasicAuth", **client))
        with capture_logs() as logs:
            async with AlertmanagerNotifier(alerting(wrong), metrics=metrics(registry)) as notifier:
                notifier.send([firing("NotifierWrongPassword", time.time())])
                await until(counted(registry, "agent_notifications_errors_total", url))
    assert seen["labels"]["alertname"] == "NotifierBasicAuth"
    failed = [e for e in logs if e["event"] == "alertmanager_send_failed"]
    assert failed[0]["status"] == 401 and failed[0]["alertmanager"] == f"{url}/api/v2/alerts"
    assert not any("not-the-pass" in repr(e) for e in logs)


@asynccontextmanager
async def bearer_proxy(token: str, upstream: str) -> AsyncIterator[str]:
    """An HTTP endpoint at /proxy/api/v2/alerts that demands ``Bearer token`` and forwards
    the body to Alertmanager; yields its base URL."""

    async def forward(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {token}":
            return web.Response(status=401, text="unauthorized")
        async with httpx.AsyncClient(timeout=5) as http:
            answer = await http.post(
                f"{upstream}/api/v2/alerts",
                content=await request.read(),
                headers={"Content-Type": "application/json"},
            )
        return web.Response(status=answer.status_code, text=answer.text)

    app = web.Application()
    app.router.add_post("/proxy/api/v2/alerts", forward)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_bearer_token_and_path_prefix_through_an_auth_checking_proxy(
    tmp_path: Path,
) -> None:
    """`authorization` credentials and `path_prefix` reach an endpoint that checks the bearer
    token, which passes the alert on to Alertmanager; a wrong token is refused and counted."""
    registry = CollectorRegistry()
    async with (
        run_alertmanager(tmp_path, webhook_config("http://127.0.0.1:9/unused")) as (url, _),
        bearer_proxy("tok-ok-1", url) as proxy,
    ):
        good = am_set(proxy, path_prefix="/proxy/", authorization={"credentials": "tok-ok-1"})
        bad = am_set(proxy, path_prefix="proxy", authorization={"credentials": "tok-wrong"})
        async with AlertmanagerNotifier(alerting(good), metrics=metrics(registry)) as notifier:
            notifier.send([firing("NotifierBearer", time.time())])
            seen = await until(alert_in(url, "NotifierBearer"))
        refused = CollectorRegistry()
        async with AlertmanagerNotifier(alerting(bad), metrics=metrics(refused)) as notifier:
            notifier.send([firing("NotifierBadBearer", time.time())])
            await until(counted(refused, "agent_notifications_errors_total", proxy, "/proxy"))
        assert await alert_in(url, "NotifierBadBearer")() is None
    assert seen["labels"]["alertname"] == "NotifierBearer"
    assert sample(registry, "agent_notifications_sent_total", proxy, "/proxy") == 1
    assert sample(registry, "agent_notifications_errors_total", proxy, "/proxy") == 0


async def _silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accepts a connection and never answers (an Alertmanager that hangs)."""
    try:
        await reader.read()
    finally:
        writer.close()


async def test_dead_and_hung_alertmanagers_do_not_delay_the_live_one(tmp_path: Path) -> None:
    """With one Alertmanager refusing connections and one never answering, the live one gets
    the alert promptly and the dead one's failed POSTs are counted as errors."""
    registry = CollectorRegistry()
    dead = f"http://127.0.0.1:{free_port()}"
    hung_server = await asyncio.start_server(_silent, "127.0.0.1", 0)
    hung = f"http://127.0.0.1:{hung_server.sockets[0].getsockname()[1]}"
    try:
        async with (
            WebhookRecorder() as hook,
            run_alertmanager(tmp_path, webhook_config(hook.url)) as (url, _),
        ):
            cfg = alerting(am_set(dead), am_set(hung, timeout="30s"), am_set(url))
            notifier = AlertmanagerNotifier(cfg, metrics=metrics(registry), close_deadline=0.5)
            async with notifier:
                start = time.monotonic()
                notifier.send([firing("NotifierIsolation", time.time())])
                await until(alert_in(url, "NotifierIsolation"), within=10.0)
                reached = time.monotonic() - start
                await hook.wait_for(lambda a: a.has_alert(alertname="NotifierIsolation"))
                await until(counted(registry, "agent_notifications_errors_total", dead))
                assert notifier.queue_lengths()[f"{hung}/api/v2/alerts"] == 1
    finally:
        hung_server.close()
        await hung_server.wait_closed()
    assert reached < 5.0
    assert sample(registry, "agent_notifications_errors_total", url) == 0
    assert sample(registry, "agent_notifications_sent_total", url) == 1
    assert sample(registry, "agent_notifications_alertmanagers_discovered") == 3
