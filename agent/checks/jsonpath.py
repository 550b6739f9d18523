"""A small JSONPath subset for ``expect.json`` and flow captures.

Supported: the root ``$``, member access ``.key``, ``['key']`` or ``["key"]``, and
array indexes ``[0]`` and ``[-1]`` (negative counts from the end). Nothing else:
no wildcards, slices, filters or recursive descent.

>>> find({"items": [{"id": 7}]}, "$.items[-1].id")
7
>>> json_equal(find({"count": 3}, "$.count"), "3")
False
"""

from __future__ import annotations

import functools
import re
from typing import Any

Segment = str | int

# One segment at a time: ".key", "['key']", '["key"]' or "[index]".
_SEGMENT_RE = re.compile(
    r"""
    \.(?P<name>[^.\[\]'"\s]+)
    | \[\s*'(?P<single>(?:[^'\\]|\\.)*)'\s*\]
    | \[\s*"(?P<double>(?:[^"\\]|\\.)*)"\s*\]
    | \[\s*(?P<index>-?\d+)\s*\]
    """,
    re.VERBOSE,
)
_ESCAPE_RE = re.compile(r"\\(.)")


class JsonPathError(ValueError):
    """A JSONPath expression is not in the supported subset."""


class JsonPathMissing(LookupError):
    """A JSONPath expression names something the document does not have."""


@functools.lru_cache(maxsize=512)
def parse(path: str) -> tuple[Segment, ...]:
    """Split a JSONPath into keys and indexes.

    >>> parse("$.a['b c'][0]")
    ('a', 'b c', 0)
    """
    if not path.startswith("$"):
        raise JsonPathError(f"JSONPath {path!r} must start with '$'")
    segments: list[Segment] = []
    pos = 1
    while pos < len(path):
        m = _SEGMENT_RE.match(path, pos)
        if m is None:
            raise JsonPathError(f"JSONPath {path!r}: unexpected {path[pos:]!r} at offset {pos}")
        segments.append(_segment(m))
        pos = m.end()
    return tuple(segments)


def _segment(m: re.Match[str]) -> Segment:
    if m.group("name") is not None:
        return m.group("name")
    if m.group("index") is not None:
        return int(m.group("index"))
    quoted = m.group("single") if m.group("single") is not None else m.group("double")
    return _ESCAPE_RE.sub(r"\1", quoted)


def find(doc: Any, path: str) -> Any:
    """The value at ``path`` in a decoded JSON document.

    Raises :class:`JsonPathError` for bad syntax and :class:`JsonPathMissing`
    when a key, an index or the right container type is missing.
    """
    value = doc
    where = "$"
    for seg in parse(path):
        value = _step(value, seg, where)
        where += f"[{seg}]" if isinstance(seg, int) else f".{seg}"
    return value


def _step(value: Any, seg: Segment, where: str) -> Any:
    if isinstance(seg, int):
        if not isinstance(value, list):
            raise JsonPathMissing(f"{where} is {_kind(value)}, not an array")
        if not -len(value) <= seg < len(value):
            raise JsonPathMissing(f"{where} has {len(value)} items, no index {seg}")
        return value[seg]
    if not isinstance(value, dict):
        raise JsonPathMissing(f"{where} is {_kind(value)}, not an object")
    if seg not in value:
        raise JsonPathMissing(f"{where} has no key {seg!r}")
    return value[seg]


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def json_equal(actual: Any, expected: Any) -> bool:
    """Compare JSON values by JSON type: ``3 == 3.0`` but ``1 != true`` and ``3 != "3"``.

    >>> (json_equal(3, 3.0), json_equal(1, True), json_equal([1], [1]))
    (True, False, True)
    """
    if _kind(actual) != _kind(expected):
        return False
    if isinstance(actual, list):
        return len(actual) == len(expected) and all(
            json_equal(a, e) for a, e in zip(actual, expected, strict=True)
        )
    if isinstance(actual, dict):
        return actual.keys() == expected.keys() and all(
            json_equal(actual[k], expected[k]) for k in actual
        )
    return bool(actual == expected)
