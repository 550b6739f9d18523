"""Delivery of events to Kafka that survives a slow, stopped or restarted broker.

``emit`` never waits for the broker: it appends to a bounded in-memory buffer and
returns. One delivery task owns everything after that and keeps per-key order:

* **direct**: the buffer is sent in batches (``send()`` futures, then one wait for
  all acks, bounded by ``delivery_timeout``);
* **spooling**: when a batch fails or times out, that batch and everything behind
  it go to the disk :class:`~agent.events.spool.Spool` in order; new events follow
  them there (never overtaking), the producer is replaced, and once connected again
  the spool is replayed in order, committing its cursor after each acknowledged
  batch, before sends go direct again.

A full buffer overflows into the spool (with whatever was in flight), so memory
stays bounded. At start the broker may be down: the sink starts at once and
connects in the background, spooling meanwhile. ``aclose`` waits up to
``close_timeout`` for a connected sink to drain, then spools what is left (synced),
so the next start sends it. Delivery is at least once: consumers dedupe by ``id``.

>>> sink = KafkaEventSink(cfg, spool_dir=Path("spool"), metrics=metrics)  # doctest: +SKIP
>>> async with sink:                                                      # doctest: +SKIP
...     await sink.emit(event)
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import structlog
from aiokafka.errors import KafkaError, MessageSizeTooLargeError

from agent.config.events_kafka import KafkaSinkConfig
from agent.errors import ComponentStateError, SinkError
from agent.events.kafka_client import new_producer
from agent.events.outbound import OutboundEvent
from agent.events.spool import Spool
from agent.lifecycle import Component
from agent.model import Event
from agent.tasks import PeriodicTask

log = structlog.get_logger(__name__)


class DeliveryMetrics(Protocol):
    def delivered(self, latencies: Sequence[float]) -> None: ...

    def dropped(self, count: int) -> None: ...

    def spool_state(self, events: int, size_bytes: int) -> None: ...

    def kafka_up(self, up: bool) -> None: ...


class DeliveryFailed(Exception):
    """A batch was not acknowledged in time (internal to the delivery task)."""


def _retrieve(fut: asyncio.Future[Any]) -> None:
    """Mark a send future's exception as seen: the batch is handled by the spool."""
    if not fut.cancelled():
        fut.exception()


