"""What the state stores share: the check snapshot, the check store protocol, metrics.

Three kinds of state outlive the process: the alerts of each alerting rule
(:class:`~agent.rules.state.AlertStateStore`), each check's last state
(:class:`CheckStateStore`, this module) and the change watcher's last seen values
(:class:`~agent.watch.state.WatchStateStore`). The in-memory store
(:mod:`agent.state.memory`) and the Redis store (:mod:`agent.state.redis`) provide
all three as views (``.alerts``, ``.checks``, ``.watch``).

>>> snap = CheckSnapshot("failing", 3, 100.0, 0.5, reason="timeout", status_code=None,
...                      last_failure_reason="timeout", last_failure_at=100.0)
>>> snap.state, snap.consecutive_failures
('failing', 3)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

CheckState = Literal["ok", "failing"]


@dataclass(frozen=True, slots=True)
class CheckSnapshot:
    """A check's state after its last result: enough to continue counting after a restart.

    ``started_at``, ``duration_seconds``, ``reason`` and ``status_code`` describe the
    last result; ``last_failure_*`` the last failed one (None if it never failed).
    """

    state: CheckState
    consecutive_failures: int
    started_at: float
    duration_seconds: float
    reason: str | None = None
    status_code: int | None = None
    last_failure_reason: str | None = None
    last_failure_at: float | None = None


class CheckStateStore(Protocol):
    """Saves and loads the snapshots of every check; saving None forgets a check."""

    async def load(self) -> dict[str, CheckSnapshot]: ...

    async def save(self, name: str, snapshot: CheckSnapshot | None) -> None: ...


class StateMetrics(Protocol):
    """What the stores and the lease report (``exporters.state`` implements it)."""

    def store_up(self, up: bool) -> None: ...

    def writes(self, count: int) -> None: ...

    def store_error(self) -> None: ...

    def pending_writes(self, count: int) -> None: ...

    def leader(self, leading: bool) -> None: ...


class NullStateMetrics:
    """Reports nowhere: the default when no metrics are wanted (tests, tools)."""

    def store_up(self, up: bool) -> None:
        pass

    def writes(self, count: int) -> None:
        pass

    def store_error(self) -> None:
        pass

    def pending_writes(self, count: int) -> None:
        pass

    def leader(self, leading: bool) -> None:
        pass
