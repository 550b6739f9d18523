"""Feature Flag Activation: each flag's settings, who it serves, and whether its cohort fails."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as dm

from dashboards.layout import Row, dashboard
from dashboards.panels import above, q, stat, table, timeseries

UID = "pilot-feature-flags"

EVALUATION_ERROR_RATIO = 0.01
"""PilotFlagEvaluationErrors: over 1% of a flag's evaluations fail."""
TREATMENT_MARGIN = 0.01
"""PilotFlagTreatmentErrorsAboveControl: treatment over twice control plus 1 point."""
KILL_SWITCHES_ENGAGED = (
    "count(max by (flag) (feature_flag_kill_switch_engaged) == 1 "
    "and max by (flag) (feature_flag_enabled) == 1) or vector(0)"
)
"""Flags switched on and forced off by their kill switch (PilotFlagKillSwitchEngaged)."""
ALERTS = (
    "PilotFlagKillSwitchEngaged",
    "PilotFlagRolloutChangedOutsideWindow",
    "PilotFlagEvaluationErrors",
    "PilotFlagTreatmentErrorsAboveControl",
)


def _settings_row() -> Row:
    return Row(
        "Settings",
        [
            table(
                "Flags now",
                "Every flag's switch, kill switch, rollout, pilot allow-list and the time "
                "since its settings last changed.",
                q("max by (flag) (feature_flag_enabled)", instant=True),
                q("max by (flag) (feature_flag_kill_switch_engaged)", instant=True),
                q("max by (flag) (feature_flag_rollout_percent)", instant=True),
                q("max by (flag) (feature_flag_pilot_customers)", instant=True),
                q(
                    "time() - max by (flag) (feature_flag_last_change_timestamp_seconds)",
                    instant=True,
                ),
                unit="short",
                columns={
                    "Time": "",
                    "Value #A": "enabled",
                    "Value #B": "kill switch",
                    "Value #C": "rollout",
                    "Value #D": "pilot customers",
                    "Value #E": "since last change",
                },
                units={"rollout": "percent", "since last change": "s"},
                size=(14, 7),
            ),
            stat(
                "Kill switches engaged",
                "Flags switched on whose emergency kill switch forces them off for everyone.",
                q(KILL_SWITCHES_ENGAGED, "engaged"),
                unit="short",
                steps=above(1),
                size=(5, 7),
            ),
            stat(
                "Flags changed in the last 10 minutes",
                "Flags whose settings changed in the last 10 minutes, to correlate with errors.",
                q(
                    "count(time() - max by (flag) (feature_flag_last_change_timestamp_seconds)"
                    " < 600) or vector(0)",
                    "changed",
                ),
                unit="short",
                steps=[(None, "green"), (1, "yellow")],
                size=(5, 7),
            ),
            timeseries(
                "Rollout",
                "Share of customers each flag is rolled out to, over time.",
                q("max by (flag) (feature_flag_rollout_percent)", "{{flag}}"),
                unit="percent",
                bounds=(0, 100),
            ),
            timeseries(
                "Share of evaluations serving on",
                "Evaluations that served the flag's `on` variant, to compare with its rollout "
                "(pilot customers get `on` at any rollout).",
                q(
                    'sum by (flag) (rate(feature_flag_evaluations_total{variant="on"}'
                    "[$__rate_interval])) / sum by (flag) "
                    "(rate(feature_flag_evaluations_total[$__rate_interval]))",
                    "{{flag}}",
                ),
                unit="percentunit",
                bounds=(0, 1),
            ),
        ],
    )


def _health_row() -> Row:
    return Row(
        "Cohorts and errors",
        [
            timeseries(
                "Error ratio by cohort (5m)",
                "Share of each flag's requests answered with a 5xx, by cohort (treatment: "
                "served `on`, control: `off`); treatment above twice control plus 1 point "
                "alerts.",
                q("pilot:feature_flag_requests:error_ratio_rate5m", "{{flag}} {{cohort}}"),
                unit="percentunit",
                steps=above(TREATMENT_MARGIN),
            ),
            timeseries(
                "Requests by cohort",
                "API requests per second each flag put in its treatment and control cohorts.",
                q(
                    "sum by (flag, cohort) (rate(feature_flag_requests_total[$__rate_interval]))",
                    "{{flag}} {{cohort}}",
                ),
                unit="reqps",
                stack=True,
            ),
            timeseries(
                "Evaluation error ratio (5m)",
                "Share of each flag's evaluations that failed and fell back to `off`; "
                "alert over 1% for 5 minutes.",
                q("pilot:feature_flag_evaluation_errors:ratio_rate5m", "{{flag}}"),
                unit="percentunit",
                steps=above(EVALUATION_ERROR_RATIO),
            ),
            timeseries(
                "Evaluations by variant",
                "Flag evaluations per second, by flag and the variant served.",
                q(
                    "sum by (flag, variant) "
                    "(rate(feature_flag_evaluations_total[$__rate_interval]))",
                    "{{flag}} {{variant}}",
                ),
                unit="ops",
            ),
        ],
    )


def build() -> dm.Dashboard:
    """The feature flag dashboard; its annotations are the flag alerts."""
    return dashboard(
        UID,
        "Feature Flag Activation",
        "The pilot's feature flags (new_order_flow, route_optimisation, realtime_tracking, "
        "einvoice_v2): settings, the share of traffic they serve, and the error ratio of "
        "their treatment cohort against control.",
        rows=[_settings_row(), _health_row()],
        alerts=ALERTS,
    )
