#!/usr/bin/env python3
"""Copy the files the Helm chart ships into ``helm/pilot-agent/files/``.

Helm reads only files inside the chart, so the pilot bundle is kept there as copies:

    rules/*.rules.yml             -> files/rules/
    dashboards/json/*.json        -> files/dashboards/
    alertmanager/alertmanager.yml -> files/alertmanager/
    alertmanager/templates/*      -> files/alertmanager/templates/

Run it after changing any of those sources; ``--check`` only lists what differs
(exit 1 if anything does), as the test suite does.

    python3 scripts/sync-chart-files.py          # copy, and delete copies whose source is gone
    python3 scripts/sync-chart-files.py --check  # list differences, exit 1 if any
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

CHART_FILES = Path("helm/pilot-agent/files")

# (source directory, glob, destination directory under CHART_FILES)
SOURCES: tuple[tuple[str, str, str], ...] = (
    ("rules", "*.rules.yml", "rules"),
    ("dashboards/json", "*.json", "dashboards"),
    ("alertmanager", "alertmanager.yml", "alertmanager"),
    ("alertmanager/templates", "*", "alertmanager/templates"),
)


def plan(root: Path) -> dict[Path, Path]:
    """Every destination file (absolute) and the source it copies."""
    out: dict[Path, Path] = {}
    for src_dir, pattern, dest_dir in SOURCES:
        for src in sorted((root / src_dir).glob(pattern)):
            if src.is_file():
                out[root / CHART_FILES / dest_dir / src.name] = src
    return out


def _managed(root: Path) -> set[Path]:
    """Copies present now in the destination directories (stale ones included)."""
    found: set[Path] = set()
    for _src_dir, pattern, dest_dir in SOURCES:
        found.update(p for p in (root / CHART_FILES / dest_dir).glob(pattern) if p.is_file())
    return found


def differences(root: Path) -> list[str]:
    """Human-readable lines, one per copy that is missing, different or stale."""
    wanted = plan(root)
    lines = []
    for dest, src in wanted.items():
        rel = dest.relative_to(root)
        if not dest.exists():
            lines.append(f"missing: {rel} (copy of {src.relative_to(root)})")
        elif dest.read_bytes() != src.read_bytes():
            lines.append(f"differs: {rel} (copy of {src.relative_to(root)})")
    for stale in sorted(_managed(root) - set(wanted)):
        lines.append(f"stale:   {stale.relative_to(root)} (its source is gone)")
    return lines


def sync(root: Path) -> list[str]:
    """Bring the copies in line with the sources; returns what was done."""
    done = differences(root)
    wanted = plan(root)
    for dest, src in wanted.items():
        if not dest.exists() or dest.read_bytes() != src.read_bytes():
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(src.read_bytes())
    for stale in _managed(root) - set(wanted):
        stale.unlink()
    return done


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="only list differences; exit 1 if any")
    p.add_argument(
        "--root",
        type=Path,
        default=Path(__file__).resolve().parent.parent,
        help="repository root (default: this script's repository)",
    )
    args = p.parse_args(argv)
    if args.check:
        lines = differences(args.root)
        for line in lines:
            print(line)
        if lines:
            print("run: python3 scripts/sync-chart-files.py", file=sys.stderr)
        return 1 if lines else 0
    for line in sync(args.root):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
