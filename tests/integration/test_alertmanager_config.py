"""The pilot's Alertmanager configuration, checked with the real amtool and Alertmanager.

The alerts are read from rules/*.yml when the tests run, so a new rule is routed,
rendered and checked against the inhibitions without touching this file. No alert
at all is a failure, never a skip.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from agent.rulefmt.loader import load_rule_files
from agent.rules.model import AlertingRule
from tests.support import free_port, require_binary

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "alertmanager" / "alertmanager.yml"
RULES = ROOT / "rules" / "*.yml"
# Receivers by severity, in the order of the routes (amtool prints them in that order).
RECEIVERS = ("archive", "oncall-pager", "pilot-chat")
EXPECTED = {
    "critical": ("archive", "oncall-pager"),
    "warning": ("archive", "pilot-chat"),
    "info": ("archive",),
}
UNKNOWN_SEVERITY = ("archive", "pilot-chat")
TEMPLATED = "templated-in-rule"  # stands for a label value the rule computes at run time


@dataclass(frozen=True)
class RuleAlert:
    """An alerting rule of rules/*.yml with its static labels (group labels merged)."""

    name: str
    file: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "")


def rule_alerts() -> list[RuleAlert]:
    """Every alerting rule in rules/*.yml; none at all fails the calling test."""
    found = [
        RuleAlert(
            rule.name,
            group.file,
            {**_literal(group.labels), **_literal(rule.labels), "alertname": rule.name},
            dict(rule.annotations),
        )
        for group in load_rule_files([str(RULES)])
        for rule in group.rules
        if isinstance(rule, AlertingRule)
    ]
    if not found:
        pytest.fail(
            f"no alerting rules in {RULES}: the Alertmanager tests route the pilot's alerts"
        )
    return found


def _literal(labels: Mapping[str, str]) -> dict[str, str]:
    """Label values a rule computes with a template are unknown here: a placeholder stands in."""
    return {k: TEMPLATED if "{{" in v else v for k, v in labels.items()}


def _config() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    return loaded


def _amtool(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [require_binary("amtool"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False)


def _label_args(labels: Mapping[str, str]) -> list[str]:
    """amtool's label arguments, values quoted as in a matcher."""
    quote = {ord("\\"): "\\\\", ord('"'): '\\"', ord("\n"): "\\n"}
    return [f'{name}="{value.translate(quote)}"' for name, value in sorted(labels.items())]


def _route(labels: Mapping[str, str], expected: Sequence[str]) -> tuple[str, int]:
    """The receivers amtool resolves for ``labels`` (comma-separated) and its exit code."""
    done = _amtool(
        "config",
        "routes",
        "test",
        f"--config.file={CONFIG}",
        f"--verify.receivers={','.join(expected)}",
        *_label_args(labels),
    )
    return done.stdout.strip().splitlines()[0] if done.stdout.strip() else "", done.returncode


# --------------------------------------------------------------------------- matchers


MATCHER = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*')


@dataclass(frozen=True)
class Matcher:
    """One Alertmanager matcher (`name op "value"`), evaluated as Alertmanager does."""

    name: str
    op: str
    value: str

    @classmethod
    def parse(cls, text: str) -> Matcher:
        m = MATCHER.fullmatch(text)
        assert m, f"matcher {text!r} is not name, operator and double-quoted value"
        return cls(m[1], m[2], re.sub(r"\\(.)", r"\1", m[3]))

    def __call__(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.name, "")
        if self.op in ("=", "!="):
            hit = value == self.value
        else:
            hit = re.fullmatch(self.value, value) is not None
        return hit if self.op in ("=", "=~") else not hit


@dataclass(frozen=True)
class Inhibition:
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]

    def sources(self, alerts: Sequence[RuleAlert]) -> list[RuleAlert]:
        return [a for a in alerts if all(m(a.labels) for m in self.source)]

    def targets(self, alerts: Sequence[RuleAlert]) -> list[RuleAlert]:
        return [a for a in alerts if all(m(a.labels) for m in self.target)]


def inhibitions() -> list[Inhibition]:
    rules = _config().get("inhibit_rules") or []
    return [
        Inhibition(
            tuple(Matcher.parse(m) for m in rule.get("source_matchers") or []),
            tuple(Matcher.parse(m) for m in rule.get("target_matchers") or []),
            tuple(rule.get("equal") or []),
        )
        for rule in rules
    ]


# --------------------------------------------------------------------------- amtool


def test_amtool_check_config_passes_with_templates_found() -> None:
    """`amtool check-config` accepts the file, and its template globs find pilot.tmpl."""
    done = _amtool("check-config", str(CONFIG))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
    found = [p for glob in _config()["templates"] for p in CONFIG.parent.glob(glob)]
    assert CONFIG.parent / "templates" / "pilot.tmpl" in found


def test_config_holds_no_secret() -> None:
    """The PagerDuty key and the Slack webhook are `*_file` references, never inline."""
    receivers = {r["name"]: r for r in _config()["receivers"]}
    assert set(receivers) == set(RECEIVERS)
    for pager in receivers["oncall-pager"]["pagerduty_configs"]:
        assert "routing_key_file" in pager
        assert not {"routing_key", "service_key"} & set(pager)
    for chat in receivers["pilot-chat"]["slack_configs"]:
        assert "api_url_file" in chat
        assert "api_url" not in chat
    assert "slack_api_url" not in _config().get("global", {})


def test_every_rule_alert_routes_by_its_severity() -> None:
    """Each alert of rules/*.yml reaches the archive plus the pager (critical) or chat (warning)."""
    alerts = rule_alerts()
    unknown = [
        f"{a.file}: {a.name} severity={a.severity!r}" for a in alerts if a.severity not in EXPECTED
    ]
    assert not unknown, "severity must be a literal critical, warning or info:\n" + "\n".join(
        unknown
    )
    with ThreadPoolExecutor(max_workers=8) as pool:
        routed = list(pool.map(lambda a: _route(a.labels, EXPECTED[a.severity]), alerts))
    wrong = [
        f"{a.file}: {a.name} ({a.severity}) -> {got!r}, expected {','.join(EXPECTED[a.severity])}"
        for a, (got, code) in zip(alerts, routed, strict=True)
        if code != 0 or got.split(",") != list(EXPECTED[a.severity])
    ]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("severity", ["", "page", "CRITICAL", "error"])
def test_alert_without_known_severity_reaches_chat(severity: str) -> None:
    """An alert whose severity is missing or unknown is archived and shown in pilot-chat."""
    labels = {"alertname": "PilotMisconfigured", "service": "api", "team": "platform"}
    if severity:
        labels["severity"] = severity
    assert _route(labels, UNKNOWN_SEVERITY) == (",".join(UNKNOWN_SEVERITY), 0)


def test_inhibit_rules_are_well_formed_and_name_real_alerts() -> None:
    """Each inhibition uses matchers and `equal` only, and matches rule alerts on both sides."""
    alerts = rule_alerts()
    raw = _config()["inhibit_rules"]
    for rule in raw:
        assert set(rule) == {"source_matchers", "target_matchers", "equal"}, rule
    problems = []
    for number, inhibition in enumerate(inhibitions(), 1):
        sources, targets = inhibition.sources(alerts), inhibition.targets(alerts)
        if not sources or not targets or not inhibition.equal:
            problems.append(f"inhibit rule {number}: sources {sources}, targets {targets}")
        if both := {a.name for a in sources} & {a.name for a in targets}:
            problems.append(f"inhibit rule {number}: {sorted(both)} would inhibit themselves")
        for target in targets:
            if not any(_same(inhibition.equal, s, target) for s in sources):
                problems.append(f"inhibit rule {number}: no source can equal {target.name}")
    assert not problems, "\n".join(problems)
    assert sorted(i.equal for i in inhibitions()) == [("flag",), ("service",)]


def _same(equal: Sequence[str], a: RuleAlert, b: RuleAlert) -> bool:
    """Whether two alerts can agree on the ``equal`` labels (a computed or absent value can)."""
    static = [(a.labels.get(k, TEMPLATED), b.labels.get(k, TEMPLATED)) for k in equal]
    return all(TEMPLATED in pair or pair[0] == pair[1] for pair in static)


def test_api_down_and_kill_switch_inhibitions_cover_the_right_alerts() -> None:
    """API down mutes API latency and error alerts; a kill switch its flag's rollout alerts."""
    alerts = rule_alerts()
    by_equal = {i.equal: i for i in inhibitions()}
    api, kill = by_equal[("service",)], by_equal[("flag",)]
    assert {a.name for a in api.sources(alerts)} == {"PilotApiDown"}
    api_symptoms = {
        a.name
        for a in alerts
        if a.name.startswith("PilotApi") and re.search("Latency|Error", a.name)
    }
    assert api_symptoms, "no API latency or error alert in rules/*.yml"
    assert {a.name for a in api.targets(alerts)} == api_symptoms
    assert {a.name for a in kill.sources(alerts)} == {"PilotFlagKillSwitchEngaged"}
    rollout = {
        a.name
        for a in alerts
        if a.name.startswith("PilotFlag") and re.search("Rollout|Treatment", a.name)
    }
    assert rollout, "no flag rollout alert in rules/*.yml"
    assert {a.name for a in kill.targets(alerts)} == rollout


def test_alertmanager_unreachable_inhibits_nothing() -> None:
    """Every inhibition's source is one alert named exactly, and none is about Alertmanager."""
    alerts = rule_alerts()
    for inhibition in inhibitions():
        exact = [m for m in inhibition.source if m.name == "alertname" and m.op == "="]
        assert len(exact) == 1, inhibition.source
        assert "Alertmanager" not in exact[0].value
        assert not [a.name for a in inhibition.sources(alerts) if "Alertmanager" in a.name]


def test_receiver_templates_render_every_alert(tmp_path: Path) -> None:
    """Each receiver field template renders each rule alert with its summary, runbook and labels."""
    alerts = rule_alerts()
    missing = [
        f"{a.file}: {a.name} lacks {k}"
        for a in alerts
        for k in ("summary", "description", "runbook_url")
        if not a.annotations.get(k)
    ]
    assert not missing, "\n".join(missing)
    text = "\n".join(_template_fields(_config()["receivers"]))
    globs = [f"--template.glob={CONFIG.parent / g}" for g in _config()["templates"]]
    with ThreadPoolExecutor(max_workers=8) as pool:
        jobs = [(a, globs, text, tmp_path / f"{n}.json") for n, a in enumerate(alerts)]
        rendered = list(pool.map(lambda job: _render(*job), jobs))
    for alert, (out, code) in zip(alerts, rendered, strict=True):
        assert code == 0, f"{alert.name}: {out}"
        assert alert.annotations["summary"] in out
        assert alert.annotations["runbook_url"] in out
        assert f"alertname={alert.name}" in out


def _template_fields(node: Any) -> Iterator[str]:
    """Every string with a Go template in the receivers section."""
    if isinstance(node, dict):
        for value in node.values():
            yield from _template_fields(value)
    elif isinstance(node, list):
        for value in node:
            yield from _template_fields(value)
    elif isinstance(node, str) and "{{" in node:
        yield node


def _render(alert: RuleAlert, globs: list[str], text: str, path: Path) -> tuple[str, int]:
    """amtool's rendering of ``text`` for one firing alert (output and exit code)."""
    alert_data = {
        "status": "firing",
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "startsAt": "2024-05-01T08:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://127.0.0.1:9700/graph",
        "fingerprint": "0",
    }
    data = {
        "receiver": "pilot-chat",
        "status": "firing",
        "alerts": [alert_data],
        "groupLabels": {k: alert.labels.get(k, "") for k in ("alertname", "service")},
        "commonLabels": dict(alert.labels),
        "commonAnnotations": dict(alert.annotations),
        "externalURL": "http://127.0.0.1:9093",
    }
    path.write_text(json.dumps(data), encoding="utf-8")
    done = _amtool(
        "template", "render", *globs, f"--template.data={path}", f"--template.text={text}"
    )
    return done.stdout + done.stderr, done.returncode


# --------------------------------------------------------------------------- a real Alertmanager


@contextmanager
def alertmanager(config: Path, tmp: Path) -> Iterator[httpx.Client]:
    """prometheus-alertmanager on a free loopback port, clustering off, storage under ``tmp``."""
    binary = require_binary("prometheus-alertmanager")
    port = free_port()
    log_path = tmp / "alertmanager.log"
    cmd = [
        binary,
        f"--config.file={config}",
        f"--storage.path={tmp / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            _until(lambda: _ready(client, proc, log_path), lambda: f"not ready:\n{_tail(log_path)}")
            yield client
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _ready(client: httpx.Client, proc: subprocess.Popen[bytes], log: Path) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"Alertmanager exited with {proc.returncode}:\n{_tail(log)}")
    try:
        return client.get("/-/ready").status_code == 200
    except httpx.TransportError:
        return False


def _tail(path: Path) -> str:
    return "\n".join(path.read_text(encoding="utf-8").splitlines()[-20:])


def _until(done: Callable[[], bool], message: Callable[[], str], timeout: float = 10.0) -> None:
    """Polls ``done`` until it holds; fails with ``message()`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, message()
        time.sleep(0.05)


def _post(client: httpx.Client, alerts: Sequence[RuleAlert]) -> None:
    """Fires the alerts (labels and annotations) in one POST /api/v2/alerts."""
    body = [{"labels": dict(a.labels), "annotations": dict(a.annotations)} for a in alerts]
    client.post("/api/v2/alerts", json=body).raise_for_status()


def _key(labels: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def _with(alert: RuleAlert, labels: Mapping[str, str]) -> RuleAlert:
    return RuleAlert(alert.name, alert.file, {**alert.labels, **labels}, alert.annotations)


def _pairs(alerts: Sequence[RuleAlert]) -> list[tuple[Inhibition, RuleAlert, RuleAlert, RuleAlert]]:
    """Per inhibition and target: its source and the target, with equal labels alike, and the
    target once more with those labels different (which must not be muted)."""
    out = []
    for inhibition in inhibitions():
        sources = inhibition.sources(alerts)
        for target in inhibition.targets(alerts):
            source = next(s for s in sources if _same(inhibition.equal, s, target))
            alike = {
                k: next(
                    (
                        v
                        for v in (source.labels.get(k), target.labels.get(k))
                        if v and v != TEMPLATED
                    ),
                    f"pilot-test-{k}",
                )
                for k in inhibition.equal
            }
            apart = {k: f"{v}-elsewhere" for k, v in alike.items()}
            out.append(
                (inhibition, _with(source, alike), _with(target, alike), _with(target, apart))
            )
    return out


def test_real_alertmanager_inhibits_targets_and_routes_alerts(tmp_path: Path) -> None:
    """A running Alertmanager mutes each target beside its source (equal labels) and no other."""
    alerts = rule_alerts()
    pairs = _pairs(alerts)
    assert pairs, "no inhibition target among the rule alerts"
    with alertmanager(CONFIG, tmp_path) as client:
        _post(client, [alert for _, *three in pairs for alert in three])

        def state() -> dict[tuple[tuple[str, str], ...], dict[str, Any]]:
            answer = client.get("/api/v2/alerts")
            answer.raise_for_status()
            return {_key(a["labels"]): a for a in answer.json()}

        def all_muted() -> bool:
            seen = state()
            return all(
                seen.get(_key(t.labels), {}).get("status", {}).get("inhibitedBy")
                for *_, t, _ in pairs
            )

        _until(all_muted, lambda: f"inhibitedBy stays empty: {state()}")
        seen = state()
    by_fingerprint = {a["fingerprint"]: a["labels"]["alertname"] for a in seen.values()}
    for inhibition, source, target, elsewhere in pairs:
        muted = seen[_key(target.labels)]["status"]
        assert muted["state"] == "suppressed"
        sources = {a.name for a in inhibition.sources(alerts)}
        assert {by_fingerprint[f] for f in muted["inhibitedBy"]} <= sources
        assert seen[_key(elsewhere.labels)]["status"]["inhibitedBy"] == [], elsewhere
        assert seen[_key(source.labels)]["status"]["state"] == "active" or _is_target(source)
    for alert in seen.values():
        receivers = tuple(sorted(r["name"] for r in alert["receivers"]))
        assert receivers == tuple(sorted(EXPECTED[alert["labels"]["severity"]])), alert["labels"]


def _is_target(alert: RuleAlert) -> bool:
    return any(all(m(alert.labels) for m in i.target) for i in inhibitions())


# --------------------------------------------------------------------------- delivery


class _Sink(ThreadingHTTPServer):
    """Records every POST body as (path, JSON) and answers 200."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SinkHandler)
        self.received: list[tuple[str, Any]] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    def paths(self, path: str) -> list[Any]:
        return [body for p, body in list(self.received) if p == path]


class _SinkHandler(BaseHTTPRequestHandler):
    server: _Sink

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.received.append((self.path, json.loads(body)))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def sink() -> Iterator[_Sink]:
    """An HTTP server standing in for PagerDuty, Slack and the archive."""
    server = _Sink()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _delivery_config(sink: _Sink, tmp: Path) -> Path:
    """The pilot's config with every receiver pointed at ``sink`` and no group_wait, else equal."""
    config = _config()
    config["templates"] = [str(CONFIG.parent / g) for g in config["templates"]]
    routes = [config["route"]]
    while routes:
        route = routes.pop()
        route["group_wait"] = "0s"
        routes.extend(route.get("routes", []))
    key, slack = tmp / "pagerduty-routing-key", tmp / "slack-webhook-url"
    key.write_text("test-routing-key\n", encoding="utf-8")
    slack.write_text(f"{sink.url}/slack\n", encoding="utf-8")
    for receiver in config["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = f"{sink.url}/{receiver['name']}"
        for pager in receiver.get("pagerduty_configs", []):
            pager.update(routing_key_file=str(key), url=f"{sink.url}/pagerduty")
        for chat in receiver.get("slack_configs", []):
            chat["api_url_file"] = str(slack)
    path = tmp / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _one_per_severity(alerts: Sequence[RuleAlert]) -> dict[str, RuleAlert]:
    """The first alert of each severity, preferring those no inhibition targets; a target
    gets its own values of the `equal` labels, so that none of them is muted."""
    chosen: dict[str, RuleAlert] = {}
    for alert in sorted(alerts, key=_is_target):
        chosen.setdefault(alert.severity, alert)
    equal = {k for i in inhibitions() for k in i.equal}
    return {
        severity: _with(a, dict.fromkeys(equal, f"{a.name}-only")) if _is_target(a) else a
        for severity, a in chosen.items()
    }


def test_receivers_deliver_summary_runbook_and_labels(tmp_path: Path, sink: _Sink) -> None:
    """PagerDuty, Slack and the archive each get the rendered summary, runbook link and labels."""
    chosen = _one_per_severity(rule_alerts())
    critical, warning = chosen.get("critical"), chosen.get("warning")
    assert critical and warning, "rules/*.yml needs a critical and a warning alert"
    with alertmanager(_delivery_config(sink, tmp_path), tmp_path) as client:
        _post(client, list(chosen.values()))

        def delivered() -> bool:
            archived = {
                a["labels"]["alertname"] for b in sink.paths("/archive") for a in b["alerts"]
            }
            return bool(sink.paths("/pagerduty") and sink.paths("/slack")) and archived >= {
                a.name for a in chosen.values()
            }

        _until(delivered, lambda: f"not all receivers were notified: {sink.received}")
    page = sink.paths("/pagerduty")[0]
    assert page["routing_key"] == "test-routing-key"
    assert critical.annotations["summary"] in page["payload"]["summary"]
    assert page["links"][0]["href"] == critical.annotations["runbook_url"]
    assert f"alertname={critical.name}" in page["payload"]["custom_details"]["firing"]
    message = sink.paths("/slack")[0]["attachments"][0]
    assert message["title_link"] == warning.annotations["runbook_url"]
    assert warning.annotations["summary"] in message["text"]
    assert f"<{warning.annotations['runbook_url']}|Runbook>" in message["text"]
    assert f"alertname={warning.name}" in message["text"]
    assert {p["payload"]["class"] for p in sink.paths("/pagerduty")} == {critical.name}
    assert all(
        m["attachments"][0]["title"].split()[1] == warning.name for m in sink.paths("/slack")
    )
