"""Validating events against the JSON Schemas in ``docs/events/schemas``.

Every CloudEvents ``type`` the agent produces has one schema file,
``<type>.schema.json``, that ``$ref``s the shared envelope and fixes the type, the
subject and a strict ``data``. :func:`validate_event` checks one event (a dict,
as ``Event.to_dict()`` gives it or as read back from JSONL or Kafka) and returns
its problems; an unknown type is a problem. References resolve through a
``referencing`` registry built from the files, never over the network.

:func:`scan_event_files` validates every event line of every ``*.jsonl`` (and
rotated ``*.jsonl.N``) file under a directory: the session check in
``tests/conftest.py`` runs it over pytest's basetemp. A directory holding a file
named :data:`UNVALIDATED_MARKER` is left out with everything under it; write it
with :func:`mark_unvalidated` (the ``unvalidated_events`` marker does that for a
test's ``tmp_path``) for files that hold test-made, non-agent events on purpose.

>>> validate_event({"specversion": "1.0"})[0]
'unknown event type None (no file in docs/events/schemas)'
"""

from __future__ import annotations

import collections
import datetime as dt
import functools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "docs" / "events" / "schemas"
SUFFIX = ".schema.json"
UNVALIDATED_MARKER = "UNVALIDATED-EVENTS"
"""A file of this name in a directory exempts every event file under it from the check."""

_EVENT_FILE = re.compile(r"\.jsonl(\.[0-9]+)?$")

FORMATS = FormatChecker(formats=())


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    """RFC 3339 date-time; ``datetime`` parses it (the pattern has checked the shape)."""
    if isinstance(value, str):
        dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    return True


@dataclass(frozen=True)
class Schemas:
    """Every schema file: a validator per event type, and the envelope's."""

    by_type: dict[str, Draft202012Validator]
    envelope: Draft202012Validator
    files: dict[str, Path]


@functools.cache
def schemas() -> Schemas:
    """Load and index the schema files once."""
    registry: Registry[Any] = Registry()
    documents: dict[Path, dict[str, Any]] = {}
    for path in sorted(SCHEMA_DIR.glob(f"*{SUFFIX}")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        documents[path] = doc
        registry = registry.with_resource(doc["$id"], Resource.from_contents(doc, DRAFT202012))
    registry = registry.crawl()

    def validator(doc: dict[str, Any]) -> Draft202012Validator:
        return Draft202012Validator(doc, registry=registry, format_checker=FORMATS)

    by_type, files = {}, {}
    envelope = None
    for path, doc in documents.items():
        event_type = doc.get("properties", {}).get("type", {}).get("const")
        if event_type is not None:
            by_type[event_type] = validator(doc)
            files[event_type] = path
        elif path.name == f"envelope{SUFFIX}":
            envelope = validator(doc)
    if envelope is None:
        raise RuntimeError(f"no envelope{SUFFIX} in {SCHEMA_DIR}")
    return Schemas(by_type, envelope, files)


def _where(path: Any) -> str:
    return "/".join(str(p) for p in path) or "(event)"


def validate_event(obj: object) -> list[str]:
    """The problems of one event (empty when valid against its type's schema)."""
    if not isinstance(obj, dict):
        return [f"not a JSON object: {type(obj).__name__}"]
    loaded = schemas()
    event_type = obj.get("type")
    validator = loaded.by_type.get(event_type) if isinstance(event_type, str) else None
    problems = []
    if validator is None:
        problems.append(f"unknown event type {event_type!r} (no file in docs/events/schemas)")
        validator = loaded.envelope
    errors = sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path)))
    problems += [f"{_where(e.absolute_path)}: {e.message}" for e in errors]
    return problems


def mark_unvalidated(directory: Path, reason: str) -> None:
    """Exempt the event files under ``directory`` from the session check, saying why."""
    (directory / UNVALIDATED_MARKER).write_text(reason + "\n", encoding="utf-8")


@dataclass
class ScanReport:
    """What a scan found: events validated per type, and every problem as file:line."""

    counts: collections.Counter[str] = field(default_factory=collections.Counter)
    problems: list[str] = field(default_factory=list)
    files: int = 0
    exempt: list[Path] = field(default_factory=list)


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _scan_line(text: str) -> tuple[object, str | None]:
    try:
        return json.loads(text, parse_constant=_reject_constant), None
    except ValueError as exc:
        return None, f"not JSON: {exc}"


def scan_file(path: Path, report: ScanReport) -> None:
    """Validate each line of one file that is a JSON object with ``specversion``."""
    report.files += 1
    with path.open(encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            obj, error = _scan_line(line)
            if error is not None:
                report.problems.append(f"{path}:{number}: {error}")
                continue
            if not isinstance(obj, dict) or "specversion" not in obj:
                continue
            problems = validate_event(obj)
            report.problems += [f"{path}:{number}: {p}" for p in problems]
            if not problems:
                report.counts[str(obj["type"])] += 1


def scan_event_files(root: Path) -> ScanReport:
    """Validate every ``*.jsonl``/``*.jsonl.N`` file under ``root``, minus exempt directories."""
    report = ScanReport()
    for directory, dirnames, filenames in os.walk(root):
        if UNVALIDATED_MARKER in filenames:
            report.exempt.append(Path(directory))
            dirnames[:] = []
            continue
        dirnames.sort()
        for name in sorted(filenames):
            if _EVENT_FILE.search(name):
                scan_file(Path(directory, name), report)
    return report
