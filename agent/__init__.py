"""pilot-agent: monitoring and alerting agent for the Lucky Gas v3 pilot."""

__version__ = "0.1.0"
