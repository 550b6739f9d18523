"""Self-metrics of event delivery: the Kafka sink, its spool, and the fan-out.

``agent_events_emitted_total{type}`` and ``agent_event_sink_errors_total`` stay
in :mod:`exporters.agent` (the emitter counts what it hands to the sink); these
count what became of it.

>>> from prometheus_client import CollectorRegistry
>>> registry = CollectorRegistry()
>>> metrics = EventDeliveryMetrics(registry)
>>> metrics.delivered([0.01, 0.02])
>>> registry.get_sample_value("agent_events_delivered_total")
2.0
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class EventDeliveryMetrics:
    """Implements the Kafka sink's ``DeliveryMetrics`` and the fan-out's failure count."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._delivered = Counter(
            "agent_events_delivered",
            "Events the Kafka brokers acknowledged (a replayed event counts again).",
            registry=registry,
        )
        self._dropped = Counter(
            "agent_events_dropped",
            "Events lost on the way to Kafka: spool full (oldest dropped) or unwritable.",
            registry=registry,
        )
        self._spooled = Gauge(
            "agent_events_spooled",
            "Events in the disk spool waiting for the Kafka brokers.",
            registry=registry,
        )
        self._spool_bytes = Gauge(
            "agent_events_spool_bytes",
            "Bytes of the disk spool's segment files.",
            registry=registry,
        )
        self._latency = Histogram(
            "agent_event_delivery_latency_seconds",
            "Time from emitting an event to its acknowledgement by the Kafka brokers.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._up = Gauge(
            "agent_events_kafka_up",
            "Whether the Kafka sink has a working connection to the brokers.",
            registry=registry,
        )
        self._sink_failures = Counter(
            "agent_event_sink_failures",
            "Events one sink of the fan-out failed to accept, by sink.",
            ["sink"],
            registry=registry,
        )

    def delivered(self, latencies: Sequence[float]) -> None:
        """Count acknowledged events and observe each one's emit-to-ack latency."""
        self._delivered.inc(len(latencies))
        for seconds in latencies:
            self._latency.observe(max(0.0, seconds))

    def dropped(self, count: int) -> None:
        if count:
            self._dropped.inc(count)

    def spool_state(self, events: int, size_bytes: int) -> None:
        self._spooled.set(events)
        self._spool_bytes.set(size_bytes)

    def kafka_up(self, up: bool) -> None:
        self._up.set(1 if up else 0)

    def sink_failed(self, sink: str) -> None:
        self._sink_failures.labels(sink).inc()
