"""The change watcher: scraped state changes become CloudEvents.

After each scrape the app hands the :class:`~agent.scrape.base.ScrapeReport` to
:meth:`ChangeWatcher.observe`, which compares every series a watch rule selects
with the last state seen for it and returns one event per change. What is
watched is configuration (:class:`~agent.config.watch.WatchRule`, the pilot's
defaults in ``pilot.yml``), not code per metric.

Semantics:

* A series is identified by rule, job, instance and its labels. The event's
  ``subject`` is the rule's subject prefix and its ``key`` label values
  (``breaker/sms``); its ``time`` is the scrape time.
* The first observation ever of a series (nothing stored) is its baseline and
  yields no event. The state is restored from the :class:`WatchStateStore`
  before the first comparison, so a change that happened while the agent was
  down yields exactly one event after the restart, and a change already
  reported yields none. Delivery is at-least-once: an event emitted but not yet
  persisted when the agent dies is emitted again.
* A failed scrape changes nothing. A series missing from a successful scrape
  keeps its state and yields no event; when it comes back, it is compared with
  that state. NaN, stale markers and infinities count as missing.
* ``value_change``: any change; ``rising``/``falling`` choose the type by direction.
* ``increase``: an event when the value is at least ``min_increase`` above the
  reference (the value at the last event, or the last decrease, or the baseline);
  a decrease (a reset, or customers leaving the count) only moves the reference.
* ``threshold``: the level is how many thresholds the value is above; it rises
  when ``value > threshold`` and falls only when ``value <= threshold - hysteresis``.
  One event per scrape in which the level changed, naming the highest threshold
  now exceeded (above) or the lowest one fallen below (below).
* ``stale_timestamp``: stale while ``scrape time - value > max_age`` and the
  ``when`` condition holds in the same scrape; the ``fresh`` type is emitted when
  either stops being true (``condition_holds`` says which).
* ``histogram_delta``: when the counter increased, the event carries the
  increase of ``<histogram>_sum`` and ``_count`` (summed over the series with the
  same key labels) and their ratio, the mean observation: for failover switches,
  the switch duration. A counter decrease (reset) takes a new baseline.

>>> import asyncio
>>> from agent.watch.state import InMemoryWatchStateStore
>>> watcher = ChangeWatcher(load_watch_rules(None), state=InMemoryWatchStateStore(),
...                         source="pilot-agent")
>>> asyncio.run(watcher.restore())
>>> watcher.observe(ScrapeReport("api", "api:8000", (), 0, True, None, 0.01, ()))
[]
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

from agent.config.watch import WatchCondition, WatchConfig, WatchRule, parse_matcher
from agent.errors import ComponentStateError
from agent.model import Event
from agent.scrape.base import ScrapeReport
from agent.tsdb.base import Labels, Matcher
from agent.watch.state import StateEntry, WatchStateStore

# --------------------------------------------------------------------------- rules


def pilot_watch_config() -> WatchConfig:
    """The pilot's default watch list, bundled as ``agent/watch/pilot.yml``."""
    text = resources.files("agent.watch").joinpath("pilot.yml").read_text(encoding="utf-8")
    return WatchConfig.model_validate(yaml.safe_load(text))


def load_watch_rules(config: WatchConfig | None) -> list[WatchRule]:
    """The configured rules, or the pilot's defaults when there is no section or no ``rules``."""
    if config is not None and config.rules is not None:
        return list(config.rules)
    return list(pilot_watch_config().rules or ())


def _compile(texts: Sequence[str]) -> tuple[Matcher, ...]:
    return tuple(Matcher(*parse_matcher(text)) for text in texts)


# --------------------------------------------------------------------------- one scrape


class _Scrape:
    """A report's usable samples by metric name, with lookups by matchers and key."""

    def __init__(self, report: ScrapeReport) -> None:
        self.by_name: dict[str, list[tuple[Labels, dict[str, str], float]]] = {}
        for labels, value in report.samples:
            if not math.isfinite(value):
                continue
            names = dict(labels)
            metric = names.pop("__name__", "")
            self.by_name.setdefault(metric, []).append((labels, names, value))

    def select(
        self, metric: str, matchers: Sequence[Matcher], key: Mapping[str, str] | None = None
    ) -> Iterator[tuple[Labels, dict[str, str], float]]:
        for labels, names, value in self.by_name.get(metric, ()):
            if all(m.matches(names.get(m.name, "")) for m in matchers) and (
                key is None or all(names.get(k, "") == v for k, v in key.items())
            ):
                yield labels, names, value

    def total(self, metric: str, key: Mapping[str, str]) -> float | None:
        values = [v for _, _, v in self.select(metric, (), key)]
        return math.fsum(values) if values else None


