"""The session-wide event check: scanning JSONL files, and failing a real pytest session."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent.checks.history import Transition
from agent.checks.results import check_events
from agent.model import CheckResult
from tests.events_schema import UNVALIDATED_MARKER, mark_unvalidated, scan_event_files

pytest_plugins = ["pytester"]

FAILED = "io.luckygas.pilot.check.failed"
CHANGED = "io.luckygas.pilot.check.state_changed"


def _events() -> list[dict[str, Any]]:
    """A real state_changed and check.failed pair, as the result pipeline makes them."""
    result = CheckResult("api", "http", False, 0.0, 0.2, reason="status 503", status_code=503)
    events = check_events(
        result,
        Transition("ok", "failing"),
        labels={"service": "api"},
        consecutive_failures=1,
        source="pilot-agent",
        now=1.0,
    )
    return [e.to_dict() for e in events]


def _lines(*objs: object) -> str:
    return "".join(json.dumps(o) + "\n" for o in objs)


def test_scan_counts_valid_events_per_type_including_rotated_files(tmp_path: Path) -> None:
    """events.jsonl and events.jsonl.1 are read; non-event JSON and blank lines are passed over."""
    changed, failed = _events()
    (tmp_path / "events.jsonl").write_text(_lines(changed, failed) + "\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "events.jsonl.1").write_text(_lines(failed, {"msg": "a log line"}))
    (tmp_path / "events.json").write_text("not scanned")
    report = scan_event_files(tmp_path)
    assert report.problems == []
    assert report.files == 2
    assert report.counts == {CHANGED: 1, FAILED: 2}


@pytest.mark.unvalidated_events(reason="writes invalid events for the scan to find")
def test_scan_reports_each_invalid_line_with_file_and_line_number(tmp_path: Path) -> None:
    """A broken event, garbage and a NaN are each a problem at their own line."""
    changed, failed = _events()
    del failed["data"]["reason"]
    path = tmp_path / "events.jsonl"
    path.write_text(_lines(changed, failed) + "{truncated\n" + '{"specversion":"1.0","x":NaN}\n')
    report = scan_event_files(tmp_path)
    assert report.counts == {CHANGED: 1}
    assert report.problems[0] == f"{path}:2: data: 'reason' is a required property"
    assert report.problems[1].startswith(f"{path}:3: not JSON")
    assert report.problems[2] == f"{path}:4: not JSON: NaN is not JSON"


@pytest.mark.unvalidated_events(reason="writes garbage for the scan to find")
def test_a_marker_file_exempts_its_directory_and_everything_below(tmp_path: Path) -> None:
    """Under a directory holding UNVALIDATED-EVENTS nothing is read; elsewhere all is."""
    exempt, checked = tmp_path / "exempt", tmp_path / "checked"
    (exempt / "deep").mkdir(parents=True)
    checked.mkdir()
    (exempt / "deep" / "events.jsonl").write_text("garbage\n")
    (checked / "events.jsonl").write_text("garbage\n")
    mark_unvalidated(exempt, "synthetic events")
    report = scan_event_files(tmp_path)
    assert (exempt / UNVALIDATED_MARKER).read_text() == "synthetic events\n"
    assert report.exempt == [exempt]
    assert [p.split(":")[0] for p in report.problems] == [str(checked / "events.jsonl")]


# --------------------------------------------------------------------------- a real session

INNER_CONFTEST = """
from tests.conftest import (
    _event_validation_basetemp,
    _unvalidated_events,
    pytest_collection_modifyitems,
    pytest_configure,
    pytest_sessionfinish,
    pytest_terminal_summary,
)
"""


def _inner_session(pytester: pytest.Pytester, test_source: str) -> pytest.RunResult:
    """Run a one-test pytest session with the suite's event check; its basetemp is exempt
    from the outer session's check (it holds invalid events on purpose)."""
    mark_unvalidated(pytester.path, "inner pytest sessions write invalid events on purpose")
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makeconftest(INNER_CONFTEST)
    pytester.makepyfile(test_inner=test_source)
    basetemp = pytester.path / "inner-basetemp"
    return pytester.runpytest("-p", "no:cacheprovider", f"--basetemp={basetemp}")


def _writer(events: str, marker: str = "") -> str:
    return (
        "import pytest\n\n"
        f"{marker}"
        "def test_writes_events(tmp_path):\n"
        f"    (tmp_path / 'events.jsonl').write_text({events!r})\n"
    )


def test_a_session_whose_tests_pass_fails_when_one_written_event_is_invalid(
    pytester: pytest.Pytester,
) -> None:
    """The inner test passes, yet the session exits 1 naming the file, the line and the problem."""
    changed, failed = _events()
    failed["data"]["kind"] = "ftp"
    result = _inner_session(pytester, _writer(_lines(changed, failed)))
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*1 invalid events*",
            "*test_writes_events0/events.jsonl:2: data/kind: 'ftp' is not one of*",
        ]
    )


def test_a_session_with_only_valid_events_passes_and_counts_them_per_type(
    pytester: pytest.Pytester,
) -> None:
    """Valid events keep the exit status 0; the summary counts them per type."""
    result = _inner_session(pytester, _writer(_lines(*_events())))
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        ["*2 valid events in 1 files (0 dirs exempt)*", f"*1 {FAILED}", f"*1 {CHANGED}"]
    )
    assert "invalid events" not in result.stdout.str()


def test_a_test_marked_unvalidated_events_may_write_anything(pytester: pytest.Pytester) -> None:
    """The marker exempts the test's tmp_path, so its garbage does not fail the session."""
    marker = "@pytest.mark.unvalidated_events(reason='exercises a sink with junk')\n"
    result = _inner_session(pytester, _writer("junk\n", marker))
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*0 valid events in 0 files (1 dirs exempt)*"])
    assert (pytester.path / "inner-basetemp" / "test_writes_events0" / UNVALIDATED_MARKER).exists()
