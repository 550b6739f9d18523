"""Rule files (Prometheus's format) into :class:`~agent.rules.model.RuleGroup` values.

A rule file is ``groups:``, each group a ``name`` (unique in the file), an optional
``interval``, ``limit``, ``query_offset`` and ``labels``, and ``rules:``. Each rule
is exactly one of ``record``/``alert`` plus ``expr``; alerting rules may have
``for``, ``keep_firing_for`` and ``annotations``; both may have ``labels``.
Every problem is collected, never just the first, and located by file, path
(``groups[0].rules[2].expr``) and line, as ``promtool check rules`` does.

>>> groups, problems = parse_rule_text(
...     "groups:\\n- name: api\\n  rules:\\n  - alert: Down\\n    expr: up == 0\\n"
...     "    for: 1m\\n", "rules.yml")
>>> groups[0].rules[0].for_seconds, problems
(60.0, [])
"""

from __future__ import annotations

import glob
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

import promql_parser
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, ValidationError

from agent.config.loader import compose_yaml, format_path, line_for
from agent.config.types import parse_duration
from agent.errors import ConfigError, ConfigProblem
from agent.rules.model import AlertingRule, RecordingRule, Rule, RuleGroup

Loc = tuple[str | int, ...]
Lines = Mapping[Loc, int]

METRIC_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_GLOB_CHARS = re.compile(r"[*?\[]")

# --------------------------------------------------------------------------- models


def _prom_duration(value: object) -> float:
    """A Prometheus duration string (``0``, ``90s``, ``1h30m``) in seconds; numbers are refused."""
    if not isinstance(value, str):
        raise ValueError(f"not a valid duration string: {value!r} (use forms like 30s or 5m)")
    if value == "0":
        return 0.0
    return parse_duration(value)


def _text(value: object) -> str:
    """A YAML scalar read into a string, as Go's YAML decoder does (``true`` → ``"true"``)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise ValueError("expected a string")


def _or_empty(factory: type) -> BeforeValidator:
    return BeforeValidator(lambda v: factory() if v is None else v)


PromDuration = Annotated[float, BeforeValidator(_prom_duration)]
Text = Annotated[str, BeforeValidator(_text)]
TextMap = Annotated[dict[str, Text], _or_empty(dict)]
AnyList = Annotated[list[Any], _or_empty(list)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class RuleModel(StrictModel):
    """One entry of ``rules:``: a recording rule or an alerting rule."""

    record: Text = ""
    alert: Text = ""
    expr: Text = ""
    for_: PromDuration = Field(0.0, alias="for")
    keep_firing_for: PromDuration = 0.0
    labels: TextMap = Field(default_factory=dict)
    annotations: TextMap = Field(default_factory=dict)


class GroupModel(StrictModel):
    """One entry of ``groups:``; its ``rules`` are validated one by one."""

    name: Text = ""
    interval: PromDuration = 0.0
    limit: StrictInt = 0
    query_offset: PromDuration = 0.0
    labels: TextMap = Field(default_factory=dict)
    rules: AnyList = Field(default_factory=list)


class RuleFileModel(StrictModel):
    """A whole rule file: only ``groups``."""

    groups: AnyList = Field(default_factory=list)


# --------------------------------------------------------------------------- validation

M = TypeVar("M", bound=BaseModel)


class ProblemCollector:
    """Problems of one file, each located by its path's line."""

    def __init__(self, file: str, lines: Lines) -> None:
        self.file = file
        self.lines = lines
        self.problems: list[ConfigProblem] = []

    def add(self, loc: Loc, message: str) -> None:
        self.problems.append(
            ConfigProblem(self.file, format_path(loc), line_for(loc, self.lines), message)
        )


