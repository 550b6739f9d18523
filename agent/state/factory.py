"""The state store and the leader lease, built from the ``state`` configuration section.

>>> from agent.config.state import StateConfig
>>> type(build_state_store(StateConfig(), base_dir=Path("."))).__name__
'MemoryStateStore'
>>> build_lease(StateConfig()) is None
True
"""

from __future__ import annotations

from pathlib import Path

from agent.config.state import StateConfig
from agent.state.base import StateMetrics
from agent.state.lease import OnAcquired, OnLost, RedisLease
from agent.state.memory import MemoryStateStore
from agent.state.redis import RedisStateStore

StateStore = MemoryStateStore | RedisStateStore
"""Either store: a Component with ``.alerts``, ``.checks`` and ``.watch`` views."""


def build_state_store(
    config: StateConfig, *, base_dir: Path | None, metrics: StateMetrics | None = None
) -> StateStore:
    """Redis when ``state.redis`` is set, else memory (``snapshot_file`` under ``base_dir``)."""
    if config.redis is not None:
        return RedisStateStore(config.redis, metrics=metrics)
    path = Path(config.snapshot_file) if config.snapshot_file is not None else None
    if path is not None and base_dir is not None and not path.is_absolute():
        path = base_dir / path
    return MemoryStateStore(path, snapshot_interval=config.snapshot_interval, metrics=metrics)


def build_lease(
    config: StateConfig,
    *,
    on_acquired: OnAcquired | None = None,
    on_lost: OnLost | None = None,
    metrics: StateMetrics | None = None,
) -> RedisLease | None:
    """The lease when leader election is enabled, else None (this agent always leads)."""
    if config.redis is None or not config.leader_election.enabled:
        return None
    return RedisLease(
        config.redis,
        config.leader_election,
        on_acquired=on_acquired,
        on_lost=on_lost,
        metrics=metrics,
    )
