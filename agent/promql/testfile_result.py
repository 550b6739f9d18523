"""What running a PromQL test script produces: one outcome per counted statement.

>>> ok = StatementResult(3, "eval instant", "1 + 1", "passed")
>>> bad = StatementResult(6, "eval instant", "up", "failed", "expected 1 but got 2", "eval")
>>> FileResult("a.test", (ok, bad)).summary()
'1 passed, 1 failed, 0 skipped'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Outcome = Literal["passed", "failed", "skipped"]


@dataclass(frozen=True, slots=True)
class StatementResult:
    """The outcome of one statement; ``message`` is the failure or the skip reason."""

    line: int
    kind: str
    expr: str
    outcome: Outcome
    message: str = ""
    category: str = ""
    expected: str = ""
    actual: str = ""


@dataclass(frozen=True, slots=True)
class FileResult:
    """Every counted statement of one script, plus notes (checks the runner could not do)."""

    name: str
    statements: tuple[StatementResult, ...]
    notes: tuple[str, ...] = ()

    def count(self, outcome: Outcome) -> int:
        return sum(1 for s in self.statements if s.outcome == outcome)

    @property
    def passed(self) -> int:
        return self.count("passed")

    @property
    def failed(self) -> int:
        return self.count("failed")

    @property
    def skipped(self) -> int:
        return self.count("skipped")

    def summary(self) -> str:
        return f"{self.passed} passed, {self.failed} failed, {self.skipped} skipped"
