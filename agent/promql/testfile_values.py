"""The value notations of PromQL test scripts: durations, series values, strings, labels.

These are the pieces :mod:`agent.promql.testfile_parse` reads statements with::

    http_requests{job="api", "utf8.name"="x"} 0+10x3 _ stale _x2 Inf

>>> expand_values("_x2 5x1 1-1x2")
(None, None, 5.0, 5.0, 1.0, 0.0, -1.0)
>>> split_series('up{job="a"} 1 2')
((('__name__', 'up'), ('job', 'a')), '1 2')
>>> parse_duration_ms("1m30s"), unquote('"a\\\\tb"')
(90000, 'a\\tb')
"""

from __future__ import annotations

import re

from agent.tsdb.base import STALE_NAN, Labels, labels_from

_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_MS |= {"w": 7 * _MS["d"], "y": 365 * _MS["d"]}
_DURATION = re.compile(
    r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?"
)
_DURATION_UNITS = ("y", "w", "d", "h", "m", "s", "ms")

_NUM = r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[iI][nN][fF]|[nN][aA][nN]"
_ITEM = re.compile(rf"(?P<base>[+-]?(?:{_NUM}))(?:(?P<inc>[+-](?:{_NUM}))?x(?P<times>[0-9]+))?")
_BLANKS = re.compile(r"_x([0-9]+)")
_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

Values = tuple[float | None, ...]
"""Expanded sample values; ``None`` is a missing point (``_``), stale is :data:`STALE_NAN`."""


def parse_duration_ms(text: str) -> int:
    """A Prometheus duration (``1h30m``, ``500ms``, ``0``) in milliseconds.

    >>> parse_duration_ms("1m30s"), parse_duration_ms("0")
    (90000, 0)
    """
    if text == "0":
        return 0
    match = _DURATION.fullmatch(text)
    if not text or match is None:
        raise ValueError(f"not a valid duration string: {text!r}")
    return sum(int(n) * _MS[u] for n, u in zip(match.groups(), _DURATION_UNITS, strict=True) if n)


def _number(text: str) -> float:
    low = text.lower().lstrip("+-")
    if low in ("inf", "nan"):
        value = float("nan") if low == "nan" else float("inf")
        return -value if text.startswith("-") else value
    return float(text)


def expand_values(text: str) -> Values:
    """Expand the series-value notation: ``1+2x3`` is 1 3 5 7, ``_x2`` two gaps.

    ``a+bxN`` and ``a-bxN`` give N+1 values by repeated addition (as Prometheus
    does), ``axN`` repeats ``a`` N+1 times, ``_`` is a missing point, ``stale`` a
    stale marker, and ``Inf``/``NaN`` may carry a sign.
    """
    out: list[float | None] = []
    for item in text.split():
        if item == "_":
            out.append(None)
        elif item == "stale":
            out.append(STALE_NAN)
        elif blanks := _BLANKS.fullmatch(item):
            out.extend([None] * int(blanks.group(1)))
        elif m := _ITEM.fullmatch(item):
            value = _number(m["base"])
            if m["times"] is None:
                out.append(value)
                continue
            step = _number(m["inc"]) if m["inc"] else 0.0
            for _ in range(int(m["times"]) + 1):
                out.append(value)
                value += step
        else:
            raise ValueError(f"invalid series value {item!r}")
    return tuple(out)


_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_ESCAPES |= {"\\": "\\", "'": "'", '"': '"', "`": "`"}


def unquote(text: str) -> str:
    """Unquote a PromQL/Go string literal: ``"..."`` or ``'...'`` with escapes, or raw ```...```."""
    if len(text) < 2 or text[0] not in "\"'`" or text[-1] != text[0]:
        raise ValueError(f"not a quoted string: {text!r}")
    body = text[1:-1]
    if text[0] == "`":
        return body
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        code = body[i + 1 : i + 2]
        widths = {"x": 2, "u": 4, "U": 8}
        if code in _ESCAPES:
            out.append(_ESCAPES[code])
            i += 2
        elif code in widths:
            out.append(chr(int(body[i + 2 : i + 2 + widths[code]], 16)))
            i += 2 + widths[code]
        elif code.isdigit():
            out.append(chr(int(body[i + 1 : i + 4], 8)))
            i += 4
        else:
            raise ValueError(f"unknown escape sequence in {text!r}")
    return "".join(out)


def _scan_string(text: str, start: int) -> int:
    """Index just past the quoted string starting at ``text[start]``."""
    quote, i = text[start], start + 1
    while i < len(text):
        if text[i] == "\\" and quote != "`":
            i += 2
            continue
        if text[i] == quote:
            return i + 1
        i += 1
    raise ValueError("unterminated quoted string")


def _parse_label_set(text: str, labels: dict[str, str]) -> None:
    """Fill ``labels`` from the inside of ``{...}``: ``a="b", "utf8.name"="c", "metric"``."""
    i = 0
    while True:
        while i < len(text) and text[i] in " \t,":
            i += 1
        if i >= len(text):
            return
        quoted = text[i] in "\"'`"
        if quoted:
            end = _scan_string(text, i)
            name = unquote(text[i:end])
        elif m := _LABEL_NAME.match(text, i):
            name, end = m.group(), m.end()
        else:
            raise ValueError(f"unexpected {text[i:]!r} in label set")
        rest = text[end:].lstrip()
        if not rest.startswith("=") and quoted:
            labels["__name__"] = name
            i = len(text) - len(rest)
            continue
        j = len(text) - len(rest[1:].lstrip())
        if not rest.startswith("=") or j >= len(text) or text[j] not in "\"'`":
            raise ValueError(f"label {name!r} needs a quoted value")
        end = _scan_string(text, j)
        labels[name] = unquote(text[j:end])
        i = end


def split_series(line: str) -> tuple[Labels, str]:
    """Split ``metric{labels} <values>`` into its labels and the raw values text."""
    labels: dict[str, str] = {}
    i = 0
    if m := _IDENT.match(line):
        labels["__name__"] = m.group()
        i = m.end()
    if line[i : i + 1] == "{":
        j = i + 1
        while j < len(line) and line[j] != "}":
            j = _scan_string(line, j) if line[j] in "\"'`" else j + 1
        if j >= len(line):
            raise ValueError("unclosed label set")
        _parse_label_set(line[i + 1 : j], labels)
        i = j + 1
    if i == 0 or line[i : i + 1] not in (" ", "\t") or not line[i:].strip():
        raise ValueError(f"invalid series description {line!r}")
    return labels_from(labels), line[i:].strip()


def parse_number(text: str) -> float | None:
    """The number a whole line holds (Go's ParseInt base 0, then ParseFloat), or None."""
    try:
        if re.fullmatch(r"[+-]?0[0-7]+", text):
            return float(int(text, 8))
        return float(int(text, 0))
    except ValueError:
        pass
    if not re.fullmatch(r"[+-]?(?:[0-9.]+(?:[eE][+-]?[0-9]+)?|inf(?:inity)?|nan)", text, re.I):
        return None
    try:
        return float(text)
    except ValueError:
        return None
