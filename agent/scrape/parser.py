"""Parse a scraped body: Prometheus text format 0.0.4 or OpenMetrics 1.0.

The body is read with the rules of Prometheus 2.42's ``textparse`` package, as
lenient as it is and no more (tests/integration/test_scrape_parser_peer.py has
Prometheus itself scrape the edge cases): any float spelling Go's ``ParseFloat``
takes (``NaN``, ``+Inf``, ``-inf``, ``Infinity``, ``1e3``, ``.5``; no hex, no
underscores, no overflow), label escapes ``\\\\``, ``\\"`` and ``\\n`` (other
escapes kept as written), a missing final newline in the text format, invalid
UTF-8 only in plain comments, a NUL at the start of a line ending the input.
Where Prometheus fails a scrape later (in its label builder or storage), the
parser fails it too: a sample line starting with whitespace, a label name given
twice with non-empty values (``__name__`` included), an empty ``__name__``.

Samples come back in exposition order, duplicates included; each one's labels
are sorted by name with ``__name__`` included, as exposed: a label with an empty
value is kept (dropping it is the storage's business, as in Prometheus), and a
name repeated with an empty value comes back once, empty (Prometheus drops it).
``types`` maps a family name to its ``# TYPE`` (the text format's ``untyped``
becomes ``unknown``, as in Prometheus). Content types negotiate as in
Prometheus: the media type ``application/openmetrics-text`` (any version) means
OpenMetrics, anything else (or none) the text format; protobuf is refused.

>>> result = parse(b'# TYPE up gauge\\nup{job="api"} 1\\n', "text/plain; version=0.0.4")
>>> [(s.labels, s.value) for s in result.samples], result.types
([((('__name__', 'up'), ('job', 'api')), 1.0)], {'up': 'gauge'})
>>> parse(b"up 1\\n# EOF\\n", "application/openmetrics-text; version=1.0.0").samples[0].value
1.0
"""

from __future__ import annotations

from typing import Final

from agent.scrape.base import ParseError, ParseResult
from agent.scrape.parser_om import parse_openmetrics
from agent.scrape.parser_text import parse_text

__all__ = ["OPENMETRICS", "ParseError", "ParseResult", "accept_header", "parse"]

OPENMETRICS: Final = "application/openmetrics-text"
_PROTOBUF: Final = "application/vnd.google.protobuf"
# Prometheus 2.x's scrape Accept header (OpenMetrics first, then text 0.0.4).
_ACCEPT: Final = (
    "application/openmetrics-text;version=1.0.0,"
    "application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,"
    "*/*;q=0.1"
)
# Characters Python's float() would strip around a token while Go rejects them; a
# body holding any of them is parsed on the exact path only.
_SLOW_CHARS: Final = ("\t", "\r", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x1f")


def accept_header() -> str:
    """The ``Accept`` header a scrape sends, as Prometheus 2.x does.

    >>> accept_header().split(",")[0]
    'application/openmetrics-text;version=1.0.0'
    """
    return _ACCEPT


def media_type(content_type: str | None) -> str:
    """The lower-cased media type of a ``Content-Type`` value, without parameters."""
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def parse(body: bytes, content_type: str | None) -> ParseResult:
    """The samples and types of a scraped ``body``; raises :class:`ParseError`.

    ``content_type`` is the response's ``Content-Type`` header (or ``None``).
    """
    kind = media_type(content_type)
    if kind == _PROTOBUF:
        raise ParseError("the protobuf exposition format is not supported")
    try:
        text = body.decode("utf-8")
        fast = not any(char in text for char in _SLOW_CHARS)
    except UnicodeDecodeError:
        # Invalid UTF-8 is allowed in comments only; the exact path checks the rest.
        text = body.decode("utf-8", "surrogateescape")
        fast = False
    if kind == OPENMETRICS:
        return parse_openmetrics(text, fast)
    return parse_text(text, fast)
