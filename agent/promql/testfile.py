"""Run Prometheus's PromQL test scripts (``.test`` files) against our engine.

The runner follows Prometheus's harness (``promql/promqltest/test.go``): ``load``
writes into a fresh store, ``clear`` starts a new one, and every ``eval`` runs its
query and compares the result: values with a relative tolerance of 1e-6 (NaN equals
NaN), order only for ``eval_ordered``/``expect ordered``, range results by labels,
which must come sorted. Each instant eval is also run with ``@ <t>`` on its
selectors at other evaluation times, and as a range query around ``t`` whose middle
step must agree, as the harness does.

Counts are of eval statements; a ``load``, ``clear`` or unknown command only counts
when it cannot be parsed (a failure). An eval is *skipped*, never passed, when it
needs what we do not have: native histograms, ``load_with_nhcb``, ``@st`` start
timestamps, or syntax promql-parser cannot read.

>>> from agent.promql.testfile import run_script
>>> result = run_script("eval instant at 0 1 + 1\\n  2\\n", engine=my_engine)  # doctest: +SKIP
>>> result.passed, result.failed, result.skipped  # doctest: +SKIP
(1, 0, 0)

``pilot-agent promqltest FILE...`` is :func:`main`. The pieces live beside this
module: ``testfile_parse`` (statements) and ``testfile_values`` (their notations),
``testfile_at`` (the ``@`` rewrite and promql-parser checks), ``testfile_compare``
(judging results), ``testfile_result`` (outcomes) and ``testfile_cli`` (the report).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from agent.promql.testfile_at import at_modifier_variant, expr_info, reads
from agent.promql.testfile_cli import arg_parser, report, write_floor
from agent.promql.testfile_compare import (
    EPSILON,
    Failure,
    almost_equal,
    assert_sorted,
    check_annotations,
    check_failure,
    compare,
    render,
    render_expected,
)
from agent.promql.testfile_parse import Clear, Eval, Invalid, Load, Statement, parse_script
from agent.promql.testfile_result import FileResult, Outcome, StatementResult
from agent.promql.value import Engine, Matrix, QueryError, Sample, Scalar, Value, Vector
from agent.tsdb.base import Labels, Queryable

__all__ = [
    "EPSILON",
    "FileResult",
    "Outcome",
    "ScriptRunner",
    "StatementResult",
    "TestStorage",
    "almost_equal",
    "default_engine",
    "default_store",
    "main",
    "run_file",
    "run_script",
    "write_floor",
]

_CONTEXT_FUNCS = re.compile(r"(start|end|range|step)\(\)")


class TestStorage(Queryable, Protocol):
    """What the runner loads into and the engine reads: a fresh one per ``clear``.

    Only ``append`` is needed for writing (``stale`` is written as STALE_NAN).
    """

    def append(self, labels: Labels, t_ms: int, value: float) -> bool: ...


def default_engine() -> Engine:
    """The real engine, imported lazily so this module loads before it exists."""
    from agent.promql.engine import PromQLEngine

    return PromQLEngine()


def default_store() -> TestStorage:
    """A new, empty real series store."""
    from agent.tsdb.store import SeriesStore

    return SeriesStore()


@dataclass(frozen=True, slots=True)
class _Taint:
    labels: Labels
    reason: str
    line: int


class ScriptRunner:
    """Runs parsed scripts against an engine, with a fresh store from ``new_store`` per clear.

    >>> runner = ScriptRunner(PromQLEngine(), new_store=SeriesStore)  # doctest: +SKIP
    >>> script = parse_script(Path("selectors.test").read_text())  # doctest: +SKIP
    >>> runner.run(script, "selectors.test").summary()  # doctest: +SKIP
    '28 passed, 3 failed, 0 skipped'
    """

    def __init__(self, engine: Engine, new_store: Callable[[], TestStorage]) -> None:
        expr_info.cache_clear()  # promql-parser's function registry is global; the engine may add
        self.engine = engine
        self.new_store = new_store
        self._store: TestStorage = new_store()
        self._taints: list[_Taint] = []
        self._broken_load = 0
        self._notes: list[str] = []

    def run(self, statements: Iterable[Statement], name: str = "<script>") -> FileResult:
        self._reset()
        self._notes = []
        results: list[StatementResult] = []
        for stmt in statements:
            if isinstance(stmt, Clear):
                self._reset()
            elif isinstance(stmt, Load):
                self._load(stmt)
            elif isinstance(stmt, Invalid):
                kind = stmt.text.split(None, 1)[0]
                if kind.startswith("load"):
                    self._broken_load = stmt.line
                results.append(
                    StatementResult(stmt.line, kind, stmt.text, "failed", stmt.error, "parse")
                )
            else:
                results.append(self._eval(stmt))
        return FileResult(name, tuple(results), tuple(self._notes))

    def _reset(self) -> None:
        self._store = self.new_store()
        self._taints = []
        self._broken_load = 0

    def _load(self, load: Load) -> None:
        rejected = 0
        for series in load.series:
            for i, value in enumerate(series.values):
                if value is not None and not self._store.append(
                    series.labels, i * load.step_ms, value
                ):
                    rejected += 1
        if rejected:
            self._notes.append(f"line {load.line}: the store rejected {rejected} samples")
        self._taints += [_Taint(u.labels, u.reason, load.line) for u in load.unsupported]

    def _eval(self, ev: Eval) -> StatementResult:
        skip = self._skip_reason(ev)
        if skip is not None:
            category, message = skip
            return StatementResult(ev.line, ev.kind, ev.expr, "skipped", message, category)
        try:
            failure = self._exec_range(ev) if ev.is_range else self._exec_instant(ev)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # an engine bug must not stop the file
            failure = Failure(f"engine raised {type(exc).__name__}: {exc}")
        if failure is None:
            return StatementResult(ev.line, ev.kind, ev.expr, "passed")
        return StatementResult(
            ev.line,
            ev.kind,
            ev.expr,
            "failed",
            failure.message,
            "eval",
            render_expected(ev),
            failure.actual,
        )

    def _skip_reason(self, ev: Eval) -> tuple[str, str] | None:
        if ev.unsupported is not None:
            return ev.unsupported, ev.unsupported
        if self._broken_load:
            reason = "follows a load that could not be parsed"
            return reason, f"{reason} (line {self._broken_load})"
        info = expr_info(ev.expr)
        if isinstance(info, str):
            return "promql-parser cannot parse the expression", f"promql-parser: {info}"
        for taint in self._taints:
            if reads(info, taint.labels):
                return taint.reason, f"reads {taint.reason} loaded at line {taint.line}"
        return None

    # -- range evals

    def _exec_range(self, ev: Eval) -> Failure | None:
        try:
            res = self.engine.range(self._store, ev.expr, ev.start_ms, ev.end_ms, ev.step_ms)
        except QueryError as exc:
            if ev.fail:
                return check_failure(ev, exc)
            return Failure(f"error evaluating query: {exc}", f"error: {exc}")
        if ev.fail:
            return Failure("expected an error evaluating the query but got none", render(res.value))
        return check_annotations(ev, res) or compare(ev, res.value)

    # -- instant evals, with the harness's extra runs

    def _exec_instant(self, ev: Eval) -> Failure | None:
        t = ev.end_ms if ev.range_vector else ev.start_ms
        for query, at in [(ev.expr, t), *self._at_variants(ev, t)]:
            failure = self._run_instant(ev, query, at)
            if failure is not None:
                if query != ev.expr or at != t:
                    failure = Failure(
                        f"{failure.message} [run as {query!r} at {at}ms]", failure.actual
                    )
                return failure
        return None

    def _at_variants(self, ev: Eval, t: int) -> list[tuple[str, int]]:
        info = expr_info(ev.expr)
        if isinstance(info, str) or info.at_unsafe:
            return []
        variant = at_modifier_variant(ev.expr, t) or ""
        check = expr_info(variant) if variant else "unreadable"
        if isinstance(check, str) or check.shape != info.shape or not check.top_level_at_ok:
            self._notes.append(f"line {ev.line}: could not add @ modifiers; those runs skipped")
            return []
        times = [-1000, 0, 1000] if t == 0 else [-10 * t, 0, t // 5, t, 10 * t]
        return [(variant, at) for at in times]

    def _run_instant(self, ev: Eval, query: str, t: int) -> Failure | None:
        try:
            res = self.engine.instant(self._store, query, t)
        except QueryError as exc:
            if ev.fail:
                return check_failure(ev, exc)
            return Failure(f"error evaluating query: {exc}", f"error: {exc}")
        if ev.fail:
            return Failure("expected an error evaluating the query but got none", render(res.value))
        failure = check_annotations(ev, res) or compare(ev, res.value)
        if failure is not None or ev.exclude_from_range or _CONTEXT_FUNCS.search(query):
            return failure
        return self._range_mode(ev, query, t, res.value)

    def _range_mode(self, ev: Eval, query: str, t: int, instant: Value) -> Failure | None:
        """The instant result must equal the middle step of a range query around ``t``."""
        try:
            res = self.engine.range(self._store, query, t - 60_000, t + 60_000, 60_000)
        except QueryError as exc:
            return Failure(f"error evaluating query in range mode: {exc}", f"error: {exc}")
        if ev.ordered:
            return None
        if not isinstance(res.value, Matrix):
            return Failure("range mode: result is not a matrix", render(res.value))
        failure = assert_sorted(res.value.series)
        samples = [(s.labels, v) for s in res.value.series for ts, v in s.points if ts == t]
        if failure is None and isinstance(instant, Scalar):
            if not samples:
                return Failure("range mode: no point at the evaluation time", render(res.value))
            failure = compare(ev, Scalar(samples[0][1], t))
        elif failure is None:
            failure = compare(ev, Vector([Sample(lbl, v, t) for lbl, v in samples]))
        if failure is None:
            return None
        return Failure(f"range mode: {failure.message}", failure.actual or render(res.value))


# --- entry points ------------------------------------------------------------------------


def run_script(
    text: str,
    name: str = "<script>",
    *,
    engine: Engine | None = None,
    new_store: Callable[[], TestStorage] | None = None,
) -> FileResult:
    """Parse and run one script; the real engine and store unless others are given."""
    runner = ScriptRunner(engine or default_engine(), new_store or default_store)
    return runner.run(parse_script(text), name)


def run_file(
    path: str | Path,
    *,
    engine: Engine | None = None,
    new_store: Callable[[], TestStorage] | None = None,
) -> FileResult:
    """Run one ``.test`` file; an unreadable file is one failed statement."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        failure = StatementResult(0, "file", str(path), "failed", f"cannot read: {exc}", "file")
        return FileResult(str(path), (failure,))
    return run_script(text, str(path), engine=engine, new_store=new_store)


def main(
    argv: list[str] | None = None,
    *,
    engine: Engine | None = None,
    new_store: Callable[[], TestStorage] | None = None,
) -> int:
    """``pilot-agent promqltest FILE...``: 0 when nothing failed, 1 otherwise, 2 on bad usage."""
    args = arg_parser().parse_args(argv)
    try:
        engine = engine or default_engine()
    except ImportError as exc:
        print(f"promqltest: the PromQL engine is not available: {exc}", file=sys.stderr)
        return 2
    results = [run_file(f, engine=engine, new_store=new_store) for f in args.files]
    return report(results, args)


if __name__ == "__main__":
    sys.exit(main())
