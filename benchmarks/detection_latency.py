"""Outage-to-notification latency: pilot-agent against Prometheus + blackbox_exporter.

Goal: ``ratio_p95`` <= 0.6, the agent's p95 time from an outage starting to its
alert reaching an Alertmanager webhook, divided by the same for Prometheus.

One run starts, on free loopback ports:

- the pilot simulator (``python -m agent.demo.simulator``), whose ``/health``
  answers 503 at once while its ``outage`` fault is on;
- ``pilot-agent run``: an HTTP check of ``/health`` every 5 s, the rule
  ``probe_success == 0`` (``for: 0s``), evaluation interval 5 s, external label
  ``source="agent"``;
- ``prometheus-blackbox-exporter`` probing the same URL, scraped by Prometheus
  2.42 every 5 s, which evaluates the same rule every 5 s, external label
  ``source="prometheus"``;
- one Alertmanager 0.25 (``group_wait: 0s``, one group per alert) whose webhook
  receiver is this script, recording the arrival time of every firing alert.

Then ``--outages`` times (default 20): wait a random 0-5 s (a random phase
against both schedules), switch the outage on, wait until both alerts have
arrived, switch it off, wait until both are resolved. The latency of each side is
arrival time minus the moment the outage was switched on.

    .venv/bin/python benchmarks/detection_latency.py              # ~20 outages, ~8 min
    .venv/bin/python benchmarks/detection_latency.py --outages 5  # quick look

The human-readable figures come first; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

INTERVAL = 5
RULES = """groups:
  - name: detection
    interval: 5s
    rules:
      - alert: EndpointDown
        expr: probe_success == 0
        for: 0s
        labels: {severity: critical}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout}s")


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SystemExit(f"{name} not found: run `make test` once (it installs it)")
    return path


class Webhook:
    """Alertmanager's webhook receiver: (arrival time, source, status) per alert."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, str, str]] = []
        self.cond = threading.Condition()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                now = time.time()
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with hook.cond:
                    for alert in body["alerts"]:
                        hook.arrivals.append((now, alert["labels"]["source"], alert["status"]))
                    hook.cond.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, since: float, status: str, timeout: float) -> dict[str, float]:
        """Arrival time per source of the first ``status`` alert after ``since``."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                first: dict[str, float] = {}
                for at, source, st in self.arrivals:
                    if at >= since and st == status:
                        first.setdefault(source, at)
                if {"agent", "prometheus"} <= first.keys():
                    return first
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"timed out waiting for {status}: got {first}")
                self.cond.wait(left)


