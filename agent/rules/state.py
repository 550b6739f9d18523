"""Where alert state outlives the process: the :class:`AlertStateStore` protocol.

The rule manager saves an alerting rule's alerts whenever they change
(a new, fired, resolved or forgotten alert) and loads them when a group
starts, so a restart keeps pending alerts' ``active_at`` and does not restart
their ``for``. Alerts are keyed by group (``file;name``) and rule name.

>>> import asyncio
>>> from agent.rules.model import Alert, AlertState
>>> store = InMemoryAlertStateStore()
>>> alert = Alert((("alertname", "Down"),), {}, AlertState.PENDING, 1.0, active_at=100.0)
>>> asyncio.run(store.save("rules.yml;api", "Down", [alert]))
>>> [a.active_at for a in asyncio.run(store.load("rules.yml;api", "Down"))]
[100.0]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol

from agent.rules.model import Alert


class AlertStateStore(Protocol):
    """Saves and loads the alerts of one alerting rule; an empty list forgets them."""

    async def save(self, group_key: str, rule_name: str, alerts: Sequence[Alert]) -> None: ...

    async def load(self, group_key: str, rule_name: str) -> list[Alert]: ...


class InMemoryAlertStateStore:
    """An :class:`AlertStateStore` in a dict (tests, and a single process without Redis).

    It keeps copies, so later changes to the saved alerts do not leak in.
    """

    def __init__(self) -> None:
        self._alerts: dict[tuple[str, str], list[Alert]] = {}

    async def save(self, group_key: str, rule_name: str, alerts: Sequence[Alert]) -> None:
        if alerts:
            self._alerts[group_key, rule_name] = [dataclasses.replace(a) for a in alerts]
        else:
            self._alerts.pop((group_key, rule_name), None)

    async def load(self, group_key: str, rule_name: str) -> list[Alert]:
        return [dataclasses.replace(a) for a in self._alerts.get((group_key, rule_name), [])]

    def keys(self) -> list[tuple[str, str]]:
        """The (group key, rule name) pairs holding alerts."""
        return sorted(self._alerts)
