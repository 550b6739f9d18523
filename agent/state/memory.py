"""The embedded state store: alerts, checks and watch entries in one in-memory ``MemoryState``.

:class:`MemoryStateStore` offers the three views the agent needs (``.alerts``,
``.checks``, ``.watch``) over one :class:`MemoryState`. With a ``snapshot_file``
it reads the file at start and writes it every ``snapshot_interval`` when
something changed, and once more on close, atomically (temporary file, fsync,
rename, fsync of the directory): one machine then survives a restart. A snapshot
that cannot be read is logged (``state_snapshot_unreadable``) and ignored.

Values are kept as JSON (:mod:`agent.state.codec`), so what is saved is copied
and later changes to the caller's objects do not leak in. The Redis store reuses
:class:`MemoryState` as its local copy, with ``on_change`` marking keys dirty.

>>> import asyncio
>>> store = MemoryStateStore()
>>> asyncio.run(store.watch.save({"k": {"v": 1}}))
>>> asyncio.run(store.watch.load())
{'k': {'v': 1}}
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import structlog

from agent.lifecycle import Component
from agent.rules.model import Alert
from agent.state.base import CheckSnapshot, NullStateMetrics, StateMetrics
from agent.state.codec import (
    alert_from_json,
    alert_to_json,
    dumps,
    snapshot_from_json,
    snapshot_to_json,
)
from agent.state.files import read_text_if_exists, write_atomically
from agent.state.tasks import surface_crash

log = structlog.get_logger(__name__)

JsonObject = dict[str, Any]
Key = tuple[str, ...]
"""``("alerts", group_key, rule)``, ``("checks", name)`` or ``("watch", series_key)``."""
ChangeHook = Callable[[Key, Any], None]
SNAPSHOT_VERSION = 1


class MemoryState:
    """Alerts, check snapshots and watch entries of one process, held as JSON values.

    ``on_change(key, value)`` is called for every change (value None: deleted);
    ``version`` counts changes, so a writer can tell whether anything is new.
    """

    def __init__(self, on_change: ChangeHook | None = None) -> None:
        self.alerts: dict[tuple[str, str], list[JsonObject]] = {}
        self.checks: dict[str, JsonObject] = {}
        self.watch: dict[str, JsonObject] = {}
        self.version = 0
        self._on_change = on_change

    def put_alerts(
        self, group_key: str, rule: str, alerts: list[JsonObject], *, hook: bool = True
    ) -> None:
        if alerts:
            self.alerts[group_key, rule] = alerts
        else:
            self.alerts.pop((group_key, rule), None)
        self._changed(("alerts", group_key, rule), alerts or None, hook)

    def put_check(self, name: str, snap: JsonObject | None, *, hook: bool = True) -> None:
        if snap is None:
            self.checks.pop(name, None)
        else:
            self.checks[name] = snap
        self._changed(("checks", name), snap, hook)

    def put_watch(self, key: str, entry: JsonObject, *, hook: bool = True) -> None:
        self.watch[key] = entry
        self._changed(("watch", key), entry, hook)

    def _changed(self, key: Key, value: Any, hook: bool) -> None:
        self.version += 1
        if hook and self._on_change is not None:
            self._on_change(key, value)

    def to_json(self) -> JsonObject:
        alerts: dict[str, dict[str, list[JsonObject]]] = {}
        for (group, rule), items in sorted(self.alerts.items()):
            alerts.setdefault(group, {})[rule] = items
        return {
            "version": SNAPSHOT_VERSION,
            "alerts": alerts,
            "checks": dict(sorted(self.checks.items())),
            "watch": dict(sorted(self.watch.items())),
        }

    def load_json(self, data: object) -> None:
        """Replace everything with a snapshot; ValueError (and no change) if it is not one."""
        if not isinstance(data, dict) or data.get("version") != SNAPSHOT_VERSION:
            raise ValueError("not a version 1 state snapshot")
        alerts = {
            (str(group), str(rule)): [alert_to_json(alert_from_json(a)) for a in items]
            for group, rules in _object(data.get("alerts", {})).items()
            for rule, items in _object(rules).items()
        }
        checks = {
            str(name): snapshot_to_json(snapshot_from_json(snap))
            for name, snap in _object(data.get("checks", {})).items()
        }
        watch = {str(k): _object(v) for k, v in _object(data.get("watch", {})).items()}
        self.alerts, self.checks, self.watch = alerts, checks, watch
        self.version += 1


def _object(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    return value


def _copy(value: JsonObject) -> JsonObject:
    copied: JsonObject = json.loads(dumps(value))
    return copied


class MemoryAlertStore:
    """An :class:`~agent.rules.state.AlertStateStore` over a :class:`MemoryState`."""

    def __init__(self, state: MemoryState) -> None:
        self._memory = state

    async def save(self, group_key: str, rule_name: str, alerts: Sequence[Alert]) -> None:
        self._memory.put_alerts(group_key, rule_name, [alert_to_json(a) for a in alerts])

    async def load(self, group_key: str, rule_name: str) -> list[Alert]:
        return [alert_from_json(a) for a in self._memory.alerts.get((group_key, rule_name), [])]

    def keys(self) -> list[tuple[str, str]]:
        """The (group key, rule name) pairs holding alerts."""
        return sorted(self._memory.alerts)


class MemoryCheckStore:
    """A :class:`~agent.state.base.CheckStateStore` over a :class:`MemoryState`."""

    def __init__(self, state: MemoryState) -> None:
        self._memory = state

    async def load(self) -> dict[str, CheckSnapshot]:
        return {name: snapshot_from_json(s) for name, s in self._memory.checks.items()}

    async def save(self, name: str, snapshot: CheckSnapshot | None) -> None:
        self.save_nowait(name, snapshot)

    def save_nowait(self, name: str, snapshot: CheckSnapshot | None) -> None:
        """:meth:`save` for synchronous callers (a result listener); it never does I/O."""
        self._memory.put_check(name, None if snapshot is None else snapshot_to_json(snapshot))


class MemoryWatchStore:
    """A :class:`~agent.watch.state.WatchStateStore` over a :class:`MemoryState`."""

    def __init__(self, state: MemoryState) -> None:
        self._memory = state

    async def load(self) -> dict[str, JsonObject]:
        return {k: _copy(v) for k, v in self._memory.watch.items()}

    async def save(self, changes: Mapping[str, JsonObject]) -> None:
        for key, entry in changes.items():
            self._memory.put_watch(key, _copy(entry))


class MemoryStateStore(Component):
    """The embedded store, with an optional JSON snapshot file.

    >>> store = MemoryStateStore(Path("state.json"), snapshot_interval=10.0)  # doctest: +SKIP
    >>> async with store:                                                    # doctest: +SKIP
    ...     await store.checks.save("api", snapshot)
    """

    name = "memory_state_store"

    def __init__(
        self,
        snapshot_file: str | Path | None = None,
        *,
        snapshot_interval: float = 10.0,
        metrics: StateMetrics | None = None,
        fsync: bool = True,
    ) -> None:
        self.path = Path(snapshot_file) if snapshot_file is not None else None
        self._interval = snapshot_interval
        self._metrics = metrics or NullStateMetrics()
        self._fsync = fsync
        self.memory = MemoryState()
        self.alerts = MemoryAlertStore(self.memory)
        self.checks = MemoryCheckStore(self.memory)
        self.watch = MemoryWatchStore(self.memory)
        self._written = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _on_start(self) -> None:
        self._metrics.store_up(True)
        if self.path is None:
            return
        await self._read_snapshot(self.path)
        self._written = self.memory.version
        self._task = asyncio.create_task(self._loop(), name="state-snapshot")
        self._task.add_done_callback(surface_crash)

    async def _read_snapshot(self, path: Path) -> None:
        try:
            text = await asyncio.to_thread(read_text_if_exists, path)
            if text is None:
                return
            self.memory.load_json(json.loads(text))
        except (OSError, ValueError) as exc:
            log.warning("state_snapshot_unreadable", path=str(path), error=str(exc))
            return
        log.info(
            "state_snapshot_loaded",
            path=str(path),
            alerts=len(self.memory.alerts),
            checks=len(self.memory.checks),
            watch=len(self.memory.watch),
        )

    async def _loop(self) -> None:
        # Stopped by an event, not cancelled: a write in its thread is never abandoned
        # half-way, so an older snapshot cannot land after the final one.
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._stop.wait()
            await self.write_snapshot()

    async def write_snapshot(self) -> bool:
        """Write the snapshot now if anything changed since the last write; True if written."""
        if self.path is None or self.memory.version == self._written:
            return False
        version, text = self.memory.version, dumps(self.memory.to_json())
        try:
            await asyncio.to_thread(write_atomically, self.path, text, fsync=self._fsync)
        except OSError as exc:
            self._metrics.store_error()
            log.error("state_snapshot_write_failed", path=str(self.path), error=str(exc))
            return False
        self._written = version
        self._metrics.writes(1)
        return True

    async def _on_close(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task  # a crash was logged by its done-callback
        await self.write_snapshot()
