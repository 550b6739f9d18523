"""The HTTP API, driven in-process through httpx's ASGI transport against a fake agent."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import bcrypt
import httpx
import pytest
import structlog
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from agent.api.app import create_api
from agent.api.auth import BasicAuthenticator, parse_basic
from agent.api.status_page import render_status_page
from agent.checks.history import CheckHistory
from agent.config import CheckConfig, WebConfig
from agent.errors import ConfigError, ConfigProblem
from agent.model import CheckResult, StepResult
from agent.promql.engine import PromQLEngine
from agent.tsdb.store import SeriesStore
from exporters.agent import AgentMetrics
from exporters.probe import ProbeCollector

NOW = 1_700_000_100.0
PASSWORD = "correct horse battery staple"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()


def _check(name: str, kind: str = "http", **labels: str) -> CheckConfig:
    spec: dict[str, Any] = (
        {"url": "http://shop.example/"}
        if kind == "http"
        else {"steps": [{"name": "login", "url": "http://shop.example/login"}]}
    )
    return CheckConfig.model_validate(
        {"name": name, "interval": "10s", "timeout": "2s", "labels": labels, kind: spec}
    )


@dataclass
class FakeAgent:
    """The running agent as the API sees it; ``reload`` installs ``next_checks``."""

    web: WebConfig = field(default_factory=WebConfig)
    history: CheckHistory = field(default_factory=CheckHistory)
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    storage: SeriesStore = field(default_factory=SeriesStore)
    engine: PromQLEngine = field(default_factory=PromQLEngine)
    configured: list[CheckConfig] = field(default_factory=list)
    next_checks: list[CheckConfig] = field(default_factory=list)
    reload_error: ConfigError | None = None
    ready: bool = True
    reloads: int = 0
    shutdown_requested: bool = False

    def checks(self) -> Sequence[CheckConfig]:
        return self.configured

    def is_ready(self) -> bool:
        return self.ready

    async def reload(self) -> None:
        self.reloads += 1
        if self.reload_error is not None:
            raise self.reload_error
        self.configured = self.next_checks

    def request_shutdown(self) -> None:
        self.shutdown_requested = True


def _fill(agent: FakeAgent) -> None:
    """Three checks: api ok (after an earlier failure), order failing at a step, new unknown."""
    agent.configured = [
        _check("api", service="api"),
        _check("order", "flow", service="shop"),
        _check("new"),
    ]
    agent.history.record(CheckResult("api", "http", False, NOW - 60, 2.0, reason="timeout"))
    agent.history.record(CheckResult("api", "http", True, NOW - 5, 0.042, status_code=200))
    steps = (
        StepResult("login", True, 0.05, 200),
        StepResult("pay", False, 0.2, 502, reason="status 502 <b>bad gateway</b>"),
    )
    agent.history.record(
        CheckResult(
            "order", "flow", False, NOW - 3, 0.25, reason="step pay: <script>x</script>",
            status_code=502, steps=steps,
        )
    )  # fmt: skip
    AgentMetrics(agent.registry, version="0.1.0")
    ProbeCollector(agent.history, agent.checks, registry=agent.registry)


Client = Callable[[FakeAgent], httpx.AsyncClient]


@pytest.fixture
async def client_for() -> AsyncIterator[Client]:
    clients: list[httpx.AsyncClient] = []

    def make(agent: FakeAgent) -> httpx.AsyncClient:
        app = create_api(agent, clock=lambda: NOW)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a")
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


async def test_health_and_readiness(client_for: Client) -> None:
    """/-/healthy always answers 200; /-/ready answers 200 or 503 as the agent says."""
    agent = FakeAgent()
    client = client_for(agent)
    r = await client.get("/-/healthy")
    assert (r.status_code, r.text) == (200, "pilot-agent is Healthy.\n")
    assert (await client.head("/-/healthy")).status_code == 200
    r = await client.get("/-/ready")
    assert (r.status_code, r.text) == (200, "pilot-agent is Ready.\n")
    agent.ready = False
    r = await client.get("/-/ready")
    assert (r.status_code, r.text) == (503, "Service Unavailable")


async def test_metrics_negotiates_text_and_openmetrics(client_for: Client) -> None:
    """/metrics answers the text format by default and OpenMetrics when asked for."""
    agent = FakeAgent()
    _fill(agent)
    client = client_for(agent)
    r = await client.get("/metrics")
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert 'probe_success{check="api",service="api"} 1.0' in r.text
    assert "agent_build_info" in r.text
    r = await client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert r.headers["content-type"].startswith("application/openmetrics-text")
    assert r.text.endswith("# EOF\n")
    assert "probe_step_success" in r.text


@pytest.mark.parametrize("method", ["POST", "PUT"])
@pytest.mark.parametrize("path", ["/-/reload", "/-/quit"])
async def test_lifecycle_disabled_answers_403(client_for: Client, method: str, path: str) -> None:
    """Without enable_lifecycle, reload and quit answer 403 as Prometheus does, doing nothing."""
    agent = FakeAgent()
    r = await client_for(agent).request(method, path)
    assert (r.status_code, r.text) == (403, "Lifecycle API is not enabled.")
    assert agent.reloads == 0
    assert not agent.shutdown_requested


async def test_lifecycle_enabled_reloads_and_quits(client_for: Client) -> None:
    """With enable_lifecycle, POST and PUT reload the config and quit requests shutdown."""
    agent = FakeAgent(web=WebConfig(enable_lifecycle=True), next_checks=[_check("fresh")])
    client = client_for(agent)
    assert (await client.post("/-/reload")).status_code == 200
    assert (await client.put("/-/reload")).status_code == 200
    assert agent.reloads == 2
    data = (await client.get("/api/v1/checks")).json()["data"]
    assert [c["name"] for c in data] == ["fresh"]
    r = await client.post("/-/quit")
    assert r.status_code == 200
    assert agent.shutdown_requested
    r = await client.get("/-/quit")
    assert (r.status_code, r.headers["allow"]) == (405, "POST, PUT")


async def test_bad_reload_lists_problems_and_keeps_config(client_for: Client) -> None:
    """A rejected file answers 500 with one problem per line and the running checks stay."""
    problems = [
        ConfigProblem("agent.yml", "checks[0].interval", 4, "not a valid duration 'soon'"),
        ConfigProblem("agent.yml", "checks[1].http.url", 9, "url must be absolute"),
    ]
    agent = FakeAgent(
        web=WebConfig(enable_lifecycle=True),
        configured=[_check("api")],
        next_checks=[_check("other")],
        reload_error=ConfigError(problems),
    )
    client = client_for(agent)
    r = await client.post("/-/reload")
    assert r.status_code == 500
    lines = r.text.splitlines()
    assert lines[1:] == [str(p) for p in problems]
    assert lines[1] == "agent.yml:4: checks[0].interval: not a valid duration 'soon'"
    data = (await client.get("/api/v1/checks")).json()["data"]
    assert [c["name"] for c in data] == ["api"]


async def test_checks_api_shape(client_for: Client) -> None:
    """/api/v1/checks lists every configured check with state, last run, failure and steps."""
    agent = FakeAgent()
    _fill(agent)
    body = (await client_for(agent).get("/api/v1/checks")).json()
    assert body["status"] == "success"
    api, order, new = body["data"]
    assert api == {
        "name": "api",
        "kind": "http",
        "labels": {"service": "api"},
        "interval_seconds": 10.0,
        "timeout_seconds": 2.0,
        "state": "ok",
        "last_run": "2023-11-14T22:14:55.000Z",
        "duration_seconds": 0.042,
        "status_code": 200,
        "reason": None,
        "last_failure_reason": "timeout",
        "last_failure_time": "2023-11-14T22:14:00.000Z",
        "consecutive_failures": 0,
        "steps": [],
    }
    assert order["state"] == "failing"
    assert order["consecutive_failures"] == 1
    assert order["steps"][1] == {
        "name": "pay",
        "success": False,
        "duration_seconds": 0.2,
        "status_code": 502,
        "reason": "status 502 <b>bad gateway</b>",
    }
    assert new["state"] == "unknown"
    assert new["last_run"] is None
    assert new["steps"] == []


async def test_status_page_renders_and_escapes(client_for: Client) -> None:
    """The page shows each check's state, steps, errors escaped, sparkline and a 5 s refresh."""
    agent = FakeAgent()
    _fill(agent)
    r = await client_for(agent).get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    page = r.text
    assert '<meta http-equiv="refresh" content="5">' in page
    assert 'data-check="order" data-state="failing"' in page
    assert 'data-check="api" data-state="ok"' in page
    assert 'data-check="new" data-state="unknown"' in page
    assert page.index('data-check="order"') < page.index('data-check="api"')
    assert "step pay: &lt;script&gt;x&lt;/script&gt;" in page
    assert "<script" not in page
    assert "&lt;b&gt;bad gateway&lt;/b&gt;" in page
    assert 'class="step step--failing" data-step="pay"' in page
    assert '<circle class="fail"' in page
    assert '<span class="count count--failing">1 failing</span>' in page


