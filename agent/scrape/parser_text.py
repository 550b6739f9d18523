"""The Prometheus text format 0.0.4, and the pieces both exposition formats share.

Lines are read one at a time. A line in the common shape (``name value``,
``name{a="x",b="y"} value [timestamp]``, one space between the parts, no
escapes) goes through :meth:`FastLines.sample`, which uses ``str`` methods and
per-body caches: each ``label="value`` piece, metric name and value token is
parsed once per body. Any other line, and every line of a body holding tabs or
control characters, goes through :func:`text_sample`, which follows Prometheus
2.x's lexer (``promlex.l``) rule by rule: whitespace between all tokens,
optional commas between labels, a value right after ``}``, raw newlines inside
label values. The fast path only accepts lines the exact path reads the same
way (a property test checks it); anything else it hands over.

>>> parse_text("# TYPE up gauge\\nup{job=\\"api\\"} 1 1700000000000\\n", fast=True).samples[0]
ScrapedSample(labels=(('__name__', 'up'), ('job', 'api')), value=1.0, timestamp_ms=1700000000000)
"""

from __future__ import annotations

import math
import re
import sys
from typing import Any, Final

from agent.scrape.base import ParseError, ParseResult, ScrapedSample
from agent.tsdb.base import Labels

NAME_RE: Final = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME_RE: Final = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_GO_DECIMAL_RE: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_SPECIAL_FLOATS: Final = {
    "nan": math.nan,
    "inf": math.inf,
    "+inf": math.inf,
    "-inf": -math.inf,
    "infinity": math.inf,
    "+infinity": math.inf,
    "-infinity": -math.inf,
}
_SURROGATE_RE: Final = re.compile("[\udc80-\udcff]")
_ESCAPE_RE: Final = re.compile(r"\\(.)", re.S)
_ESCAPES: Final = {'"': '"', "\\": "\\", "n": "\n"}
_WS_RE: Final = re.compile(r"[ \t]*")
_TEXT_VALUE_RE: Final = re.compile(r"[^{ \t\x00]+")
_DIGITS_RE: Final = re.compile(r"[0-9]+")
# The body of a quoted label value up to its closing quote or the end of the line.
_TEXT_QUOTED_RE: Final = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*')
TEXT_TYPES: Final = {
    "counter": "counter",
    "gauge": "gauge",
    "histogram": "histogram",
    "summary": "summary",
    "untyped": "unknown",
}
MAX_INT64: Final = 2**63 - 1
NAME: Final = "__name__"
# ScrapedSample is a frozen slots dataclass: its generated __init__ sets each field
# through object.__setattr__, which costs twice as much as setting the slots
# directly. The hot path sets them directly (the class has no __post_init__;
# tests/unit/test_scrape_parser.py checks that the results are equal).
_new = object.__new__
_set_labels = vars(ScrapedSample)["labels"].__set__
_set_value = vars(ScrapedSample)["value"].__set__
_set_timestamp = vars(ScrapedSample)["timestamp_ms"].__set__


class _EndOfInput(Exception):
    """A NUL byte where a line starts: Prometheus's lexer reads it as the end of input."""


def is_label_name(name: str) -> bool:
    """Whether ``name`` is a label name: ``[a-zA-Z_][a-zA-Z0-9_]*``.

    >>> is_label_name("le"), is_label_name("a:b"), is_label_name("é")
    (True, False, False)
    """
    return name.isidentifier() and name.isascii()


def is_metric_name(name: str) -> bool:
    """Whether ``name`` is a metric name: ``[a-zA-Z_:][a-zA-Z0-9_:]*``."""
    if ":" in name:
        name = name.replace(":", "_")
    return name.isidentifier() and name.isascii()


def _skip(line: str, pos: int) -> int:
    """The position of the first character at or after ``pos`` that is not a space or tab."""
    return _WS_RE.match(line, pos).end()  # type: ignore[union-attr]


