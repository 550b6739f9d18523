"""The lifecycle every I/O component of the agent shares: new → running → closed.

A component is an async context manager; it starts once, ``aclose()`` is
idempotent, and a closed component refuses to start again (as httpx's client
and aiokafka's producer do). A start that fails cleans up what it began and
leaves the component closed. Subclasses implement :meth:`Component._on_start`
and :meth:`Component._on_close`.

>>> import asyncio
>>> class Noop(Component):
...     name = "noop"
>>> async def demo() -> str:
...     async with Noop() as c:
...         pass
...     await c.aclose()          # idempotent
...     return c.state
>>> asyncio.run(demo())
'closed'
"""

from __future__ import annotations

from types import TracebackType
from typing import ClassVar, Literal, Self

from agent.errors import ComponentStateError

State = Literal["new", "running", "closed"]


class Component:
    """Base class of the agent's async components."""

    name: ClassVar[str] = "component"
    _state: State = "new"

    @property
    def state(self) -> State:
        return self._state

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Start once; a failed start closes what it began and re-raises."""
        if self._state != "new":
            raise ComponentStateError(f"{self.name} is {self._state}; it starts only once")
        self._state = "running"
        try:
            await self._on_start()
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        """Stop and release everything; idempotent."""
        if self._state == "closed":
            return
        self._state = "closed"
        await self._on_close()

    async def _on_start(self) -> None:
        """Start work (called once, in state running)."""

    async def _on_close(self) -> None:
        """Stop work (called once, in state closed)."""