def validate_at(model: type[M], data: Any, loc: Loc, out: ProblemCollector) -> M | None:
    """Validate ``data``; report errors under ``loc`` and retry without the failing fields.

    Dropping the fields that failed lets the semantic checks still run on the rest,
    so one bad ``for`` does not hide an invalid ``expr`` next to it.
    """
    if not isinstance(data, dict):
        out.add(loc, f"expected a mapping, got {_kind(data)}")
        return None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        bad: set[str | int] = set()
        for err in exc.errors():
            where = tuple(err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = f"unknown field {where[-1]!r}"
            out.add((*loc, *where), msg)
            if where:
                bad.add(where[0])
    try:
        return model.model_validate({k: v for k, v in data.items() if k not in bad})
    except ValidationError:  # pragma: no cover - dropping the failing fields leaves defaults
        return None


def _kind(data: Any) -> str:
    if data is None:
        return "nothing"
    if isinstance(data, list):
        return "a list"
    return f"{type(data).__name__} {data!r}"


def parse_expr_error(expr: str) -> str | None:
    """The PromQL parser's error for ``expr``, or None when it parses."""
    try:
        promql_parser.parse(expr)
    except ValueError as exc:
        return str(exc)
    except BaseException as exc:  # pyo3 panics derive from BaseException
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        return f"parser failure: {exc}"
    return None


def _check_labels(labels: Mapping[str, str], loc: Loc, out: ProblemCollector, what: str) -> None:
    for name in labels:
        if not LABEL_NAME_RE.match(name) or (what == "label" and name == "__name__"):
            out.add((*loc, name), f"invalid {what} name: {name}")


def _check_templates(rule: RuleModel, loc: Loc, out: ProblemCollector) -> None:
    from agent.rules.template import check_template

    for field, texts in (("labels", rule.labels), ("annotations", rule.annotations)):
        what = "label" if field == "labels" else "annotation"
        for name, text in texts.items():
            error = check_template(text, name=rule.alert)
            if error is not None:
                out.add((*loc, field, name), f"{what} {name!r}: {error}")


def _check_rule(rule: RuleModel, loc: Loc, out: ProblemCollector) -> None:
    if rule.record and rule.alert:
        out.add((*loc, "alert"), "only one of 'record' and 'alert' must be set")
    elif not rule.record and not rule.alert:
        out.add(loc, "one of 'record' or 'alert' must be set")
    if not rule.expr:
        out.add((*loc, "expr"), "field 'expr' must be set in rule")
    elif (error := parse_expr_error(rule.expr)) is not None:
        out.add((*loc, "expr"), f"could not parse expression: {error}")
    if rule.record:
        if rule.annotations:
            out.add((*loc, "annotations"), "invalid field 'annotations' in recording rule")
        if rule.for_:
            out.add((*loc, "for"), "invalid field 'for' in recording rule")
        if rule.keep_firing_for:
            out.add((*loc, "keep_firing_for"), "invalid field 'keep_firing_for' in recording rule")
        if not METRIC_NAME_RE.match(rule.record):
            out.add((*loc, "record"), f"invalid recording rule name: {rule.record}")
    _check_labels(rule.labels, (*loc, "labels"), out, "label")
    _check_labels(rule.annotations, (*loc, "annotations"), out, "annotation")
    if rule.alert:
        _check_templates(rule, loc, out)


def _to_rule(rule: RuleModel) -> Rule:
    if rule.record:
        return RecordingRule(name=rule.record, expr=rule.expr, labels=dict(rule.labels))
    return AlertingRule(
        name=rule.alert,
        expr=rule.expr,
        for_seconds=rule.for_,
        keep_firing_for_seconds=rule.keep_firing_for,
        labels=dict(rule.labels),
        annotations=dict(rule.annotations),
    )


def _group(data: Any, loc: Loc, file: str, out: ProblemCollector) -> RuleGroup | None:
    group = validate_at(GroupModel, data, loc, out)
    if group is None:
        return None
    if not group.name:
        out.add((*loc, "name"), "group name must not be empty")
    _check_labels(group.labels, (*loc, "labels"), out, "label")
    rules: list[Rule] = []
    for i, raw in enumerate(group.rules):
        rule = validate_at(RuleModel, raw, (*loc, "rules", i), out)
        if rule is not None:
            _check_rule(rule, (*loc, "rules", i), out)
            rules.append(_to_rule(rule))
    return RuleGroup(
        name=group.name,
        file=file,
        rules=tuple(rules),
        interval_seconds=group.interval or None,
        limit=group.limit,
        query_offset_seconds=group.query_offset,
        labels=dict(group.labels),
    )


def parse_rule_text(text: str, file: str) -> tuple[list[RuleGroup], list[ConfigProblem]]:
    """Parse one rule file's text: its groups and every problem found (empty when valid).

    The groups are only meaningful when there are no problems.
    """
    try:
        data, lines = compose_yaml(text, file)
    except ConfigError as exc:
        return [], list(exc.problems)
    out = ProblemCollector(file, lines)
    if data is None or data == {}:
        return [], []
    top = validate_at(RuleFileModel, data, (), out)
    if top is None:
        return [], out.problems
    groups: list[RuleGroup] = []
    first: dict[str, int] = {}
    for i, raw in enumerate(top.groups):
        group = _group(raw, ("groups", i), file, out)
        if group is None:
            continue
        if group.name and group.name in first:
            out.add(
                ("groups", i, "name"),
                f"group name {group.name!r} is repeated in the same file "
                f"(first at groups[{first[group.name]}])",
            )
        first.setdefault(group.name, i)
        groups.append(group)
    out.problems.sort(key=lambda p: (p.line or 0, p.path))
    return groups, out.problems


# --------------------------------------------------------------------------- files


def expand_rule_paths(
    patterns: Iterable[str | Path], base_dir: str | Path | None = None
) -> tuple[list[str], list[str]]:
    """Resolve rule-file patterns as Prometheus does: relative to ``base_dir``, globs expanded.

    Returns the files (each pattern's matches sorted, duplicates dropped) and the
    patterns that matched nothing.
    """
    files: list[str] = []
    unmatched: list[str] = []
    for pattern in patterns:
        path = str(pattern)
        if base_dir is not None and path and not Path(path).is_absolute():
            path = str(Path(base_dir) / path)
        matches = sorted(glob.glob(path)) if _GLOB_CHARS.search(path) else [path]
        matches = [m for m in matches if Path(m).is_file()]
        if not matches:
            unmatched.append(path)
        files.extend(m for m in matches if m not in files)
    return files, unmatched


def load_rule_file(path: str | Path) -> tuple[list[RuleGroup], list[ConfigProblem]]:
    """Read and parse one rule file; an unreadable file is one problem."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        return [], [ConfigProblem(str(path), "", None, f"cannot read: {reason}")]
    return parse_rule_text(text, str(path))


def load_rule_files(
    paths: Sequence[str | Path], *, base_dir: str | Path | None = None
) -> list[RuleGroup]:
    """Load every rule file named by ``paths`` (glob patterns allowed) into rule groups.

    A glob that matches nothing is allowed (as in Prometheus); a plain path that
    does not exist is a problem. Raises :class:`ConfigError` with every problem
    of every file.

    >>> load_rule_files([])
    []
    """
    files, unmatched = expand_rule_paths(paths, base_dir)
    problems = [
        ConfigProblem(p, "", None, "cannot read: No such file or directory")
        for p in unmatched
        if not _GLOB_CHARS.search(p)
    ]
    groups: list[RuleGroup] = []
    for file in files:
        found, file_problems = load_rule_file(file)
        groups.extend(found)
        problems.extend(file_problems)
    if problems:
        raise ConfigError(problems)
    return groups
