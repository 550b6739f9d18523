"""Synthetic checks: one module per kind, one Protocol in :mod:`agent.checks.base`."""
