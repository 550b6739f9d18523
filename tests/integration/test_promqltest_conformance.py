"""Conformance floor: the engine passes at least the recorded number of upstream PromQL tests.

Runs the test-file runner (``agent.promql.testfile``) in-process, with the real
``PromQLEngine`` and ``SeriesStore``, over ten of Prometheus v3.14's test scripts
in ``../shared/promqltest`` (next to the repository). The data directory must
exist: a missing one fails the test, it is never skipped.

``tests/promqltest_floor.json`` holds, per file, the number of eval statements
that passed when it was last recorded. A file passing fewer is a regression. After
the engine improves, raise the floor with::

    .venv/bin/python -m agent.promql.testfile --write-floor tests/promqltest_floor.json \\
        ../shared/promqltest/{aggregators,collision,functions,histograms,literals}.test \\
        ../shared/promqltest/{operators,range_queries,selectors,staleness,trig_functions}.test

(``--write-floor`` merges the given files' counts into the JSON and exits 0.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.promql.testfile import FileResult, default_engine, run_file

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "promqltest"
FLOOR = ROOT / "tests" / "promqltest_floor.json"
FILES = [
    "aggregators.test",
    "collision.test",
    "functions.test",
    "histograms.test",
    "literals.test",
    "operators.test",
    "range_queries.test",
    "selectors.test",
    "staleness.test",
    "trig_functions.test",
]


@pytest.fixture(scope="module")
def results() -> dict[str, FileResult]:
    assert DATA.is_dir(), f"PromQL test data directory {DATA} is missing"
    engine = default_engine()
    return {name: run_file(DATA / name, engine=engine) for name in FILES}


@pytest.mark.parametrize("name", FILES)
def test_file_passes_at_least_its_floor(name: str, results: dict[str, FileResult]) -> None:
    """Each script passes at least as many eval statements as the recorded floor."""
    floor = json.loads(FLOOR.read_text())
    assert name in floor, f"{name} has no floor in {FLOOR.name}"
    result = results[name]
    print(f"{name}: {result.summary()} (floor {floor[name]})")
    failures = [
        f"line {s.line}: {s.expr}: {s.message}"
        for s in result.statements[:]
        if s.outcome == "failed"
    ]
    assert result.passed >= floor[name], "\n".join([result.summary(), *failures[:10]])


def test_totals_and_nothing_counted_twice(results: dict[str, FileResult]) -> None:
    """Prints the totals; every eval statement of every script is counted exactly once."""
    for name, result in results.items():
        evals = sum(1 for line in (DATA / name).read_text().splitlines() if line.startswith("eval"))
        assert len(result.statements) == evals, name
    total = FileResult("total", tuple(s for r in results.values() for s in r.statements))
    print(f"promqltest total over {len(results)} files: {total.summary()}")
