"""Panel constructors: one call per panel, with the pilot's defaults filled in.

Every panel and every query reads the ``${datasource}`` variable; queries get
reference ids ``A``, ``B``, ... in order; thresholds are ``(value, colour)``
steps, the first with ``None`` (the base colour).

>>> panel = stat("p95", "p95 latency.", q("pilot:http_request_duration_seconds:p95_5m"),
...              unit="s", steps=above(0.2))
>>> panel.build().field_config.defaults.unit
's'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from grafana_foundation_sdk.builders import bargauge as bargauge_builder
from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import gauge as gauge_builder
from grafana_foundation_sdk.builders import prometheus, statetimeline
from grafana_foundation_sdk.builders import stat as stat_builder
from grafana_foundation_sdk.builders import table as table_builder
from grafana_foundation_sdk.builders import timeseries as timeseries_builder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as pm

DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
"""The dashboards' ``datasource`` template variable, used by every panel and query."""

Steps = Sequence[tuple[float | None, str]]
States = Mapping[int, tuple[str, str]]


def q(expr: str, legend: str = "", *, instant: bool = False) -> prometheus.Dataquery:
    """A Prometheus query on ``${datasource}``; ``instant`` for tables of current values."""
    query = prometheus.Dataquery().expr(expr).datasource(DATASOURCE)
    query.legend_format(legend or "__auto")
    if instant:
        query.instant().format(pm.PromQueryFormat.TABLE)
    else:
        query.range()
    return query


def above(limit: float, *, warn: float | None = None) -> Steps:
    """Green below ``limit``, red from it (yellow from ``warn`` when given)."""
    middle: Steps = [] if warn is None else [(warn, "yellow")]
    return [(None, "green"), *middle, (limit, "red")]


def below(limit: float) -> Steps:
    """Red below ``limit``, green from it."""
    return [(None, "red"), (limit, "green")]


def _thresholds(steps: Steps) -> db.ThresholdsConfig:
    return (
        db.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=v, color=c) for v, c in steps])
    )


def _mappings(states: States) -> list[dm.ValueMapping]:
    options = {
        str(value): dm.ValueMappingResult(text=text, color=color, index=i)
        for i, (value, (text, color)) in enumerate(sorted(states.items()))
    }
    return [dm.ValueMap(options=options)]


def _common(
    panel: timeseries_builder.Panel
    | stat_builder.Panel
    | gauge_builder.Panel
    | bargauge_builder.Panel
    | table_builder.Panel
    | statetimeline.Panel,
    title: str,
    description: str,
    targets: Sequence[prometheus.Dataquery],
    size: tuple[int, int],
) -> None:
    panel.title(title).description(description).datasource(DATASOURCE)
    panel.span(size[0]).height(size[1])
    for ref, target in zip("ABCDEFGH", targets, strict=False):
        panel.with_target(target.ref_id(ref))


def timeseries(
    title: str,
    description: str,
    *targets: prometheus.Dataquery,
    unit: str,
    steps: Steps | None = None,
    stack: bool = False,
    bounds: tuple[float | None, float | None] = (None, None),
    size: tuple[int, int] = (12, 8),
) -> timeseries_builder.Panel:
    """Lines over time; thresholds, when given, drawn as dashed lines."""
    panel = timeseries_builder.Panel().unit(unit).fill_opacity(10).line_width(1)
    _common(panel, title, description, targets, size)
    panel.legend(
        cb.VizLegendOptions()
        .display_mode(cm.LegendDisplayMode.LIST)
        .placement(cm.LegendPlacement.BOTTOM)
        .show_legend(True)
    ).tooltip(
        cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(cm.SortOrder.DESCENDING)
    )
    mode = cm.GraphTresholdsStyleMode.DASHED if steps else cm.GraphTresholdsStyleMode.OFF
    panel.thresholds(_thresholds(steps or [(None, "green")]))
    panel.thresholds_style(cb.GraphThresholdsStyleConfig().mode(mode))
    if stack:
        panel.stacking(cb.StackingConfig().mode(cm.StackingMode.NORMAL))
    if bounds[0] is not None:
        panel.min(bounds[0])
    if bounds[1] is not None:
        panel.max(bounds[1])
    return panel


