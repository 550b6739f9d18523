"""Alerts and check snapshots as JSON: the one format of the snapshot file and of Redis.

Every field is written, ``None`` included, so a round trip gives back an equal
value; labels stay a list of pairs so their order survives. Non-finite floats
(an alert's value may be NaN) are written as the strings ``NaN``, ``+Inf`` and
``-Inf``, since JSON has no such numbers.

>>> from agent.rules.model import Alert, AlertState
>>> a = Alert((("alertname", "Down"),), {"summary": "x"}, AlertState.FIRING, 1.0, 5.0, 6.0)
>>> alert_from_json(alert_to_json(a)) == a
True
"""

from __future__ import annotations

import json
import math
from typing import Any, get_args

from agent.rules.model import Alert, AlertState
from agent.state.base import CheckSnapshot, CheckState

_OPTIONAL_TIMES = ("fired_at", "resolved_at", "last_sent_at", "valid_until", "keep_firing_since")
_CHECK_STATES: tuple[str, ...] = get_args(CheckState)


def dumps(value: Any) -> str:
    """Compact JSON; NaN and infinities must have been encoded already."""
    return json.dumps(value, allow_nan=False, separators=(",", ":"), ensure_ascii=False)


def encode_float(x: float) -> float | str:
    if math.isfinite(x):
        return x
    return "NaN" if math.isnan(x) else ("+Inf" if x > 0 else "-Inf")


def decode_float(x: object) -> float:
    if isinstance(x, bool) or not isinstance(x, int | float | str):
        raise ValueError(f"not a number: {x!r}")
    if isinstance(x, str) and x not in ("NaN", "+Inf", "-Inf"):
        raise ValueError(f"not a number: {x!r}")
    return float(x)


def _optional_float(x: object) -> float | None:
    return None if x is None else decode_float(x)


def _optional_str(x: object) -> str | None:
    if x is not None and not isinstance(x, str):
        raise ValueError(f"not a string: {x!r}")
    return x


def alert_to_json(alert: Alert) -> dict[str, Any]:
    out: dict[str, Any] = {
        "labels": [[k, v] for k, v in alert.labels],
        "annotations": dict(alert.annotations),
        "state": alert.state.value,
        "value": encode_float(alert.value),
        "active_at": encode_float(alert.active_at),
    }
    for name in _OPTIONAL_TIMES:
        t = getattr(alert, name)
        out[name] = None if t is None else encode_float(t)
    return out


def alert_from_json(data: object) -> Alert:
    """The alert ``data`` encodes; ValueError when it is not one."""
    if not isinstance(data, dict):
        raise ValueError("an alert must be a JSON object")
    try:
        labels = tuple((str(k), str(v)) for k, v in data["labels"])
        annotations = {str(k): str(v) for k, v in dict(data["annotations"]).items()}
        times = {name: _optional_float(data[name]) for name in _OPTIONAL_TIMES}
        return Alert(
            labels,
            annotations,
            AlertState(data["state"]),
            decode_float(data["value"]),
            decode_float(data["active_at"]),
            **times,
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"malformed alert: {exc!r}") from None


def snapshot_to_json(snap: CheckSnapshot) -> dict[str, Any]:
    return {
        "state": snap.state,
        "consecutive_failures": snap.consecutive_failures,
        "started_at": encode_float(snap.started_at),
        "duration_seconds": encode_float(snap.duration_seconds),
        "reason": snap.reason,
        "status_code": snap.status_code,
        "last_failure_reason": snap.last_failure_reason,
        "last_failure_at": None
        if snap.last_failure_at is None
        else encode_float(snap.last_failure_at),
    }


def snapshot_from_json(data: object) -> CheckSnapshot:
    """The check snapshot ``data`` encodes; ValueError when it is not one."""
    if not isinstance(data, dict):
        raise ValueError("a check snapshot must be a JSON object")
    try:
        state = data["state"]
        failures, code = data["consecutive_failures"], data["status_code"]
        if state not in _CHECK_STATES or type(failures) is not int or failures < 0:
            raise ValueError(f"malformed check snapshot: {data!r}")
        if code is not None and type(code) is not int:
            raise ValueError(f"malformed status_code: {code!r}")
        return CheckSnapshot(
            state=state,
            consecutive_failures=failures,
            started_at=decode_float(data["started_at"]),
            duration_seconds=decode_float(data["duration_seconds"]),
            reason=_optional_str(data["reason"]),
            status_code=code,
            last_failure_reason=_optional_str(data["last_failure_reason"]),
            last_failure_at=_optional_float(data["last_failure_at"]),
        )
    except KeyError as exc:
        raise ValueError(f"malformed check snapshot: missing {exc}") from None
