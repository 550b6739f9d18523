"""The Grafana dashboards in dashboards/: committed as generated, and built on real metrics.

Metric names a query may read come from what cannot drift: the tables of
docs/metrics-contract.md (tested against the simulator's exposition), the
``record:`` names of rules/*.yml, and the agent's own metrics collected from
the registry of a real ``Agent`` plus the probe series its code writes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics_core import Metric

from agent.app import Agent
from agent.checks.probe_series import probe_samples
from agent.config import AgentConfig
from agent.model import CheckResult, StepResult
from agent.promql.nodes import (
    VectorSel,
    parse_query,
)
from agent.rules.alerting import ALERTS_FOR_STATE_METRIC, ALERTS_METRIC
from agent.rules.group import ANY_METRIC, selected_metric_names
from agent.scrape.target import REPORT_SERIES
from dashboards import build
from dashboards.layout import Query, queries, to_dict

ROOT = Path(__file__).resolve().parents[2]
UIDS = {
    "pilot-overview",
    "pilot-feature-flags",
    "pilot-migration",
    "pilot-dual-write",
    "pilot-failover",
    "pilot-synthetic-checks",
    "pilot-agent-health",
}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
GRAFANA_DURATIONS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "3h"}
"""What Grafana substitutes with its default 15 s scrape interval over a 3 h range."""

# Delivery metrics that other engineers are adding (event spool and Kafka sink,
# state store, leader lease); the Agent Health dashboard shows them already. The
# lead removes each name here once its exporter is registered on Agent.registry
# (test_pending_metrics_are_not_exported_yet fails as soon as one is).

DASHBOARDS = {uid: to_dict(model) for uid, model in build.render_dashboards().items()}
QUERIES = [query for data in DASHBOARDS.values() for query in queries(data)]


def _rules() -> Iterator[dict[str, Any]]:
    for path in sorted((ROOT / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            yield from group["rules"]


RULES = list(_rules())
RECORDED = {r["record"] for r in RULES if "record" in r}
ALERT_NAMES = {r["alert"] for r in RULES if "alert" in r}
SEVERITIES = {r["labels"]["severity"] for r in RULES if "alert" in r}


def _contract_metrics() -> set[str]:
    """First-column names of the tables of docs/metrics-contract.md."""
    names: set[str] = set()
    for line in (ROOT / "docs" / "metrics-contract.md").read_text().splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([a-zA-Z_:][a-zA-Z0-9_:]*)`", line.split("|")[1]))
    return names


def _sample_names(family: Metric) -> set[str]:
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "summary": ("", "_count", "_sum", "_created"),
        "info": ("_info",),
    }.get(family.type, ("",))
    return {family.name + suffix for suffix in suffixes}


def _agent_metrics() -> set[str]:
    """Everything a real agent exports or writes to its store, every optional feature on.

    (Leader election adds ``agent_leader``; constructing the agent connects to nothing.)
    """
    ha = {"redis": {"url": "redis://127.0.0.1:1/0"}, "leader_election": {"enabled": True}}
    agent = Agent(AgentConfig.model_validate({"state": ha}))
    names = {name for family in agent.registry.collect() for name in _sample_names(family)}
    results = [
        CheckResult(
            "api",
            "http",
            True,
            0.0,
            0.1,
            status_code=200,
            phases={"connect": 0.01, "processing": 0.05},
            ssl_earliest_cert_expiry=1.0,
            ssl_last_chain_expiry=1.0,
        ),
        CheckResult("flow", "flow", True, 0.0, 0.2, steps=(StepResult("login", True, 0.1),)),
    ]
    names |= {name for r in results for name, _, _ in probe_samples(r, {"check": r.check})}
    return names | set(REPORT_SERIES) | {ALERTS_METRIC, ALERTS_FOR_STATE_METRIC}


AGENT_METRICS = _agent_metrics()
KNOWN = _contract_metrics() | RECORDED | AGENT_METRICS


def _grafana(expr: str) -> str:
    for variable, duration in GRAFANA_DURATIONS.items():
        expr = expr.replace(variable, duration)
    return expr


def _metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (by name or by an equality ``__name__`` matcher)."""
    parse_query(_grafana(expr))  # raises on a bad expression (selected_metric_names would not)
    names = set(selected_metric_names(_grafana(expr)))
    assert ANY_METRIC not in names, f"selector without a metric name in {expr!r}"
    return names


def _known(name: str) -> bool:
    """Known as is, or a histogram's series of a contract metric (``_bucket``, ...)."""
    suffixes = ("_bucket", "_count", "_sum")
    return name in KNOWN or any(name.removesuffix(s) in KNOWN for s in suffixes)


def _panels() -> Iterator[tuple[str, dict[str, Any]]]:
    for uid, data in DASHBOARDS.items():
        for panel in data["panels"]:
            if panel["type"] != "row":
                yield uid, panel


def test_committed_files_are_what_the_code_generates() -> None:
    """dashboards/json/*.json and docs/dashboards.md equal a fresh build (run
    `python -m dashboards.build` when this fails)."""
    assert build.differences(ROOT) == []


