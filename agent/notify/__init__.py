"""Delivering alerts: the console notifier now, Alertmanager later."""
