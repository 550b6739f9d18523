"""OpenMetrics 1.0 text, as Prometheus 2.x's ``openmetricsparse.go`` reads it.

Stricter than the text format: exactly one space between a series, its value,
its timestamp and its exemplar; no blank lines, no leading whitespace, no
comments other than ``# HELP``, ``# TYPE``, ``# UNIT`` and the final ``# EOF``,
after which nothing may follow. Timestamps are float seconds and become integer
milliseconds, truncated as Prometheus does. Commas separate labels, with no
trailing comma. Exemplars (after `` # ``, on ``_total`` and ``_bucket`` series
only) are checked and dropped; ``_created`` series are ordinary samples.

>>> parse_openmetrics('a_total{x="1"} 3 1.5\\n# EOF\\n', fast=True).samples[0]
ScrapedSample(labels=(('__name__', 'a_total'), ('x', '1')), value=3.0, timestamp_ms=1500)
"""

from __future__ import annotations

import math
import re
from typing import Final

from agent.scrape.base import ParseError, ParseResult, ScrapedSample
from agent.scrape.parser_text import (
    LABEL_NAME_RE,
    NAME,
    NAME_RE,
    FastLines,
    check_utf8,
    finish_labels,
    go_float,
    om_timestamp_ms,
    unescape,
)

OM_TYPES: Final = frozenset(
    ("counter", "gauge", "histogram", "gaugehistogram", "summary", "info", "stateset", "unknown")
)
_QUOTED_RE: Final = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*')
_EXEMPLAR: Final = " # {"
_EXEMPLAR_SUFFIXES: Final = ("_total", "_bucket")
_METADATA: Final = ("# HELP ", "# TYPE ", "# UNIT ")


def parse_openmetrics(text: str, fast: bool) -> ParseResult:
    """Parse an OpenMetrics body; ``fast`` allows the fast path (no tabs or control chars)."""
    samples: list[ScrapedSample] = []
    types: dict[str, str] = {}
    quick = FastLines(om=True).sample
    lines = text.split("\n")
    append = samples.append
    number = 0
    try:
        for number, line in enumerate(lines, 1):
            if fast and line and line[0] != "#":
                sample = quick(line)
                if sample is not None:
                    append(sample)
                    continue
            if line.startswith("#"):
                if _om_comment(line, types):
                    _check_after_eof(lines[number:])
                    return ParseResult(samples, types)
            elif line or number < len(lines):
                append(om_sample(line))
    except ValueError as exc:
        raise ParseError(str(exc), number) from None
    raise ParseError("data does not end with # EOF", number)


def _check_after_eof(rest: list[str]) -> None:
    if rest and rest != [""]:
        raise ValueError("unexpected data after # EOF")


def _om_comment(line: str, types: dict[str, str]) -> bool:
    """A metadata line; ``True`` for ``# EOF``."""
    if line == "# EOF":
        return True
    if not line.startswith(_METADATA):
        raise ValueError(f"expected HELP, TYPE, UNIT or EOF after '# ', got {line[:20]!r}")
    keyword = line[2:6]
    match = NAME_RE.match(line, 7)
    if match is None:
        raise ValueError(f"expected metric name after {keyword}")
    name = match.group()
    if not line.startswith(" ", match.end()):
        raise ValueError(f"expected text in {keyword}")
    text = line[match.end() + 1 :]
    if keyword == "TYPE":
        if text not in OM_TYPES:
            raise ValueError(f"invalid metric type {text!r}")
        types[name] = text
    elif keyword == "UNIT":
        if text and not name.endswith("_" + text):
            raise ValueError(f"unit {text!r} not a suffix of metric {name!r}")
    else:
        check_utf8(text, "help text")
    return False


def om_sample(line: str) -> ScrapedSample:
    """A sample line: ``name[{labels}] value[ timestamp][ # {labels} value[ timestamp]]``."""
    match = NAME_RE.match(line)
    if match is None:
        raise ValueError(f"expected a metric name, got {line[:20]!r}")
    pairs = [(NAME, match.group())]
    pos = match.end()
    if line.startswith("{", pos):
        pos = _om_labels(line, pos + 1, pairs)
    token, pos = _token(line, pos, "expected value after metric")
    value = go_float(token)
    stamp = None
    if pos < len(line) and not line.startswith(_EXEMPLAR, pos):
        token, pos = _token(line, pos, "expected timestamp or exemplar")
        stamp = _timestamp_ms(token, "timestamp")
    if pos < len(line):
        if not line.startswith(_EXEMPLAR, pos):
            raise ValueError("expected exemplar or end of line after timestamp")
        if not pairs[0][1].endswith(_EXEMPLAR_SUFFIXES):
            raise ValueError(f"metric name {pairs[0][1]} does not support exemplars")
        _exemplar(line, pos + len(_EXEMPLAR))
    return ScrapedSample(finish_labels(pairs), value, stamp)


def _token(line: str, pos: int, error: str) -> tuple[str, int]:
    """The token after the single space at ``pos``, and the position after it."""
    if not line.startswith(" ", pos):
        raise ValueError(error)
    end = line.find(" ", pos + 1)
    if end < 0:
        end = len(line)
    if end == pos + 1:
        raise ValueError(error)
    return line[pos + 1 : end], end


def _timestamp_ms(token: str, what: str) -> int:
    try:
        seconds = go_float(token)
    except ValueError:
        raise ValueError(f"invalid {what} {token!r}") from None
    if not math.isfinite(seconds):
        raise ValueError(f"invalid {what} {token!r}")
    ms = om_timestamp_ms(seconds)
    if ms is None:
        raise ValueError(f"{what} out of range: {token!r}")
    return ms


def _exemplar(line: str, pos: int) -> None:
    """Check an exemplar from after its ``{``; it is not kept."""
    pos = _om_labels(line, pos, [])
    token, pos = _token(line, pos, "expected value after exemplar labels")
    go_float(token)
    if pos < len(line):
        token, pos = _token(line, pos, "expected exemplar timestamp")
        _timestamp_ms(token, "exemplar timestamp")
        if pos < len(line):
            raise ValueError("expected end of line after exemplar timestamp")


def _om_labels(line: str, pos: int, pairs: list[tuple[str, str]]) -> int:
    """Labels after ``{`` up to ``}``, comma-separated, no spaces; the position after ``}``."""
    if line.startswith("}", pos):
        return pos + 1
    while True:
        match = LABEL_NAME_RE.match(line, pos)
        if match is None:
            raise ValueError(f"expected label name, got {line[pos : pos + 20]!r}")
        pos = match.end()
        if not line.startswith('="', pos):
            raise ValueError(f"expected '=\"' after label name {match.group()!r}")
        end = _QUOTED_RE.match(line, pos + 2).end()  # type: ignore[union-attr]
        if not line.startswith('"', end):
            raise ValueError(f"unterminated value for label {match.group()!r}")
        raw = line[pos + 2 : end]
        check_utf8(raw, "label value")
        pairs.append((match.group(), unescape(raw)))
        pos = end + 1
        if line.startswith("}", pos):
            return pos + 1
        if not line.startswith(",", pos):
            raise ValueError(f"expected ',' or '}}' after label {match.group()!r}")
        pos += 1
