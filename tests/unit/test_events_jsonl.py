"""The embedded JSONL event sink: whole lines, rotation, state."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from agent.errors import ComponentStateError
from agent.events.jsonl import JsonlEventSink
from agent.model import Event


def _event(i: int) -> Event:
    return Event.new(type="t.test", source="test", subject=f"s{i}", data={"i": i}, time=i)


async def test_events_are_written_as_cloudevents_lines(tmp_path: Path) -> None:
    """Each event is one JSON line with the CloudEvents 1.0 attributes."""
    path = tmp_path / "events.jsonl"
    async with JsonlEventSink(path) as sink:
        await sink.emit(_event(1))
        await sink.emit(_event(2))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [e["subject"] for e in lines] == ["s1", "s2"]
    assert lines[0]["specversion"] == "1.0"
    assert lines[0]["time"] == "1970-01-01T00:00:01.000Z"
    assert {"id", "source", "type", "time", "data"} <= lines[0].keys()


async def test_rotation_keeps_backups_and_loses_nothing_within_them(tmp_path: Path) -> None:
    """Past max_bytes the file rotates to .1, .2 …; every event kept is whole."""
    path = tmp_path / "events.jsonl"
    async with JsonlEventSink(path, max_bytes=600, backups=3) as sink:
        for i in range(12):
            await sink.emit(_event(i))
    files = sorted(await asyncio.to_thread(lambda: list(tmp_path.iterdir())))
    assert path.with_name("events.jsonl.1") in files
    assert all(f.stat().st_size <= 600 for f in files)
    seen = []
    for f in [*(path.with_name(f"events.jsonl.{n}") for n in (3, 2, 1)), path]:
        if f.exists():
            seen += [json.loads(line)["data"]["i"] for line in f.read_text().splitlines()]
    assert seen == sorted(seen)
    assert seen[-1] == 11


async def test_closed_sink_refuses_events_and_reopening(tmp_path: Path) -> None:
    """After close the sink refuses to emit or reopen; close is idempotent."""
    sink = JsonlEventSink(tmp_path / "e.jsonl")
    sink.open()
    await sink.aclose()
    await sink.aclose()
    with pytest.raises(ComponentStateError):
        await sink.emit(_event(1))
    with pytest.raises(ComponentStateError):
        sink.open()
