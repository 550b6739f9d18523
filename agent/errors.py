"""The agent's error tree. Every error the agent raises on purpose is one of these.

::

    AgentError
    ├── ConfigError            invalid configuration; carries every ConfigProblem found
    ├── CheckError             a synthetic check did not pass
    │   ├── CheckFailed        the target answered, but an assertion did not hold
    │   ├── CheckConnectError  the target could not be reached       (retriable)
    │   └── CheckTimeout       the whole check ran out of time       (retriable)
    ├── SinkError              an event sink could not accept an event (retriable)
    └── ComponentStateError    a component was used in the wrong state (closed, not started)

Retry policy is data on the class: ``retriable`` says whether doing the same
thing again later may succeed.
"""

from __future__ import annotations

from dataclasses import dataclass


class AgentError(Exception):
    """Root of every error the agent raises on purpose."""

    retriable: bool = False


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One problem in a configuration file, located by path and line."""

    file: str
    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        loc = f" {self.path}:" if self.path else ""
        return f"{where}:{loc} {self.message}"


class ConfigError(AgentError):
    """A configuration could not be loaded; ``problems`` lists every problem found."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class CheckError(AgentError):
    """A synthetic check did not pass. ``str(exc)`` is the reason shown to people."""


class CheckFailed(CheckError):
    """The target answered, but an assertion on its answer did not hold."""


class CheckConnectError(CheckError):
    """The target could not be reached (DNS, refused, reset, TLS handshake)."""

    retriable = True


class CheckTimeout(CheckError):
    """The check did not finish within its timeout."""

    retriable = True


class SinkError(AgentError):
    """An event sink could not accept an event."""

    retriable = True


class ComponentStateError(AgentError):
    """A component was used in a state that does not allow it (for example, after close)."""
