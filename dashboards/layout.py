"""A pilot dashboard: rows of panels, the ``datasource`` variable, firing alerts as annotations.

>>> from dashboards.panels import q, stat
>>> model = dashboard(
...     "pilot-demo", "Demo", "A demo.", alerts=["PilotApiDown"],
...     rows=[Row("API", [stat("Up", "Checks up.", q("probe_success"), unit="short")])],
... )
>>> [p.id_val for p in model.panels or []]
[1, 2]
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm

from dashboards.panels import DATASOURCE

TAGS = ["pilot", "lucky-gas"]
ANNOTATION_STEP = "15s"
"""Resolution of the alert annotations (Grafana's default, 60s, blurs short alerts)."""


@dataclass(frozen=True, slots=True)
class Row:
    """A titled row of panels, laid out left to right and wrapped at the grid's 24 columns."""

    title: str
    panels: Sequence[cogbuilder.Builder[dm.Panel]]


class AlertAnnotationQuery(dm.AnnotationQuery):
    """Grafana's Prometheus annotation, with the fields the SDK's generic model lacks."""

    def to_json(self) -> dict[str, object]:
        payload = super().to_json()
        payload.update(
            {
                "step": ANNOTATION_STEP,
                "titleFormat": "{{alertname}}",
                "textFormat": "{{severity}}: {{service}}",
                "tagKeys": "alertname,severity,service",
                "useValueForTime": False,
            }
        )
        return payload


class AlertAnnotation(cogbuilder.Builder[dm.AnnotationQuery]):
    """Firing alerts from ``ALERTS``, named by ``alerts`` or selected by ``severity``."""

    def __init__(self, alerts: Sequence[str] = (), severity: str | None = None) -> None:
        matchers = ['alertstate="firing"']
        if alerts:
            matchers.append(f'alertname=~"{"|".join(alerts)}"')
        if severity is not None:
            matchers.append(f'severity="{severity}"')
        self._internal = AlertAnnotationQuery(
            name="Firing alerts",
            datasource=DATASOURCE,
            enable=True,
            hide=False,
            icon_color="red",
            expr="ALERTS{" + ", ".join(matchers) + "}",
        )

    def build(self) -> dm.AnnotationQuery:
        return self._internal


def dashboard(
    uid: str,
    title: str,
    description: str,
    *,
    rows: Sequence[Row],
    alerts: Sequence[str] = (),
    severity: str | None = None,
) -> dm.Dashboard:
    """The dashboard model: panels numbered from 1 in order, links to the other pilot dashboards."""
    builder = (
        db.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .editable()
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .time("now-3h", "now")
        .refresh("30s")
        .timezone("browser")
        .with_variable(
            db.DatasourceVariable("datasource")
            .label("Data source")
            .type("prometheus")
            .description("Prometheus scraping the pilot and the agent, or the agent itself.")
        )
        .annotation(AlertAnnotation(alerts, severity))
        .link(
            db.DashboardLink("Pilot dashboards")
            .type(dm.DashboardLinkType.DASHBOARDS)
            .tags(["pilot"])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )
    for row in rows:
        builder.with_row(db.Row(row.title))
        for panel in row.panels:
            builder.with_panel(panel)
    model = builder.build()
    for number, panel_model in enumerate(model.panels or [], start=1):
        panel_model.id_val = number
    return model


def to_json(model: dm.Dashboard) -> str:
    """Pretty JSON with sorted keys and a trailing newline, as committed."""
    return json.dumps(model, cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def to_dict(model: dm.Dashboard) -> dict[str, Any]:
    """The dashboard as Grafana reads it."""
    data: dict[str, Any] = json.loads(to_json(model))
    return data


@dataclass(frozen=True, slots=True)
class Query:
    """One query of a generated dashboard: a panel's target, or an annotation (ref ``""``)."""

    uid: str
    panel: str
    """The panel's title, or the annotation's name."""
    ref: str
    expr: str
    instant: bool = False
    step: str | None = None
    """The annotation's own step; panels' steps are Grafana's ``$__interval``."""

    def __str__(self) -> str:
        where = f"annotation {self.panel!r}" if not self.ref else f"{self.panel!r} {self.ref}"
        return f"{self.uid}: {where}: {self.expr}"


def queries(data: dict[str, Any]) -> list[Query]:
    """Every panel query and annotation query of a dashboard, as Grafana sends them."""
    found = [
        Query(data["uid"], panel["title"], t["refId"], t["expr"], bool(t.get("instant")))
        for panel in data.get("panels", [])
        for t in panel.get("targets", [])
    ]
    found += [
        Query(data["uid"], a["name"], "", a["expr"], step=a.get("step"))
        for a in data.get("annotations", {}).get("list", [])
    ]
    return found