def go_float(s: str) -> float:
    """``s`` as Go's ``strconv.ParseFloat`` reads it, without hex floats or underscores.

    That is what Prometheus's text parsers accept: decimals (``1``, ``-.5``,
    ``1e3``, ``1.``), ``NaN``, ``Inf`` and ``Infinity`` in any case, the infinities
    with a sign. Overflow (``1e400``) is an error, as in Go. Raises ``ValueError``.

    >>> go_float("+Inf"), go_float("1e3"), go_float("nan") != go_float("nan")
    (inf, 1000.0, True)
    """
    if s.isascii():
        special = _SPECIAL_FLOATS.get(s.lower())
        if special is not None:
            return special
        if _GO_DECIMAL_RE.fullmatch(s):
            value = float(s)
            if not math.isinf(value):
                return value
            raise ValueError(f"value out of range: {s!r}")
    raise ValueError(f"invalid value {s!r}")


def unescape(raw: str) -> str:
    r"""A label value without its escapes: ``\\``, ``\"`` and ``\n``; others stay as they are."""
    if "\\" not in raw:
        return raw
    return _ESCAPE_RE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(0)), raw)


def check_utf8(text: str, what: str) -> None:
    """Fail when ``text`` came from bytes that are not UTF-8 (``surrogateescape`` decoding)."""
    if _SURROGATE_RE.search(text):
        raise ValueError(f"{what} is not valid UTF-8")


def finish_labels(pairs: list[tuple[str, str]]) -> Labels:
    """Sorted labels from ``pairs`` (``__name__`` among them); a repeated name is an error.

    Unless one of the repeated name's values is empty: Prometheus's label builder
    then drops the name altogether before its storage looks for repeated names, so
    the name is returned once, with an empty value (``{a="x",a=""}`` gives
    ``a=""``). Empty values are otherwise kept as exposed.
    """
    if len({name for name, _ in pairs}) == len(pairs):
        return tuple(sorted(pairs))
    emptied = {name for name, value in pairs if not value}
    kept: dict[str, str] = {}
    for name, value in pairs:
        if name in emptied:
            kept[name] = ""
        elif name in kept:
            raise ValueError(f"duplicate label name {name!r}")
        else:
            kept[name] = value
    if not kept[NAME]:
        raise ValueError("missing metric name: __name__ is given empty")
    return tuple(sorted(kept.items()))


class FastLines:
    """Per-body caches and the fast path for sample lines in the common shape.

    :meth:`sample` returns ``None`` for any line it does not handle (never raises);
    the caller then parses the line with the exact path, which also reports errors.
    ``om`` selects OpenMetrics timestamps (float seconds) over text ones (integer ms).
    """

    __slots__ = ("_names", "_pairs", "_values", "om")

    def __init__(self, om: bool) -> None:
        self.om = om
        self._names: dict[str, tuple[str, str]] = {}
        self._pairs: dict[str, tuple[str, str]] = {}
        self._values: dict[str, float] = {}

    def sample(self, line: str) -> ScrapedSample | None:
        """The sample on ``line``, or ``None`` when the line is not in the common shape."""
        labels: Labels
        head, sep, tail = line.rpartition("} ")
        if not sep:
            name, sep, tail = line.partition(" ")
            if not (sep and ((name.isidentifier() and name.isascii()) or is_metric_name(name))):
                return None
            labels = ((NAME, name),)
        elif head[-1:] == '"':
            brace = head.find("{")
            if brace < 0:
                return None
            name_pair = self._names.get(head[:brace])
            if name_pair is None:
                name_pair = self._new_name_pair(head[:brace])
                if name_pair is None:
                    return None
            pieces = head[brace + 1 : -1].split('",')
            pairs: list[Any] = list(map(self._pairs.get, pieces))
            if None in pairs and not self._fill(pieces, pairs):
                return None
            pairs.append(name_pair)
            pairs.sort()
            if len(dict(pairs)) != len(pairs):
                return None
            labels = tuple(pairs)
        elif head[-1:] == "{":
            if not is_metric_name(head[:-1]):
                return None
            labels = ((NAME, head[:-1]),)
        else:
            return None
        token, sep, stamp_text = tail.partition(" ")
        value = self._values.get(token)
        if value is None:
            value = self._new_value(token)
            if value is None:
                return None
        if not sep:
            stamp = None
        elif (stamp := self._timestamp(stamp_text)) is None:
            return None
        sample = _new(ScrapedSample)
        _set_labels(sample, labels)
        _set_value(sample, value)
        _set_timestamp(sample, stamp)
        return sample

    def _new_value(self, token: str) -> float | None:
        try:
            value = float(token)
        except ValueError:
            return None
        if value - value or "_" in token or not token.isascii():
            try:
                value = go_float(token)
            except ValueError:
                return None
        self._values[token] = value
        return value

    def _fill(self, pieces: list[str], pairs: list[Any]) -> bool:
        """Parse the pieces not cached yet; ``False`` if one is not ``name="value``."""
        new_pair = self._new_pair
        for i, pair in enumerate(pairs):
            if pair is None:
                pair = pairs[i] = new_pair(pieces[i])
                if pair is None:
                    return False
        return True

    def _timestamp(self, token: str) -> int | None:
        if not self.om:
            if token.isdigit() and token.isascii() and len(token) < 19:
                return int(token)
            return None
        try:
            seconds = go_float(token)
        except ValueError:
            return None
        return om_timestamp_ms(seconds) if math.isfinite(seconds) else None

    def _new_name_pair(self, name: str) -> tuple[str, str] | None:
        if not is_metric_name(name):
            return None
        name = sys.intern(name)
        pair = self._names[name] = (NAME, name)
        return pair

    def _new_pair(self, piece: str) -> tuple[str, str] | None:
        label, sep, value = piece.partition('="')
        if not (sep and label.isidentifier() and label.isascii()) or '"' in value or "\\" in value:
            return None
        pair = self._pairs[piece] = (sys.intern(label), value)
        return pair