def test_status_page_marks_stale_and_past_failures() -> None:
    """A result older than three intervals is flagged; an ok check shows its last failure."""
    history = CheckHistory()
    history.record(CheckResult("api", "http", False, NOW - 120, 1.0, reason="timeout"))
    history.record(CheckResult("api", "http", True, NOW - 100, 0.5))
    page = render_status_page([_check("api")], history, now=NOW)
    assert 'class="last-run stale"' in page
    assert "2m ago: timeout" in page
    assert "No checks configured." in render_status_page([], history, now=NOW)


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture
def secured() -> FakeAgent:
    agent = FakeAgent(
        web=WebConfig(basic_auth_users={"ops": SecretStr(HASH)}, enable_lifecycle=True)
    )
    _fill(agent)
    return agent


PATHS = ["/", "/metrics", "/-/healthy", "/-/ready", "/api/v1/checks", "/nope"]


@pytest.mark.parametrize("path", PATHS)
async def test_basic_auth_required_everywhere(
    client_for: Client, secured: FakeAgent, path: str
) -> None:
    """With users configured, every path answers 401 with a Basic challenge when unauthenticated."""
    r = await client_for(secured).get(path)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Basic"
    assert HASH not in r.text


async def test_basic_auth_accepts_and_rejects(client_for: Client, secured: FakeAgent) -> None:
    """The right password is let in; a wrong one, an unknown user or a bad header are not."""
    client = client_for(secured)
    r = await client.get("/api/v1/checks", headers=_basic("ops", PASSWORD))
    assert r.status_code == 200
    assert HASH not in r.text
    assert (await client.post("/-/reload", headers=_basic("ops", "nope"))).status_code == 401
    assert secured.reloads == 0
    assert (await client.get("/", headers=_basic("root", PASSWORD))).status_code == 401
    assert (await client.get("/", headers={"Authorization": "Basic %%%"})).status_code == 401
    assert (await client.get("/", headers={"Authorization": "Bearer x"})).status_code == 401
    with structlog.testing.capture_logs() as logs:
        await client.get("/metrics", headers=_basic("ops", "hunter2"))
    assert logs
    assert "hunter2" not in repr(logs)
    assert HASH not in repr(logs)


async def test_successful_checks_are_cached_but_wrong_passwords_never_are(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """bcrypt runs once for a repeated good password, and on every try of a wrong one."""
    calls: list[bytes] = []
    real = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        calls.append(password)
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting)
    users = {"ops": SecretStr(HASH)}
    authenticator = BasicAuthenticator()
    assert await authenticator.verify(users, "ops", PASSWORD)
    assert await authenticator.verify(users, "ops", PASSWORD)
    assert len(calls) == 1
    assert not await authenticator.verify(users, "ops", "wrong")
    assert not await authenticator.verify(users, "ops", "wrong")
    assert not await authenticator.verify(users, "ghost", PASSWORD)
    assert len(calls) == 4
    other = {"ops": SecretStr(bcrypt.hashpw(b"rotated", bcrypt.gensalt(4)).decode())}
    assert not await authenticator.verify(other, "ops", PASSWORD)


def test_parse_basic_header() -> None:
    """Only a well-formed Basic header with a colon yields credentials."""
    assert parse_basic([(b"Authorization", b"basic b3BzOnA6dw==")]) == ("ops", "p:w")
    assert parse_basic([(b"authorization", b"Basic bm9jb2xvbg==")]) is None
    assert parse_basic([]) is None
