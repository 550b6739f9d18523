"""The lease's timing rules: a leader steps down before Redis can expire its lease."""

from __future__ import annotations

import pytest

from agent.state.lease_timing import LeaseTiming


def test_step_down_comes_before_the_lease_can_expire() -> None:
    """The step-down moment is ttl minus a positive margin after the last renewal was sent."""
    for ttl, renew in ((15.0, 5.0), (1.0, 0.3), (60.0, 1.0)):
        timing = LeaseTiming(ttl, renew)
        assert 0 < timing.margin <= renew
        assert timing.step_down_at(1000.0) < 1000.0 + ttl
        assert timing.must_step_down(renewed_at=1000.0, now=1000.0 + ttl - timing.margin)
        assert not timing.must_step_down(renewed_at=1000.0, now=1000.0 + renew)


def test_renewals_are_due_every_interval_and_retried_sooner_after_a_failure() -> None:
    """A healthy leader renews at renewed_at + interval; a failing one every retry interval."""
    timing = LeaseTiming(15.0, 5.0)
    assert timing.next_attempt_at(renewed_at=100.0, now=100.5, last_failed=False) == 105.0
    assert timing.next_attempt_at(renewed_at=100.0, now=106.0, last_failed=True) == 107.25


def test_attempts_and_their_timeouts_never_pass_the_step_down_moment() -> None:
    """Near the deadline the next attempt is the deadline, and a renewal gets what remains."""
    timing = LeaseTiming(15.0, 5.0)
    assert timing.next_attempt_at(renewed_at=100.0, now=111.5, last_failed=True) == 112.0
    assert timing.renewal_timeout(renewed_at=100.0, now=110.0) == 2.0
    assert timing.renewal_timeout(renewed_at=100.0, now=113.0) == 0.0


def test_takeover_bound_is_under_twice_the_ttl() -> None:
    """Lease expiry (ttl after the last renewal) plus one standby poll stays under 2 x ttl."""
    for ttl, renew in ((15.0, 5.0), (1.0, 0.45), (4.0, 1.9)):
        timing = LeaseTiming(ttl, renew)
        assert ttl + timing.renew_interval < 2 * ttl


@pytest.mark.parametrize(
    ("ttl", "renew", "margin"), [(10.0, 5.0, None), (10.0, 0.0, None), (10.0, 4.0, 6.0)]
)
def test_impossible_timings_are_refused(ttl: float, renew: float, margin: float | None) -> None:
    """renew_interval must be under ttl / 2, and the margin must leave room to renew."""
    with pytest.raises(ValueError):
        LeaseTiming(ttl, renew, margin_seconds=margin)
