"""The Kafka sink under a paused broker and a killed one: nothing lost, per-key order kept.

A steady stream (500 events/s over 20 entities for 30 s: 15,000 events) runs while
the broker is stopped or replaced; an independent librdkafka consumer then reads
the topic and the ids are checked (deduplicated by id, first copy kept).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from agent.events.kafka import KafkaEventSink
from agent.model import Event
from exporters.events import EventDeliveryMetrics
from tests.integration.test_kafka_sink import new_topic, read_async, sink_config
from tests.kafka import TansuBroker, order_problems

pytestmark = pytest.mark.integration

RATE = 500  # events per second
SECONDS = 30
KEYS = 20
OUTAGE = 20.0


class RecordingMetrics(EventDeliveryMetrics):
    """The delivery metrics, remembering the most events the spool held at once."""

    max_spooled = 0

    def spool_state(self, events: int, size_bytes: int) -> None:
        self.max_spooled = max(self.max_spooled, events)
        super().spool_state(events, size_bytes)


async def emit_stream(sink: KafkaEventSink, ids: list[str], count: int) -> None:
    """Emit ``count`` events at RATE per second, in ticks of 10 ms, recording their ids."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    per_tick = RATE // 100
    for i in range(0, count, per_tick):
        for j in range(i, min(i + per_tick, count)):
            event = Event.new(
                type="io.luckygas.pilot.test.chaos",
                source="pilot-agent-tests",
                subject=f"entity-{j % KEYS}",
                data={"seq": j},
                time=time.time(),
            )
            await sink.emit(event)
            ids.append(event.id)
        await asyncio.sleep(max(0.0, start + (i + per_tick) / RATE - loop.time()))


async def run_with_fault(
    broker: TansuBroker,
    topic: str,
    tmp_path: Path,
    fault: Callable[[], None],
    recover: Callable[[], None],
) -> tuple[list[str], int, CollectorRegistry]:
    """Stream events, apply ``fault`` after 3 s and ``recover`` OUTAGE seconds later; wait
    until the sink has delivered everything. Returns the ids, the index at the fault and
    the metrics registry; checks that the outage did fill the spool."""
    broker.create_topic(topic)
    registry = CollectorRegistry()
    metrics = RecordingMetrics(registry)
    ids: list[str] = []
    cfg = sink_config(broker.bootstrap, topic)
    async with KafkaEventSink(cfg, spool_dir=tmp_path / "spool", metrics=metrics) as sink:
        stream = asyncio.create_task(emit_stream(sink, ids, RATE * SECONDS))
        await asyncio.sleep(3)
        fault()
        at_fault = len(ids)
        await asyncio.sleep(OUTAGE)
        recover()
        await stream
        await asyncio.wait_for(sink.flush(), 45)
    assert metrics.max_spooled >= RATE * OUTAGE / 2  # the outage went through the spool
    return ids, at_fault, registry


async def test_paused_broker_loses_nothing_and_keeps_per_key_order(
    kafka_chaos_broker: TansuBroker, tmp_path: Path
) -> None:
    """SIGSTOP the broker for 20 s mid-stream: after SIGCONT every emitted id is read back
    and each key's events are in emit order."""
    broker, topic = kafka_chaos_broker, new_topic()
    ids, _, registry = await run_with_fault(broker, topic, tmp_path, broker.pause, broker.resume)
    got = await read_async(broker.bootstrap, topic, ids, deadline=60)
    missing = set(ids) - {r.id for r in got}
    assert len(ids) == RATE * SECONDS
    assert not missing, f"{len(missing)} of {len(ids)} events missing"
    assert order_problems(got, ids) == []
    assert registry.get_sample_value("agent_events_dropped_total") == 0.0
    assert registry.get_sample_value("agent_events_spooled") == 0.0


async def test_replaced_broker_gets_every_event_from_the_kill_on(
    kafka_chaos_broker: TansuBroker, tmp_path: Path
) -> None:
    """Kill the broker, keep it down 20 s, start a fresh empty one on the same port: every
    event emitted from the kill on arrives there, each key in emit order."""
    broker, topic = kafka_chaos_broker, new_topic()

    def recover() -> None:
        broker.start()
        broker.create_topic(topic)

    ids, at_kill, registry = await run_with_fault(broker, topic, tmp_path, broker.kill, recover)
    after = ids[at_kill:]
    got = await read_async(broker.bootstrap, topic, after, deadline=60)
    missing = set(after) - {r.id for r in got}
    assert not missing, f"{len(missing)} of {len(after)} events missing"
    assert order_problems(got, ids) == []
    assert registry.get_sample_value("agent_events_dropped_total") == 0.0
