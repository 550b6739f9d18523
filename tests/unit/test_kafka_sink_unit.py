"""KafkaEventSink's delivery logic against a fake producer: overflow, failure, close."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError
from prometheus_client import CollectorRegistry

from agent.config.events_kafka import KafkaSinkConfig
from agent.errors import ComponentStateError, SinkError
from agent.events.kafka import KafkaEventSink
from agent.events.outbound import OutboundEvent
from agent.events.spool import Spool
from agent.model import Event
from exporters.events import EventDeliveryMetrics


class FakeBroker:
    """What the fake producers talk to: it can be down, hold acks, or fail sends."""

    def __init__(self) -> None:
        self.down = False
        self.hold = False
        self.fail_sends = False
        self.log: list[str] = []  # ids in the order they were acknowledged
        self.held: list[tuple[asyncio.Future[None], str]] = []
        self.producers: list[FakeProducer] = []

    def producer(self) -> FakeProducer:
        p = FakeProducer(self)
        self.producers.append(p)
        return p

    def release(self) -> None:
        for fut, event_id in self.held:
            if not fut.done():
                self.log.append(event_id)
                fut.set_result(None)
        self.held.clear()


class FakeProducer:
    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker
        self.stopped = False

    async def start(self) -> None:
        if self.broker.down:
            raise KafkaConnectionError("down")

    async def partitions_for(self, topic: str) -> set[int]:
        return {0}

    async def send(
        self, topic: str, value: bytes, key: bytes | None, headers: Any
    ) -> asyncio.Future[None]:
        if len(value) > 10_000:
            raise MessageSizeTooLargeError()
        event_id = json.loads(value)["id"]
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.broker.fail_sends:
            fut.set_exception(KafkaConnectionError("reset"))
        elif self.broker.hold:
            self.broker.held.append((fut, event_id))
        else:
            self.broker.log.append(event_id)
            fut.set_result(None)
        return fut

    async def stop(self) -> None:
        self.stopped = True


def event(i: int, size: int = 0) -> Event:
    data = {"seq": i, "pad": "x" * size}
    return Event.new(type="t", source="s", subject=f"k{i % 3}", data=data, time=0.0)


def make_sink(
    broker: FakeBroker, tmp_path: Path, registry: CollectorRegistry, **cfg: Any
) -> KafkaEventSink:
    config = KafkaSinkConfig.model_validate({"delivery_timeout": "1s", **cfg})
    return KafkaEventSink(
        config,
        spool_dir=tmp_path / "spool",
        metrics=EventDeliveryMetrics(registry),
        producer_factory=broker.producer,
        backoff=(0.01, 0.05),
    )


def first_copies(log: list[str]) -> list[str]:
    seen: set[str] = set()
    return [i for i in log if not (i in seen or seen.add(i))]  # type: ignore[func-returns-value]


async def test_full_buffer_overflows_to_the_spool_in_order(tmp_path: Path) -> None:
    """When acks stall and the buffer fills, in-flight and buffered events spill to disk
    and are later delivered; the first copy of each id is in emit order."""
    broker, registry = FakeBroker(), CollectorRegistry()
    broker.hold = True
    events = [event(i) for i in range(50)]
    async with make_sink(broker, tmp_path, registry, buffer_events=10) as sink:
        await sink.emit(events[0])
        await asyncio.sleep(0.05)  # the first event is now in flight, unacknowledged
        for e in events[1:]:
            await sink.emit(e)
        # every 11th emit spills what is in flight and buffered: 4 spills, 5 left in memory
        assert registry.get_sample_value("agent_events_spooled") == 45.0
        broker.hold = False
        broker.release()
        await asyncio.wait_for(sink.flush(), 10)
    assert first_copies(broker.log) == [e.id for e in events]
    assert registry.get_sample_value("agent_events_dropped_total") == 0.0


async def test_failed_batch_is_spooled_and_replayed_by_a_new_producer(tmp_path: Path) -> None:
    """A send that fails puts the batch in the spool, the producer is replaced and stopped,
    and the replay delivers everything in order."""
    broker, registry = FakeBroker(), CollectorRegistry()
    events = [event(i) for i in range(30)]
    async with make_sink(broker, tmp_path, registry) as sink:
        await sink.emit(events[0])
        await asyncio.wait_for(sink.flush(), 5)
        broker.fail_sends, broker.down = True, True
        for e in events[1:20]:
            await sink.emit(e)
        await asyncio.sleep(0.2)
        assert registry.get_sample_value("agent_events_kafka_up") == 0.0
        broker.fail_sends, broker.down = False, False
        for e in events[20:]:
            await sink.emit(e)
        await asyncio.wait_for(sink.flush(), 5)
        assert registry.get_sample_value("agent_events_kafka_up") == 1.0
    assert first_copies(broker.log) == [e.id for e in events]
    assert all(p.stopped for p in broker.producers)
    assert len(broker.producers) > 2


async def test_event_too_large_is_dropped_and_counted_not_retried(tmp_path: Path) -> None:
    """An event the producer can never send is dropped (counted); the rest go on."""
    broker, registry = FakeBroker(), CollectorRegistry()
    events = [event(0), event(1, size=20_000), event(2)]
    async with make_sink(broker, tmp_path, registry) as sink:
        for e in events:
            await sink.emit(e)
        await asyncio.wait_for(sink.flush(), 5)
    assert broker.log == [events[0].id, events[2].id]
    assert registry.get_sample_value("agent_events_dropped_total") == 1.0


async def test_close_spools_what_is_held_and_refuses_new_events(tmp_path: Path) -> None:
    """Closing with acks outstanding spools them; a second close is a no-op; emit after
    close raises; a new sink on the directory delivers them."""
    broker, registry = FakeBroker(), CollectorRegistry()
    broker.hold = True
    sink = make_sink(broker, tmp_path, registry, buffer_events=1000)
    await sink.start()
    events = [event(i) for i in range(5)]
    for e in events:
        await sink.emit(e)
    await sink.aclose()
    await sink.aclose()
    with pytest.raises(ComponentStateError):
        await sink.emit(event(9))
    assert registry.get_sample_value("agent_events_spooled") == 5.0
    broker.hold = False
    async with make_sink(broker, tmp_path, CollectorRegistry()) as again:
        await asyncio.wait_for(again.flush(), 5)
    assert first_copies(broker.log) == [e.id for e in events]


async def test_unreadable_spool_record_is_dropped_and_the_rest_delivered(tmp_path: Path) -> None:
    """A spool record that is not an encoded event is counted as dropped, not retried,
    and the records around it are delivered."""
    events = [event(0), event(1)]
    spool = Spool(tmp_path / "spool", max_bytes=1 << 20, segment_bytes=1 << 16)
    spool.open()
    spool.append([OutboundEvent.from_event(events[0], 0.0).encode(), b"garbage"])
    spool.append([OutboundEvent.from_event(events[1], 0.0).encode()])
    spool.close()
    broker, registry = FakeBroker(), CollectorRegistry()
    async with make_sink(broker, tmp_path, registry) as sink:
        await asyncio.wait_for(sink.flush(), 5)
    assert broker.log == [e.id for e in events]
    assert registry.get_sample_value("agent_events_dropped_total") == 1.0


async def test_unexpected_error_does_not_stop_delivery(tmp_path: Path) -> None:
    """A producer that cannot even be built (say, a bad TLS file) is logged and retried;
    events wait in the spool and go out once it works."""
    broker, registry = FakeBroker(), CollectorRegistry()
    attempts: list[int] = []

    def factory() -> FakeProducer:
        attempts.append(1)
        if len(attempts) < 3:
            raise SinkError("cannot load ca_file")
        return broker.producer()

    config = KafkaSinkConfig.model_validate({"delivery_timeout": "1s"})
    sink = KafkaEventSink(
        config,
        spool_dir=tmp_path / "spool",
        metrics=EventDeliveryMetrics(registry),
        producer_factory=factory,
        backoff=(0.01, 0.05),
    )
    async with sink:
        await sink.emit(event(0))
        await asyncio.wait_for(sink.flush(), 5)
    assert len(broker.log) == 1 and len(attempts) == 3
