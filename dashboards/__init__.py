"""The pilot's Grafana dashboards, written with the Grafana Foundation SDK.

Each module builds one dashboard from the pilot's metrics (docs/metrics-contract.md,
the recording rules of rules/, the agent's own metrics in docs/metrics.md);
``python -m dashboards.build`` writes them to ``dashboards/json/<uid>.json`` and
describes every panel in ``docs/dashboards.md``. Every panel and annotation reads
the ``${datasource}`` template variable, a Prometheus data source: Prometheus
scraping the agent, or the agent itself (its ``/api/v1/query_range``).

>>> from dashboards.build import render_dashboards
>>> sorted(render_dashboards())[0]
'pilot-agent-health'
"""
