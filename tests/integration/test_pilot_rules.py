"""The pilot's rule files in rules/: valid, unit-tested, documented, and built on real metrics.

Each ``rules/<name>.rules.yml`` has a ``rules/tests/<name>.test.yml`` that runs
through Debian's ``/usr/bin/promtool test rules`` (2.42, left-closed ranges) and
through :func:`agent.rulefmt.cli.test_rules_main` (left-open ranges, as
Prometheus 3); both must pass. Every alert carries ``severity``, ``team`` and
``service``, a templated ``summary``/``description`` and a ``runbook_url`` to
``docs/runbooks/<AlertName>.md``, whose page exists with its three sections.
Every metric a rule or a runbook query reads is in docs/metrics-contract.md,
docs/metrics.md, the scrape self-metrics of exporters/scrape.py, the series every
scrape writes (``up``, ...), or a recording rule of rules/.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from agent.promql.nodes import (
    parse_query,
)
from agent.promql.value import QueryError
from agent.rulefmt import cli
from agent.rules.group import ANY_METRIC, selected_metric_names
from agent.scrape.target import REPORT_SERIES
from exporters.scrape import ScrapeMetricsExporter
from tests.support import require_binary

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules"
RUNBOOKS = ROOT / "docs" / "runbooks"
RULE_FILES = sorted(RULES.glob("*.rules.yml"))
TEST_FILES = sorted((RULES / "tests").glob("*.test.yml"))
RUNBOOK_URL = "https://github.com/luckygas/pilot-agent/blob/main/docs/runbooks/{}.md"
SECTIONS = ("## What it means", "## How to confirm", "## What to do")
SEVERITIES = {"critical", "warning", "info"}
SUFFIXES = ("_bucket", "_count", "_sum", "_created")


def _rules(path: Path) -> Iterator[dict[str, Any]]:
    for group in yaml.safe_load(path.read_text())["groups"]:
        yield from group["rules"]


ALERTS = {r["alert"]: r for path in RULE_FILES for r in _rules(path) if "alert" in r}
RECORDED = {r["record"] for path in RULE_FILES for r in _rules(path) if "record" in r}


def _documented_metrics() -> set[str]:
    """First-column names of the metric tables, the scrape self-metrics and scrape series."""
    names: set[str] = set()
    for doc in ("metrics-contract.md", "metrics.md"):
        for line in (ROOT / "docs" / doc).read_text().splitlines():
            cell = line.split("|")[1] if line.startswith("| `") else ""
            names.update(re.findall(r"`([a-zA-Z_:][a-zA-Z0-9_:]*)`", cell))
    registry = CollectorRegistry()
    metrics = ScrapeMetricsExporter(registry)
    metrics.scrape_finished("job", "host:1", duration_seconds=0.1, samples=1, failure=None)
    names.update(s.name for family in registry.collect() for s in family.samples)
    return names | set(REPORT_SERIES) | RECORDED


KNOWN = _documented_metrics()


def _metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (by name or by an equality ``__name__`` matcher)."""
    parse_query(expr)  # raises on a bad expression (selected_metric_names would not)
    names = set(selected_metric_names(expr))
    assert ANY_METRIC not in names, f"selector without a metric name in {expr!r}"
    return names


def _unknown(names: set[str]) -> set[str]:
    def known(name: str) -> bool:
        base = next((name.removesuffix(s) for s in SUFFIXES if name.endswith(s)), name)
        return name in KNOWN or base in KNOWN

    return {n for n in names if not known(n)}


def _runbook_queries() -> Iterator[tuple[str, str]]:
    for page in sorted(RUNBOOKS.glob("*.md")):
        for block in re.findall(r"```promql\n(.*?)```", page.read_text(), re.S):
            try:  # one (multi-line) expression, else one query a line
                parse_query(block)
            except QueryError:
                yield from ((page.name, line) for line in block.splitlines() if line.strip())
            else:
                yield page.name, block


@pytest.fixture(scope="module")
def promtool() -> str:
    """Path of promtool (a missing binary fails the tests)."""
    return require_binary("promtool")


