"""Label-set helpers for the evaluator.

Label sets are :data:`~agent.tsdb.base.Labels` tuples: ``(name, value)`` pairs
sorted by name. These helpers keep that invariant.

>>> ls = (("__name__", "up"), ("job", "api"))
>>> drop_name(ls)
(('job', 'api'),)
>>> format_labels(ls)
'{__name__="up", job="api"}'
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable

from agent.tsdb.base import Labels

NAME = "__name__"

_LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def drop_name(labels: Labels) -> Labels:
    """``labels`` without ``__name__``."""
    for i, (name, _) in enumerate(labels):
        if name == NAME:
            return labels[:i] + labels[i + 1 :]
        if name > NAME:
            break
    return labels


def get(labels: Labels, name: str) -> str:
    """The value of label ``name``, or ``""`` when it is missing."""
    for key, value in labels:
        if key == name:
            return value
    return ""


def metric_name(labels: Labels) -> str:
    """The ``__name__`` of a series, or ``""``."""
    return get(labels, NAME)


def keep_only(labels: Labels, names: Collection[str]) -> Labels:
    """Only the labels listed in ``names``."""
    return tuple([pair for pair in labels if pair[0] in names])


def without(labels: Labels, names: Collection[str]) -> Labels:
    """All labels except those listed in ``names``."""
    return tuple([pair for pair in labels if pair[0] not in names])


def with_label(labels: Labels, name: str, value: str) -> Labels:
    """``labels`` with ``name`` set to ``value`` (removed when ``value`` is empty)."""
    rest = [pair for pair in labels if pair[0] != name]
    if value != "":
        rest.append((name, value))
        rest.sort()
    return tuple(rest)


def from_pairs(pairs: Iterable[tuple[str, str]]) -> Labels:
    """A sorted :data:`Labels` from pairs, dropping empty values."""
    return tuple(sorted(pair for pair in pairs if pair[1] != ""))


def quote(value: str) -> str:
    out = ['"']
    for ch in value:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        elif 0xDC80 <= ord(ch) <= 0xDCFF:  # an undecodable byte (surrogateescape)
            out.append(f"\\x{ord(ch) - 0xDC00:02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def format_labels(labels: Labels) -> str:
    """Prometheus's ``labels.String()`` form: ``{a="1", b="2"}``."""
    parts = []
    for name, value in labels:
        key = name if _LABEL_NAME_RE.fullmatch(name) else quote(name)
        parts.append(f"{key}={quote(value)}")
    return "{" + ", ".join(parts) + "}"


def is_valid_label_name(name: str) -> bool:
    """Whether ``name`` is a label name Prometheus accepts (UTF-8, non-empty)."""
    if name == "":
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_legacy_label_name(name: str) -> bool:
    """Whether ``name`` matches ``[a-zA-Z_][a-zA-Z0-9_]*``."""
    return _LABEL_NAME_RE.fullmatch(name) is not None
