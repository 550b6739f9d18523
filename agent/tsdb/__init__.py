"""In-memory time-series store: float samples per series, retention, staleness."""
