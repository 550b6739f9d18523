"""The Kafka sink against a real broker (Tansu), read back with confluent-kafka."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from agent.config.events_kafka import KafkaSinkConfig
from agent.events.kafka import KafkaEventSink
from agent.events.spool import Spool
from agent.model import Event
from exporters.events import EventDeliveryMetrics
from tests.kafka import TansuBroker, order_problems, read_events
from tests.support import free_port

pytestmark = pytest.mark.integration


def sink_config(bootstrap: str, topic: str, **overrides: Any) -> KafkaSinkConfig:
    """Test settings: Tansu rejects InitProducerId, so no idempotence."""
    return KafkaSinkConfig.model_validate(
        {"bootstrap_servers": [bootstrap], "topic": topic, "idempotence": False, **overrides}
    )


def make_events(count: int, keys: int = 5) -> list[Event]:
    return [
        Event.new(
            type=f"io.luckygas.pilot.test.t{i % 3}",
            source="pilot-agent-tests",
            subject=f"entity-{i % keys}",
            data={"seq": i},
            time=1_700_000_000.0 + i,
        )
        for i in range(count)
    ]


def new_topic() -> str:
    return f"events-{uuid.uuid4().hex[:8]}"


async def read_async(bootstrap: str, topic: str, ids: list[str], deadline: float = 30.0) -> Any:
    return await asyncio.to_thread(read_events, bootstrap, topic, ids, deadline)


async def test_events_arrive_with_key_headers_and_cloudevents_json(
    kafka_broker: TansuBroker, tmp_path: Path
) -> None:
    """Each event arrives once with key = subject, ce_type/ce_id/content-type headers and
    the CloudEvents JSON as value; the delivery metrics count them."""
    topic = new_topic()
    kafka_broker.create_topic(topic)
    registry = CollectorRegistry()
    events = make_events(60)
    no_subject = Event.new(type="t.none", source="s", subject=None, data={}, time=0.0)
    cfg = sink_config(kafka_broker.bootstrap, topic)
    async with KafkaEventSink(
        cfg, spool_dir=tmp_path / "spool", metrics=EventDeliveryMetrics(registry)
    ) as sink:
        for event in [*events, no_subject]:
            await sink.emit(event)
        await asyncio.wait_for(sink.flush(), 30)
        assert registry.get_sample_value("agent_events_kafka_up") == 1.0
    got = await read_async(kafka_broker.bootstrap, topic, [e.id for e in [*events, no_subject]])
    by_id = {r.id: r for r in got}
    assert len(got) == 61 and len(by_id) == 61
    for event in events:
        record = by_id[event.id]
        assert record.key == event.subject.encode()  # type: ignore[union-attr]
        assert record.value == json.loads(json.dumps(event.to_dict()))
        assert record.headers["ce_type"] == event.type.encode()
        assert record.headers["ce_id"] == event.id.encode()
        assert record.headers["content-type"].startswith(b"application/cloudevents+json")
    assert by_id[no_subject.id].key is None
    assert order_problems(got, [e.id for e in events]) == []
    assert registry.get_sample_value("agent_events_delivered_total") == 61.0
    assert registry.get_sample_value("agent_event_delivery_latency_seconds_count") == 61.0
    assert registry.get_sample_value("agent_events_spooled") == 0.0


@pytest.mark.parametrize("compression", ["gzip", "lz4", "zstd"])
async def test_compressed_batches_round_trip(
    kafka_broker: TansuBroker, tmp_path: Path, compression: str
) -> None:
    """Batches compressed with gzip, lz4 and zstd are read back intact by librdkafka."""
    topic = new_topic()
    kafka_broker.create_topic(topic)
    events = make_events(300)
    cfg = sink_config(kafka_broker.bootstrap, topic, compression=compression)
    metrics = EventDeliveryMetrics(CollectorRegistry())
    async with KafkaEventSink(cfg, spool_dir=tmp_path / "spool", metrics=metrics) as sink:
        for event in events:
            await sink.emit(event)
        await asyncio.wait_for(sink.flush(), 30)
    got = await read_async(kafka_broker.bootstrap, topic, [e.id for e in events])
    assert {r.id for r in got} == {e.id for e in events}
    assert {r.id: r.value["data"] for r in got} == {e.id: dict(e.data) for e in events}


async def test_start_with_broker_down_does_not_wait_and_spools(tmp_path: Path) -> None:
    """With nothing listening, start returns at once, events go to the spool, and they
    are sent when a broker comes up on that port."""
    port = free_port()
    topic = new_topic()
    registry = CollectorRegistry()
    cfg = sink_config(f"127.0.0.1:{port}", topic)
    sink = KafkaEventSink(cfg, spool_dir=tmp_path / "spool", metrics=EventDeliveryMetrics(registry))
    await asyncio.wait_for(sink.start(), 2)
    broker = TansuBroker(port, tmp_path / "tansu.log")
    try:
        events = make_events(40)
        for event in events:
            await sink.emit(event)
        await asyncio.sleep(0.5)
        assert registry.get_sample_value("agent_events_kafka_up") == 0.0
        assert registry.get_sample_value("agent_events_spooled") == 40.0
        broker.start()
        broker.create_topic(topic)
        await asyncio.wait_for(sink.flush(), 30)
        await sink.aclose()
        got = await read_async(broker.bootstrap, topic, [e.id for e in events])
        assert {r.id for r in got} == {e.id for e in events}
        assert order_problems(got, [e.id for e in events]) == []
        assert registry.get_sample_value("agent_events_spooled") == 0.0
    finally:
        await sink.aclose()
        broker.close()


async def test_shutdown_with_broker_down_spools_and_next_start_sends(tmp_path: Path) -> None:
    """Closing while the broker is down leaves every event in the synced spool; a new
    sink on the same directory sends them all once a broker is up."""
    port = free_port()
    topic = new_topic()
    spool_dir = tmp_path / "spool"
    cfg = sink_config(f"127.0.0.1:{port}", topic)
    events = make_events(500)
    async with KafkaEventSink(
        cfg, spool_dir=spool_dir, metrics=EventDeliveryMetrics(CollectorRegistry())
    ) as sink:
        for event in events:
            await sink.emit(event)
    left = Spool(spool_dir, max_bytes=1 << 28, segment_bytes=1 << 24)
    left.open()
    assert left.pending == 500
    left.close()
    broker = TansuBroker(port, tmp_path / "tansu.log")
    broker.start()
    try:
        broker.create_topic(topic)
        async with KafkaEventSink(
            cfg, spool_dir=spool_dir, metrics=EventDeliveryMetrics(CollectorRegistry())
        ) as second:
            await asyncio.wait_for(second.flush(), 30)
        got = await read_async(broker.bootstrap, topic, [e.id for e in events])
        assert {r.id for r in got} == {e.id for e in events}
        assert order_problems(got, [e.id for e in events]) == []
    finally:
        broker.close()
