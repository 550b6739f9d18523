"""The JSONPath subset used by expect.json and flow captures."""

from __future__ import annotations

from typing import Any

import pytest

from agent.checks.jsonpath import JsonPathError, JsonPathMissing, find, json_equal, parse

DOC: dict[str, Any] = {
    "status": "ok",
    "count": 3,
    "items": [{"id": 1, "tags": ["a", "b"]}, {"id": 2, "tags": []}],
    "odd key": {"x.y": True},
    "nothing": None,
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$", DOC),
        ("$.status", "ok"),
        ("$.count", 3),
        ("$.items[0].id", 1),
        ("$.items[-1].id", 2),
        ("$.items[0].tags[1]", "b"),
        ("$['odd key']['x.y']", True),
        ('$["odd key"]["x.y"]', True),
        ("$['items'][ 1 ]['tags']", []),
        ("$.nothing", None),
    ],
)
def test_find_follows_keys_and_indexes(path: str, expected: Any) -> None:
    """Dot keys, quoted keys and positive or negative indexes all reach the right value."""
    assert find(DOC, path) == expected


def test_quoted_keys_unescape_quotes() -> None:
    """A quote escaped with a backslash inside a bracketed key is part of the key."""
    assert find({"it's": 1}, r"$['it\'s']") == 1


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("$.missing", "$ has no key 'missing'"),
        ("$.items[5]", "$.items has 2 items, no index 5"),
        ("$.items[-3]", "$.items has 2 items, no index -3"),
        ("$.status.len", "$.status is a string, not an object"),
        ("$.count[0]", "$.count is a number, not an array"),
        ("$.items.id", "$.items is an array, not an object"),
        ("$.nothing.x", "$.nothing is null, not an object"),
    ],
)
def test_missing_paths_raise_a_clear_error(path: str, message: str) -> None:
    """A path that leaves the document raises JsonPathMissing saying where and why."""
    with pytest.raises(JsonPathMissing) as info:
        find(DOC, path)
    assert str(info.value) == message


@pytest.mark.parametrize("path", ["status", "$.", "$..a", "$[*]", "$[1:2]", "$['a'", "$.a b", "$x"])
def test_bad_syntax_raises_json_path_error(path: str) -> None:
    """Anything outside the subset (wildcards, slices, unclosed brackets) is a syntax error."""
    with pytest.raises(JsonPathError):
        parse(path)


@pytest.mark.parametrize(
    ("actual", "expected", "equal"),
    [
        (3, 3, True),
        (3, 3.0, True),
        (3, "3", False),
        ("3", 3, False),
        (1, True, False),
        (True, True, True),
        (None, None, True),
        (None, False, False),
        ([1, "a"], [1, "a"], True),
        ([1], [1, 2], False),
        ({"a": [1]}, {"a": [1]}, True),
        ({"a": 1}, {"a": True}, False),
    ],
)
def test_json_equal_compares_json_values_by_type(actual: Any, expected: Any, equal: bool) -> None:
    """Numbers equal numbers, but a number never equals a string or a boolean."""
    assert json_equal(actual, expected) is equal