class KafkaEventSink(Component):
    """An :class:`~agent.events.base.EventSink` producing to Kafka; see the module docstring."""

    name = "kafka_event_sink"

    def __init__(
        self,
        config: KafkaSinkConfig,
        *,
        spool_dir: Path,
        metrics: DeliveryMetrics,
        clock: Callable[[], float] = time.time,
        producer_factory: Callable[[], Any] | None = None,
        batch_events: int = 2000,
        close_timeout: float = 2.0,
        backoff: tuple[float, float] = (0.1, 5.0),
    ) -> None:
        self._cfg = config
        spool = config.spool
        self._spool = Spool(
            spool_dir,
            max_bytes=spool.max_bytes,
            segment_bytes=spool.segment_bytes,
            fsync_always=spool.fsync_interval == 0,
        )
        self._metrics = metrics
        self._clock = clock
        self._factory = producer_factory or (lambda: new_producer(config))
        self._batch_events = batch_events
        self._close_timeout = close_timeout
        self._backoff = backoff
        self._buffer: deque[OutboundEvent] = deque()
        self._inflight: list[OutboundEvent] | None = None
        self._direct = False
        self._up = False
        self._producer: Any = None
        self._retiring: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._fsync: PeriodicTask | None = None
        self._wakeup = asyncio.Event()
        self._progress = asyncio.Event()

    # ------------------------------------------------------------------ intake
    async def emit(self, event: Event) -> None:
        """Queue ``event``; never waits for the broker (a full buffer overflows to disk)."""
        if self._state != "running":
            raise ComponentStateError(f"Kafka sink is {self._state}")
        out = OutboundEvent.from_event(event, self._clock())
        if len(self._buffer) >= self._cfg.buffer_events:
            self._buffer.append(out)
            if not self._spool_memory():
                raise SinkError("Kafka sink buffer is full and the spool cannot be written")
        else:
            self._buffer.append(out)
        self._wakeup.set()

    @property
    def drained(self) -> bool:
        """Nothing in memory, in flight or in the spool: every event was acknowledged."""
        return self._direct and not self._buffer and self._inflight is None

    async def flush(self) -> None:
        """Wait until :attr:`drained` (bound it with ``asyncio.timeout``)."""
        while not self.drained:
            self._progress.clear()
            await self._progress.wait()

    # ------------------------------------------------------------------ lifecycle
    async def _on_start(self) -> None:
        self._spool.open()
        self._report_spool()
        self._metrics.kafka_up(False)
        interval = self._cfg.spool.fsync_interval
        if interval > 0:
            self._fsync = PeriodicTask("kafka_spool_fsync", interval, self._spool.sync)
            await self._fsync.start()
        self._task = asyncio.create_task(self._run(), name="kafka_event_delivery")
        self._task.add_done_callback(self._crashed)

    def _crashed(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("kafka_delivery_crashed", error=repr(task.exception()))

    async def _on_close(self) -> None:
        if self._up and self._close_timeout > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._close_timeout):
                    await self.flush()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._spool_memory()
        if self._fsync is not None:
            await self._fsync.aclose()
        self._spool.close()
        self._set_up(False)
        if self._producer is not None:
            self._retire(self._producer)
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)

    # ------------------------------------------------------------------ delivery task
    async def _run(self) -> None:
        producer: Any = None
        while True:
            try:
                if producer is None:
                    producer = await self._connect()
                if self._direct:
                    await self._send_direct(producer)
                else:
                    await self._replay(producer)
            except DeliveryFailed as exc:
                log.warning("kafka_delivery_failed", error=repr(exc.__cause__ or exc))
                self._failed(producer)
                producer = None
            except Exception:
                log.exception("kafka_delivery_error")
                self._failed(producer)
                producer = None
                await self._spool_while_waiting(self._backoff[1])

    def _failed(self, producer: Any) -> None:
        """Back to spooling: what is in memory goes to disk; the producer is retired."""
        self._direct = False
        self._spool_memory()
        self._set_up(False)
        if producer is not None:
            self._retire(producer)

    async def _connect(self) -> Any:
        """A started producer that knows the topic; retries with backoff, spooling meanwhile."""
        delay = self._backoff[0]
        while True:
            self._spool_memory()
            producer = self._factory()
            self._producer = producer
            try:
                async with asyncio.timeout(self._cfg.delivery_timeout):
                    await producer.start()
                    await producer.partitions_for(self._cfg.topic)
            except (KafkaError, TimeoutError, OSError) as exc:
                self._producer = None
                self._retire(producer)
                log.info("kafka_connect_failed", error=repr(exc), retry_in=delay)
                await self._spool_while_waiting(delay)
                delay = min(delay * 2, self._backoff[1])
                continue
            log.info("kafka_connected", servers=self._cfg.bootstrap_servers)
            self._set_up(True)
            return producer

    async def _spool_while_waiting(self, seconds: float) -> None:
        """Sleep ``seconds``, moving each newly emitted event to the spool as it comes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (left := deadline - loop.time()) > 0:
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), left)
            self._spool_memory()

    async def _replay(self, producer: Any) -> None:
        """Send the spool in order, committing after each acknowledged batch; then go direct."""
        while True:
            self._spool_memory()  # events emitted meanwhile queue behind the spool
            records, end = self._spool.read(self._batch_events)
            if not records:
                self._direct = True
                self._progress.set()
                return
            await self._deliver(producer, self._decode(records))
            self._spool.commit(end)
            self._report_spool()

    async def _send_direct(self, producer: Any) -> None:
        """Send the buffer in batches until a send fails or the buffer overflowed."""
        while self._direct:
            if not self._buffer:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            count = min(len(self._buffer), self._batch_events)
            batch = [self._buffer.popleft() for _ in range(count)]
            self._inflight = batch
            await self._deliver(producer, batch)
            if self._inflight is batch:
                self._inflight = None
            self._progress.set()

    async def _deliver(self, producer: Any, events: list[OutboundEvent]) -> None:
        """Produce ``events`` and wait for every ack; DeliveryFailed if any is missing."""
        futures: list[asyncio.Future[Any]] = []
        sent: list[OutboundEvent] = []
        try:
            async with asyncio.timeout(self._cfg.delivery_timeout):
                for e in events:
                    fut = await self._send(producer, e)
                    if fut is not None:
                        fut.add_done_callback(_retrieve)
                        futures.append(fut)
                        sent.append(e)
                if futures:
                    await asyncio.wait(futures)
        except (KafkaError, TimeoutError) as exc:
            raise DeliveryFailed(f"{len(events)} events not acknowledged") from exc
        for fut in futures:
            error = fut.exception() if not fut.cancelled() else asyncio.CancelledError()
            if error is not None:
                raise DeliveryFailed(f"{len(events)} events not acknowledged") from error
        now = self._clock()
        self._metrics.delivered([now - e.emitted_at for e in sent])

    async def _send(self, producer: Any, event: OutboundEvent) -> asyncio.Future[Any] | None:
        """Hand one event to the producer; an event too large to ever send is dropped."""
        try:
            fut: asyncio.Future[Any] = await producer.send(
                self._cfg.topic, event.value, event.key, headers=event.headers
            )
        except MessageSizeTooLargeError:
            log.error("kafka_event_too_large", id=event.id, type=event.type, bytes=len(event.value))
            self._metrics.dropped(1)
            return None
        return fut

    # ------------------------------------------------------------------ helpers
    def _decode(self, records: list[bytes]) -> list[OutboundEvent]:
        """Spool records as events; one that cannot be decoded is dropped and counted."""
        events = []
        for record in records:
            try:
                events.append(OutboundEvent.decode(record))
            except (struct.error, ValueError) as exc:
                log.error("spool_record_unreadable", error=repr(exc), bytes=len(record))
                self._metrics.dropped(1)
        return events

    def _spool_memory(self) -> bool:
        """Move what is in flight and in the buffer to the spool, in order."""
        events = [*(self._inflight or ()), *self._buffer]
        self._inflight = None
        self._buffer.clear()
        if not events:
            return True
        self._direct = False
        try:
            self._metrics.dropped(self._spool.append([e.encode() for e in events]))
        except OSError as exc:
            self._metrics.dropped(len(events))
            log.error("kafka_spool_write_failed", error=str(exc), events=len(events))
            return False
        finally:
            self._report_spool()
        return True

    def _report_spool(self) -> None:
        self._metrics.spool_state(self._spool.pending, self._spool.size_bytes)

    def _set_up(self, up: bool) -> None:
        self._up = up
        self._metrics.kafka_up(up)

    def _retire(self, producer: Any) -> None:
        """Stop a producer in the background (its pending batches expire by themselves)."""
        if producer is self._producer:
            self._producer = None
        task = asyncio.create_task(self._stop(producer), name="kafka_producer_stop")
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    @staticmethod
    async def _stop(producer: Any) -> None:
        try:
            await producer.stop()
        except Exception as exc:
            log.info("kafka_producer_stop_failed", error=repr(exc))
