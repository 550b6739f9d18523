"""Rules evaluated against a Prometheus-compatible query API instead of the local store.

Like vmalert's datasource: ``rule_datasource.url`` points at Prometheus, Thanos,
Mimir or VictoriaMetrics, and every rule query becomes ``GET /api/v1/query``
with ``query`` and ``time``. The answer is translated into the engine's own
value types, and any failure into :class:`~agent.promql.value.QueryError`, so
the rule engine cannot tell the difference.

The client is synchronous on purpose: the rule engine's ``QueryFunc`` is, and the
rule manager runs remote groups in a worker thread so the event loop never waits.

>>> querier = PrometheusQuerier("http://prometheus:9090")     # doctest: +SKIP
>>> querier.query("up == 0", 1_700_000_000.0)                 # doctest: +SKIP
Vector(samples=[...])
"""

from __future__ import annotations

import threading
from typing import Any

import httpx

from agent.config import RuleDatasourceConfig
from agent.promql.floats import parse_go_float
from agent.promql.value import QueryError, Sample, Vector
from agent.tsdb.base import labels_from


class PrometheusQuerier:
    """Instant queries over HTTP; thread-safe (one client per thread)."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 30.0,
        headers: dict[str, str] | None = None,
        auth: httpx.Auth | None = None,
        verify: Any = True,
    ) -> None:
        self._url = url.rstrip("/") + "/api/v1/query"
        self._timeout = timeout
        self._headers = headers or {}
        self._auth = auth
        self._verify = verify
        self._local = threading.local()
        self._clients: list[httpx.Client] = []
        self._lock = threading.Lock()

    def _client(self) -> httpx.Client:
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = httpx.Client(
                timeout=self._timeout,
                headers=self._headers,
                auth=self._auth,
                verify=self._verify,
                trust_env=False,
            )
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def query(self, expr: str, t: float) -> Vector:
        """Evaluate ``expr`` at Unix time ``t``; a scalar answer becomes a one-sample vector."""
        try:
            resp = self._client().get(self._url, params={"query": expr, "time": f"{t:.3f}"})
        except httpx.HTTPError as exc:
            raise QueryError(f"query to data source failed: {type(exc).__name__}") from exc
        try:
            body = resp.json()
        except ValueError:
            raise QueryError(f"data source answered {resp.status_code} without JSON") from None
        if body.get("status") != "success":
            error_type = body.get("errorType", "execution")
            raise QueryError(f"data source: {body.get('error', 'unknown error')}", error_type)
        return _vector(body.get("data") or {}, round(t * 1000))

    def close(self) -> None:
        with self._lock:
            for client in self._clients:
                client.close()
            self._clients.clear()


def _vector(data: dict[str, Any], t_ms: int) -> Vector:
    kind = data.get("resultType")
    result = data.get("result")
    try:
        if kind == "vector":
            return Vector(
                [
                    Sample(labels_from(item["metric"]), parse_go_float(item["value"][1]), t_ms)
                    for item in result or []
                ]
            )
        if kind == "scalar":
            return Vector([Sample((), parse_go_float(result[1]), t_ms)])  # type: ignore[index]
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise QueryError(f"data source returned a malformed {kind}: {exc!r}") from exc
    raise QueryError(f"data source returned {kind!r}; rules need a vector or scalar")


def querier_from_config(request: RuleDatasourceConfig) -> PrometheusQuerier:
    """Build a querier from the ``rule_datasource`` section."""
    auth: httpx.Auth | None = None
    headers = dict(request.headers)
    if request.basic_auth is not None and request.basic_auth.password is not None:
        auth = httpx.BasicAuth(
            request.basic_auth.username, request.basic_auth.password.get_secret_value()
        )
    if request.bearer_token is not None:
        headers["Authorization"] = f"Bearer {request.bearer_token.get_secret_value()}"
    tls = request.tls_config
    verify: Any = False if tls.insecure_skip_verify else (tls.ca_file or True)
    return PrometheusQuerier(
        request.url, timeout=request.timeout, headers=headers, auth=auth, verify=verify
    )
