"""Translate Go RE2 regular expressions (PromQL's dialect) into Python ``re`` syntax.

Most RE2 syntax means the same in Python. The differences handled here:
inline flags in the middle of a pattern (``a(?i)b`` scopes to the rest of
the group), ``\\z``, ``\\Q...\\E`` literals, ``(?<name>...)`` groups, POSIX
classes like ``[[:alpha:]]``, and ASCII-only ``\\d``, ``\\w``, ``\\s``.

>>> go_regex("((?i)PRO).*")
'((?i:PRO)).*'
>>> go_regex(r"[[:digit:]]+\\z")
'[0-9]+\\\\Z'
"""

from __future__ import annotations

import functools
import re

_POSIX = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "ascii": "\\x00-\\x7f",
    "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@\\[-`{-~",
    "space": "\\t\\n\\v\\f\\r ",
    "upper": "A-Z",
    "word": "0-9A-Za-z_",
    "xdigit": "0-9A-Fa-f",
}
_CLASS_ESCAPES = {"d": "0-9", "w": "0-9A-Za-z_", "s": "\\t\\n\\f\\r "}
_FLAG_GROUP = re.compile(r"\(\?([imsU]*(?:-[imsU]*)?)\)")


def _escape(pattern: str, i: int, in_class: bool) -> tuple[str, int]:
    """Translate the escape at ``pattern[i] == '\\\\'``; returns text and the next index."""
    if i + 1 >= len(pattern):
        return "\\", i + 1
    ch = pattern[i + 1]
    if ch == "z":
        return "\\Z", i + 2
    if ch == "Q":
        end = pattern.find("\\E", i + 2)
        literal = pattern[i + 2 :] if end < 0 else pattern[i + 2 : end]
        return re.escape(literal), len(pattern) if end < 0 else end + 2
    if ch in _CLASS_ESCAPES:
        inner = _CLASS_ESCAPES[ch]
        return (inner if in_class else f"[{inner}]"), i + 2
    if ch.lower() in _CLASS_ESCAPES and ch.isupper():
        inner = _CLASS_ESCAPES[ch.lower()]
        if in_class:
            return pattern[i : i + 2], i + 2
        return f"[^{inner}]", i + 2
    return pattern[i : i + 2], i + 2


def _char_class(pattern: str, i: int) -> tuple[str, int]:
    """Translate the bracket expression starting at ``pattern[i] == '['``."""
    out = ["["]
    j = i + 1
    if j < len(pattern) and pattern[j] == "^":
        out.append("^")
        j += 1
    if j < len(pattern) and pattern[j] == "]":
        out.append("\\]")
        j += 1
    while j < len(pattern) and pattern[j] != "]":
        if pattern.startswith("[:", j):
            end = pattern.find(":]", j + 2)
            name = pattern[j + 2 : end] if end > 0 else ""
            if name in _POSIX:
                out.append(_POSIX[name])
                j = end + 2
                continue
        if pattern[j] == "\\":
            text, j = _escape(pattern, j, in_class=True)
            out.append(text)
            continue
        if pattern[j] == "[":
            out.append("\\[")
        else:
            out.append(pattern[j])
        j += 1
    out.append("]")
    return "".join(out), j + 1


def _flags(spec: str) -> str:
    on, _, off = spec.partition("-")
    on = on.replace("U", "")
    off = off.replace("U", "")
    if not on and not off:
        return ""
    return on + ("-" + off if off else "")


def go_regex(pattern: str) -> str:
    """The Python ``re`` pattern equivalent to RE2 ``pattern`` (best effort)."""
    out: list[str] = []
    scopes: list[list[str]] = [[]]  # per open group: inline-flag scopes opened inside it
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            text, i = _escape(pattern, i, in_class=False)
            out.append(text)
            continue
        if ch == "[":
            text, i = _char_class(pattern, i)
            out.append(text)
            continue
        i += 1
        if ch == "(":
            flag = _FLAG_GROUP.match(pattern, i - 1)
            if flag is not None:
                spec = _flags(flag.group(1))
                if spec:
                    out.append(f"(?{spec}:")
                    scopes[-1].append(spec)
                i = flag.end()
                continue
            if pattern.startswith("?<", i) and not pattern.startswith(("?<=", "?<!"), i):
                out.append("(?P<")
                i += 2
            else:
                out.append("(")
            scopes.append([])
        elif ch == ")":
            opened = scopes.pop() if len(scopes) > 1 else []
            out.append(")" * len(opened) + ")")
        elif ch == "|":
            opened = scopes[-1]
            out.append(")" * len(opened) + "|" + "".join(f"(?{spec}:" for spec in opened))
        else:
            out.append(ch)
    out.append(")" * len(scopes[0]))
    return "".join(out)


@functools.lru_cache(maxsize=1024)
def compile_go(pattern: str) -> re.Pattern[str]:
    """Compile an RE2 (Go) pattern, as configuration files write them; cached.

    >>> compile_go("(?i)api").search("API") is not None
    True
    """
    return re.compile(go_regex(pattern))
