"""The Redis store's three views: saves go through the local copy, loads read Redis first.

Each view is its in-memory counterpart (:mod:`agent.state.memory`) over the store's
local :class:`~agent.state.memory.MemoryState`, whose change hook queues the
write; ``load`` reads Redis (via :meth:`RedisStateStore.read
<agent.state.redis.RedisStateStore.read>`) and refreshes the local copy first.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import structlog

from agent.rules.model import Alert
from agent.state.base import CheckSnapshot
from agent.state.codec import alert_from_json, alert_to_json, snapshot_from_json
from agent.state.memory import JsonObject, MemoryAlertStore, MemoryCheckStore, MemoryWatchStore

if TYPE_CHECKING:
    from agent.state.redis import RedisStateStore

log = structlog.get_logger(__name__)


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisAlertStore(MemoryAlertStore):
    """The store's :class:`~agent.rules.state.AlertStateStore` view."""

    def __init__(self, store: RedisStateStore) -> None:
        super().__init__(store.memory)
        self._store = store

    async def load(self, group_key: str, rule_name: str) -> list[Alert]:
        store, key = self._store, ("alerts", group_key, rule_name)
        redis_key = store.key(*key)
        stored = await store.read(redis_key, lambda c: c.hgetall(redis_key))
        if stored is not None and not store.is_dirty(key):
            alerts = []
            for field, value in sorted(stored.items()):
                try:
                    alerts.append(alert_from_json(json.loads(value)))
                except ValueError as exc:
                    log.warning(
                        "state_entry_unreadable",
                        key=redis_key,
                        field=text(field),
                        error=str(exc),
                    )
            encoded = [alert_to_json(a) for a in alerts]
            store.memory.put_alerts(group_key, rule_name, encoded, hook=False)
        return await super().load(group_key, rule_name)


class RedisCheckStore(MemoryCheckStore):
    """The store's :class:`~agent.state.base.CheckStateStore` view; saves never wait."""

    def __init__(self, store: RedisStateStore) -> None:
        super().__init__(store.memory)
        self._store = store

    async def load(self) -> dict[str, CheckSnapshot]:
        store, redis_key = self._store, self._store.key("checks")
        stored = await store.read(redis_key, lambda c: c.hgetall(redis_key))
        if stored is not None:
            store.merge("checks", stored, snapshot_from_json)
        return await super().load()


class RedisWatchStore(MemoryWatchStore):
    """The store's :class:`~agent.watch.state.WatchStateStore` view; saves never wait."""

    def __init__(self, store: RedisStateStore) -> None:
        super().__init__(store.memory)
        self._store = store

    async def load(self) -> dict[str, JsonObject]:
        store, redis_key = self._store, self._store.key("watch")
        stored = await store.read(redis_key, lambda c: c.hgetall(redis_key))
        if stored is not None:
            store.merge("watch", stored, lambda _value: None)
        return await super().load()
