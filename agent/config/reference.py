"""Renders the configuration reference (Markdown) from the pydantic models.

The README's reference section is this output, between two markers; a test
compares them, so the documentation cannot drift from the code. Regenerate with
``python -m agent.config.reference --write README.md``.
"""

from __future__ import annotations

import argparse
import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from agent.config.models import AgentConfig
from agent.config.types import format_duration

START = "<!-- config-reference:start -->"
END = "<!-- config-reference:end -->"


def _models(root: type[BaseModel]) -> Iterator[tuple[str, type[BaseModel]]]:
    """Each model reachable from ``root`` once, with the YAML path where it first appears."""
    seen: set[type[BaseModel]] = set()
    queue: list[tuple[str, type[BaseModel]]] = [("", root)]
    while queue:
        path, model = queue.pop(0)
        if model in seen:
            continue
        seen.add(model)
        yield path, model
        for name, info in model.model_fields.items():
            key = info.alias or name
            for sub, suffix in _nested(info.annotation):
                queue.append((f"{path}.{key}{suffix}" if path else f"{key}{suffix}", sub))


def _nested(annotation: Any) -> Iterator[tuple[type[BaseModel], str]]:
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation, ""
    elif origin in (list, tuple):
        for arg in typing.get_args(annotation):
            for sub, suffix in _nested(arg):
                yield sub, "[]" + suffix
    elif origin is dict:
        args = typing.get_args(annotation)
        for sub, suffix in _nested(args[1]):
            yield sub, ".<name>" + suffix
    elif origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            yield from _nested(arg)


def _type_name(annotation: Any, metadata: list[Any]) -> str:
    if any("parse_duration" in repr(m) for m in metadata):
        return "duration"
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(a, metadata) for a in args if a is not type(None)]
        return " or ".join(names)
    if origin is typing.Annotated:
        return _type_name(args[0], [*metadata, *args[1:]])
    if origin is typing.Literal:
        return ", ".join(f"`{a}`" for a in args)
    if origin is list:
        return f"list of {_type_name(args[0], [])}"
    if origin is dict:
        return f"map of {_type_name(args[0], [])} → {_type_name(args[1], [])}"
    if annotation is SecretStr:
        return "secret"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    return getattr(annotation, "__name__", str(annotation))


def _default(info: FieldInfo, type_name: str) -> str:
    if info.is_required():
        return "required"
    if info.default_factory is not None:
        value = info.default_factory()  # type: ignore[call-arg]
        return "" if isinstance(value, BaseModel) or not value else f"`{value}`"
    value = info.default
    if value is None or value is PydanticUndefined:
        return ""
    if type_name == "duration" and isinstance(value, float):
        return f"`{format_duration(value)}`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def render_reference() -> str:
    """The whole reference as Markdown."""
    out = []
    for path, model in _models(AgentConfig):
        doc = (model.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        doc = re.sub(r"``([^`]+)``", r"`\1`", doc)
        out.append(f"#### `{path}`\n" if path else "#### Top level\n")
        if doc:
            out.append(f"{doc}\n")
        out.append("| field | type | default | description |")
        out.append("| --- | --- | --- | --- |")
        for name, info in model.model_fields.items():
            type_name = _type_name(info.annotation, list(info.metadata))
            desc = (info.description or "").replace("|", "\\|")
            out.append(
                f"| `{info.alias or name}` | {type_name} | {_default(info, type_name)} | {desc} |"
            )
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def splice(text: str, reference: str) -> str:
    """``text`` with the block between the markers replaced by ``reference``."""
    start, end = text.index(START) + len(START), text.index(END)
    return text[:start] + "\n" + reference + text[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", metavar="FILE", help="splice into FILE between the markers")
    args = parser.parse_args(argv)
    reference = render_reference()
    if args.write:
        path = Path(args.write)
        path.write_text(splice(path.read_text(), reference))
    else:
        print(reference, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
