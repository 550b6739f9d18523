"""Fixtures shared by every test layer."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.support import free_port, wait_for_port


@dataclass(frozen=True)
class SimulatorProcess:
    """The pilot simulator running as its own process."""

    port: int
    tls_port: int

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.addr}"

    def set_faults(self, **faults: object) -> None:
        httpx.put(f"{self.url}/admin/faults", json=faults, timeout=5).raise_for_status()

    def clear_faults(self) -> None:
        httpx.delete(f"{self.url}/admin/faults", timeout=5).raise_for_status()


@pytest.fixture(scope="session")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorProcess]:
    """A simulator process on free ports for the whole session; faults cleared per test."""
    port, tls_port = free_port(), free_port()
    log = (tmp_path_factory.mktemp("simulator") / "stderr.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agent.demo.simulator",
            "--port",
            str(port),
            "--tls-port",
            str(tls_port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        wait_for_port(port)
        wait_for_port(tls_port)
        yield SimulatorProcess(port, tls_port)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
def sim(simulator: SimulatorProcess) -> Iterator[SimulatorProcess]:
    """The session simulator with no faults, and none left behind."""
    simulator.clear_faults()
    yield simulator
    simulator.clear_faults()
