"""Plain value types shared by every layer. Standard library only.

A check run produces a :class:`CheckResult`; a run of a flow check carries one
:class:`StepResult` per step. Anything that must be told to the outside world
(Kafka, the JSONL log) becomes an :class:`Event`, a CloudEvents 1.0 envelope.
"""

from __future__ import annotations

import datetime as _dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

CHECK_KINDS = ("http", "flow", "tcp", "tls", "websocket", "redis", "postgres")


@dataclass(frozen=True, slots=True)
class StepResult:
    """Outcome of one step of a multi-step flow check.

    >>> StepResult(name="login", success=True, duration_seconds=0.012, status_code=200)
    StepResult(name='login', success=True, duration_seconds=0.012, status_code=200, reason=None)
    """

    name: str
    success: bool
    duration_seconds: float
    status_code: int | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class CheckResult:
    """Outcome of one run of one synthetic check.

    ``started_at`` is a Unix timestamp in seconds. ``reason`` says why a failed
    run failed and is ``None`` on success. ``phases`` holds HTTP phase durations
    in seconds (``resolve``, ``connect``, ``tls``, ``processing``, ``transfer``)
    where they were measurable; ``steps`` is filled for flow checks only.

    >>> r = CheckResult(check="api", kind="http", success=True, started_at=0.0,
    ...                 duration_seconds=0.01, status_code=200)
    >>> r.success
    True
    """

    check: str
    kind: str
    success: bool
    started_at: float
    duration_seconds: float
    reason: str | None = None
    status_code: int | None = None
    phases: Mapping[str, float] = field(default_factory=dict)
    ssl_earliest_cert_expiry: float | None = None
    ssl_last_chain_expiry: float | None = None
    steps: tuple[StepResult, ...] = ()


def _utc_iso(ts: float) -> str:
    return (
        _dt.datetime.fromtimestamp(ts, tz=_dt.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


@dataclass(frozen=True, slots=True)
class Event:
    """A CloudEvents 1.0 event in structured JSON mode.

    ``time`` is a Unix timestamp; :meth:`to_dict` renders it as RFC 3339.

    >>> e = Event.new(type="io.luckygas.pilot.check.failed", source="pilot-agent",
    ...               subject="api-health", data={"reason": "timeout"}, time=0.0)
    >>> e.to_dict()["time"]
    '1970-01-01T00:00:00.000Z'
    """

    id: str
    source: str
    type: str
    time: float
    subject: str | None
    data: Mapping[str, Any]
    specversion: str = "1.0"
    datacontenttype: str = "application/json"

    @classmethod
    def new(
        cls,
        *,
        type: str,
        source: str,
        subject: str | None,
        data: Mapping[str, Any],
        time: float,
    ) -> Event:
        return cls(
            id=str(uuid.uuid4()), source=source, type=type, time=time, subject=subject, data=data
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "specversion": self.specversion,
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "time": _utc_iso(self.time),
            "datacontenttype": self.datacontenttype,
        }
        if self.subject is not None:
            out["subject"] = self.subject
        out["data"] = dict(self.data)
        return out
