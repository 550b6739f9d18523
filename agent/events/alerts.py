"""Alert transitions as events: ``alert.firing`` and ``alert.resolved``.

:class:`AlertEventEmitter` is a ``NotifyFunc`` (``send``) beside the notifiers:
the rule manager hands it every batch of alerts it sends, from the event loop or
from its worker thread. Like the console notifier it keeps the label sets it has
seen firing, so an alert gives one ``io.luckygas.pilot.alert.firing`` event the
first time it is sent firing and one ``io.luckygas.pilot.alert.resolved`` event
the first time it is sent resolved; re-sends give nothing.

The event's ``subject`` is the alert's fingerprint as Alertmanager shows it
(``GET /api/v2/alerts``): FNV-1a 64 over the label names in sorted order, each
name and value followed by the separator byte 0xff, as 16 hex digits.

>>> fingerprint({"alertname": "ApiDown"}) == fingerprint((("alertname", "ApiDown"),))
True
>>> len(fingerprint({}))
16
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import structlog

from agent.lifecycle import Component
from agent.model import Event
from agent.rules.model import OutgoingAlert
from agent.tasks import call_on_loop
from agent.tsdb.base import Labels

log = structlog.get_logger(__name__)

EVENT_ALERT_FIRING = "io.luckygas.pilot.alert.firing"
EVENT_ALERT_RESOLVED = "io.luckygas.pilot.alert.resolved"

_FNV_OFFSET64 = 14695981039346656037
_FNV_PRIME64 = 1099511628211
_MASK64 = (1 << 64) - 1
_SEPARATOR = 0xFF


def _fnv_add(h: int, data: bytes) -> int:
    for byte in data:
        h = ((h ^ byte) * _FNV_PRIME64) & _MASK64
    return h


def fingerprint(labels: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    """Alertmanager's fingerprint of a label set (Prometheus ``model.LabelSet.Fingerprint``)."""
    pairs = dict(labels.items() if isinstance(labels, Mapping) else labels)
    h = _FNV_OFFSET64
    for name in sorted(pairs):  # code point order is UTF-8 byte order, as Go sorts
        h = _fnv_add(h, name.encode())
        h = _fnv_add(h, bytes((_SEPARATOR,)))
        h = _fnv_add(h, pairs[name].encode())
        h = _fnv_add(h, bytes((_SEPARATOR,)))
    return f"{h:016x}"


def rfc3339(ts: float) -> str:
    """A Unix time as RFC 3339 UTC with milliseconds, as event times are written.

    >>> rfc3339(1.5)
    '1970-01-01T00:00:01.500Z'
    """
    moment = dt.datetime.fromtimestamp(ts, tz=dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alert_event(
    alert: OutgoingAlert,
    *,
    state: str,
    source: str,
    now: float,
    scrub: Callable[[str], str] | None = None,
) -> Event:
    """The event for one alert transition; ``state`` is ``firing`` or ``resolved``."""
    labels = dict(alert.labels)
    fp = fingerprint(labels)
    annotations = {k: scrub(v) if scrub is not None else v for k, v in alert.annotations.items()}
    data: dict[str, Any] = {
        "alertname": labels.get("alertname", ""),
        "labels": labels,
        "annotations": annotations,
        "starts_at": rfc3339(alert.starts_at),
        "ends_at": rfc3339(alert.ends_at),
        "generator_url": alert.generator_url,
        "fingerprint": fp,
        "state": state,
    }
    etype = EVENT_ALERT_FIRING if state == "firing" else EVENT_ALERT_RESOLVED
    return Event.new(type=etype, source=source, subject=fp, data=data, time=now)


class AlertEventEmitter(Component):
    """Turns alert transitions into events, emitted in order on one task it owns.

    >>> emitter = AlertEventEmitter(emit=counting.emit, source="pilot-agent",
    ...                             clock=time.time)                   # doctest: +SKIP
    >>> def notify(alerts):                                              # doctest: +SKIP
    ...     console.send(alerts)
    ...     emitter.send(alerts)
    >>> async with emitter, RuleManager(..., notify=notify): ...         # doctest: +SKIP
    """

    name = "alert event emitter"

    def __init__(
        self,
        *,
        emit: Callable[[Event], Awaitable[object]],
        source: str,
        clock: Callable[[], float],
        scrub: Callable[[str], str] | None = None,
        close_timeout: float = 10.0,
    ) -> None:
        self._emit = emit
        self._source = source
        self._clock = clock
        self._scrub = scrub
        self._close_timeout = close_timeout
        self._firing: set[Labels] = set()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    async def _on_start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._consume(), name="alert-events")
        self._task.add_done_callback(self._done)

    def remember_firing(self, labels: Iterable[Labels]) -> None:
        """Alerts already announced as firing before a restart (restored alert state).

        Their next firing send is then a re-send (no event), and their resolution
        still gives the resolved event.
        """
        with self._lock:
            self._firing.update(labels)

    def send(self, alerts: Sequence[OutgoingAlert]) -> None:
        """The ``NotifyFunc``: record transitions and queue their events (any thread)."""
        loop = self._loop
        if self._state != "running" or loop is None:
            self._drop(len(alerts), "not running")
            return
        now = self._clock()
        with self._lock:
            events = [e for a in alerts if (e := self._transition(a, now)) is not None]
        if not events:
            return
        if not call_on_loop(loop, self._enqueue, events):  # closed: nobody will emit them
            self._drop(len(events), "loop closed")

    def _transition(self, alert: OutgoingAlert, now: float) -> Event | None:
        if alert.ends_at <= now:
            if alert.labels not in self._firing:
                return None
            self._firing.discard(alert.labels)
            state = "resolved"
        elif alert.labels in self._firing:
            return None
        else:
            self._firing.add(alert.labels)
            state = "firing"
        return alert_event(alert, state=state, source=self._source, now=now, scrub=self._scrub)

    def _enqueue(self, events: list[Event]) -> None:
        if self._state != "running":
            self._drop(len(events), "closed")
            return
        for event in events:
            self._queue.put_nowait(event)

    def _drop(self, count: int, why: str) -> None:
        if count:
            self.dropped += count
            log.warning("alert_events_dropped", count=count, why=why)

    async def _consume(self) -> None:
        while (event := await self._queue.get()) is not None:
            try:
                await self._emit(event)
            except Exception:
                log.exception("alert_event_emit_failed", type=event.type, id=event.id)

    def _done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("alert_event_emitter_crashed", error=repr(task.exception()))

    async def _on_close(self) -> None:
        """Emit what is queued (within ``close_timeout``), then stop."""
        if self._task is None:
            return
        self._queue.put_nowait(None)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(self._task), timeout=self._close_timeout)
        if not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            left = 0
            while not self._queue.empty():
                left += self._queue.get_nowait() is not None
            self._drop(left, "close timed out")
