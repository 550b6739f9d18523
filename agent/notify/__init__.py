"""Delivering alerts: to Alertmanager (``alertmanager.py``), or to the log (``console.py``)."""
