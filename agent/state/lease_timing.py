"""When a lease holder must renew, and when it must give up: pure arithmetic on monotonic time.

A leader renews every ``renew_interval``. Redis expires the lease ``ttl`` after it
ran the last successful renewal, which happened *after* the leader sent it; so a
leader that has not renewed since ``sent_at`` is certain to still hold the lease
until ``sent_at + ttl``. It steps down a safety margin before that moment
(clock-rate drift, a busy event loop), so two leaders never overlap, and a
standby that polls every ``renew_interval`` takes over at most
``ttl + renew_interval`` (under 1.5 times the ttl) after the leader's last renewal.

>>> t = LeaseTiming(ttl=15.0, renew_interval=5.0)
>>> t.margin, t.step_down_at(100.0)
(3.0, 112.0)
>>> t.next_attempt_at(renewed_at=100.0, now=101.0, last_failed=False)
105.0
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LeaseTiming:
    """The timing rules of a lease; every time is ``time.monotonic()`` seconds.

    ``margin`` defaults to a fifth of the ttl, never more than ``renew_interval``;
    after a failed renewal the leader retries every ``retry_interval`` (default a
    quarter of ``renew_interval``) until it renews or reaches its step-down time.
    """

    ttl: float
    renew_interval: float
    margin_seconds: float | None = None
    retry_seconds: float | None = None

    def __post_init__(self) -> None:
        if not 0 < self.renew_interval < self.ttl / 2:
            raise ValueError("renew_interval must be positive and less than ttl / 2")
        if not 0 <= self.margin < self.ttl - self.renew_interval:
            raise ValueError("the safety margin must leave time for a renewal")

    @property
    def margin(self) -> float:
        if self.margin_seconds is not None:
            return self.margin_seconds
        return min(self.ttl / 5, self.renew_interval)

    @property
    def retry_interval(self) -> float:
        if self.retry_seconds is not None:
            return self.retry_seconds
        return self.renew_interval / 4

    def step_down_at(self, renewed_at: float) -> float:
        """The moment a leader whose last renewal was *sent* at ``renewed_at`` must stop."""
        return renewed_at + self.ttl - self.margin

    def next_attempt_at(self, *, renewed_at: float, now: float, last_failed: bool) -> float:
        """When the leader next tries to renew (never later than its step-down time)."""
        due = now + self.retry_interval if last_failed else renewed_at + self.renew_interval
        return min(due, self.step_down_at(renewed_at))

    def must_step_down(self, *, renewed_at: float, now: float) -> bool:
        return now >= self.step_down_at(renewed_at)

    def renewal_timeout(self, *, renewed_at: float, now: float) -> float:
        """How long a renewal sent ``now`` may take before the step-down time passes."""
        return max(0.0, self.step_down_at(renewed_at) - now)