def _run(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


def test_every_rule_file_has_a_test_file() -> None:
    """Each rules/<name>.rules.yml has exactly one rules/tests/<name>.test.yml, and back."""
    assert len(RULE_FILES) == 6
    assert [p.name.removesuffix(".rules.yml") for p in RULE_FILES] == [
        p.name.removesuffix(".test.yml") for p in TEST_FILES
    ]


def test_promtool_check_rules_is_clean(promtool: str) -> None:
    """`promtool check rules rules/*.yml` exits 0 without a warning."""
    done = _run(promtool, "check", "rules", *(str(p.relative_to(ROOT)) for p in RULE_FILES))
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") == len(RULE_FILES)


def test_agent_check_rules_is_clean(capsys: pytest.CaptureFixture[str]) -> None:
    """`pilot-agent check rules rules/*.yml` exits 0 without a warning."""
    status = cli.check_rules_main([str(p) for p in RULE_FILES])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert "WARNING" not in out + err


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_promtool_test_rules_passes(path: Path, promtool: str) -> None:
    """The rule unit tests pass in promtool 2.42."""
    done = _run(promtool, "test", "rules", str(path.relative_to(ROOT)))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_agent_test_rules_passes(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The rule unit tests pass in pilot-agent's engine."""
    status = cli.test_rules_main([str(path)])
    out, err = capsys.readouterr()
    assert status == 0, out + err
    assert "WARNING" not in err


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_every_rule_is_unit_tested(path: Path) -> None:
    """Each alert is tested firing and not firing, each recording rule by a PromQL test."""
    test_file = RULES / "tests" / path.name.replace(".rules.", ".test.")
    tests = yaml.safe_load(test_file.read_text())["tests"]
    alert_tests = [t for group in tests for t in group.get("alert_rule_test", [])]
    exprs = " ".join(t["expr"] for group in tests for t in group.get("promql_expr_test", []))
    for rule in _rules(path):
        if "record" in rule:
            assert rule["record"] in exprs, rule["record"]
            continue
        mine = [t for t in alert_tests if t["alertname"] == rule["alert"]]
        assert any(t.get("exp_alerts") for t in mine), f"{rule['alert']} never fires"
        assert any(not t.get("exp_alerts") for t in mine), f"{rule['alert']} never stays quiet"


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_alert_is_labelled_and_documented(name: str) -> None:
    """The alert has severity/team/service, templated annotations and a complete runbook."""
    rule = ALERTS[name]
    labels, annotations = rule["labels"], rule["annotations"]
    assert labels["severity"] in SEVERITIES
    assert labels["team"] and labels["service"]
    assert set(annotations) == {"summary", "description", "runbook_url"}
    assert "{{" in annotations["description"]
    assert annotations["runbook_url"] == RUNBOOK_URL.format(name)
    page = (RUNBOOKS / f"{name}.md").read_text()
    assert page.startswith(f"# {name}\n")
    positions = [page.find(section) for section in SECTIONS]
    assert -1 not in positions and positions == sorted(positions), positions


def test_runbook_index_lists_every_alert() -> None:
    """docs/runbooks/ holds one page per alert plus README.md, which links each of them."""
    index = (RUNBOOKS / "README.md").read_text()
    pages = {p.stem for p in RUNBOOKS.glob("*.md")} - {"README"}
    assert pages == set(ALERTS)
    assert all(f"]({name}.md)" in index for name in ALERTS)
    assert "## Planned alerts" in index


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_rules_read_only_existing_metrics(path: Path) -> None:
    """Every metric a rule selects is documented, exported by the agent, or recorded."""
    used = set().union(*(_metric_names(rule["expr"]) for rule in _rules(path)))
    assert used
    assert not _unknown(used)


def test_runbook_queries_parse_and_read_existing_metrics() -> None:
    """Every line of a runbook's promql block parses and reads only existing metrics."""
    unknown = {}
    for page, query in _runbook_queries():
        names = _unknown(_metric_names(query))
        if names:
            unknown[page] = names
    assert not unknown


def test_alertmanager_inhibitions_name_real_alerts() -> None:
    """The alert names alertmanager.yml's inhibit rules rely on exist in rules/."""
    config = yaml.safe_load((ROOT / "alertmanager" / "alertmanager.yml").read_text())
    for inhibit in config["inhibit_rules"]:
        source = re.fullmatch(r'alertname="(\w+)"', inhibit["source_matchers"][0])
        target = re.fullmatch(r'alertname=~"(.+)"', inhibit["target_matchers"][0])
        assert source and source.group(1) in ALERTS, inhibit
        assert target and any(re.fullmatch(target.group(1), a) for a in ALERTS), inhibit


@pytest.mark.parametrize("rule_file", sorted(RULES.glob("*.rules.yml")), ids=lambda p: p.name)
def test_tests_order_groups_that_read_other_groups_recordings(rule_file: Path) -> None:
    """A group reading another group's recording rules is evaluated after it in the tests
    (promtool orders groups at random on every tick without group_eval_order)."""
    groups = yaml.safe_load(rule_file.read_text())["groups"]
    produced = {
        rule["record"]: group["name"]
        for group in groups
        for rule in group["rules"]
        if "record" in rule
    }
    needs: set[tuple[str, str]] = set()
    for group in groups:
        for rule in group["rules"]:
            for name in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", str(rule["expr"])):
                if produced.get(name, group["name"]) != group["name"]:
                    needs.add((produced[name], group["name"]))
    test_file = RULES / "tests" / rule_file.name.replace(".rules.yml", ".test.yml")
    order = yaml.safe_load(test_file.read_text()).get("group_eval_order", [])
    for producer, consumer in sorted(needs):
        assert producer in order and consumer in order, (producer, consumer)
        assert order.index(producer) < order.index(consumer), (producer, consumer)
