"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import AgentProcess
from tests.integration.conftest import restartable_redis  # noqa: F401  (fixture)
from tests.kafka import kafka_broker  # noqa: F401  (fixture)
from tests.support import wait_for_port


@pytest.fixture
def agent_factory(tmp_path: Path) -> Iterator[Callable[[str], AgentProcess]]:
    started: list[AgentProcess] = []

    def start(config_text: str) -> AgentProcess:
        port = int(config_text.split("listen: 127.0.0.1:")[1].split()[0])
        cfg = tmp_path / f"agent-{len(started)}.yml"
        cfg.write_text(config_text)
        agent = AgentProcess(cfg, port)
        started.append(agent)
        wait_for_port(port, timeout=30)
        return agent

    yield start
    for agent in started:
        agent.stop()