@contextlib.contextmanager
def process(args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def set_outage(sim_port: int, on: bool) -> None:
    req = urllib.request.Request(
        f"http://127.0.0.1:{sim_port}/admin/faults",
        data=json.dumps({"outage": on}).encode(),
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(req, timeout=5).read()


def write_configs(tmp: Path, ports: dict[str, int], webhook: int) -> None:
    target = f"http://127.0.0.1:{ports['sim']}/health"
    (tmp / "rules.yml").write_text(RULES)
    (tmp / "alertmanager.yml").write_text(
        f"""route:
  receiver: hook
  group_by: ['...']
  group_wait: 0s
  group_interval: 100ms
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: http://127.0.0.1:{webhook}/
        send_resolved: true
"""
    )
    (tmp / "blackbox.yml").write_text(
        "modules:\n  http_2xx:\n    prober: http\n    timeout: 4s\n    http:\n"
        "      preferred_ip_protocol: ip4\n"
    )
    (tmp / "prometheus.yml").write_text(
        f"""global:
  scrape_interval: {INTERVAL}s
  scrape_timeout: 4s
  evaluation_interval: {INTERVAL}s
  external_labels: {{source: prometheus}}
rule_files: [rules.yml]
alerting:
  alertmanagers:
    - static_configs: [{{targets: ["127.0.0.1:{ports["am"]}"]}}]
scrape_configs:
  - job_name: blackbox
    metrics_path: /probe
    params: {{module: [http_2xx]}}
    static_configs: [{{targets: ["{target}"]}}]
    relabel_configs:
      - {{source_labels: [__address__], target_label: __param_target}}
      - {{source_labels: [__param_target], target_label: instance}}
      - {{target_label: __address__, replacement: "127.0.0.1:{ports["bb"]}"}}
"""
    )
    (tmp / "agent.yml").write_text(
        f"""global:
  evaluation_interval: {INTERVAL}s
  external_labels: {{source: agent}}
listen: 127.0.0.1:{ports["agent"]}
events:
  jsonl: {{path: {tmp / "events.jsonl"}}}
rule_files: [rules.yml]
alerting:
  alertmanagers:
    - static_configs: [{{targets: ["127.0.0.1:{ports["am"]}"]}}]
checks:
  - name: api-health
    interval: {INTERVAL}s
    timeout: 4s
    http: {{url: "{target}"}}
"""
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def measure(outages: int, seed: int, tmp: Path) -> dict[str, object]:
    rng = random.Random(seed)
    hook = Webhook()
    ports = {name: free_port() for name in ("sim", "sim_tls", "am", "am_cluster", "bb", "prom")}
    ports["agent"] = free_port()
    write_configs(tmp, ports, hook.port)
    py = sys.executable
    with contextlib.ExitStack() as stack:
        run = stack.enter_context
        sim = [py, "-m", "agent.demo.simulator", "--port", str(ports["sim"])]
        run(process([*sim, "--tls-port", str(ports["sim_tls"])], tmp / "sim.log"))
        am = binary("prometheus-alertmanager")
        run(
            process(
                [
                    am,
                    f"--config.file={tmp / 'alertmanager.yml'}",
                    f"--storage.path={tmp / 'am-data'}",
                    f"--web.listen-address=127.0.0.1:{ports['am']}",
                    f"--cluster.listen-address=127.0.0.1:{ports['am_cluster']}",
                ],
                tmp / "am.log",
            )
        )
        bb = binary("prometheus-blackbox-exporter")
        run(
            process(
                [
                    bb,
                    f"--config.file={tmp / 'blackbox.yml'}",
                    f"--web.listen-address=127.0.0.1:{ports['bb']}",
                ],
                tmp / "blackbox.log",
            )
        )
        for name in ("sim", "am", "bb"):
            wait_for_port(ports[name])
        prom = binary("prometheus")
        run(
            process(
                [
                    prom,
                    f"--config.file={tmp / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp / 'prom-data'}",
                    f"--web.listen-address=127.0.0.1:{ports['prom']}",
                ],
                tmp / "prometheus.log",
            )
        )
        agent = [py, "-m", "agent.cli", "run", "--config", str(tmp / "agent.yml")]
        run(process(agent, tmp / "agent.log"))
        wait_for_port(ports["prom"])
        wait_for_port(ports["agent"])
        time.sleep(2 * INTERVAL + 1)  # both have probed and evaluated "up" at least once
        agent_s: list[float] = []
        prom_s: list[float] = []
        for i in range(outages):
            time.sleep(rng.uniform(0, INTERVAL))
            start = time.time()
            set_outage(ports["sim"], True)
            firing = hook.wait_for(start, "firing", 60)
            agent_s.append(firing["agent"] - start)
            prom_s.append(firing["prometheus"] - start)
            cleared = time.time()
            set_outage(ports["sim"], False)
            resolved = hook.wait_for(cleared, "resolved", 120)
            print(
                f"outage {i + 1:2d}: firing after agent {agent_s[-1]:6.3f} s, "
                f"prometheus {prom_s[-1]:6.3f} s; resolved after agent "
                f"{resolved['agent'] - cleared:6.3f} s, "
                f"prometheus {resolved['prometheus'] - cleared:6.3f} s",
                flush=True,
            )
    return {
        "outages": outages,
        "agent_p50_s": round(statistics.median(agent_s), 3),
        "agent_p95_s": round(percentile(agent_s, 0.95), 3),
        "prometheus_p50_s": round(statistics.median(prom_s), 3),
        "prometheus_p95_s": round(percentile(prom_s, 0.95), 3),
        "ratio_p95": round(percentile(agent_s, 0.95) / percentile(prom_s, 0.95), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--outages", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="detection-latency-"))
    try:
        result = measure(args.outages, args.seed, tmp)
    finally:
        if args.keep:
            print(f"work directory: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"agent      p50 {result['agent_p50_s']} s  p95 {result['agent_p95_s']} s\n"
        f"prometheus p50 {result['prometheus_p50_s']} s  p95 {result['prometheus_p95_s']} s\n"
        f"ratio p95  {result['ratio_p95']} (goal <= 0.6)"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
