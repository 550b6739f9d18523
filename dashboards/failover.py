"""Failover & Circuit Breakers: breaker states, failover to secondary providers, switches."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as dm

from dashboards.layout import Row, dashboard
from dashboards.panels import above, q, stat, state_timeline, timeseries

UID = "pilot-failover"

SWITCH_P95_SECONDS = 5
"""PilotFailoverSwitchSlow: p95 switch duration over the last hour above 5 s."""
FLAPPING_SWITCHES = 4
"""PilotFailoverFlapping: more than 4 switches in 15 minutes."""
BREAKER = {0: ("closed", "green"), 1: ("half-open", "yellow"), 2: ("open", "red")}
PROVIDER = {0: ("primary", "green"), 1: ("secondary", "orange")}
ALERTS = (
    "PilotCircuitBreakerOpen",
    "PilotDependencyUnavailable",
    "PilotFailoverSwitchSlow",
    "PilotFailoverFlapping",
)


def _now_row() -> Row:
    return Row(
        "Now",
        [
            stat(
                "Breakers",
                "Each dependency's circuit breaker: closed (calls go through), half-open "
                "(trial calls) or open (calls fail fast).",
                q("max by (dependency) (circuit_breaker_state)", "{{dependency}}"),
                unit="short",
                states=BREAKER,
                size=(10, 5),
            ),
            stat(
                "Provider",
                "Whether each dependency's calls go to its primary or secondary provider.",
                q("max by (dependency) (failover_active)", "{{dependency}}"),
                unit="short",
                states=PROVIDER,
                size=(10, 5),
            ),
            stat(
                "Dependencies unavailable",
                "Dependencies whose breaker is open with no failover: every call to them "
                "fails for customers.",
                q(
                    "count(max by (dependency) (circuit_breaker_state) == 2 "
                    "unless on (dependency) max by (dependency) (failover_active) == 1) "
                    "or vector(0)",
                    "unavailable",
                ),
                unit="short",
                steps=above(1),
                size=(4, 5),
            ),
        ],
    )


def _history_row() -> Row:
    return Row(
        "History",
        [
            state_timeline(
                "Breaker state",
                "Each breaker's state over time (open or half-open for 10 minutes alerts).",
                q("max by (dependency) (circuit_breaker_state)", "{{dependency}}"),
                states=BREAKER,
            ),
            state_timeline(
                "Provider in use",
                "When each dependency ran on its secondary provider.",
                q("max by (dependency) (failover_active)", "{{dependency}}"),
                states=PROVIDER,
            ),
            timeseries(
                "Switches (15m)",
                "Switches between primary and secondary provider in the last 15 minutes, "
                "either way (more than 4 is flapping).",
                q(
                    "sum by (dependency) (increase(failover_switches_total[15m]))",
                    "{{dependency}}",
                ),
                unit="short",
                steps=above(FLAPPING_SWITCHES),
            ),
            timeseries(
                "Switch duration p95 (1h)",
                "95th percentile of the time a switch took over the last hour (target: "
                "under 5 s; no value until a dependency switched).",
                q("pilot:failover_switch_duration_seconds:p95_1h", "{{dependency}}"),
                unit="s",
                steps=above(SWITCH_P95_SECONDS),
            ),
        ],
    )


def build() -> dm.Dashboard:
    """The failover dashboard; its annotations are the breaker and failover alerts."""
    return dashboard(
        UID,
        "Failover & Circuit Breakers",
        "Circuit breakers and failover of the pilot's external dependencies (sms, banking, "
        "einvoice, maps).",
        rows=[_now_row(), _history_row()],
        alerts=ALERTS,
    )