def om_timestamp_ms(seconds: float) -> int | None:
    """OpenMetrics seconds as Prometheus stores them: ms, truncated; ``None`` past int64."""
    ms = seconds * 1000
    if -(2.0**63) <= ms < 2.0**63:
        return int(ms)
    return None


class Lines:
    """The body's lines, numbered from 1; a label value may pull in the next lines."""

    __slots__ = ("numbered", "pulled")

    def __init__(self, text: str) -> None:
        self.numbered = enumerate(text.split("\n"), 1)
        self.pulled = 0

    def pull(self) -> str | None:
        """The next line, consumed, or ``None`` at the end of the body."""
        following = next(self.numbered, None)
        if following is None:
            return None
        self.pulled = following[0]
        return following[1]


def parse_text(text: str, fast: bool) -> ParseResult:
    """Parse a text-format body; ``fast`` allows the fast path (no tabs or control chars)."""
    samples: list[ScrapedSample] = []
    types: dict[str, str] = {}
    quick = FastLines(om=False).sample
    lines = Lines(text)
    append = samples.append
    number = 0
    try:
        for number, line in lines.numbered:  # noqa: B007 (the error handler reads it)
            if not line:
                continue
            if fast and line[0] != "#" and (sample := quick(line)) is not None:
                append(sample)
            elif line[0] == "#":
                text_comment(line, types, fast)
            elif (sample := _text_line(line, lines, types)) is not None:
                append(sample)
    except _EndOfInput:
        pass
    except ValueError as exc:
        raise ParseError(str(exc), max(number, lines.pulled)) from None
    return ParseResult(samples, types)


def _text_line(line: str, lines: Lines, types: dict[str, str]) -> ScrapedSample | None:
    """Any line, by the exact rules: blank, comment, or sample."""
    pos = _skip(line, 0)
    if pos == len(line):
        return None
    if line[pos] == "\x00":
        raise _EndOfInput
    if line[pos] == "#":
        _text_comment(line[pos:], types)
        return None
    if pos:
        # Prometheus 2.x makes the blanks part of the metric name, which then fails.
        raise ValueError("invalid metric name: a sample line starts with whitespace")
    return text_sample(line, pos, lines)


def text_comment(line: str, types: dict[str, str], fast: bool) -> None:
    """A line starting with ``#``: ``# HELP``, ``# TYPE`` or any other comment."""
    end = line.find(" ", 7)
    if line.startswith("# TYPE "):
        kind = TEXT_TYPES.get(line[end + 1 :]) if end > 0 else None
        if kind is not None and is_metric_name(line[7:end]):
            types[line[7:end]] = kind
            return
    elif fast and line.startswith("# HELP "):
        name = line[7:end] if end > 0 else line[7:]
        if is_metric_name(name):
            return
    _text_comment(line, types)


