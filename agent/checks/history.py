"""In-memory view of every check's recent results: what /metrics, the API and the
status page read. Updated by the runner on each result; read synchronously.

>>> from agent.model import CheckResult
>>> h = CheckHistory(keep=3)
>>> t = h.record(CheckResult("api", "http", False, 0.0, 0.1, reason="timeout"))
>>> (t.previous, t.current, h.get("api").consecutive_failures)
(None, 'failing', 1)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from agent.model import CheckResult
from agent.state.base import CheckSnapshot
from agent.state.base import CheckState as State


@dataclass(slots=True)
class CheckStatus:
    """The latest result of one check and a short history of earlier ones."""

    name: str
    latest: CheckResult
    consecutive_failures: int = 0
    last_failure: CheckResult | None = None
    recent: deque[CheckResult] = field(default_factory=deque)

    @property
    def state(self) -> State:
        return "ok" if self.latest.success else "failing"


@dataclass(frozen=True, slots=True)
class Transition:
    """How one recorded result moved the check's state (``previous`` None: first result)."""

    previous: State | None
    current: State

    @property
    def changed(self) -> bool:
        return self.previous != self.current


class CheckHistory:
    """Latest status per check plus the last ``keep`` results for sparklines."""

    def __init__(self, keep: int = 60) -> None:
        self._keep = keep
        self._status: dict[str, CheckStatus] = {}
        self._restored: dict[str, CheckSnapshot] = {}

    def restore(self, snapshots: Mapping[str, CheckSnapshot]) -> None:
        """Continue from saved state after a restart: each check's next result is compared
        with its snapshot (no first-result transition) and keeps counting failures.

        Checks that already have a result here keep it; snapshots are not shown as results.
        """
        for name, snapshot in snapshots.items():
            if name not in self._status:
                self._restored[name] = snapshot

    def record(self, result: CheckResult) -> Transition:
        status = self._status.get(result.check)
        previous: State | None = None
        if status is None:
            status = CheckStatus(result.check, result, recent=deque(maxlen=self._keep))
            self._status[result.check] = status
            restored = self._restored.pop(result.check, None)
            if restored is not None:
                previous = restored.state
                _continue_from(status, restored)
        else:
            previous = status.state
            status.latest = result
        status.recent.append(result)
        if result.success:
            status.consecutive_failures = 0
        else:
            status.consecutive_failures += 1
            status.last_failure = result
        return Transition(previous, status.state)

    def snapshot(self, name: str) -> CheckSnapshot | None:
        """What to save for ``name`` after its latest result (None: no result, no snapshot)."""
        status = self._status.get(name)
        if status is None:
            return self._restored.get(name)
        latest, failure = status.latest, status.last_failure
        return CheckSnapshot(
            state=status.state,
            consecutive_failures=status.consecutive_failures,
            started_at=latest.started_at,
            duration_seconds=latest.duration_seconds,
            reason=latest.reason,
            status_code=latest.status_code,
            last_failure_reason=failure.reason if failure is not None else None,
            last_failure_at=failure.started_at if failure is not None else None,
        )

    def get(self, name: str) -> CheckStatus | None:
        return self._status.get(name)

    def all(self) -> list[CheckStatus]:
        """A snapshot list, sorted by check name."""
        return [self._status[k] for k in sorted(self._status)]

    def retain(self, names: Iterable[str]) -> None:
        """Forget checks no longer configured (after a reload)."""
        keep = set(names)
        for name in list(self._status):
            if name not in keep:
                del self._status[name]
        for name in list(self._restored):
            if name not in keep:
                del self._restored[name]


def _continue_from(status: CheckStatus, snapshot: CheckSnapshot) -> None:
    """Carry a restored snapshot's failure count and last failure into a new status."""
    status.consecutive_failures = snapshot.consecutive_failures
    if snapshot.last_failure_at is not None:
        status.last_failure = CheckResult(
            status.name,
            status.latest.kind,
            False,
            snapshot.last_failure_at,
            0.0,
            reason=snapshot.last_failure_reason,
        )
