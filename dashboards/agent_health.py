"""Agent Health: pilot-agent itself: checks, rules, scrapes, delivery, state and the process."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as dm

from dashboards.layout import Row, dashboard
from dashboards.panels import above, below, q, stat, table, timeseries

UID = "pilot-agent-health"

SCHEDULE_LAG_SECONDS = 1.0
"""A check run starting a second late is worth a look (misfires alert later)."""
RATE = "[$__rate_interval]"
ALERTS = (
    "PilotScrapeTargetDown",
    "PilotAgentScrapeTargetDown",
    "PilotAgentRuleEvaluationFailures",
    "PilotAgentCheckMisfires",
    "PilotAgentEventSinkErrors",
    "PilotAgentConfigReloadFailed",
    "PilotAgentAlertmanagerUnreachable",
    "PilotAgentNotificationsDropped",
    "PilotAgentEventsSpooling",
    "PilotAgentEventsDropped",
    "PilotAgentStateStoreDown",
    "PilotAgentNoLeader",
    "PilotAgentSplitBrain",
)


def _checks_row() -> Row:
    return Row(
        "Checks and rules",
        [
            table(
                "Agents",
                "Every agent instance with its version and Python version.",
                q("max by (instance, version, python_version) (agent_build_info)", instant=True),
                unit="short",
                columns={"Time": "", "Value": ""},
                size=(8, 6),
            ),
            stat(
                "Config reload",
                "Whether the last configuration reload of every agent succeeded.",
                q("min(agent_config_last_reload_successful)", "reload"),
                unit="short",
                states={0: ("failed", "red"), 1: ("ok", "green")},
                size=(4, 6),
            ),
            stat(
                "Alerts",
                "Alerts of the agent's alerting rules, pending and firing.",
                q("sum by (state) (agent_alerts)", "{{state}}"),
                unit="short",
                size=(6, 6),
            ),
            stat(
                "Scrape targets down",
                "Targets whose last scrape by the agent failed.",
                q("count(agent_scrape_target_up == 0) or vector(0)", "down"),
                unit="short",
                steps=above(1),
                size=(6, 6),
            ),
            timeseries(
                "Check runs",
                "Check runs completed per second, by result.",
                q(f"sum by (result) (rate(agent_check_runs_total{RATE}))", "{{result}}"),
                unit="ops",
                stack=True,
            ),
            timeseries(
                "Check schedule lag p99",
                "How late the slowest 1% of check runs started compared with their schedule.",
                q(
                    "histogram_quantile(0.99, sum by (le) "
                    f"(rate(agent_check_schedule_lag_seconds_bucket{RATE})))",
                    "p99",
                ),
                unit="s",
                steps=above(SCHEDULE_LAG_SECONDS),
            ),
            timeseries(
                "Check misfires (10m)",
                "Runs skipped in the last 10 minutes because the previous run was still going "
                "or the run was too late (any alerts after 10 minutes).",
                q("sum by (check) (increase(agent_check_misfires_total[10m]))", "{{check}}"),
                unit="short",
                steps=above(1),
            ),
            timeseries(
                "Rule group evaluation duration",
                "How long each rule group's last evaluation took.",
                q(
                    "max by (rule_group) (agent_rule_group_last_duration_seconds)",
                    "{{rule_group}}",
                ),
                unit="s",
            ),
            timeseries(
                "Rule evaluation failures (5m)",
                "Failed rule evaluations in the last 5 minutes, by rule group (any for 15 "
                "minutes alerts).",
                q(
                    "sum by (rule_group) (increase(agent_rule_evaluation_failures_total[5m]))",
                    "{{rule_group}}",
                ),
                unit="short",
                steps=above(1),
            ),
            timeseries(
                "Scrapes",
                "Scrapes per second and failed scrapes per second by reason.",
                q(f"sum(rate(agent_scrape_scrapes_total{RATE}))", "scrapes"),
                q(
                    f"sum by (reason) (rate(agent_scrape_failures_total{RATE}))",
                    "failed: {{reason}}",
                ),
                unit="ops",
            ),
        ],
    )


def _notifications_row() -> Row:
    return Row(
        "Alert notifications",
        [
            timeseries(
                "Notifications to Alertmanager",
                "Alert notifications per second sent to each Alertmanager, failed, and dropped "
                "(queue full, or rejected).",
                q(
                    f"sum by (alertmanager) (rate(agent_notifications_sent_total{RATE}))",
                    "sent {{alertmanager}}",
                ),
                q(
                    f"sum by (alertmanager) (rate(agent_notifications_errors_total{RATE}))",
                    "failed {{alertmanager}}",
                ),
                q(
                    f"sum by (alertmanager) (rate(agent_notifications_dropped_total{RATE}))",
                    "dropped {{alertmanager}}",
                ),
                unit="ops",
                size=(10, 8),
            ),
            timeseries(
                "Notification queue",
                "Alerts waiting to be sent to each Alertmanager, and the queue's capacity.",
                q(
                    "max by (alertmanager) (agent_notifications_queue_length)",
                    "{{alertmanager}}",
                ),
                q("max(agent_notifications_queue_capacity)", "capacity"),
                unit="short",
                size=(6, 8),
            ),
            timeseries(
                "Notification latency",
                "Average time to send a batch of alerts to each Alertmanager.",
                q(
                    "sum by (alertmanager) "
                    f"(rate(agent_notifications_latency_seconds_sum{RATE})) / sum by "
                    f"(alertmanager) (rate(agent_notifications_latency_seconds_count{RATE}))",
                    "{{alertmanager}}",
                ),
                unit="s",
                size=(5, 8),
            ),
            stat(
                "Alertmanagers",
                "Alertmanagers each agent sends to (none: alerts reach nobody).",
                q("min(agent_notifications_alertmanagers_discovered)", "discovered"),
                unit="short",
                steps=below(1),
                size=(3, 8),
            ),
        ],
    )


def _delivery_row() -> Row:
    return Row(
        "Events and state",
        [
            timeseries(
                "Events",
                "Change events per second handed to the sink, delivered, and dropped (a full "
                "spool), and sink errors.",
                q(f"sum(rate(agent_events_emitted_total{RATE}))", "emitted"),
                q(f"sum(rate(agent_events_delivered_total{RATE}))", "delivered"),
                q(f"sum(rate(agent_events_dropped_total{RATE}))", "dropped"),
                q(f"sum(rate(agent_event_sink_errors_total{RATE}))", "sink errors"),
                unit="ops",
            ),
            stat(
                "Events spooled",
                "Events kept in the local spool until the event sink takes them.",
                q("sum(agent_events_spooled)", "spooled"),
                unit="short",
                steps=[(None, "green"), (1, "yellow")],
                size=(4, 8),
            ),
            stat(
                "State store",
                "Whether every agent reaches its state store (Redis).",
                q("min(agent_state_store_up)", "state store"),
                unit="short",
                states={0: ("down", "red"), 1: ("up", "green")},
                size=(4, 8),
            ),
            stat(
                "Leaders",
                "Agents holding the leader lease: exactly one is right, none or two is not.",
                q("sum(agent_leader)", "leaders"),
                unit="short",
                steps=[(None, "red"), (1, "green"), (2, "red")],
                size=(4, 8),
            ),
        ],
    )


def _process_row() -> Row:
    return Row(
        "Process",
        [
            timeseries(
                "CPU",
                "CPU time each agent process uses, as a share of one core (processes that "
                "expose agent_build_info).",
                q(
                    f"sum by (instance) (rate(process_cpu_seconds_total{RATE}) "
                    "and on (job, instance) agent_build_info)",
                    "{{instance}}",
                ),
                unit="percentunit",
                size=(8, 7),
            ),
            timeseries(
                "Resident memory",
                "Resident memory of each agent process.",
                q(
                    "max by (instance) (process_resident_memory_bytes "
                    "and on (job, instance) agent_build_info)",
                    "{{instance}}",
                ),
                unit="bytes",
                size=(8, 7),
            ),
            timeseries(
                "Scrape duration p95",
                "95th percentile of the agent's scrape durations, every target.",
                q(
                    "histogram_quantile(0.95, sum by (le) "
                    f"(rate(agent_scrape_duration_seconds_bucket{RATE})))",
                    "p95",
                ),
                unit="s",
                size=(8, 7),
            ),
        ],
    )


def build() -> dm.Dashboard:
    """The agent's own dashboard; its annotations are the agent and scrape alerts."""
    return dashboard(
        UID,
        "Agent Health",
        "pilot-agent itself, from its /metrics (scraped as job pilot-agent): checks and "
        "their schedule, rule evaluation, scraping, alert and event delivery, the state "
        "store and leadership, the process.",
        rows=[_checks_row(), _notifications_row(), _delivery_row(), _process_row()],
        alerts=ALERTS,
    )
