"""Write the dashboards' JSON and their documentation: ``python -m dashboards.build``.

``dashboards/json/<uid>.json`` for every dashboard (pretty, sorted keys, a
trailing newline) and ``docs/dashboards.md``; a JSON file of a dashboard that no
longer exists is removed. ``--check`` writes nothing and exits 1 when a file
differs from what the code generates.

>>> files = render_files()
>>> sorted(str(p) for p in files)[:2]
['dashboards/json/pilot-agent-health.json', 'dashboards/json/pilot-dual-write.json']
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from grafana_foundation_sdk.models import dashboard as dm

from dashboards import (
    agent_health,
    dual_write,
    failover,
    feature_flags,
    migration,
    overview,
    synthetic,
)
from dashboards.docs import render_docs
from dashboards.layout import to_dict, to_json

ROOT = Path(__file__).resolve().parents[1]
JSON_DIR = Path("dashboards/json")
DOCS = Path("docs/dashboards.md")

BUILDERS: tuple[Callable[[], dm.Dashboard], ...] = (
    overview.build,
    feature_flags.build,
    migration.build,
    dual_write.build,
    failover.build,
    synthetic.build,
    agent_health.build,
)
"""Every dashboard, in the order of the documentation."""


def render_dashboards() -> dict[str, dm.Dashboard]:
    """Every dashboard model by uid, in :data:`BUILDERS` order."""
    models = [build() for build in BUILDERS]
    by_uid = {model.uid or "": model for model in models}
    if len(by_uid) != len(models) or "" in by_uid:
        raise ValueError("every dashboard needs its own uid")
    return by_uid


def render_files() -> dict[Path, str]:
    """Every generated file's text, by path relative to the repository root."""
    models = render_dashboards()
    files = {JSON_DIR / f"{uid}.json": to_json(model) for uid, model in models.items()}
    files[DOCS] = render_docs([to_dict(model) for model in models.values()])
    return files


def stale_files(root: Path = ROOT) -> list[Path]:
    """JSON files in ``dashboards/json`` that no dashboard generates."""
    wanted = set(render_files())
    return sorted(
        p.relative_to(root)
        for p in (root / JSON_DIR).glob("*.json")
        if p.relative_to(root) not in wanted
    )


def differences(root: Path = ROOT) -> list[Path]:
    """Generated files whose committed text differs (or is missing), and stale JSON files."""
    changed = [
        path
        for path, text in render_files().items()
        if not (root / path).is_file() or (root / path).read_text() != text
    ]
    return changed + stale_files(root)


def write(root: Path = ROOT) -> list[Path]:
    """Write every generated file, remove stale JSON files; return what changed."""
    changed = differences(root)
    for path in stale_files(root):
        (root / path).unlink()
    for path, text in render_files().items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboards.build", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if a file is out of date")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root")
    args = parser.parse_args(argv)
    if args.check:
        changed = differences(args.root)
        for path in changed:
            print(f"out of date: {path}", file=sys.stderr)
        return 1 if changed else 0
    stale = set(stale_files(args.root))
    for path in write(args.root):
        print(f"{'removed' if path in stale else 'wrote'} {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
