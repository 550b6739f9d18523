"""Where the change watcher keeps the last seen state of each watched series.

The state is a flat mapping from a series key (a string the watcher builds from
the rule name, job, instance and labels) to a small JSON-able dict. The
watcher loads it once at start (:meth:`WatchStateStore.load`) and saves only
the entries that changed (:meth:`WatchStateStore.save`), so a Redis store can
write them as hash fields.

>>> import asyncio
>>> store = InMemoryWatchStateStore()
>>> asyncio.run(store.save({"k": {"v": 1.0}}))
>>> asyncio.run(store.load())
{'k': {'v': 1.0}}
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import structlog

from agent.state.files import write_atomically

log = structlog.get_logger(__name__)

StateEntry = dict[str, Any]


class WatchStateStore(Protocol):
    """Keeps the watcher's last seen state across restarts."""

    async def load(self) -> dict[str, StateEntry]:
        """Every stored entry; empty when nothing was stored yet."""
        ...

    async def save(self, changes: Mapping[str, StateEntry]) -> None:
        """Store these entries, replacing entries with the same key; others are kept."""
        ...


class InMemoryWatchStateStore:
    """Keeps the state in a dict: the fake for tests, and the store without a state file.

    >>> import asyncio
    >>> asyncio.run(InMemoryWatchStateStore({"k": {"v": 0.0}}).load())
    {'k': {'v': 0.0}}
    """

    def __init__(self, initial: Mapping[str, StateEntry] | None = None) -> None:
        self.entries: dict[str, StateEntry] = {k: dict(v) for k, v in (initial or {}).items()}
        self.saves = 0

    async def load(self) -> dict[str, StateEntry]:
        return {k: dict(v) for k, v in self.entries.items()}

    async def save(self, changes: Mapping[str, StateEntry]) -> None:
        self.saves += 1
        self.entries.update({k: dict(v) for k, v in changes.items()})


class JsonFileWatchStateStore:
    """Keeps the state in one JSON file, replaced atomically (temporary file + rename).

    A reader, or a crash at any point, sees either the old file or the new one. A
    file that cannot be read as the state is logged (``watch_state_unreadable``) and
    treated as empty: the watcher then takes fresh baselines instead of refusing
    to start.

    >>> import asyncio, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "state.json"
    >>> asyncio.run(JsonFileWatchStateStore(path).save({"k": {"v": 2.0}}))
    >>> asyncio.run(JsonFileWatchStateStore(path).load())
    {'k': {'v': 2.0}}
    """

    def __init__(self, path: str | Path, *, fsync: bool = True) -> None:
        self.path = Path(path)
        self._fsync = fsync
        self._entries: dict[str, StateEntry] | None = None
        self._lock = asyncio.Lock()

    async def load(self) -> dict[str, StateEntry]:
        async with self._lock:
            self._entries = await asyncio.to_thread(self._read)
            return {k: dict(v) for k, v in self._entries.items()}

    async def save(self, changes: Mapping[str, StateEntry]) -> None:
        async with self._lock:
            if self._entries is None:
                self._entries = await asyncio.to_thread(self._read)
            merged = {**self._entries, **{k: dict(v) for k, v in changes.items()}}
            await asyncio.to_thread(self._write, merged)
            self._entries = merged

    def _read(self) -> dict[str, StateEntry]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("watch_state_unreadable", path=str(self.path), error=str(exc))
            return {}
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
            log.warning("watch_state_unreadable", path=str(self.path), error="not a JSON object")
            return {}
        return data

    def _write(self, entries: Mapping[str, StateEntry]) -> None:
        text = json.dumps(entries, sort_keys=True, allow_nan=False, separators=(",", ":"))
        write_atomically(self.path, text, fsync=self._fsync)
