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
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from agent.model import CheckResult

State = Literal["ok", "failing"]


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

    def record(self, result: CheckResult) -> Transition:
        status = self._status.get(result.check)
        previous: State | None = None
        if status is None:
            status = CheckStatus(result.check, result, recent=deque(maxlen=self._keep))
            self._status[result.check] = status
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