_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True, slots=True)
class _Obs:
    """One observed series: what the kinds' step functions look at."""

    value: float
    key: dict[str, str]
    t_s: float
    scrape: _Scrape

    def holds(self, cond: WatchCondition, matchers: Sequence[Matcher]) -> bool:
        cmp = _OPS[cond.op]
        return any(
            cmp(v, cond.value) for _, _, v in self.scrape.select(cond.metric, matchers, self.key)
        )


@dataclass(frozen=True, slots=True)
class _Change:
    type: str
    before: float
    after: float
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Compiled:
    rule: WatchRule
    matchers: tuple[Matcher, ...]
    when: tuple[Matcher, ...]


_Result = tuple[StateEntry, _Change | None]
Step = Callable[[_Compiled, StateEntry | None, _Obs], _Result]


def _nums(prev: StateEntry | None, *names: str) -> tuple[float, ...] | None:
    """The stored numbers, or None when the entry is missing or not of this kind's shape."""
    if prev is None:
        return None
    values = [prev.get(n) for n in names]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return None
    return tuple(float(v) for v in values)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- kinds


def _value_change(c: _Compiled, prev: StateEntry | None, obs: _Obs) -> _Result:
    spec = c.rule.value_change
    assert spec is not None
    entry: StateEntry = {"v": obs.value}
    old = _nums(prev, "v")
    if old is None or old[0] == obs.value:
        return entry, None
    before = old[0]
    etype = (spec.rising if obs.value > before else spec.falling) or spec.type
    if etype is None:
        return entry, None
    extra: dict[str, Any] = {}
    if spec.value_names:
        extra = {
            "before_name": spec.value_names.get(before),
            "after_name": spec.value_names.get(obs.value),
        }
    return entry, _Change(etype, before, obs.value, extra)


def _increase(c: _Compiled, prev: StateEntry | None, obs: _Obs) -> _Result:
    spec = c.rule.increase
    assert spec is not None
    old = _nums(prev, "ref")
    if old is None or obs.value < old[0]:
        return {"ref": obs.value}, None
    ref = old[0]
    if obs.value - ref < spec.min_increase:
        return {"ref": ref}, None
    extra = {"increase": obs.value - ref}
    return {"ref": obs.value}, _Change(spec.type, ref, obs.value, extra)


def _level(thresholds: Sequence[float], value: float, old: int | None, hysteresis: float) -> int:
    up = sum(value > t for t in thresholds)
    if old is None or up >= old:
        return up
    return min(old, sum(value > t - hysteresis for t in thresholds))


def _threshold(c: _Compiled, prev: StateEntry | None, obs: _Obs) -> _Result:
    spec = c.rule.threshold
    assert spec is not None
    old = _nums(prev, "v", "level")
    if old is None:
        return {"v": obs.value, "level": _level(spec.thresholds, obs.value, None, 0.0)}, None
    old_level = min(max(int(old[1]), 0), len(spec.thresholds))
    level = _level(spec.thresholds, obs.value, old_level, spec.hysteresis)
    entry: StateEntry = {"v": obs.value, "level": level}
    if level == old_level:
        return entry, None
    etype: str | None
    if level > old_level:
        etype, crossed = spec.above, spec.thresholds[level - 1]
    else:
        etype, crossed = spec.below, spec.thresholds[level]
    if etype is None:
        return entry, None
    extra = {"threshold": crossed, "hysteresis": spec.hysteresis}
    return entry, _Change(etype, old[0], obs.value, extra)


def _stale_timestamp(c: _Compiled, prev: StateEntry | None, obs: _Obs) -> _Result:
    spec = c.rule.stale_timestamp
    assert spec is not None
    age = obs.t_s - obs.value
    holds = spec.when is None or obs.holds(spec.when, c.when)
    stale = age > spec.max_age and holds
    entry: StateEntry = {"v": obs.value, "stale": stale}
    old = _nums(prev, "v")
    if old is None or prev is None or not isinstance(prev.get("stale"), bool):
        return entry, None
    if prev["stale"] == stale:
        return entry, None
    etype = spec.stale if stale else spec.fresh
    if etype is None:
        return entry, None
    extra = {"age_seconds": age, "max_age_seconds": spec.max_age, "condition_holds": holds}
    return entry, _Change(etype, old[0], obs.value, extra)


def _histogram_delta(c: _Compiled, prev: StateEntry | None, obs: _Obs) -> _Result:
    spec = c.rule.histogram_delta
    assert spec is not None
    total = obs.scrape.total(f"{spec.histogram}_sum", obs.key)
    count = obs.scrape.total(f"{spec.histogram}_count", obs.key)
    entry: StateEntry = {"v": obs.value, "sum": total, "count": count}
    old = _nums(prev, "v")
    if old is None or obs.value <= old[0]:
        return entry, None
    d_sum: float | None = None
    d_count: float | None = None
    hist = _nums(prev, "sum", "count")
    if hist is not None and total is not None and count is not None and count >= hist[1]:
        d_sum, d_count = total - hist[0], count - hist[1]
    extra = {
        "increase": obs.value - old[0],
        "histogram": spec.histogram,
        "observed_count": d_count,
        "observed_sum": d_sum,
        "observed_mean": d_sum / d_count if d_sum is not None and d_count else None,
    }
    return entry, _Change(spec.type, old[0], obs.value, extra)


