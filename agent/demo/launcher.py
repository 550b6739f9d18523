"""``pilot-agent demo``: the simulator and the agent in one process, on embedded defaults.

It starts the pilot simulator, runs the agent with the bundled ``demo.yml``
(in-memory state, JSONL event log), prints where to look, and after
``outage_after`` seconds injects a full outage for ``outage_for`` seconds so the
checks turn red, events appear, and then everything recovers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from pathlib import Path

import httpx
import structlog

from agent.app import Agent
from agent.demo.simulator import serve
from agent.errors import ConfigError
from agent.loading import load_all

log = structlog.get_logger(__name__)

DEMO_CONFIG = Path(__file__).with_name("demo.yml")
DEFAULTS = {
    "PILOT_DEMO_LISTEN": "127.0.0.1:9700",
    "PILOT_DEMO_SIM": "127.0.0.1:8700",
    "PILOT_DEMO_SIM_TLS": "127.0.0.1:8743",
}


def demo_env(data_dir: str | Path) -> dict[str, str]:
    """The environment demo.yml is read with: the process's, plus demo defaults."""
    env = dict(os.environ)
    for key, value in DEFAULTS.items():
        env.setdefault(key, value)
    env.setdefault("PILOT_DEMO_DIR", str(Path(data_dir).resolve()))
    return env


def _split(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host or "127.0.0.1", int(port)


async def _wait_listening(host: str, port: int, within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.05)
        else:
            writer.close()
            await writer.wait_closed()
            return


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


async def _scenario(sim: str, outage_after: float, outage_for: float) -> None:
    admin = f"http://{sim}/admin/faults"
    async with httpx.AsyncClient(timeout=5) as client:
        await asyncio.sleep(outage_after)
        await client.put(admin, json={"outage": True})
        print(f"\n>>> Outage injected: every API endpoint answers 503 for {outage_for:g} s.")
        print(
            ">>> Watch the status page turn red, check.failed events appear, and alerts fire.\n",
            flush=True,
        )
        log.warning("demo_outage_injected", seconds=outage_for)
        await asyncio.sleep(outage_for)
        await client.delete(admin)
        print("\n>>> Outage over: the simulator recovers; checks turn green again.\n", flush=True)
        log.warning("demo_outage_recovered")


def _banner(env: dict[str, str], events_file: str, outage_after: float) -> str:
    listen, sim = env["PILOT_DEMO_LISTEN"], env["PILOT_DEMO_SIM"]
    return f"""
pilot-agent demo is running.

  Status page     http://{listen}/
  Metrics         http://{listen}/metrics
  Checks (JSON)   http://{listen}/api/v1/checks
  Alerts (JSON)   http://{listen}/api/v1/alerts      (rules: /api/v1/rules)
  PromQL          http://{listen}/api/v1/query?query=probe_success
  Event log       {events_file}      (tail -f it)
  Simulator       http://{sim}/health   faults: PUT/DELETE http://{sim}/admin/faults

An outage is injected in {outage_after:g} s and then recovers: checks turn red,
alerts go pending then firing (logged as alert_firing), then resolve. Ctrl-C stops.
"""


async def run_demo(
    *, data_dir: str | Path, outage_after: float, outage_for: float, duration: float = 0.0
) -> int:
    """Run simulator and agent until Ctrl-C (or ``duration`` seconds); return an exit code."""
    env = demo_env(data_dir)
    try:
        loaded = load_all(DEMO_CONFIG, env)
    except ConfigError as exc:
        print(exc)
        return 2
    config = loaded.config
    sim_host, sim_port = _split(env["PILOT_DEMO_SIM"])
    _, tls_port = _split(env["PILOT_DEMO_SIM_TLS"])
    for addr in ("PILOT_DEMO_LISTEN", "PILOT_DEMO_SIM", "PILOT_DEMO_SIM_TLS"):
        if not _port_free(*_split(env[addr])):
            print(f"{env[addr]} is already in use; set {addr}=host:port to move it")
            return 1

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    sim_stop = asyncio.Event()
    sim_task = asyncio.create_task(serve(sim_host, sim_port, tls_port, stop=sim_stop))
    agent = Agent(config, rule_groups=loaded.rule_groups, config_path=DEMO_CONFIG, env=env)
    started = asyncio.Event()
    agent_task: asyncio.Task[None] | None = None
    scenario: asyncio.Task[None] | None = None
    try:
        await _wait_listening(sim_host, sim_port)
        agent_task = asyncio.create_task(agent.run(started))
        await started.wait()
        print(_banner(env, config.events.jsonl.path, outage_after), flush=True)
        scenario = asyncio.create_task(_scenario(env["PILOT_DEMO_SIM"], outage_after, outage_for))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=duration or None)
    finally:
        if scenario is not None:
            scenario.cancel()
            await asyncio.gather(scenario, return_exceptions=True)
        agent.request_shutdown()
        if agent_task is not None:
            await agent_task
        sim_stop.set()
        await sim_task
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    print("pilot-agent demo stopped.")
    return 0
