"""Fixtures shared by every test layer."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.events_schema import ScanReport, mark_unvalidated, scan_event_files
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

    def reset_pilot(self) -> None:
        """Flags, migration, dual-write and breakers back to their start."""
        httpx.delete(f"{self.url}/admin/pilot", timeout=5).raise_for_status()


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
    """The session simulator with no faults and its pilot state reset, and none left behind."""
    simulator.clear_faults()
    simulator.reset_pilot()
    yield simulator
    simulator.clear_faults()
    simulator.reset_pilot()


# --------------------------------------------------------------------------- event validation
#
# Every event any test writes to a JSONL file under pytest's basetemp (sinks in
# tmp_path, e2e agents' events.jsonl, rotated events.jsonl.N) is validated
# against docs/events/schemas when the session ends; one invalid event fails the
# session, with file, line and problem in the terminal summary. A test that
# writes non-agent events on purpose says so with
# ``@pytest.mark.unvalidated_events(reason=...)`` (its tmp_path is then exempt,
# see tests/events_schema.py: UNVALIDATED_MARKER), or is listed below.

UNVALIDATED_EVENT_MODULES: dict[str, str] = {
    "tests/unit/test_events_jsonl.py": "tests the JSONL sink itself with synthetic type t.test",
}
"""Modules whose tests all write test-made events (path from the rootdir → reason)."""

_EVENT_BASETEMP = pytest.StashKey[Path]()
_EVENT_REPORT = pytest.StashKey[ScanReport]()
_PROBLEMS_SHOWN = 50


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "unvalidated_events(reason): the test's tmp_path holds events that are not the "
        "agent's on purpose; the session's event validation leaves them out",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if not item.path.is_relative_to(config.rootpath):
            continue
        relative = item.path.relative_to(config.rootpath).as_posix()
        reason = UNVALIDATED_EVENT_MODULES.get(relative)
        if reason is not None:
            item.add_marker(pytest.mark.unvalidated_events(reason=reason))


@pytest.fixture(autouse=True)
def _unvalidated_events(request: pytest.FixtureRequest) -> Iterator[None]:
    """Exempts a marked test's tmp_path from the event validation (after the test)."""
    marker = request.node.get_closest_marker("unvalidated_events")
    if marker is None:
        yield
        return
    reason = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "")
    if not reason:
        pytest.fail("unvalidated_events needs a reason")
    tmp_path: Path = request.getfixturevalue("tmp_path")
    yield
    mark_unvalidated(tmp_path, str(reason))


@pytest.fixture(scope="session", autouse=True)
def _event_validation_basetemp(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Remembers the session's basetemp for the check at the end of the session."""
    request.config.stash[_EVENT_BASETEMP] = tmp_path_factory.getbasetemp()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    basetemp = session.config.stash.get(_EVENT_BASETEMP, None)
    if basetemp is None:
        return
    report = scan_event_files(basetemp)
    session.config.stash[_EVENT_REPORT] = report
    if report.problems and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    report = config.stash.get(_EVENT_REPORT, None)
    if report is None:
        return
    tr = terminalreporter
    total = sum(report.counts.values())
    tr.section("events validated against docs/events/schemas", sep="-")
    tr.line(f"{total} valid events in {report.files} files ({len(report.exempt)} dirs exempt)")
    for event_type, count in sorted(report.counts.items()):
        tr.line(f"{count:6d} {event_type}")
    if report.problems:
        tr.section(f"{len(report.problems)} invalid events", sep="=", red=True, bold=True)
        for problem in report.problems[:_PROBLEMS_SHOWN]:
            tr.line(problem, red=True)
        if len(report.problems) > _PROBLEMS_SHOWN:
            tr.line(f"… and {len(report.problems) - _PROBLEMS_SHOWN} more", red=True)
