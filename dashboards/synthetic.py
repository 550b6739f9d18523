"""Synthetic Checks: what the agent's probes see of the API, the order flow, TLS and the rest."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as dm

from dashboards.layout import Row, dashboard
from dashboards.panels import above, below, q, stat, state_timeline, table, timeseries

UID = "pilot-synthetic-checks"

DAY = 86_400
CERT_WARNING_SECONDS = 14 * DAY
"""PilotTlsCertificateExpiringSoon: under 14 days left."""
CERT_CRITICAL_SECONDS = 3 * DAY
"""PilotTlsCertificateExpiryImminent: under 3 days left."""
AVAILABILITY = 0.999
"""The API availability SLO, 99.9%, as the checks' colour line."""
PROBE_SECONDS = 0.5
"""The README's example `max_duration` for an API health check."""
UP_DOWN = {0: ("down", "red"), 1: ("up", "green")}
ALERTS = (
    "PilotApiDown",
    "PilotLoginFailing",
    "PilotOrderFlowStepFailing",
    "PilotWebSocketDown",
    "PilotTlsCheckFailing",
    "PilotTlsCertificateExpiringSoon",
    "PilotTlsCertificateExpiryImminent",
    "PilotRedisUnreachable",
    "PilotPostgresUnreachable",
)


def _status_row() -> Row:
    return Row(
        "Status",
        [
            stat(
                "Checks",
                "Whether each check's last run passed.",
                q("min by (check) (probe_success)", "{{check}}"),
                unit="short",
                states=UP_DOWN,
                size=(24, 4),
            ),
            table(
                "Availability over the time range",
                "Share of each check's runs that passed over the dashboard's time range, and "
                "its last HTTP status (0: no answer; http and flow checks only).",
                q("avg by (check) (avg_over_time(probe_success[$__range]))", instant=True),
                q("max by (check) (probe_http_status_code)", instant=True),
                unit="percentunit",
                columns={"Time": "", "Value #A": "availability", "Value #B": "last status"},
                units={"last status": "none"},
                size=(12, 8),
            ),
            stat(
                "Certificate expiry",
                "Time until the earliest certificate in each TLS or HTTPS check's chain expires "
                "(under 14 days warns, under 3 days is critical).",
                q(
                    "min by (check) (probe_ssl_earliest_cert_expiry) - time()",
                    "{{check}}",
                ),
                unit="s",
                steps=[
                    (None, "red"),
                    (CERT_CRITICAL_SECONDS, "orange"),
                    (CERT_WARNING_SECONDS, "green"),
                ],
                size=(12, 8),
            ),
        ],
    )


def _timing_row() -> Row:
    return Row(
        "Timing",
        [
            state_timeline(
                "Check results",
                "Each check's result over time.",
                q("min by (check) (probe_success)", "{{check}}"),
                states=UP_DOWN,
                size=(24, 7),
            ),
            timeseries(
                "Probe duration",
                "How long each check's last run took (a flow: all its steps).",
                q("max by (check) (probe_duration_seconds)", "{{check}}"),
                unit="s",
                steps=above(PROBE_SECONDS),
            ),
            timeseries(
                "HTTP phases",
                "Where an HTTP check's time goes: connect, tls, processing (the server), transfer.",
                q(
                    "max by (check, phase) (probe_http_duration_seconds)",
                    "{{check}} {{phase}}",
                ),
                unit="s",
                stack=True,
            ),
            state_timeline(
                "Flow steps",
                "Each flow step's result (steps after a failing step do not run).",
                q("min by (check, step) (probe_step_success)", "{{check}} {{step}}"),
                states=UP_DOWN,
            ),
            timeseries(
                "Flow step duration",
                "How long each step of a flow took in its last run.",
                q("max by (check, step) (probe_step_duration_seconds)", "{{check}} {{step}}"),
                unit="s",
                stack=True,
            ),
            timeseries(
                "Availability (1h)",
                "Share of each check's runs that passed over the last hour; dashed: 99.9%.",
                q("avg by (check) (avg_over_time(probe_success[1h]))", "{{check}}"),
                unit="percentunit",
                steps=below(AVAILABILITY),
                size=(24, 8),
            ),
        ],
    )


def build() -> dm.Dashboard:
    """The synthetic checks dashboard; its annotations are the check alerts."""
    return dashboard(
        UID,
        "Synthetic Checks",
        "The agent's synthetic checks against the pilot (probe_* series, named as "
        "blackbox_exporter's): results, availability, timing by phase and flow step, "
        "certificate expiry.",
        rows=[_status_row(), _timing_row()],
        alerts=ALERTS,
    )
