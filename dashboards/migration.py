"""Customer Migration Progress: customers by state, batches, stalls and rollbacks."""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as dm

from dashboards.layout import Row, dashboard
from dashboards.panels import above, bargauge, gauge, q, stat, timeseries

UID = "pilot-migration"

STALLED_SECONDS = 600
"""PilotMigrationStalled: no batch for 10 minutes while customers are pending."""
BATCH_FAILURE_RATIO = 0.2
"""The contract's warning level: more than 20% of the last hour's batches failed."""
ALERTS = (
    "PilotMigrationStalled",
    "PilotMigrationFailuresIncreasing",
    "PilotMigrationRollbackInProgress",
)


def _progress_row() -> Row:
    return Row(
        "Progress",
        [
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
                size=(6, 6),
            ),
            stat(
                "Pending",
                "Customers not yet taken by a batch.",
                q('sum(migration_customers{state="pending"})', "pending"),
                unit="short",
                size=(4, 6),
            ),
            stat(
                "Failed",
                "Customers whose batch failed; they stay on the legacy system.",
                q('sum(migration_customers{state="failed"})', "failed"),
                unit="short",
                steps=[(None, "green"), (1, "yellow")],
                size=(4, 6),
            ),
            stat(
                "Since the last batch",
                "Time since a migration batch last completed; stalled after 10 minutes "
                "with customers pending.",
                q("time() - max(migration_last_batch_timestamp_seconds)", "since last batch"),
                unit="s",
                steps=above(STALLED_SECONDS),
                size=(5, 6),
            ),
            stat(
                "Rollback",
                "Whether a rollback is moving customers back to the legacy system.",
                q("max(migration_rollback_in_progress)", "rollback"),
                unit="short",
                states={0: ("not running", "green"), 1: ("rolling back", "orange")},
                size=(5, 6),
            ),
        ],
    )


def _history_row() -> Row:
    return Row(
        "History",
        [
            timeseries(
                "Customers by state",
                "Customers in each migration state (pending, in_progress, migrated, failed, "
                "rolled_back); the states add up to every customer in the migration.",
                q("sum by (state) (migration_customers)", "{{state}}"),
                unit="short",
                stack=True,
            ),
            bargauge(
                "Share of customers by state",
                "Each state's share of the migration's customers, now.",
                q(
                    "sum by (state) (migration_customers) / ignoring (state) group_left "
                    "sum(migration_customers)",
                    "{{state}}",
                ),
                unit="percentunit",
                bounds=(0, 1),
                size=(12, 8),
            ),
            timeseries(
                "Batches completed (10m)",
                "Migration batches completed in the last 10 minutes, by result.",
                q("sum by (result) (increase(migration_batches_total[10m]))", "{{result}}"),
                unit="short",
            ),
            timeseries(
                "Batch failure ratio (1h)",
                "Share of the last hour's batches that failed; dashed: 20%.",
                q(
                    'sum(increase(migration_batches_total{result="failure"}[1h])) '
                    "/ sum(increase(migration_batches_total[1h]))",
                    "failure ratio",
                ),
                unit="percentunit",
                steps=above(BATCH_FAILURE_RATIO),
            ),
        ],
    )


def build() -> dm.Dashboard:
    """The migration dashboard; its annotations are the migration alerts."""
    return dashboard(
        UID,
        "Customer Migration Progress",
        "The customer migration to the new system: customers by state, batch throughput "
        "and failures, stalls and rollbacks.",
        rows=[_progress_row(), _history_row()],
        alerts=ALERTS,
    )
