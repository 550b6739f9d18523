"""Scrape-engine self-metrics (``agent_scrape_*``) on an injected registry.

Prometheus scraping the agent can tell from these which targets the agent
scrapes and how healthy they are; the scraped samples themselves are never
re-exported. ``job`` is the scrape pool (the job name in the configuration).

- ``agent_scrape_targets{job}``, ``agent_scrape_dropped_targets{job}``
- ``agent_scrape_target_up{job,instance}``: 1 when the last scrape succeeded
- ``agent_scrape_samples{job,instance}``: samples stored by the last scrape
- ``agent_scrape_last_timestamp_seconds{job,instance}``: when the last scrape ended
- ``agent_scrape_duration_seconds{job}``: histogram of scrape durations
- ``agent_scrape_scrapes_total{job}``, ``agent_scrape_failures_total{job,reason}``
  (reasons: connect, timeout, http_status, body_size, parse, sample_limit,
  label_limit, internal; all start at 0 when a job appears)

>>> from prometheus_client import CollectorRegistry
>>> registry = CollectorRegistry()
>>> metrics = ScrapeMetricsExporter(registry)
>>> metrics.scrape_finished("node", "h:9100", duration_seconds=0.01, samples=42, failure=None)
>>> registry.get_sample_value("agent_scrape_target_up", {"job": "node", "instance": "h:9100"})
1.0
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from agent.scrape.target import FAILURE_REASONS

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ScrapeMetricsExporter:
    """Implements :class:`~agent.scrape.target.ScrapeMetrics` with prometheus_client."""

    def __init__(
        self, registry: CollectorRegistry, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._clock = clock
        per_target = ["job", "instance"]
        self._targets = Gauge(
            "agent_scrape_targets", "Active scrape targets of a job.", ["job"], registry=registry
        )
        self._dropped = Gauge(
            "agent_scrape_dropped_targets",
            "Targets of a job dropped by relabelling.",
            ["job"],
            registry=registry,
        )
        self._up = Gauge(
            "agent_scrape_target_up",
            "Whether the last scrape of the target succeeded (1) or failed (0).",
            per_target,
            registry=registry,
        )
        self._samples = Gauge(
            "agent_scrape_samples",
            "Samples stored by the last scrape of the target.",
            per_target,
            registry=registry,
        )
        self._last = Gauge(
            "agent_scrape_last_timestamp_seconds",
            "When the last scrape of the target ended, in Unix seconds.",
            per_target,
            registry=registry,
        )
        self._duration = Histogram(
            "agent_scrape_duration_seconds",
            "Duration of scrapes.",
            ["job"],
            buckets=_BUCKETS,
            registry=registry,
        )
        self._scrapes = Counter(
            "agent_scrape_scrapes", "Scrapes run, by job.", ["job"], registry=registry
        )
        self._failures = Counter(
            "agent_scrape_failures",
            "Scrapes that failed as a whole, by job and reason.",
            ["job", "reason"],
            registry=registry,
        )
        self._jobs: set[str] = set()
        self._instances: dict[str, set[str]] = {}

    def _job(self, job: str) -> None:
        if job not in self._jobs:
            self._jobs.add(job)
            self._scrapes.labels(job)
            for reason in FAILURE_REASONS:
                self._failures.labels(job, reason)

    def scrape_finished(
        self, job: str, instance: str, *, duration_seconds: float, samples: int, failure: str | None
    ) -> None:
        self._job(job)
        self._instances.setdefault(job, set()).add(instance)
        self._up.labels(job, instance).set(1.0 if failure is None else 0.0)
        self._samples.labels(job, instance).set(samples)
        self._last.labels(job, instance).set(self._clock())
        self._duration.labels(job).observe(duration_seconds)
        self._scrapes.labels(job).inc()
        if failure is not None:
            self._failures.labels(job, failure).inc()

    def targets_changed(self, job: str, *, active: int, dropped: int) -> None:
        self._job(job)
        self._targets.labels(job).set(active)
        self._dropped.labels(job).set(dropped)

    def target_removed(self, job: str, instance: str) -> None:
        self._instances.get(job, set()).discard(instance)
        for gauge in (self._up, self._samples, self._last):
            with contextlib.suppress(KeyError):
                gauge.remove(job, instance)

    def job_removed(self, job: str) -> None:
        for instance in sorted(self._instances.pop(job, set())):
            self.target_removed(job, instance)
        self._jobs.discard(job)
        for metric in (self._targets, self._dropped, self._duration, self._scrapes):
            with contextlib.suppress(KeyError):
                metric.remove(job)
        for reason in FAILURE_REASONS:
            with contextlib.suppress(KeyError):
                self._failures.remove(job, reason)
