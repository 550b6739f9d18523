"""State store and leader election metrics (``agent_state_store_*``, ``agent_leader*``).

- ``agent_state_store_up``: 1 while the store's last operation succeeded (the
  in-memory store is always up), 0 during a Redis outage;
- ``agent_state_store_writes_total``: keys written to Redis, or snapshot files written;
- ``agent_state_store_errors_total``: failed Redis operations and snapshot writes;
- ``agent_state_store_pending_writes``: keys written locally and not yet in Redis;
- ``agent_leader``: 1 while this agent holds the leader lease;
- ``agent_leader_transitions_total``: times ``agent_leader`` changed.

The two leader metrics exist only with ``leader_election=True``: an agent without
leader election reports none, so "no agent of the job leads" alerts stay quiet.

>>> from prometheus_client import CollectorRegistry
>>> registry = CollectorRegistry()
>>> metrics = StateMetricsExporter(registry, leader_election=True)
>>> metrics.leader(True)
>>> registry.get_sample_value("agent_leader_transitions_total")
1.0
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class StateMetricsExporter:
    """Implements :class:`~agent.state.base.StateMetrics` with prometheus_client."""

    def __init__(self, registry: CollectorRegistry, *, leader_election: bool = False) -> None:
        self._up = Gauge(
            "agent_state_store_up",
            "Whether the state store's last operation succeeded (1) or failed (0).",
            registry=registry,
        )
        self._writes = Counter(
            "agent_state_store_writes",
            "Keys written to Redis, or snapshot files written by the in-memory store.",
            registry=registry,
        )
        self._errors = Counter(
            "agent_state_store_errors",
            "Failed state store operations (Redis commands, snapshot writes).",
            registry=registry,
        )
        self._pending = Gauge(
            "agent_state_store_pending_writes",
            "State keys written locally and not yet stored in Redis.",
            registry=registry,
        )
        self._leader: Gauge | None = None
        self._transitions: Counter | None = None
        if leader_election:
            self._leader = Gauge(
                "agent_leader",
                "Whether this agent holds the leader lease (1) or not (0).",
                registry=registry,
            )
            self._transitions = Counter(
                "agent_leader_transitions",
                "Changes of agent_leader: leases won and lost.",
                registry=registry,
            )
        self._leading = False

    def store_up(self, up: bool) -> None:
        self._up.set(1 if up else 0)

    def writes(self, count: int) -> None:
        self._writes.inc(count)

    def store_error(self) -> None:
        self._errors.inc()

    def pending_writes(self, count: int) -> None:
        self._pending.set(count)

    def leader(self, leading: bool) -> None:
        if self._leader is None or self._transitions is None:
            return
        if leading != self._leading:
            self._transitions.inc()
        self._leading = leading
        self._leader.set(1 if leading else 0)
