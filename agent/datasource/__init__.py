"""Remote query data sources for rule evaluation (a Prometheus-compatible HTTP API)."""
