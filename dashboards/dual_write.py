"""Dual-Write Sync Performance: lag, queue, failures and conflicts of the legacy mirror."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as dm

from dashboards.layout import Row, dashboard
from dashboards.panels import above, bargauge, q, stat, timeseries

UID = "pilot-dual-write"

LAG_SECONDS = 30
"""PilotDualWriteLagHigh: the lag stays over 30 s for 5 minutes."""
LAG_FORECAST_SECONDS = 300
"""PilotDualWriteLagGrowing: the lag heads for 5 minutes within the hour."""
QUEUE_DEPTH = 1000
"""PilotDualWriteQueueGrowing: over 1,000 writes waiting and still growing."""
FAILURE_RATIO = 0.01
"""PilotDualWriteFailing: over 1% of an op's mirrored writes fail."""
ALERTS = (
    "PilotDualWriteLagHigh",
    "PilotDualWriteLagGrowing",
    "PilotDualWriteQueueGrowing",
    "PilotDualWriteFailing",
    "PilotDualWriteUnresolvedConflicts",
)

_FAILURES = 'rate(dual_write_operations_total{{result="failure"}}[{w}])'
_ALL = "rate(dual_write_operations_total[{w}])"


def _now_row() -> Row:
    window = "5m"
    return Row(
        "Now",
        [
            stat(
                "Lag",
                "Age of the oldest write not yet applied to the legacy system.",
                q("max(dual_write_lag_seconds)", "lag"),
                unit="s",
                steps=above(LAG_SECONDS),
                size=(6, 5),
            ),
            stat(
                "Queue depth",
                "Writes waiting to be applied to the legacy system.",
                q("max(dual_write_queue_depth)", "queue"),
                unit="short",
                steps=above(QUEUE_DEPTH),
                size=(6, 5),
            ),
            stat(
                "Failure ratio (5m)",
                "Share of mirrored writes that failed over the last 5 minutes (0 until the "
                "first failure).",
                q(
                    f"(sum({_FAILURES.format(w=window)}) or vector(0)) "
                    f"/ sum({_ALL.format(w=window)})",
                    "failure ratio",
                ),
                unit="percentunit",
                steps=above(FAILURE_RATIO),
                size=(6, 5),
            ),
            stat(
                "Unresolved conflicts",
                "Conflicts waiting for a person; the two systems disagree on those records.",
                q("max(dual_write_unresolved_conflicts)", "conflicts"),
                unit="short",
                steps=above(1),
                size=(6, 5),
            ),
        ],
    )


def _trend_row() -> Row:
    window = "$__rate_interval"
    return Row(
        "Trends",
        [
            timeseries(
                "Lag",
                "The lag and its lowest value over 5 minutes (over 30 s alerts).",
                q("max(dual_write_lag_seconds)", "lag"),
                q("min(min_over_time(dual_write_lag_seconds[5m]))", "5m minimum"),
                unit="s",
                steps=above(LAG_SECONDS),
            ),
            timeseries(
                "Lag forecast (1h ahead)",
                "The lag an hour from now at the trend of the last 15 minutes "
                "(over 5 minutes alerts).",
                q("max(predict_linear(dual_write_lag_seconds[15m], 3600))", "in 1h"),
                unit="s",
                steps=above(LAG_FORECAST_SECONDS),
            ),
            timeseries(
                "Queue depth",
                "Writes waiting for the legacy system (over 1,000 and growing alerts).",
                q("max(dual_write_queue_depth)", "queue"),
                unit="short",
                steps=above(QUEUE_DEPTH),
            ),
            timeseries(
                "Mirrored writes",
                "Writes mirrored to the legacy system per second, by operation and result.",
                q(
                    f"sum by (op, result) ({_ALL.format(w=window)})",
                    "{{op}} {{result}}",
                ),
                unit="ops",
                stack=True,
            ),
            timeseries(
                "Failure ratio by operation",
                "Share of each operation's mirrored writes that failed (over 1% for 5 minutes "
                "alerts).",
                q(
                    f"(sum by (op) ({_FAILURES.format(w=window)}) "
                    f"or 0 * sum by (op) ({_ALL.format(w=window)})) "
                    f"/ sum by (op) ({_ALL.format(w=window)})",
                    "{{op}}",
                ),
                unit="percentunit",
                steps=above(FAILURE_RATIO),
            ),
            bargauge(
                "Conflicts in the last hour",
                "Conflicts found in the last hour, by how they were resolved (manual ones "
                "wait for a person).",
                q(
                    "sum by (resolution) (increase(dual_write_conflicts_total[1h]))",
                    "{{resolution}}",
                ),
                unit="short",
                size=(12, 8),
            ),
        ],
    )


def build() -> dm.Dashboard:
    """The dual-write dashboard; its annotations are the dual-write alerts."""
    return dashboard(
        UID,
        "Dual-Write Sync Performance",
        "The sync worker that mirrors every write of the new system to the legacy one: "
        "lag, queue, failed writes and conflicts.",
        rows=[_now_row(), _trend_row()],
        alerts=ALERTS,
    )