def stat(
    title: str,
    description: str,
    *targets: prometheus.Dataquery,
    unit: str,
    steps: Steps | None = None,
    states: States | None = None,
    size: tuple[int, int] = (4, 4),
) -> stat_builder.Panel:
    """The last value, coloured by its thresholds (or by its state's colour)."""
    panel = stat_builder.Panel().unit(unit)
    _common(panel, title, description, targets, size)
    panel.reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    panel.color_mode(cm.BigValueColorMode.BACKGROUND).graph_mode(cm.BigValueGraphMode.AREA)
    panel.text_mode(cm.BigValueTextMode.AUTO).orientation(cm.VizOrientation.AUTO)
    panel.thresholds(_thresholds(steps or [(None, "blue")]))
    if states:
        panel.mappings(_mappings(states)).graph_mode(cm.BigValueGraphMode.NONE)
    return panel


def gauge(
    title: str,
    description: str,
    *targets: prometheus.Dataquery,
    unit: str,
    steps: Steps,
    bounds: tuple[float, float],
    size: tuple[int, int] = (4, 8),
) -> gauge_builder.Panel:
    """The last value on a dial from ``bounds[0]`` to ``bounds[1]``."""
    panel = gauge_builder.Panel().unit(unit).min(bounds[0]).max(bounds[1])
    _common(panel, title, description, targets, size)
    panel.reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    panel.show_threshold_markers(True).show_threshold_labels(False)
    return panel.thresholds(_thresholds(steps))


def bargauge(
    title: str,
    description: str,
    *targets: prometheus.Dataquery,
    unit: str,
    steps: Steps | None = None,
    bounds: tuple[float | None, float | None] = (None, None),
    size: tuple[int, int] = (8, 8),
) -> bargauge_builder.Panel:
    """One horizontal bar per series, at its last value."""
    panel = bargauge_builder.Panel().unit(unit)
    _common(panel, title, description, targets, size)
    panel.reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    panel.display_mode(cm.BarGaugeDisplayMode.GRADIENT).orientation(cm.VizOrientation.HORIZONTAL)
    panel.thresholds(_thresholds(steps or [(None, "blue")]))
    if bounds[0] is not None:
        panel.min(bounds[0])
    if bounds[1] is not None:
        panel.max(bounds[1])
    return panel


def table(
    title: str,
    description: str,
    *targets: prometheus.Dataquery,
    unit: str,
    columns: Mapping[str, str],
    units: Mapping[str, str] | None = None,
    states: States | None = None,
    size: tuple[int, int] = (12, 8),
) -> table_builder.Panel:
    """Instant queries joined on their labels into one row per series.

    ``columns`` renames fields (``"Value #A": "enabled"``) and hides every field
    mapped to ``""``; ``units`` overrides the unit of a renamed column.
    """
    panel = table_builder.Panel().unit(unit)
    _common(panel, title, description, targets, size)
    panel.show_header(True).cell_height(cm.TableCellHeight.SM)
    panel.footer(cb.TableFooterOptions().show(False).reducer(["sum"]))
    hidden = {name: True for name, new in columns.items() if not new}
    renamed = {name: new for name, new in columns.items() if new}
    panel.with_transformation(dm.DataTransformerConfig(id_val="merge", options={}))
    panel.with_transformation(
        dm.DataTransformerConfig(
            id_val="organize", options={"excludeByName": hidden, "renameByName": renamed}
        )
    )
    for column, column_unit in (units or {}).items():
        panel.override_by_name(column, [dm.DynamicConfigValue(id_val="unit", value=column_unit)])
    if states:
        panel.mappings(_mappings(states))
    return panel


def state_timeline(
    title: str,
    description: str,
    *targets: prometheus.Dataquery,
    states: States,
    size: tuple[int, int] = (12, 8),
) -> statetimeline.Panel:
    """One band per series, coloured by its state over time."""
    panel = statetimeline.Panel().unit("short")
    _common(panel, title, description, targets, size)
    panel.show_value(cm.VisibilityMode.AUTO).merge_values(True).row_height(0.9)
    panel.legend(cb.VizLegendOptions().display_mode(cm.LegendDisplayMode.LIST).show_legend(True))
    panel.tooltip(cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.SINGLE))
    panel.thresholds(_thresholds([(None, "green")])).mappings(_mappings(states))
    panel.color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
    return panel
