"""The Prometheus query API over the agent's store: shapes, errors, limits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from fastapi import FastAPI

from agent.api.query import add_query_routes, parse_duration_ms, parse_time
from agent.promql.engine import PromQLEngine
from agent.tsdb.base import labels_from
from agent.tsdb.store import SeriesStore

T0 = 1_700_000_000  # seconds


@dataclass
class Ctx:
    storage: SeriesStore = field(default_factory=SeriesStore)
    engine: PromQLEngine = field(default_factory=PromQLEngine)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    ctx = Ctx()
    for check, service in (("api", "api"), ("ws", "realtime")):
        labels = labels_from({"__name__": "probe_success", "check": check, "service": service})
        for i in range(10):
            ctx.storage.append(labels, (T0 + 15 * i) * 1000, 1.0 if i < 8 or check == "ws" else 0)
    app = FastAPI()
    add_query_routes(app, ctx, clock=lambda: T0 + 150.0)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://agent") as c:
        yield c


async def test_instant_query_returns_a_vector_in_prometheus_shape(
    client: httpx.AsyncClient,
) -> None:
    """/api/v1/query answers resultType vector with [time, "value"] pairs."""
    r = await client.get("/api/v1/query", params={"query": "probe_success", "time": T0 + 140})
    body = r.json()
    assert r.status_code == 200 and body["status"] == "success"
    assert body["data"]["resultType"] == "vector"
    got = {s["metric"]["check"]: s["value"] for s in body["data"]["result"]}
    assert got == {"api": [T0 + 140, "0"], "ws": [T0 + 140, "1"]}


async def test_query_defaults_to_now_and_renders_scalars_and_strings(
    client: httpx.AsyncClient,
) -> None:
    """Without time= the clock is used; scalars and strings have their own shapes."""
    r = await client.get("/api/v1/query", params={"query": "1 / 0"})
    assert r.json()["data"] == {"resultType": "scalar", "result": [T0 + 150, "+Inf"]}
    r = await client.get("/api/v1/query", params={"query": '"hello"'})
    assert r.json()["data"] == {"resultType": "string", "result": [T0 + 150, "hello"]}


async def test_range_query_by_form_post_returns_a_matrix(client: httpx.AsyncClient) -> None:
    """A form-encoded POST, as Grafana sends it, gives a matrix sorted by labels."""
    form = {
        "query": 'probe_success{check="api"}',
        "start": str(T0),
        "end": str(T0 + 135),
        "step": "45s",
    }
    r = await client.post("/api/v1/query_range", data=form)
    data = r.json()["data"]
    assert data["resultType"] == "matrix"
    (series,) = data["result"]
    assert series["metric"] == {"__name__": "probe_success", "check": "api", "service": "api"}
    assert series["values"] == [[T0, "1"], [T0 + 45, "1"], [T0 + 90, "1"], [T0 + 135, "0"]]


@pytest.mark.parametrize(
    ("path", "params", "status", "error_type", "fragment"),
    [
        ("/api/v1/query", {"query": "sum("}, 400, "bad_data", "parse error"),
        ("/api/v1/query", {}, 400, "bad_data", "query"),
        ("/api/v1/query", {"query": "up", "time": "yesterday"}, 400, "bad_data", "timestamp"),
        ("/api/v1/query_range", {"query": "up", "start": "0", "end": "1"}, 400, "bad_data", "step"),
        (
            "/api/v1/query_range",
            {"query": "up", "start": "0", "end": "100000", "step": "1"},
            400,
            "bad_data",
            "11,000 points",
        ),
        (
            "/api/v1/query_range",
            {"query": "up", "start": "10", "end": "0", "step": "1"},
            400,
            "bad_data",
            "end timestamp",
        ),
        ("/api/v1/series", {}, 400, "bad_data", "match[]"),
    ],
)
async def test_errors_use_prometheus_types_and_statuses(
    client: httpx.AsyncClient,
    path: str,
    params: dict[str, str],
    status: int,
    error_type: str,
    fragment: str,
) -> None:
    """Bad input is answered with Prometheus's errorType and HTTP status, never a 500."""
    r = await client.get(path, params=params)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status"] == "error" and body["errorType"] == error_type
    assert fragment in body["error"]


async def test_many_to_many_matching_is_an_execution_error(client: httpx.AsyncClient) -> None:
    """A vector match Prometheus refuses is errorType execution with status 422."""
    r = await client.get(
        "/api/v1/query",
        params={"query": "probe_success + ignoring(check, service) probe_success", "time": T0 + 10},
    )
    assert r.status_code == 422 and r.json()["errorType"] == "execution"


async def test_series_labels_and_label_values(client: httpx.AsyncClient) -> None:
    """Metadata endpoints answer from the store, filtered by match[]."""
    r = await client.get("/api/v1/series", params={"match[]": '{service="api"}'})
    assert r.json()["data"] == [{"__name__": "probe_success", "check": "api", "service": "api"}]
    r = await client.get("/api/v1/labels")
    assert r.json()["data"] == ["__name__", "check", "service"]
    r = await client.get("/api/v1/label/check/values")
    assert r.json()["data"] == ["api", "ws"]
    r = await client.get("/api/v1/label/check/values", params={"match[]": '{service="realtime"}'})
    assert r.json()["data"] == ["ws"]
    r = await client.get("/api/v1/series", params={"match[]": "sum(up)"})
    assert r.status_code == 400


def test_time_and_duration_parsing() -> None:
    """API times accept Unix seconds and RFC 3339; durations accept seconds and 1m30s."""
    assert parse_time("1700000000.5") == 1_700_000_000_500
    assert parse_time("2023-11-14T22:13:20Z") == 1_700_000_000_000
    assert parse_duration_ms("15") == 15_000
    assert parse_duration_ms("1m30s") == 90_000
    assert parse_duration_ms("0.5") == 500
