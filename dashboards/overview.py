"""Pilot Program Overview: the SLOs, the pilot's state and the checks, on one screen."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as dm

from dashboards.feature_flags import KILL_SWITCHES_ENGAGED
from dashboards.layout import Row, dashboard
from dashboards.panels import above, bargauge, below, gauge, q, stat, timeseries

UID = "pilot-overview"

ERROR_RATIO_SLO = 0.001
"""Availability SLO: fewer than 0.1% of API requests answer 5xx (rules/slo.rules.yml)."""
FAST_BURN = 14.4 * ERROR_RATIO_SLO
LATENCY_SLO_SECONDS = 0.2
"""Latency SLO: p95 of API request duration under 200 ms (rules/slo.rules.yml)."""


def _slo_row() -> Row:
    return Row(
        "Service level",
        [
            stat(
                "API availability (5m)",
                "Share of API requests answered without a 5xx over the last 5 minutes; "
                "the SLO is 99.9%.",
                q("1 - pilot:http_requests:error_ratio_rate5m", "availability"),
                unit="percentunit",
                steps=below(1 - ERROR_RATIO_SLO),
            ),
            stat(
                "API p95 latency (5m)",
                "95th percentile of API request duration over the last 5 minutes; "
                "the SLO is under 200 ms.",
                q("pilot:http_request_duration_seconds:p95_5m", "p95"),
                unit="s",
                steps=above(LATENCY_SLO_SECONDS),
            ),
            stat(
                "API request rate",
                "API requests answered per second, every handler and status (5m average).",
                q("pilot:http_requests:rate5m", "requests"),
                unit="reqps",
            ),
            stat(
                "Synthetic checks failing",
                "Checks whose last run failed; details on Synthetic Checks.",
                q("count(min by (check) (probe_success) == 0) or vector(0)", "failing"),
                unit="short",
                steps=above(1),
            ),
            stat(
                "Alert rules firing",
                "Alerting rules with at least one firing alert (severity any).",
                q('count(count by (alertname) (ALERTS{alertstate="firing"})) or vector(0)'),
                unit="short",
                steps=above(1),
            ),
            stat(
                "Breakers not closed",
                "Dependencies (sms, banking, einvoice, maps) whose circuit breaker is open "
                "or half-open.",
                q("count(max by (dependency) (circuit_breaker_state) > 0) or vector(0)"),
                unit="short",
                steps=above(1),
            ),
        ],
    )


def _pilot_row() -> Row:
    return Row(
        "Pilot",
        [
            bargauge(
                "Flag rollout",
                "Share of customers each feature flag is rolled out to (its pilot customers "
                "get it regardless).",
                q("max by (flag) (feature_flag_rollout_percent)", "{{flag}}"),
                unit="percent",
                bounds=(0, 100),
            ),
            stat(
                "Kill switches engaged",
                "Feature flags switched on but forced off for everyone by their emergency "
                "kill switch.",
                q(KILL_SWITCHES_ENGAGED, "engaged"),
                unit="short",
                steps=above(1),
                size=(4, 8),
            ),
            gauge(
                "Customers migrated",
                "Share of the migration's customers now on the new system.",
                q(
                    'sum(migration_customers{state="migrated"}) / sum(migration_customers)',
                    "migrated",
                ),
                unit="percentunit",
                steps=[(None, "blue")],
                bounds=(0, 1),
            ),
            stat(
                "Dual-write lag",
                "How far the legacy system trails the new one; alert after 5 minutes over 30 s.",
                q("max(dual_write_lag_seconds)", "lag"),
                unit="s",
                steps=above(30),
                size=(4, 8),
            ),
            stat(
                "Dual-write unresolved conflicts",
                "Conflicts waiting for a person to resolve them; any is an alert.",
                q("max(dual_write_unresolved_conflicts)", "conflicts"),
                unit="short",
                steps=above(1),
                size=(4, 8),
            ),
        ],
    )


def _trend_row() -> Row:
    return Row(
        "Trends",
        [
            timeseries(
                "API error ratio",
                "Share of API requests answered with a 5xx, over 5 minutes and 1 hour; the "
                "dashed lines are the 0.1% SLO and the fast-burn alert level (14.4 times it).",
                q("pilot:http_requests:error_ratio_rate5m", "5m"),
                q("pilot:http_requests:error_ratio_rate1h", "1h"),
                unit="percentunit",
                steps=above(FAST_BURN, warn=ERROR_RATIO_SLO),
            ),
            timeseries(
                "API p95 latency",
                "95th percentile of API request duration (5m); dashed: the 200 ms SLO.",
                q("pilot:http_request_duration_seconds:p95_5m", "p95"),
                unit="s",
                steps=above(LATENCY_SLO_SECONDS),
            ),
        ],
    )


def build() -> dm.Dashboard:
    """The overview dashboard; its annotations are every critical alert."""
    return dashboard(
        UID,
        "Pilot Program Overview",
        "The Lucky Gas v3 pilot at a glance: API SLOs, feature flags, migration, "
        "dual-write, breakers and synthetic checks. Annotations: critical alerts firing.",
        rows=[_slo_row(), _pilot_row(), _trend_row()],
        severity="critical",
    )