def _text_comment(line: str, types: dict[str, str]) -> None:
    """:func:`text_comment` by the exact rules."""
    rest = line[1:]
    if not rest.startswith((" ", "\t")):
        if "\x00" in rest:
            raise _EndOfInput
        return
    body = rest.lstrip(" \t")
    keyword = body[:4]
    if keyword not in ("HELP", "TYPE") or not body.startswith((" ", "\t"), 4):
        if body.startswith("\x00"):
            raise _EndOfInput
        return
    meta = body[4:].lstrip(" \t")
    match = NAME_RE.match(meta)
    if match is None:
        raise ValueError(f"expected metric name after {keyword}")
    text = meta[match.end() :]
    text = text[1:] if text.strip(" \t") else ""
    if keyword == "HELP":
        check_utf8(text, "help text")
        return
    kind = TEXT_TYPES.get(text)
    if kind is None:
        raise ValueError(f"invalid metric type {text!r}")
    types[match.group()] = kind


def text_sample(line: str, pos: int, lines: Lines) -> ScrapedSample:
    """A sample line from ``pos`` (its first non-blank character), as ``promlex.l`` reads it."""
    match = NAME_RE.match(line, pos)
    if match is None:
        raise ValueError(f"expected a metric name, got {line[pos : pos + 20]!r}")
    pairs = [(NAME, match.group())]
    pos = _skip(line, match.end())
    if line.startswith("{", pos):
        line, pos = _text_labels(line, pos + 1, pairs, lines)
        pos = _skip(line, pos)
    match = _TEXT_VALUE_RE.match(line, pos)
    if match is None:
        raise ValueError("expected value after metric")
    value = go_float(match.group())
    pos = _skip(line, match.end())
    stamp = None
    if pos < len(line):
        match = _DIGITS_RE.match(line, pos)
        if match is None:
            raise ValueError(f"expected timestamp or new record, got {line[pos : pos + 20]!r}")
        stamp = int(match.group())
        if stamp > MAX_INT64:
            raise ValueError(f"timestamp out of range: {match.group()}")
        if _skip(line, match.end()) != len(line):
            raise ValueError("expected next entry after timestamp")
    return ScrapedSample(finish_labels(pairs), value, stamp)


def _text_labels(
    line: str, pos: int, pairs: list[tuple[str, str]], lines: Lines
) -> tuple[str, int]:
    """Labels after ``{`` up to ``}``: the line (it may have grown) and the position after."""
    while True:
        pos = _skip(line, pos)
        if line.startswith("}", pos):
            return line, pos + 1
        match = LABEL_NAME_RE.match(line, pos)
        if match is None:
            raise ValueError(f"expected label name, got {line[pos : pos + 20]!r}")
        pos = _skip(line, match.end())
        if not line.startswith("=", pos):
            raise ValueError(f"expected '=' after label name {match.group()!r}")
        pos = _skip(line, pos + 1)
        if not line.startswith('"', pos):
            raise ValueError(f"expected label value for {match.group()!r}")
        line, raw, pos = _text_quoted(line, pos + 1, lines)
        check_utf8(raw, "label value")
        pairs.append((match.group(), unescape(raw)))
        pos = _skip(line, pos)
        if line.startswith(",", pos):
            pos += 1


def _text_quoted(line: str, pos: int, lines: Lines) -> tuple[str, str, int]:
    """A quoted label value from after its opening quote; it may span lines (raw newlines).

    Returns the line holding the closing quote, the raw value and the position
    after the closing quote.
    """
    chunks: list[str] = []
    while True:
        end = _TEXT_QUOTED_RE.match(line, pos).end()  # type: ignore[union-attr]
        chunks.append(line[pos:end])
        if end < len(line):
            if line[end] == '"':
                return line, "".join(chunks), end + 1
            raise ValueError("unterminated label value (a backslash ends the line)")
        following = lines.pull()
        if following is None:
            raise ValueError("unterminated label value")
        line = following
        chunks.append("\n")
        pos = 0