_STEPS: dict[str, Step] = {
    "value_change": _value_change,
    "increase": _increase,
    "threshold": _threshold,
    "stale_timestamp": _stale_timestamp,
    "histogram_delta": _histogram_delta,
}


# --------------------------------------------------------------------------- the watcher


def series_key(rule: str, job: str, instance: str, labels: Labels) -> str:
    """The state key of one series under one rule.

    >>> series_key("breaker", "api", "api:1", (("__name__", "b"), ("dependency", "sms")))
    '["breaker","api","api:1",[["dependency","sms"]]]'
    """
    rest = [[k, v] for k, v in labels if k != "__name__"]
    return json.dumps([rule, job, instance, rest], separators=(",", ":"))


class ChangeWatcher:
    """Turns scraped state changes into events, one per change, across restarts.

    >>> import asyncio
    >>> from agent.watch.state import InMemoryWatchStateStore
    >>> rule = WatchRule.model_validate({"name": "flag", "metric": "feature_flag_enabled",
    ...     "key": ["flag"], "value_change": {"type": "io.luckygas.pilot.flag.changed"}})
    >>> w = ChangeWatcher([rule], state=InMemoryWatchStateStore(), source="pilot-agent")
    >>> asyncio.run(w.restore())
    >>> def scrape(t_ms, v):
    ...     s = ((("__name__", "feature_flag_enabled"), ("flag", "f")), v)
    ...     return ScrapeReport("api", "api:1", (), t_ms, True, None, 0.01, (s,))
    >>> w.observe(scrape(0, 0.0)), [e.subject for e in w.observe(scrape(15_000, 1.0))]
    ([], ['flag/f'])
    """

    def __init__(self, rules: Sequence[WatchRule], *, state: WatchStateStore, source: str) -> None:
        names = [r.name for r in rules]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate watch rule names: {duplicates}")
        self._rules = [
            _Compiled(
                r,
                _compile(r.matchers),
                _compile(r.stale_timestamp.when.matchers)
                if r.stale_timestamp is not None and r.stale_timestamp.when is not None
                else (),
            )
            for r in rules
        ]
        self._store = state
        self._source = source
        self._state: dict[str, StateEntry] = {}
        self._dirty: set[str] = set()
        self._restored = False

    async def restore(self) -> None:
        """Load the last seen state; call once before the first :meth:`observe`."""
        loaded = await self._store.load()
        loaded.update({k: self._state[k] for k in self._dirty})
        self._state = loaded
        self._restored = True

    def observe(self, report: ScrapeReport) -> list[Event]:
        """Compare one scrape with the last seen state; the events to emit, in rule order."""
        if not self._restored:
            raise ComponentStateError("ChangeWatcher.restore() must run before observe()")
        if not report.success:
            return []
        scrape = _Scrape(report)
        events: list[Event] = []
        for c in self._rules:
            for labels, names, value in list(scrape.select(c.rule.metric, c.matchers)):
                event = self._one(c, report, scrape, labels, names, value)
                if event is not None:
                    events.append(event)
        return events

    async def persist(self) -> None:
        """Save the entries changed since the last persist; kept for the next try on failure."""
        if not self._dirty:
            return
        keys, self._dirty = self._dirty, set()
        try:
            await self._store.save({k: dict(self._state[k]) for k in keys})
        except BaseException:
            self._dirty |= keys
            raise

    def _one(
        self,
        c: _Compiled,
        report: ScrapeReport,
        scrape: _Scrape,
        labels: Labels,
        names: dict[str, str],
        value: float,
    ) -> Event | None:
        key = {k: names.get(k, "") for k in c.rule.key}
        state_key = series_key(c.rule.name, report.job, report.instance, labels)
        prev = self._state.get(state_key)
        obs = _Obs(value=value, key=key, t_s=report.t_ms / 1000, scrape=scrape)
        entry, change = _STEPS[c.rule.kind](c, prev, obs)
        if entry != prev:
            self._state[state_key] = entry
            self._dirty.add(state_key)
        if change is None:
            return None
        data: dict[str, Any] = {
            "rule": c.rule.name,
            "metric": c.rule.metric,
            "key": key,
            "labels": dict(names),
            "job": report.job,
            "instance": report.instance,
            "before": change.before,
            "after": change.after,
            **change.extra,
        }
        if c.rule.context:
            data["context"] = {m: scrape.total(m, key) for m in c.rule.context}
        subject = "/".join([c.rule.subject_prefix, *key.values()])
        return Event.new(
            type=change.type, source=self._source, subject=subject, data=data, time=obs.t_s
        )
