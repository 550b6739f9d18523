"""Reading configuration files: YAML with line numbers, ${ENV} expansion, located errors."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from agent.config.models import AgentConfig
from agent.errors import ConfigError, ConfigProblem

# --------------------------------------------------------------------------- loading

Path_ = tuple[str | int, ...]


def compose_yaml(text: str, file: str) -> tuple[Any, dict[Path_, int]]:
    """YAML text to plain data plus a map from each node's path to its 1-based line."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([ConfigProblem(file, "", line, f"invalid YAML: {problem}")]) from None
    lines: dict[Path_, int] = {}
    if root is None:
        return {}, lines
    loader = yaml.SafeLoader("")
    return _construct(root, (), lines, loader), lines


def _construct(node: yaml.Node, path: Path_, lines: dict[Path_, int], loader: Any) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                key = str(key)
            out[key] = _construct(value_node, (*path, key), lines, loader)
            lines[(*path, key)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(v, (*path, i), lines, loader) for i, v in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


_ENV_RE = re.compile(r"\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)\})")


def _expand_env(
    data: Any,
    env: Mapping[str, str],
    path: Path_,
    problems: list[tuple[Path_, str]],
    keep: frozenset[str] = frozenset(),
) -> Any:
    """Replace ``${VAR}`` by the environment's value; ``$$`` is a literal ``$``.

    Names in ``keep`` (captures of a flow) are left for the flow to fill in at run time.
    """
    if isinstance(data, dict):
        if path[-2:-1] == ("checks",) and isinstance(data.get("flow"), dict):
            steps = data["flow"].get("steps")
            if isinstance(steps, list):
                names = {
                    n
                    for s in steps
                    if isinstance(s, dict) and isinstance(s.get("capture"), dict)
                    for n in s["capture"]
                }
                keep = keep | frozenset(names)
        return {k: _expand_env(v, env, (*path, k), problems, keep) for k, v in data.items()}
    if isinstance(data, list):
        return [_expand_env(v, env, (*path, i), problems, keep) for i, v in enumerate(data)]
    if not isinstance(data, str) or "$" not in data:
        return data

    def sub(m: re.Match[str]) -> str:
        if m.group(1) == "$":
            return "$"
        name = m.group(2)
        if name in keep:
            return m.group(0)
        if name not in env:
            problems.append((path, f"environment variable {name} is not set"))
            return m.group(0)
        return env[name]

    return _ENV_RE.sub(sub, data)


def format_path(loc: Path_) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def line_for(loc: Path_, lines: Mapping[Path_, int]) -> int | None:
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


def _clean_loc(loc: tuple[str | int, ...]) -> Path_:
    """Drop pydantic's internal segments (function-after[...] and friends)."""
    return tuple(
        p for p in loc if not (isinstance(p, str) and ("[" in p or p.startswith("function")))
    )


_UNIQUE = (("checks", "name", "check name"), ("scrape_configs", "job_name", "scrape job_name"))


def _duplicate_names(
    data: Mapping[str, Any], file: str, lines: Mapping[Path_, int]
) -> list[ConfigProblem]:
    """Names that must be unique in their list, checked before validation so they are
    reported together with every other problem."""
    out = []
    for section, key, what in _UNIQUE:
        items = data.get(section)
        if not isinstance(items, list):
            continue
        seen: dict[str, int] = {}
        for i, item in enumerate(items):
            name = item.get(key) if isinstance(item, dict) else None
            if not isinstance(name, str):
                continue
            if name in seen:
                loc: Path_ = (section, i, key)
                first = f"{section}[{seen[name]}]"
                message = f"duplicate {what} {name!r} (first used at {first})"
                out.append(ConfigProblem(file, format_path(loc), line_for(loc, lines), message))
            else:
                seen[name] = i
    return out


def _semantic_problems(
    cfg: AgentConfig, file: str, lines: Mapping[Path_, int]
) -> list[ConfigProblem]:
    """Checks across sections, once every section is valid on its own."""
    out = []
    for i, job in enumerate(cfg.scrape_configs):
        interval = job.scrape_interval or cfg.global_.scrape_interval
        if job.scrape_timeout is not None and job.scrape_timeout > interval:
            loc: Path_ = ("scrape_configs", i, "scrape_timeout")
            message = "scrape_timeout must not be longer than the scrape interval"
            out.append(ConfigProblem(file, format_path(loc), line_for(loc, lines), message))
    return out


def parse_config(text: str, file: str, env: Mapping[str, str] | None = None) -> AgentConfig:
    """Parse configuration text; raise :class:`ConfigError` listing every problem."""
    data, lines = compose_yaml(text, file)
    if not isinstance(data, dict):
        raise ConfigError([ConfigProblem(file, "", 1, "the configuration must be a mapping")])
    env_problems: list[tuple[Path_, str]] = []
    data = _expand_env(data, os.environ if env is None else env, (), env_problems)
    problems = [
        ConfigProblem(file, format_path(p), line_for(p, lines), msg) for p, msg in env_problems
    ]
    problems.extend(_duplicate_names(data, file, lines))
    try:
        cfg = AgentConfig.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = _clean_loc(err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = f"unknown field {loc[-1]!r}" if loc else msg
            problems.append(ConfigProblem(file, format_path(loc), line_for(loc, lines), msg))
        problems.sort(key=lambda p: (p.line or 0, p.path))
        raise ConfigError(problems) from None
    problems.extend(_semantic_problems(cfg, file, lines))
    problems.sort(key=lambda p: (p.line or 0, p.path))
    if problems:
        raise ConfigError(problems)
    return cfg


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> AgentConfig:
    """Read and parse a configuration file."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        problem = ConfigProblem(str(p), "", None, f"cannot read: {exc.strerror}")
        raise ConfigError([problem]) from None
    return parse_config(text, str(p), env)
