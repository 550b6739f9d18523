"""AlertmanagerNotifier against an in-process fake Alertmanager (httpx.MockTransport)."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from agent.config.alerting import AlertingConfig
from agent.notify.alertmanager import AlertmanagerNotifier
from agent.notify.targets import alertmanager_client
from agent.rules.model import OutgoingAlert
from exporters.notify import NotifyMetricsExporter

AM1 = "http://am-1:9093/api/v2/alerts"
AM2 = "http://am-2:9093/api/v2/alerts"
T0 = 1_714_550_400.0  # 2024-05-01T08:00:00Z


def alert(n: int, **labels: str) -> OutgoingAlert:
    return OutgoingAlert(
        labels=tuple(sorted({"alertname": "Down", "n": str(n), **labels}.items())),
        annotations={"summary": f"alert {n}"},
        starts_at=T0,
        ends_at=T0 + 240.0,
        generator_url="http://agent:9700/graph?g0.expr=up",
    )


@dataclass
class Post:
    url: str
    headers: httpx.Headers
    body: list[dict[str, Any]]
    at: float

    @property
    def numbers(self) -> list[int]:
        return [int(a["labels"]["n"]) for a in self.body]


@dataclass
class FakeAlertmanagers:
    """Answers every POST by its URL: 200 unless ``answer`` says otherwise; records them."""

    answer: dict[str, Callable[[], Any]] = field(default_factory=dict)
    posts: list[Post] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        body = json.loads(request.content)
        self.posts.append(Post(url, request.headers, body, time.monotonic()))
        self.arrived.set()
        status = self.answer.get(url, lambda: 200)()
        if asyncio.iscoroutine(status):
            status = await status
        return httpx.Response(status, text="bad alert" if status == 400 else "")

    def to(self, url: str) -> list[Post]:
        return [p for p in self.posts if p.url == url]

    async def until(self, done: Callable[[], bool], within: float = 10.0) -> None:
        """Wait, event-driven, until ``done()`` holds (at most ``within`` seconds)."""
        async with asyncio.timeout(within):
            while not done():
                self.arrived.clear()
                await self.arrived.wait()


def config(*sets: dict[str, Any], capacity: int = 10_000, **extra: Any) -> AlertingConfig:
    return AlertingConfig.model_validate(
        {"notification_queue_capacity": capacity, "alertmanagers": list(sets), **extra}
    )


def am_set(*targets: str, **settings: Any) -> dict[str, Any]:
    return {"static_configs": [{"targets": list(targets)}], **settings}


@pytest.fixture
def fake() -> FakeAlertmanagers:
    return FakeAlertmanagers()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def notifier(
    cfg: AlertingConfig, fake: FakeAlertmanagers, registry: CollectorRegistry, **kwargs: Any
) -> AlertmanagerNotifier:
    transport = httpx.MockTransport(fake.handle)
    return AlertmanagerNotifier(
        cfg,
        metrics=NotifyMetricsExporter(registry),
        client_factory=lambda c: alertmanager_client(c, transport=transport),
        **{"backoff": (0.01, 0.05), **kwargs},
    )


def sample(registry: CollectorRegistry, name: str, url: str | None = None) -> float | None:
    return registry.get_sample_value(name, {"alertmanager": url} if url else {})


@pytest.fixture
async def running(
    fake: FakeAlertmanagers, registry: CollectorRegistry
) -> AsyncIterator[AlertmanagerNotifier]:
    async with notifier(config(am_set("am-1:9093")), fake, registry) as n:
        yield n


async def test_body_is_alertmanager_v2_postable_alerts(
    running: AlertmanagerNotifier, fake: FakeAlertmanagers
) -> None:
    """One POST to /api/v2/alerts carries labels, annotations, RFC 3339 times and generatorURL."""
    running.send([alert(1)])
    await fake.until(lambda: len(fake.posts) == 1)
    (post,) = fake.posts
    assert post.url == AM1
    assert post.headers["content-type"] == "application/json"
    assert post.headers["user-agent"].startswith("pilot-agent/")
    assert post.body == [
        {
            "labels": {"alertname": "Down", "n": "1"},
            "annotations": {"summary": "alert 1"},
            "startsAt": "2024-05-01T08:00:00.000Z",
            "endsAt": "2024-05-01T08:04:00.000Z",
            "generatorURL": "http://agent:9700/graph?g0.expr=up",
        }
    ]


async def test_batches_hold_at_most_64_alerts_in_order(
    fake: FakeAlertmanagers, registry: CollectorRegistry
) -> None:
    """150 alerts go out as POSTs of 64, 64 and 22, in the order they were sent."""
    async with notifier(config(am_set("am-1:9093")), fake, registry) as n:
        n.send([alert(i) for i in range(150)])
        await fake.until(lambda: sum(len(p.body) for p in fake.posts) == 150)
    assert [len(p.body) for p in fake.posts] == [64, 64, 22]
    assert [i for p in fake.posts for i in p.numbers] == list(range(150))
    assert sample(registry, "agent_notifications_sent_total", AM1) == 150
    assert sample(registry, "agent_notifications_errors_total", AM1) == 0
    assert sample(registry, "agent_notifications_latency_seconds_count", AM1) == 3
    assert sample(registry, "agent_notifications_queue_length", AM1) == 0


async def test_full_queue_drops_the_oldest_and_counts_them(
    fake: FakeAlertmanagers, registry: CollectorRegistry
) -> None:
    """While the Alertmanager fails, the queue stays at capacity by dropping the oldest alerts."""
    healthy = asyncio.Event()
    fake.answer[AM1] = lambda: 200 if healthy.is_set() else 503
    async with notifier(config(am_set("am-1:9093"), capacity=10), fake, registry) as n:
        n.send([alert(i) for i in range(5)])
        await fake.until(lambda: len(fake.posts) >= 2)  # failed and retried
        n.send([alert(i) for i in range(5, 12)])
        n.send([alert(i) for i in range(12, 15)])
        assert n.queue_lengths() == {AM1: 10}
        assert sample(registry, "agent_notifications_queue_length", AM1) == 10
        assert sample(registry, "agent_notifications_dropped_total", AM1) == 5
        healthy.set()
        await fake.until(lambda: n.queue_lengths() == {AM1: 0})
    ok = [p for p in fake.posts if p.numbers and p.numbers[0] >= 5]
    assert [i for p in ok for i in p.numbers] == list(range(5, 15))
    assert sample(registry, "agent_notifications_queue_capacity") == 10


async def test_external_labels_fill_gaps_then_relabelling_applies(
    fake: FakeAlertmanagers, registry: CollectorRegistry
) -> None:
    """External labels fill gaps (the alert's own value wins); relabelling drops and rewrites."""
    relabel = [
        {"source_labels": ["n"], "regex": "2", "action": "drop"},
        {"source_labels": ["site"], "target_label": "region", "replacement": "asia-$1"},
    ]
    cfg = config(am_set("am-1:9093"), alert_relabel_configs=relabel)
    external = {"site": "tw", "severity": "warning"}
    async with notifier(cfg, fake, registry, external_labels=external) as n:
        n.send([alert(1, severity="critical"), alert(2), alert(3, site="jp")])
        await fake.until(lambda: len(fake.posts) == 1)
    labels = [a["labels"] for a in fake.posts[0].body]
    assert labels == [
        {"alertname": "Down", "n": "1", "severity": "critical", "site": "tw", "region": "asia-tw"},
        {"alertname": "Down", "n": "3", "severity": "warning", "site": "jp", "region": "asia-jp"},
    ]


async def test_alert_relabelled_to_nothing_is_not_queued(
    fake: FakeAlertmanagers, registry: CollectorRegistry
) -> None:
    """An alert that loses every label is dropped before any queue; the others still go."""
    relabel = [{"source_labels": ["n"], "regex": "1", "action": "keep"}]
    relabel_all = [{"regex": ".*", "action": "labeldrop"}]
    cfg = config(am_set("am-1:9093"), alert_relabel_configs=relabel)
    async with notifier(cfg, fake, registry) as n:
        n.send([alert(2)])
        assert n.queue_lengths() == {AM1: 0}
        n.send([alert(1), alert(2)])
        await fake.until(lambda: len(fake.posts) == 1)
    assert fake.posts[0].numbers == [1]
    cfg = config(am_set("am-1:9093"), alert_relabel_configs=relabel_all)
    async with notifier(cfg, fake, CollectorRegistry()) as n:
        n.send([alert(1)])
        assert n.queue_lengths() == {AM1: 0}


async def test_failed_batch_is_retried_with_backoff_until_it_succeeds(
    fake: FakeAlertmanagers, registry: CollectorRegistry
) -> None:
    """Two 503s, then success: the same batch is posted three times, waits growing, all counted."""
    answers = iter([503, 503, 200])
    fake.answer[AM1] = lambda: next(answers)
    async with notifier(config(am_set("am-1:9093")), fake, registry, backoff=(0.05, 5.0)) as n:
        with capture_logs() as logs:
            n.send([alert(1), alert(2)])
            await fake.until(lambda: len(fake.posts) == 3)
            await asyncio.sleep(0)  # let the sender count the third answer
    assert [p.numbers for p in fake.posts] == [[1, 2]] * 3
    first, second = (b.at - a.at for a, b in zip(fake.posts, fake.posts[1:], strict=False))
    assert first >= 0.05 and second >= 0.1
    assert sample(registry, "agent_notifications_sent_total", AM1) == 6
    assert sample(registry, "agent_notifications_errors_total", AM1) == 4
    assert sample(registry, "agent_notifications_dropped_total", AM1) == 0
    failed = [e for e in logs if e["event"] == "alertmanager_send_failed"]
    assert len(failed) == 2
    assert failed[0] == {
        "event": "alertmanager_send_failed",
        "log_level": "warning",
        "alertmanager": AM1,
        "count": 2,
        "error": "HTTPStatusError",
        "status": 503,
        "retry": True,
        "detail": "",
    }


async def test_rejected_batch_is_dropped_and_the_queue_moves_on(
    fake: FakeAlertmanagers, registry: CollectorRegistry
) -> None:
    """A 400 is not retried: its alerts are counted as dropped and the next batch goes out."""
    answers = iter([400, 200])
    fake.answer[AM1] = lambda: next(answers)
    async with notifier(config(am_set("am-1:9093")), fake, registry, batch_size=2) as n:
        n.send([alert(1), alert(2), alert(3)])
        await fake.until(lambda: len(fake.posts) == 2)
        await asyncio.sleep(0)
    assert [p.numbers for p in fake.posts] == [[1, 2], [3]]
    assert sample(registry, "agent_notifications_dropped_total", AM1) == 2
    assert sample(registry, "agent_notifications_errors_total", AM1) == 2


async def test_a_hung_alertmanager_does_not_delay_a_healthy_one(
    fake: FakeAlertmanagers, registry: CollectorRegistry
) -> None:
    """An Alertmanager that never answers holds only its own queue; close still ends promptly."""
    never = asyncio.Event()

    async def hang() -> int:
        await never.wait()
        return 200

    fake.answer[AM1] = hang
    cfg = config(am_set("am-1:9093", timeout="60s"), am_set("am-2:9093"))
    n = notifier(cfg, fake, registry, close_deadline=0.3)
    async with n:
        n.send([alert(1)])
        await fake.until(lambda: len(fake.to(AM2)) == 1 and len(fake.to(AM1)) == 1)
        n.send([alert(2)])
        await fake.until(lambda: len(fake.to(AM2)) == 2, within=5.0)
        assert n.queue_lengths() == {AM1: 2, AM2: 0}
        closing = time.monotonic()
    assert time.monotonic() - closing < 5.0
    assert [p.numbers for p in fake.to(AM2)] == [[1], [2]]


async def test_timeout_is_an_error_and_the_batch_is_retried(
    fake: FakeAlertmanagers, registry: CollectorRegistry
) -> None:
    """A POST slower than `timeout` fails with TimeoutError and is retried."""
    calls = 0

    async def slow_once() -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(30)
        return 200

    fake.answer[AM1] = slow_once
    async with notifier(config(am_set("am-1:9093", timeout="100ms")), fake, registry) as n:
        with capture_logs() as logs:
            n.send([alert(1)])
            await fake.until(lambda: len(fake.posts) == 2)
            await asyncio.sleep(0)
    assert [e["error"] for e in logs if e["event"] == "alertmanager_send_failed"] == [
        "TimeoutError"
    ]
    assert sample(registry, "agent_notifications_errors_total", AM1) == 1
    assert n.queue_lengths() == {AM1: 0}


async def test_send_from_other_threads_delivers_every_alert_once(
    fake: FakeAlertmanagers, registry: CollectorRegistry
) -> None:
    """Four threads sending at once: every alert arrives exactly once, each thread's in order."""
    async with notifier(config(am_set("am-1:9093")), fake, registry) as n:

        def burst(first: int) -> None:
            for i in range(first, first + 50):
                n.send([alert(i)])

        def run_all() -> None:
            threads = [threading.Thread(target=burst, args=(k * 100,)) for k in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()

        await asyncio.to_thread(run_all)
        await fake.until(lambda: sum(len(p.body) for p in fake.posts) == 200)
    got = [i for p in fake.posts for i in p.numbers]
    assert sorted(got) == sorted(k * 100 + i for k in range(4) for i in range(50))
    for k in range(4):
        mine = [i for i in got if k * 100 <= i < k * 100 + 50]
        assert mine == sorted(mine)


async def test_close_makes_one_last_attempt_at_queued_alerts(
    fake: FakeAlertmanagers, registry: CollectorRegistry
) -> None:
    """Alerts waiting out a long backoff are posted once more on close, within the deadline."""
    answers = iter([503, 200])
    fake.answer[AM1] = lambda: next(answers)
    n = notifier(config(am_set("am-1:9093")), fake, registry, backoff=(60.0, 60.0))
    async with n:
        n.send([alert(1)])
        await fake.until(lambda: len(fake.posts) == 1)
        closing = time.monotonic()
    assert time.monotonic() - closing < 5.0
    assert [p.numbers for p in fake.posts] == [[1], [1]]
    assert n.queue_lengths() == {AM1: 0}


async def test_basic_auth_and_authorization_headers(
    fake: FakeAlertmanagers, registry: CollectorRegistry
) -> None:
    """Each Alertmanager set posts with its own credentials, which never reach the logs."""
    cfg = config(
        am_set("am-1:9093", basic_auth={"username": "u", "password": "hunter2-pw"}),
        am_set("am-2:9093", authorization={"credentials": "tok-777"}),
    )
    fake.answer[AM1] = lambda: 500
    async with notifier(cfg, fake, registry) as n:
        with capture_logs() as logs:
            n.send([alert(1)])
            await fake.until(lambda: len(fake.to(AM1)) >= 2 and len(fake.to(AM2)) == 1)
    basic = "Basic " + base64.b64encode(b"u:hunter2-pw").decode()
    assert fake.to(AM1)[0].headers["authorization"] == basic
    assert fake.to(AM2)[0].headers["authorization"] == "Bearer tok-777"
    assert logs and not any("hunter2" in repr(e) or "tok-777" in repr(e) for e in logs)


async def test_metrics_exist_from_the_start_and_send_outside_running_is_ignored(
    fake: FakeAlertmanagers, registry: CollectorRegistry
) -> None:
    """Every series is at 0 once started; sending before start or after close does nothing."""
    n = notifier(config(am_set("am-1:9093"), am_set("am-2:9093")), fake, registry)
    n.send([alert(1)])
    async with n:
        assert sample(registry, "agent_notifications_alertmanagers_discovered") == 2
        assert sample(registry, "agent_notifications_queue_capacity") == 10_000
        for url in (AM1, AM2):
            for name in ("sent", "errors", "dropped"):
                assert sample(registry, f"agent_notifications_{name}_total", url) == 0
            assert sample(registry, "agent_notifications_queue_length", url) == 0
    n.send([alert(2)])
    await asyncio.sleep(0.05)
    assert fake.posts == []
    assert n.state == "closed"
