"""Dependencies point inward: the core imports no adapter."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE = [
    "agent/model.py",
    "agent/errors.py",
    "agent/lifecycle.py",
    "agent/tsdb",
    "agent/promql",
    "agent/rules",
]
CORE_MODULES = (
    "agent.model",
    "agent.errors",
    "agent.lifecycle",
    "agent.tsdb",
    "agent.promql",
    "agent.rules",
)
ALLOWED_THIRD_PARTY = {"promql_parser"}


def _core_files() -> list[Path]:
    files: list[Path] = []
    for entry in CORE:
        path = ROOT / entry
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return files


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_core_modules_import_only_stdlib_promql_parser_and_each_other() -> None:
    """model, errors, tsdb, promql and rules import nothing from the adapters."""
    offenders = []
    files = _core_files()
    assert files, "no core modules found"
    for path in files:
        for name in _imports(path):
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top in ALLOWED_THIRD_PARTY or top == "__future__":
                continue
            if name.startswith(CORE_MODULES):
                continue
            offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert offenders == []


def test_only_the_composition_root_imports_the_api_and_the_exporters() -> None:
    """agent/app.py wires components; check code never imports the API or exporters."""
    for path in (ROOT / "agent" / "checks").rglob("*.py"):
        for name in _imports(path):
            assert not name.startswith(("agent.api", "exporters", "agent.app")), (path, name)
