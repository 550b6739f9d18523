"""Rule queries answered by a real Prometheus 2.42 through the remote data source."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from agent.config import RuleDatasourceConfig
from agent.datasource.prometheus import querier_from_config
from agent.promql.value import QueryError
from tests.prometheus import run_prometheus

pytestmark = pytest.mark.integration

SELF_SCRAPE = """
global: {scrape_interval: 1s}
scrape_configs:
  - job_name: prometheus
    static_configs: [{targets: ["127.0.0.1:%d"]}]
"""


async def test_remote_queries_become_vectors_and_errors_become_query_errors(
    tmp_path: Path,
) -> None:
    """Vector, scalar and bad queries through Prometheus's API map onto the engine's types."""
    async with run_prometheus(tmp_path, lambda port: SELF_SCRAPE % port) as client:
        querier = querier_from_config(RuleDatasourceConfig(url=str(client.base_url)))
        try:
            deadline = time.monotonic() + 20
            samples = []
            while time.monotonic() < deadline and not samples:
                result = await asyncio.to_thread(querier.query, "up == 1", time.time())
                samples = list(result.samples)
                await asyncio.sleep(0.3)
            assert samples, "Prometheus never reported its own up == 1"
            labels = dict(samples[0].labels)
            assert labels["job"] == "prometheus" and samples[0].value == 1.0
            now = time.time()
            scalar = await asyncio.to_thread(querier.query, "1 + 1", now)
            assert [(s.labels, s.value, s.timestamp) for s in scalar.samples] == [
                ((), 2.0, round(now * 1000))
            ]
            with pytest.raises(QueryError) as info:
                await asyncio.to_thread(querier.query, "sum(", now)
            assert info.value.error_type == "bad_data"
        finally:
            querier.close()


def test_unreachable_data_source_is_a_query_error() -> None:
    """A data source that refuses connections fails the query, not the agent."""
    querier = querier_from_config(RuleDatasourceConfig(url="http://127.0.0.1:9", timeout=2.0))
    try:
        with pytest.raises(QueryError, match="query to data source failed"):
            querier.query("up", time.time())
    finally:
        querier.close()


async def test_rules_evaluate_against_prometheus_and_record_locally(tmp_path: Path) -> None:
    """With rule_datasource, alerts fire on Prometheus's data and recording rules land locally."""
    from agent.promql.engine import PromQLEngine
    from agent.rules.manager import RuleManager
    from agent.rules.model import AlertingRule, AlertState, OutgoingAlert, RecordingRule, RuleGroup
    from agent.tsdb.store import SeriesStore
    from agent.tsdb.threadsafe import LoopAppender

    async with run_prometheus(tmp_path, lambda port: SELF_SCRAPE % port) as client:
        querier = querier_from_config(RuleDatasourceConfig(url=str(client.base_url)))
        store = SeriesStore()
        sent: list[OutgoingAlert] = []
        group = RuleGroup(
            "remote",
            "remote.yml",
            [
                RecordingRule("job:up:sum", 'sum by (job) (up{job="prometheus"})'),
                AlertingRule("PrometheusUp", 'up{job="prometheus"} == 1'),
            ],
        )
        manager = RuleManager(
            query=querier.query,
            appender=LoopAppender(store, asyncio.get_running_loop()),
            notify=sent.extend,
            clock=time.time,
            default_interval=3600.0,
            offload=True,
        )
        try:
            async with manager:
                manager.update([group])
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline and not sent:
                    await manager.evaluate_all(time.time())
                    await asyncio.sleep(0.5)
                (ev,) = manager.evaluators()
                assert [a.state for _, a in ev.active_alerts()] == [AlertState.FIRING]
                assert dict(sent[0].labels)["alertname"] == "PrometheusUp"
                await asyncio.sleep(0.05)  # the loop applies the recorded samples
                result = PromQLEngine().instant(store, "job:up:sum", round(time.time() * 1000))
                assert [s.value for s in result.value.samples] == [1.0]  # type: ignore[union-attr]
        finally:
            querier.close()
