"""LeaderRole: leader-only work starts on promotion and stops on demotion, in any order."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import pytest

from agent.roles import LeaderRole


class Work:
    """Records starts and stops; ``gate`` holds a start until set."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail = False

    async def enter(self, stack: AsyncExitStack) -> None:
        self.log.append("start")
        stack.callback(self.log.append, "stop")
        await self.gate.wait()
        if self.fail:
            raise RuntimeError("boom")
        self.log.append("started")


async def test_promote_and_demote_are_idempotent() -> None:
    """Promoting twice starts once; demoting twice stops once; closing stops what runs."""
    work = Work()
    async with LeaderRole(work.enter) as role:
        await role.promote()
        await role.promote()
        assert role.active
        await role.demote()
        await role.demote()
        assert not role.active
        await role.promote()
    assert work.log == ["start", "started", "stop", "start", "started", "stop"]


async def test_demote_during_a_slow_start_cancels_it() -> None:
    """A demotion while the start waits cancels the start and closes what it had begun."""
    work = Work()
    work.gate.clear()
    async with LeaderRole(work.enter) as role:
        promoting = asyncio.create_task(role.promote())
        await asyncio.sleep(0.01)
        await asyncio.wait_for(role.demote(), 1)
        await asyncio.wait_for(promoting, 1)  # returns quietly: it was demoted
        assert not role.active
    assert work.log == ["start", "stop"]


async def test_a_failing_start_is_closed_and_raised() -> None:
    """An error in the start closes the partial work and reaches the caller; a retry works."""
    work = Work()
    work.fail = True
    async with LeaderRole(work.enter) as role:
        with pytest.raises(RuntimeError, match="boom"):
            await role.promote()
        assert not role.active
        work.fail = False
        await role.promote()
        assert role.active
    assert work.log == ["start", "stop", "start", "started", "stop"]


async def test_closing_during_a_slow_start_does_not_wait_for_it() -> None:
    """Shutdown while the start is blocked returns promptly."""
    work = Work()
    work.gate.clear()
    role = LeaderRole(work.enter)
    await role.start()
    promoting = asyncio.create_task(role.promote())
    await asyncio.sleep(0.01)
    await asyncio.wait_for(role.aclose(), 1)
    await asyncio.wait_for(promoting, 1)
    assert work.log == ["start", "stop"]
