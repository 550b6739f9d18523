"""Check results become probe_* series in the store, with stale markers when series vanish."""

from __future__ import annotations

from agent.checks.probe_series import ProbeSeriesWriter, probe_samples
from agent.model import CheckResult, StepResult
from agent.promql.engine import PromQLEngine
from agent.tsdb.base import Matcher, is_stale
from agent.tsdb.store import SeriesStore


def _flow(t: float, *steps: tuple[str, bool]) -> CheckResult:
    return CheckResult(
        "orders",
        "flow",
        all(ok for _, ok in steps),
        t,
        0.5,
        status_code=200,
        steps=tuple(StepResult(name, ok, 0.1) for name, ok in steps),
    )


def test_samples_cover_blackbox_names_and_labels() -> None:
    """An https result maps to every blackbox name it has data for, with check labels."""
    r = CheckResult(
        "api",
        "http",
        True,
        0.0,
        0.2,
        status_code=200,
        phases={"connect": 0.01},
        ssl_earliest_cert_expiry=1e9,
        ssl_last_chain_expiry=2e9,
    )
    got = {(n, tuple(sorted(lb.items()))): v for n, lb, v in probe_samples(r, {"check": "api"})}
    assert got[("probe_http_duration_seconds", (("check", "api"), ("phase", "connect")))] == 0.01
    assert got[("probe_ssl_earliest_cert_expiry", (("check", "api"),))] == 1e9
    assert got[("probe_ssl_last_chain_expiry_timestamp_seconds", (("check", "api"),))] == 2e9
    assert len(got) == 6


def test_results_are_queryable_and_vanished_steps_go_stale() -> None:
    """A flow step that stops running gets a stale marker and drops out of instant queries."""
    store = SeriesStore()
    writer = ProbeSeriesWriter(store, labels_of=lambda name: {"team": "orders"})
    writer.record(_flow(100.0, ("login", True), ("create", True)))
    writer.record(_flow(110.0, ("login", False)))
    step = Matcher("step", "=", "create")
    (series,) = store.select([Matcher("__name__", "=", "probe_step_success"), step], 0, 10**9)
    assert series.values[0] == 1.0 and is_stale(series.values[-1])
    assert series.timestamps[-1] == 110_500
    engine = PromQLEngine()
    result = engine.instant(store, "probe_step_success", 111_000)
    steps = {dict(s.labels)["step"]: s.value for s in result.value.samples}  # type: ignore[union-attr]
    assert steps == {"login": 0.0}
    assert dict(result.value.samples[0].labels)["team"] == "orders"  # type: ignore[union-attr]


def test_forgetting_a_removed_check_marks_all_its_series_stale() -> None:
    """After a reload removes a check, none of its series answer an instant query."""
    store = SeriesStore()
    writer = ProbeSeriesWriter(store, labels_of=lambda name: {})
    writer.record(CheckResult("db", "postgres", True, 100.0, 0.01))
    writer.forget("db", 105_000)
    result = PromQLEngine().instant(store, '{check="db"}', 106_000)
    assert result.value.samples == []  # type: ignore[union-attr]
