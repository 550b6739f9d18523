"""Our `check rules` / `test rules` reach promtool's verdict on every file in tests/data/rules.

Rule files are ``*.rules.yml`` (``invalid_*`` ones are meant to be rejected); rule
test files are ``*.test.yml`` (``fail_*`` ones are meant to fail). Each is run through
Debian's ``/usr/bin/promtool`` (2.42) and through :mod:`agent.rulefmt.cli`, and the
exit codes must agree. Where promtool's failure is an assertion mismatch (an
``alertname:`` or ``expr:`` block), our failure text must be the same text (up to the
message of a query error).

The data avoids what differs between promtool 2.42 and Prometheus 3.x on purpose:
no range window ends exactly on a sample (2.42's ranges are left-closed, ours
left-open), no ``query_offset`` or group ``labels`` (newer than 2.42), every test
group sets ``interval`` (2.42 had no default), and expected values are exact.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from agent.rulefmt import cli
from tests.support import require_binary

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[1] / "data" / "rules"
RULE_FILES = sorted(DATA.glob("*.rules.yml"))
TEST_FILES = sorted(DATA.glob("*.test.yml"))


@pytest.fixture(scope="module")
def promtool() -> str:
    """Path of the promtool binary (a missing binary fails the tests)."""
    return require_binary("promtool")


def _promtool(promtool: str, command: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, command, "rules", path.name],
        cwd=DATA,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _failure_blocks(stderr: str) -> list[str]:
    """The failure blocks of a `test rules` stderr, an error's message cut off after ``err:``.

    Parser messages differ in detail (promtool adds ``1:7:`` positions), so only
    what precedes them is compared.
    """
    body = stderr.replace("  FAILED:\n", "")
    blocks = [b.strip("\n") for b in body.split("\n\n") if b.strip()]
    return [b.split(", err: ")[0] for b in blocks]


def test_every_data_file_is_cross_checked() -> None:
    """Every file in tests/data/rules is a rule file or a rule test file, with both verdicts."""
    names = {p.name for p in DATA.iterdir()}
    assert names == {p.name for p in RULE_FILES + TEST_FILES}
    assert sum(p.name.startswith("invalid_") for p in RULE_FILES) >= 7
    assert sum(p.name.startswith("fail_") for p in TEST_FILES) >= 10
    assert sum(p.name.startswith("pass_") for p in TEST_FILES) >= 5


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_check_rules_verdict_matches_promtool(
    path: Path, promtool: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`check rules` exits as `promtool check rules` does on this file."""
    theirs = _promtool(promtool, "check", path)
    ours = cli.check_rules_main([str(path)])
    out, err = capsys.readouterr()
    expected = 1 if path.name.startswith("invalid_") else 0
    assert (ours, theirs.returncode) == (expected, expected), (out + err, theirs.stderr)


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_test_rules_verdict_matches_promtool(
    path: Path, promtool: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`test rules` exits as `promtool test rules` does, with the same mismatch text."""
    theirs = _promtool(promtool, "test", path)
    ours = cli.test_rules_main([str(path)])
    out, err = capsys.readouterr()
    expected = 1 if path.name.startswith("fail_") else 0
    assert (ours, theirs.returncode) == (expected, expected), (out + err, theirs.stderr)
    blocks = _failure_blocks(theirs.stderr)
    if blocks and all(b.lstrip().startswith(("alertname:", "name:", "expr:")) for b in blocks):
        assert _failure_blocks(err) == blocks
