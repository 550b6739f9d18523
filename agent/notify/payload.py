"""Alerts on their way out: external labels, alert relabelling, Alertmanager v2 JSON.

As Prometheus's notifier does, ``global.external_labels`` are added to each alert
where the alert has no such label (the alert's own value wins), then
``alert_relabel_configs`` run; an alert relabelled to nothing is dropped. The
body of ``POST /api/v2/alerts`` is a list of ``postableAlert`` objects with times
in RFC 3339 (UTC, milliseconds).

>>> alert = OutgoingAlert((("alertname", "Down"),), {}, 0.0, 60.0, "")
>>> [a.labels for a in with_labels([alert], {"site": "tw"}, [])]
[(('alertname', 'Down'), ('site', 'tw'))]
>>> postable(alert)["endsAt"]
'1970-01-01T00:01:00.000Z'
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

from agent.config import RelabelConfig
from agent.rules.model import OutgoingAlert
from agent.scrape.relabel import relabel
from agent.tsdb.base import labels_from


def with_labels(
    alerts: Sequence[OutgoingAlert],
    external_labels: Mapping[str, str],
    relabel_configs: Sequence[RelabelConfig],
) -> list[OutgoingAlert]:
    """The alerts with external labels added and relabelled; dropped ones are left out."""
    if not external_labels and not relabel_configs:
        return list(alerts)
    out = []
    for alert in alerts:
        labels = dict(alert.labels)
        for name, value in external_labels.items():
            if not labels.get(name):
                labels[name] = value
        if relabel_configs:
            relabelled = relabel(labels, relabel_configs)
            if not relabelled:
                continue
            labels = relabelled
        out.append(dataclasses.replace(alert, labels=labels_from(labels)))
    return out


def rfc3339(t: float) -> str:
    """Unix seconds as RFC 3339 in UTC with milliseconds, as Alertmanager reads them.

    >>> rfc3339(1714550400.5)
    '2024-05-01T08:00:00.500Z'
    """
    moment = dt.datetime.fromtimestamp(t, tz=dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def postable(alert: OutgoingAlert) -> dict[str, Any]:
    """One alert as Alertmanager v2's ``postableAlert``."""
    body: dict[str, Any] = {
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "startsAt": rfc3339(alert.starts_at),
        "endsAt": rfc3339(alert.ends_at),
    }
    if alert.generator_url:
        body["generatorURL"] = alert.generator_url
    return body


def encode(alerts: Sequence[OutgoingAlert]) -> bytes:
    """The JSON body of one ``POST /api/v2/alerts``."""
    return json.dumps([postable(a) for a in alerts], separators=(",", ":")).encode("utf-8")
