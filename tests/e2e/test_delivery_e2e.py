"""Delivery end to end: a simulator outage reaches on-call through Alertmanager and Kafka.

The real ``pilot-agent`` process checks the simulator, evaluates an alerting rule,
posts to a real Alertmanager 0.25 (whose webhook receiver this test records) and
emits events to a real Kafka-protocol broker (Tansu), read back by librdkafka
(confluent-kafka), a consumer no code of ours wrote.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.alertmanager import WebhookRecorder, run_alertmanager, webhook_config
from tests.conftest import SimulatorProcess
from tests.e2e.harness import AgentProcess, agent_config, read_events
from tests.events_schema import validate_event
from tests.kafka import TansuBroker
from tests.kafka import read_events as read_kafka
from tests.support import free_port

pytestmark = pytest.mark.e2e

RULES = """groups:
  - name: delivery
    rules:
      - alert: ApiHealthDown
        expr: probe_success{check="api-health"} == 0
        for: 2s
        labels: {severity: critical}
        annotations:
          summary: "api-health fails: {{ $labels.check }}"
"""


async def _wait(agent: AgentProcess, pred: Callable[[], bool], within: float, what: str) -> None:
    async with asyncio.timeout(within):
        while not pred():
            if agent.proc.poll() is not None:
                raise AssertionError(f"agent exited while waiting for {what}: {agent.stderr}")
            await asyncio.sleep(0.2)


async def test_outage_reaches_alertmanager_webhook_and_kafka(
    sim: SimulatorProcess,
    kafka_broker: TansuBroker,
    agent_factory: Callable[[str], AgentProcess],
    tmp_path: Path,
) -> None:
    """Outage → firing alert at the webhook and alert/check events in Kafka; recovery → resolved."""
    topic = "pilot.events.e2e"
    kafka_broker.create_topic(topic)
    (tmp_path / "delivery.rules.yml").write_text(RULES)
    events = tmp_path / "events.jsonl"
    async with (
        WebhookRecorder() as hook,
        run_alertmanager(tmp_path, webhook_config(hook.url)) as (am_url, _),
    ):
        config = agent_config(sim, free_port(), events).replace(
            "global:\n",
            f"""rule_files: [delivery.rules.yml]
alerting:
  alertmanagers:
    - static_configs: [{{targets: ["{am_url.removeprefix("http://")}"]}}]
global:
  evaluation_interval: 1s
""",
        )
        config = config.replace(
            "  jsonl: {",
            f"  kafka:\n    bootstrap_servers: [{kafka_broker.bootstrap}]\n"
            f"    topic: {topic}\n    idempotence: false\n"
            f"    spool: {{directory: {tmp_path / 'spool'}}}\n  jsonl: {{",
        )
        agent = agent_factory(config)
        await _wait(agent, lambda: agent.probe().get("api-health") == 1.0, 30, "api-health up")

        sim.set_faults(outage=True)
        firing = await hook.wait_for(
            lambda a: a.has_alert("firing", alertname="ApiHealthDown", env="e2e"), within=30
        )
        alert = next(a for a in firing.alerts if a["labels"]["alertname"] == "ApiHealthDown")
        assert alert["annotations"]["summary"] == "api-health fails: api-health"
        assert alert["generatorURL"].startswith(agent.url)

        sim.clear_faults()
        await hook.wait_for(lambda a: a.has_alert("resolved", alertname="ApiHealthDown"), within=30)
        await _wait(
            agent,
            lambda: any(e["type"].endswith("alert.resolved") for e in read_events(events)),
            15,
            "the resolved event in the log",
        )

    # Every event the agent logged reaches Kafka, valid, keyed by its subject.
    logged = read_events(events)
    ids = [str(e["id"]) for e in logged]
    records = await asyncio.to_thread(read_kafka, kafka_broker.bootstrap, topic, ids, 30.0)
    by_id = {r.id: r for r in records}
    assert set(ids) <= by_id.keys(), f"missing in Kafka: {set(ids) - by_id.keys()}"
    for event in logged:
        record = by_id[str(event["id"])]
        assert record.value == event
        assert record.key == str(event["subject"]).encode()
        assert record.headers["ce_type"] == str(event["type"]).encode()
        assert validate_event(record.value) == []
    types = [str(e["type"]) for e in logged]
    for wanted in (
        "io.luckygas.pilot.check.failed",
        "io.luckygas.pilot.alert.firing",
        "io.luckygas.pilot.alert.resolved",
    ):
        assert wanted in types
    alert_events = [e for e in logged if str(e["type"]).startswith("io.luckygas.pilot.alert.")]
    assert {str(e["subject"]) for e in alert_events} == {alert["fingerprint"]}