def test_uids_are_the_stable_ones_and_unique() -> None:
    """The seven dashboards keep their uids, one file each, named after the uid."""
    models = [b() for b in build.BUILDERS]
    assert sorted(m.uid or "" for m in models) == sorted(UIDS)
    assert {p.stem for p in (ROOT / "dashboards" / "json").glob("*.json")} == UIDS
    assert all(data["uid"] == uid for uid, data in DASHBOARDS.items())


def test_every_panel_query_and_annotation_reads_the_datasource_variable() -> None:
    """Each dashboard has a Prometheus `datasource` variable that every panel, target
    and annotation uses."""
    for uid, data in DASHBOARDS.items():
        variables = {v["name"]: v for v in data["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource", uid
        assert variables["datasource"]["query"] == "prometheus", uid
        for annotation in data["annotations"]["list"]:
            assert annotation["datasource"] == DATASOURCE, uid
    for uid, panel in _panels():
        assert panel["datasource"] == DATASOURCE, (uid, panel["title"])
        assert panel["targets"], (uid, panel["title"])
        assert all(t["datasource"] == DATASOURCE for t in panel["targets"]), (uid, panel["title"])


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: f"{q.uid}:{q.panel}:{q.ref}")
def test_every_query_parses(query: Query) -> None:
    """Every panel and annotation query parses once Grafana's variables are substituted."""
    parse_query(_grafana(query.expr))


def test_every_metric_a_query_reads_exists() -> None:
    """Each metric name is in the contract, a recording rule or the agent's own metrics."""
    used = {name for q in QUERIES for name in _metric_names(q.expr)}
    unknown = {n for n in used if not _known(n)}
    assert unknown == set()


def test_annotations_mark_firing_alerts_that_exist() -> None:
    """Each dashboard's annotation reads ALERTS{alertstate="firing"} for alerts of rules/."""
    for uid, data in DASHBOARDS.items():
        (annotation,) = data["annotations"]["list"]
        assert annotation["enable"] is True, uid
        selector = parse_query(annotation["expr"])
        assert isinstance(selector, VectorSel) and selector.name == "ALERTS", uid
        matchers = {m.name: m for m in selector.matcher_sets[0]}
        assert matchers["alertstate"].value == "firing", uid
        names = set(matchers["alertname"].value.split("|")) if "alertname" in matchers else set()
        assert names <= ALERT_NAMES, uid
        assert names or matchers["severity"].value in SEVERITIES, uid


def test_panels_are_complete() -> None:
    """Every panel has a unique id, a title, a description, a unit, options, and one
    refId per query."""
    for uid, data in DASHBOARDS.items():
        ids = [p["id"] for p in data["panels"]]
        assert len(ids) == len(set(ids)), uid
    for uid, panel in _panels():
        where = (uid, panel["title"])
        assert panel["title"] and panel["description"].endswith("."), where
        assert panel["fieldConfig"]["defaults"]["unit"], where
        assert isinstance(panel["options"], dict), where
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)) and "" not in refs, where


SLO_THRESHOLDS = {
    ("pilot-overview", "API p95 latency (5m)"): 0.2,
    ("pilot-overview", "API p95 latency"): 0.2,
    ("pilot-overview", "API error ratio"): 0.001,
    ("pilot-overview", "API availability (5m)"): 0.999,
    ("pilot-feature-flags", "Evaluation error ratio (5m)"): 0.01,
    ("pilot-dual-write", "Lag"): 30,
    ("pilot-dual-write", "Queue depth"): 1000,
    ("pilot-dual-write", "Failure ratio by operation"): 0.01,
    ("pilot-failover", "Switch duration p95 (1h)"): 5,
    ("pilot-failover", "Switches (15m)"): 4,
    ("pilot-migration", "Since the last batch"): 600,
    ("pilot-synthetic-checks", "Certificate expiry"): 3 * 86400,
}


def test_thresholds_sit_at_the_slo_and_alert_values() -> None:
    """Panels of SLO and alert quantities colour at the value the SLO or alert uses."""
    seen = set()
    for uid, panel in _panels():
        key = (uid, panel["title"])
        if key in SLO_THRESHOLDS:
            steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
            assert SLO_THRESHOLDS[key] in [s["value"] for s in steps], key
            seen.add(key)
    assert seen == set(SLO_THRESHOLDS)


def test_docs_list_every_panel_and_query() -> None:
    """docs/dashboards.md names every dashboard and panel and shows every query."""
    docs = (ROOT / "docs" / "dashboards.md").read_text()
    for uid, panel in _panels():
        assert f"| {panel['title']} |" in docs and uid in docs
    for query in QUERIES:
        assert query.expr.replace("|", "\\|") in docs


def test_build_writes_checks_and_removes_stale_files(tmp_path: Path) -> None:
    """`--check` fails on a tree without the files, the build writes them (dropping a
    stale dashboard), and `--check` then passes."""
    stale = tmp_path / "dashboards" / "json" / "pilot-old.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}\n")
    assert build.main(["--check", "--root", str(tmp_path)]) == 1
    assert build.main(["--root", str(tmp_path)]) == 0
    assert not stale.exists()
    assert build.main(["--check", "--root", str(tmp_path)]) == 0
    assert (tmp_path / "docs" / "dashboards.md").read_text().endswith("|\n")
