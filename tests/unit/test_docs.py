"""The README's configuration reference is the one generated from the models."""

from __future__ import annotations

from pathlib import Path

from agent.config.reference import END, START, render_reference

ROOT = Path(__file__).resolve().parents[2]


def test_readme_reference_matches_the_models() -> None:
    """Regenerate with `python -m agent.config.reference --write README.md` when this fails."""
    text = (ROOT / "README.md").read_text()
    block = text[text.index(START) + len(START) : text.index(END)]
    assert block == "\n" + render_reference()


def test_readme_opens_with_the_two_commands() -> None:
    """The README starts with `make demo` and `make test`."""
    head = (ROOT / "README.md").read_text()[:300]
    assert "make demo" in head and "make test" in head
