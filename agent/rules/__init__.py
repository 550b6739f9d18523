"""Alerting and recording rules: groups, the alert state machine, templates."""
