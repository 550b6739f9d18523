"""The bundled demo configuration: it loads, has every check kind, and fits the simulator."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

import agent.demo
from agent.config import HttpRequest, load_config
from agent.demo.simulator import Simulator, websocket_reply
from agent.errors import ConfigError

DEMO_YML = Path(agent.demo.__file__).with_name("demo.yml")
ENV = {
    "PILOT_DEMO_LISTEN": "127.0.0.1:9799",
    "PILOT_DEMO_SIM": "sim.test:8700",
    "PILOT_DEMO_SIM_TLS": "sim.test:8743",
    "PILOT_DEMO_DIR": "/var/tmp/pilot-demo",
}
EXPECTED_KINDS = {
    "api-health": "http",
    "api-ready": "http",
    "order-flow": "flow",
    "api-tcp": "tcp",
    "websocket": "websocket",
    "api-tls": "tls",
}
_VAR = re.compile(r"\$\{(\w+)\}")


def test_demo_config_loads_with_the_launcher_environment() -> None:
    """demo.yml validates and takes its listen address and events path from the environment."""
    cfg = load_config(DEMO_YML, env=ENV)
    assert cfg.listen == "127.0.0.1:9799"
    assert cfg.web.enable_lifecycle is True
    assert cfg.events.jsonl.path == "/var/tmp/pilot-demo/events.jsonl"


def test_demo_config_has_each_check_kind_every_five_seconds() -> None:
    """Every check kind the demo shows is present, runs every 5 s and carries service/team."""
    cfg = load_config(DEMO_YML, env=ENV)
    assert {c.name: c.kind for c in cfg.checks} == EXPECTED_KINDS
    assert all(c.interval == 5.0 for c in cfg.checks)
    assert all({"service", "team"} <= c.labels.keys() for c in cfg.checks)


def test_demo_config_points_every_check_at_the_simulator() -> None:
    """TCP, WebSocket and TLS checks target the simulator's plain and TLS addresses."""
    checks = {c.name: c for c in load_config(DEMO_YML, env=ENV).checks}
    assert checks["api-tcp"].tcp is not None
    assert checks["api-tcp"].tcp.target == "sim.test:8700"
    ws = checks["websocket"].websocket
    assert ws is not None and ws.url == "ws://sim.test:8700/ws"
    tls = checks["api-tls"].tls
    assert tls is not None and tls.target == "sim.test:8743"
    assert tls.tls_config.insecure_skip_verify is True
    assert tls.min_days_remaining == 7


def test_demo_config_requires_every_launcher_variable() -> None:
    """Without the launcher's variables, loading fails and names each missing one."""
    with pytest.raises(ConfigError) as exc:
        load_config(DEMO_YML, env={})
    text = str(exc.value)
    for name in ENV:
        assert name in text


def test_order_flow_passes_the_token_and_order_id_between_steps() -> None:
    """The flow logs in, captures the token and order id, and sends the token on later steps."""
    flow = next(c for c in load_config(DEMO_YML, env=ENV).checks if c.name == "order-flow").flow
    assert flow is not None
    steps = {s.name: s for s in flow.steps}
    assert list(steps) == ["login", "create-order", "get-order", "cancel-order"]
    assert steps["login"].capture["token"].json_ == "$.access_token"
    assert steps["create-order"].capture["order_id"].json_ == "$.id"
    for name in ("create-order", "get-order", "cancel-order"):
        assert steps[name].headers["Authorization"] == "Bearer ${token}"
    assert steps["cancel-order"].url.endswith("/api/v1/orders/${order_id}/cancel")


def _json_path(document: Any, path: str) -> Any:
    """Follow a dotted JSONPath such as ``$.a.b``; enough for the demo's expectations."""
    for key in path.removeprefix("$").split(".")[1:]:
        document = document[key]
    return document


async def _replay(
    client: httpx.AsyncClient, step: HttpRequest, variables: dict[str, str]
) -> httpx.Response:
    """Send one configured request, filling ``${name}`` from earlier captures."""

    def fill(text: str) -> str:
        return _VAR.sub(lambda m: variables[m.group(1)], text)

    headers = {k: fill(v) for k, v in step.headers.items()}
    body = fill(step.body) if step.body is not None else None
    response = await client.request(step.method, fill(step.url), headers=headers, content=body)
    expected = step.expect.status or list(range(200, 300))
    assert response.status_code in expected, (step.url, response.text)
    for path, value in step.expect.json_.items():
        assert _json_path(response.json(), path) == value
    return response


async def test_demo_checks_pass_against_a_healthy_simulator() -> None:
    """Replayed against the simulator, the HTTP, flow and WebSocket checks meet expectations."""
    checks = {c.name: c for c in load_config(DEMO_YML, env=ENV).checks}
    transport = httpx.ASGITransport(app=Simulator().app)
    async with httpx.AsyncClient(transport=transport) as client:
        for name in ("api-health", "api-ready"):
            http = checks[name].http
            assert http is not None
            await _replay(client, http, {})
        flow = checks["order-flow"].flow
        assert flow is not None
        variables: dict[str, str] = {}
        for step in flow.steps:
            response = await _replay(client, step, variables)
            for var, capture in step.capture.items():
                assert capture.json_ is not None
                variables[var] = str(_json_path(response.json(), capture.json_))
    assert set(variables) == {"token", "order_id"}
    ws = checks["websocket"].websocket
    assert ws is not None and ws.send is not None and ws.expect is not None
    assert re.search(ws.expect, websocket_reply(ws.send))
