"""The contract between the check runner and each kind of check.

A :class:`Checker` is built once per configured check and probes its target on
every run. It writes what it measures into a :class:`ProbeReport` as it goes, so
that a run cut short by its timeout still reports what it had measured (the
status code, the flow steps completed). It signals failure by raising a
:class:`~agent.errors.CheckError` whose text is the reason shown to people;
library errors are translated at this edge (``raise CheckConnectError(...) from exc``).

>>> class Always:
...     kind = "demo"
...     async def probe(self, report: ProbeReport) -> None:
...         report.status_code = 200
...     async def aclose(self) -> None: ...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from agent.model import StepResult


@dataclass(slots=True)
class ProbeReport:
    """What one run measured, filled in by the checker while it runs."""

    status_code: int | None = None
    phases: dict[str, float] = field(default_factory=dict)
    ssl_earliest_cert_expiry: float | None = None
    ssl_last_chain_expiry: float | None = None
    steps: list[StepResult] = field(default_factory=list)


class Checker(Protocol):
    """One configured check's probe. ``probe`` is called at most once at a time."""

    kind: str

    async def probe(self, report: ProbeReport) -> None:
        """Probe the target once; raise :class:`~agent.errors.CheckError` on failure."""
        ...

    async def aclose(self) -> None:
        """Release clients and connections; idempotent."""
        ...
