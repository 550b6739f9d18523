"""The status page as a real headless Chromium renders it: DOM checked, screenshot kept."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from agent.api.app import create_api
from agent.api.server import ApiServer
from agent.checks.history import CheckHistory
from agent.config import CheckConfig, WebConfig
from agent.model import CheckResult, StepResult
from tests.support import ARTIFACTS, require_binary

pytestmark = pytest.mark.integration

CHROMIUM_TIMEOUT = 60.0
FAILING_REASON = "step checkout: expected status 200, got 503 <Service Unavailable>"


@dataclass
class Agent:
    """One ok http check and one failing flow check, each with a recent history."""

    web: WebConfig = field(default_factory=WebConfig)
    history: CheckHistory = field(default_factory=CheckHistory)
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    configured: list[CheckConfig] = field(default_factory=list)

    def checks(self) -> Sequence[CheckConfig]:
        return self.configured

    def is_ready(self) -> bool:
        return True

    async def reload(self) -> None:
        return None

    def request_shutdown(self) -> None:
        return None


def _agent(now: float) -> Agent:
    agent = Agent()
    agent.configured = [
        CheckConfig.model_validate(c)
        for c in (
            {"name": "api-health", "interval": "15s", "labels": {"service": "api", "env": "pilot"},
             "http": {"url": "https://api.example/health"}},
            {"name": "order-flow", "interval": "30s", "labels": {"service": "shop"},
             "flow": {"steps": [{"name": "login", "url": "https://shop.example/login"},
                                {"name": "checkout", "url": "https://shop.example/checkout"}]}},
        )
    ]  # fmt: skip
    for i in range(30):
        ok = i != 12
        duration = 0.04 + 0.015 * (i % 7) + (1.2 if not ok else 0.0)
        started = now - (30 - i) * 15
        reason = None if ok else "connect timeout after 1.2s"
        code = 200 if ok else None
        agent.history.record(
            CheckResult("api-health", "http", ok, started, duration, reason, status_code=code)
        )
    steps_ok = (StepResult("login", True, 0.08, 200), StepResult("checkout", True, 0.21, 200))
    steps_bad = (
        StepResult("login", True, 0.09, 200),
        StepResult("checkout", False, 0.35, 503, reason="expected status 200, got 503"),
    )
    for i in range(20):
        ok = i < 16
        agent.history.record(
            CheckResult("order-flow", "flow", ok, now - (20 - i) * 30, 0.3 + 0.01 * i,
                        status_code=200 if ok else 503, reason=None if ok else FAILING_REASON,
                        steps=steps_ok if ok else steps_bad)
        )  # fmt: skip
    return agent


async def _chromium(args: list[str], profile: Path) -> bytes:
    """Run headless Chromium; kill its process group if it outlives the timeout."""
    binary = require_binary("chromium")
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--window-size=1280,900",
    ]
    proc = await asyncio.create_subprocess_exec(
        binary,
        *flags,
        *args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), CHROMIUM_TIMEOUT)
    except TimeoutError:
        os.killpg(proc.pid, signal.SIGKILL)
        await proc.communicate()
        raise
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    return out


def _row(dom: str, check: str) -> str:
    match = re.search(rf'<tr [^>]*data-check="{re.escape(check)}"[^>]*>.*?</tr>', dom, re.S)
    assert match is not None, f"no row for {check}"
    return match.group(0)


async def test_status_page_in_headless_chromium(tmp_path: Path) -> None:
    """Chromium shows the ok and the failing check with their states and error; screenshot kept."""
    agent = _agent(time.time())
    web = WebConfig()
    async with ApiServer(create_api(agent), host="127.0.0.1", port=0, web=web) as server:
        url = f"http://127.0.0.1:{server.port}/"
        dom = (await _chromium(["--dump-dom", url], tmp_path / "profile-dom")).decode()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "status-page.png"
        shot.unlink(missing_ok=True)
        await _chromium([f"--screenshot={shot}", url], tmp_path / "profile-shot")
    ok, failing = _row(dom, "api-health"), _row(dom, "order-flow")
    assert 'class="check check--ok"' in ok
    assert '<span class="badge badge--ok">OK</span>' in ok
    assert 'class="check check--failing"' in failing
    assert '<span class="badge badge--failing">FAILING</span>' in failing
    assert "step checkout: expected status 200, got 503 &lt;Service Unavailable&gt;" in failing
    assert 'data-step="checkout"' in failing
    assert "step--failing" in failing
    assert dom.index('data-check="order-flow"') < dom.index('data-check="api-health"')
    assert "1 failing" in dom
    assert "1 ok" in dom
    assert "<svg" in ok
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 10_000
