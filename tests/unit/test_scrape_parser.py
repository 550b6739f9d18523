"""The exposition parser: text format 0.0.4 and OpenMetrics 1.0, element by element."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time

import pytest

from agent.scrape.base import ParseError, ScrapedSample
from agent.scrape.parser import accept_header, media_type, parse
from agent.scrape.parser_text import go_float, is_label_name, is_metric_name, parse_text

TEXT = "text/plain; version=0.0.4; charset=utf-8"
OM = "application/openmetrics-text; version=1.0.0; charset=utf-8"

Row = tuple[dict[str, str], float, int | None]


def rows(body: bytes | str, content_type: str | None = TEXT) -> list[Row]:
    """Each sample as (labels as a dict, value, timestamp)."""
    raw = body.encode() if isinstance(body, str) else body
    return [(dict(s.labels), s.value, s.timestamp_ms) for s in parse(raw, content_type).samples]


def one(body: bytes | str, content_type: str | None = TEXT) -> Row:
    (row,) = rows(body, content_type)
    return row


def value(body: str, content_type: str | None = TEXT) -> float:
    return one(body, content_type)[1]


def error(body: bytes | str, content_type: str | None = TEXT) -> ParseError:
    raw = body.encode() if isinstance(body, str) else body
    with pytest.raises(ParseError) as info:
        parse(raw, content_type)
    return info.value


# --------------------------------------------------------------------------- text format


def test_text_samples_come_in_order_with_sorted_labels_and_name() -> None:
    """Labels are sorted by name with __name__ among them; order is the exposition's."""
    body = 'b{z="1",a="2",Z="3"} 1\na 2\nb{a="x"} 3\n'
    result = parse(body.encode(), TEXT)
    assert [s.labels for s in result.samples] == [
        (("Z", "3"), ("__name__", "b"), ("a", "2"), ("z", "1")),
        (("__name__", "a"),),
        (("__name__", "b"), ("a", "x")),
    ]
    assert [s.value for s in result.samples] == [1.0, 2.0, 3.0]


def test_text_help_type_and_comments() -> None:
    """HELP and TYPE are read, TYPE fills ``types`` (untyped becomes unknown); comments pass."""
    body = (
        "# HELP a Some help, with \\\\ and \\n.\n"
        "# TYPE a counter\n"
        "# TYPE b untyped\n"
        "# just a comment\n"
        "#no space comment\n"
        "#\n"
        "# HELP\n"
        "# TYPE\n"
        "# HELPER text\n"
        "#\tTYPE\tc\tgauge\n"
        "# TYPE d\tsummary\n"
        "a 1\n"
    )
    result = parse(body.encode(), TEXT)
    assert result.types == {"a": "counter", "b": "unknown", "c": "gauge", "d": "summary"}
    assert len(result.samples) == 1


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("# TYPE a gauges", "invalid metric type 'gauges'"),
        ("# TYPE a  gauge", "invalid metric type ' gauge'"),
        ("# TYPE a gauge ", "invalid metric type 'gauge '"),
        ("# TYPE a", "invalid metric type ''"),
        ("# TYPE a info", "invalid metric type 'info'"),
        ("# TYPE 1a gauge", "expected metric name after TYPE"),
        ("# HELP ", "expected metric name after HELP"),
        ("# HELP {a} x", "expected metric name after HELP"),
    ],
)
def test_text_bad_metadata_lines(line: str, message: str) -> None:
    """Malformed HELP and TYPE lines fail the body, with the line number."""
    err = error(f"a 1\n{line}\nb 2\n")
    assert err.line == 2
    assert message in str(err)


def test_text_whitespace_is_allowed_between_all_tokens() -> None:
    """Spaces and tabs around tokens, blank lines, a missing final newline: as Prometheus."""
    body = '\n  \t\n \t# HELP a x\na { b = "c" , d="e" , } \t 1  123 \n\nz{}2\nlast 3'
    assert rows(body) == [
        ({"__name__": "a", "b": "c", "d": "e"}, 1.0, 123),
        ({"__name__": "z"}, 2.0, None),
        ({"__name__": "last"}, 3.0, None),
    ]


def test_text_sample_lines_cannot_start_with_whitespace() -> None:
    """Prometheus 2.x reads the blanks as part of the metric name, which then fails."""
    assert error("a 1\n b 2\n").line == 2
    assert error("\ta 1\n").line == 1


def test_text_quirks_prometheus_accepts() -> None:
    """Commas between labels are optional and a value may touch the name or brace."""
    assert one('a{b="c" d="e"} 1') == ({"__name__": "a", "b": "c", "d": "e"}, 1.0, None)
    assert one('a{b="c"}1') == ({"__name__": "a", "b": "c"}, 1.0, None)
    assert one("a-1") == ({"__name__": "a"}, -1.0, None)
    assert one("a:b_c:1 .5") == ({"__name__": "a:b_c:1"}, 0.5, None)


def test_text_label_value_escapes() -> None:
    r"""``\\``, ``\"`` and ``\n`` are unescaped; other escapes are kept as written."""
    labels, _, _ = one(r'a{b="x\\y\"z\nw",c="\t\q",d="\\n"} 1')
    assert labels["b"] == 'x\\y"z\nw'
    assert labels["c"] == "\\t\\q"
    assert labels["d"] == "\\n"


def test_text_label_values_may_hold_anything_else() -> None:
    """Braces, commas, equals, hashes, spaces and non-ASCII text inside quotes are plain text."""
    labels, val, _ = one('a{b="} {,=\\" # x",c="żółw 🐢",d=""} 7')
    assert labels == {"__name__": "a", "b": '} {,=" # x', "c": "żółw 🐢", "d": ""}
    assert val == 7.0


def test_text_raw_newline_inside_a_label_value() -> None:
    """Prometheus's text lexer accepts a raw newline inside quotes; errors count lines after it."""
    assert rows('a{b="x\ny",c="z"} 1\nd 2\n') == [
        ({"__name__": "a", "b": "x\ny", "c": "z"}, 1.0, None),
        ({"__name__": "d"}, 2.0, None),
    ]
    assert error('a{b="x\ny"} oops\n').line == 2
    assert error('ok 1\na{b="x\ny').line == 3


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("1", 1.0),
        ("-1.5", -1.5),
        ("+3", 3.0),
        (".5", 0.5),
        ("5.", 5.0),
        ("1e3", 1000.0),
        ("1E-3", 0.001),
        ("-0", -0.0),
        ("007", 7.0),
        ("1e-400", 0.0),
        ("+Inf", math.inf),
        ("-Inf", -math.inf),
        ("Inf", math.inf),
        ("inf", math.inf),
        ("INF", math.inf),
        ("+infinity", math.inf),
        ("-Infinity", -math.inf),
        ("9.223372036854776e+18", 9.223372036854776e18),
    ],
)
def test_text_value_spellings_go_accepts(token: str, expected: float) -> None:
    """Every float spelling Go's ParseFloat takes (as Prometheus does)."""
    got = value(f"a {token}\n")
    assert got == expected
    assert math.copysign(1, got) == math.copysign(1, expected)


@pytest.mark.parametrize("token", ["NaN", "nan", "NAN", "nAn"])
def test_text_nan_in_any_case(token: str) -> None:
    """NaN in any case is an ordinary NaN (never Prometheus's stale marker)."""
    got = value(f"a {token}\n")
    assert math.isnan(got)


@pytest.mark.parametrize(
    "token",
    [
        "+nan",
        "-NaN",
        "1_000",
        "0x1p-3",
        "0x10",
        "1e400",
        "-1e400",
        "infin",
        "Infinit",
        "++1",
        "1e",
        ".",
        "e1",
        "1.2.3",
        "true",
        "\u0661",
        "1\u00a0",
        "1}",
        '1"',
    ],
)
def test_text_value_spellings_go_rejects(token: str) -> None:
    """Python's float() takes more than Go: underscores, signed NaN, overflow, Unicode digits."""
    err = error(f"ok 1\na {token}\n")
    assert err.line == 2


def test_text_timestamps_are_integer_milliseconds() -> None:
    """A timestamp is digits only, up to int64; anything else fails."""
    assert one("a 1 1700000000000")[2] == 1700000000000
    assert one(f"a 1 {2**63 - 1}")[2] == 2**63 - 1
    assert one("a 1 0")[2] == 0
    for bad in ("-1", "1.5", "1e3", str(2**63), "12a", "1 2", "+1"):
        assert error(f"a 1 {bad}\n").line == 1, bad


@pytest.mark.parametrize(
    "line",
    [
        "1a 1",
        "a",
        "a ",
        "a{} ",
        "a{b} 1",
        "a{b=} 1",
        "a{b=c} 1",
        "a{b='c'} 1",
        'a{b="c" 1',
        'a{b="c"}',
        'a{,b="c"} 1',
        'a{b="c",,} 1',
        'a{1b="c"} 1',
        'a{b-c="d"} 1',
        'a{b:c="d"} 1',
        'a{b="c"}{d="e"} 1',
        '{b="c"} 1',
        'a{b="c"} 1 # comment',
        "a 1 2 3",
        'a{=""} 0',
        "é 1",
        "a 1{",
        'a{b="\\',
    ],
)
def test_text_malformed_sample_lines(line: str) -> None:
    """Each malformed sample line fails the body with its line number."""
    err = error(f"# TYPE ok gauge\nok 1\n{line}\nok 2\n")
    assert err.line == 3, str(err)


def test_text_duplicate_label_names_fail() -> None:
    """A label name given twice, __name__ included, is an error."""
    assert "duplicate label name 'b'" in str(error('a{b="1",c="2",b="3"} 1'))
    assert "duplicate label name '__name__'" in str(error('a{__name__="x"} 1'))
    assert error('a{b="1"} 1\na{b="1",b="1"} 1\n').line == 2
    assert error('a{b="1"\t,b="1"} 1\n').line == 1


def test_repeated_label_name_with_an_empty_value() -> None:
    """Prometheus drops a name that has an empty value before it checks for repeats."""
    assert one('a{b="x",c="y",b=""} 1')[0] == {"__name__": "a", "b": "", "c": "y"}
    assert one('a{b="",b="",b="z"} 1')[0] == {"__name__": "a", "b": ""}
    assert one('a{b=""} 1')[0] == {"__name__": "a", "b": ""}
    assert "missing metric name" in str(error('a{__name__=""} 1'))


def test_duplicate_series_are_kept() -> None:
    """The same series twice is the storage's business: both samples are returned."""
    assert [r[1] for r in rows('a{b="1"} 1\na{b="1"} 2\n')] == [1.0, 2.0]


def test_text_nul_bytes() -> None:
    """As in Prometheus: NUL in a label value is kept, at a line start it ends the input."""
    assert one(b'a{b="x\x00y"} 1\n')[0]["b"] == "x\x00y"
    assert rows(b"a 1\n\x00 anything { at all\n") == [({"__name__": "a"}, 1.0, None)]
    assert rows(b"a 1\n#\x00x\nb 2\n") == [({"__name__": "a"}, 1.0, None)]
    assert error(b"a 1\x00\n").line == 1
    assert error(b"a\x00 1\n").line == 1


def test_text_invalid_utf8_only_in_comments() -> None:
    """Invalid UTF-8 may sit in a plain comment, never in a label value or HELP text."""
    assert rows(b"# \xff\xfe comment\na 1\n") == [({"__name__": "a"}, 1.0, None)]
    assert "label value is not valid UTF-8" in str(error(b'a 1\nb{c="\xff"} 1\n'))
    assert error(b'a 1\nb{c="\xff"} 1\n').line == 2
    assert "help text" in str(error(b"# HELP a \xc3\n"))
    assert error(b"\xef\xbb\xbfa 1\n").line == 1


def test_text_windows_line_endings_fail_as_in_prometheus() -> None:
    """A CR before the newline is part of the value token, which Go does not parse."""
    assert error(b"a 1\r\nb 2\r\n").line == 1
    assert error(b"# TYPE a gauge\r\n").line == 1


def test_empty_bodies() -> None:
    """An empty text body has no samples; an empty OpenMetrics body lacks # EOF."""
    assert parse(b"", TEXT).samples == []
    assert parse(b"\n\n# only comments\n", None).samples == []
    assert "# EOF" in str(error(b"", OM))


# --------------------------------------------------------------------------- OpenMetrics


def test_om_full_body() -> None:
    """HELP, TYPE, UNIT, samples with timestamps, exemplars dropped, _created kept, # EOF."""
    body = (
        "# HELP rpc_seconds RPC latency.\n"
        "# TYPE rpc_seconds histogram\n"
        "# UNIT rpc_seconds seconds\n"
        'rpc_seconds_bucket{le="0.1"} 3 # {trace_id="abc"} 0.05 1700000000.5\n'
        'rpc_seconds_bucket{le="+Inf"} 4 1700000000.25\n'
        "rpc_seconds_count 4\n"
        "rpc_seconds_sum 0.3\n"
        "rpc_seconds_created 1.7e9\n"
        "# TYPE state stateset\n"
        'state{state="a"} 1\n'
        "# TYPE build info\n"
        'build_info{version="1"} 1\n'
        "# EOF\n"
    )
    result = parse(body.encode(), OM)
    assert result.types == {"rpc_seconds": "histogram", "state": "stateset", "build": "info"}
    assert [(s.name, s.value, s.timestamp_ms) for s in result.samples] == [
        ("rpc_seconds_bucket", 3.0, None),
        ("rpc_seconds_bucket", 4.0, 1700000000250),
        ("rpc_seconds_count", 4.0, None),
        ("rpc_seconds_sum", 0.3, None),
        ("rpc_seconds_created", 1.7e9, None),
        ("state", 1.0, None),
        ("build_info", 1.0, None),
    ]
    assert result.samples[0].labels == (("__name__", "rpc_seconds_bucket"), ("le", "0.1"))


def test_om_timestamps_are_float_seconds_truncated_to_ms() -> None:
    """Seconds become ms, truncated toward zero as Prometheus does; NaN and Inf fail."""
    assert one("a 1 1.5\n# EOF\n", OM)[2] == 1500
    assert one("a 1 -1.0005\n# EOF\n", OM)[2] == -1000
    assert one("a 1 1e3\n# EOF\n", OM)[2] == 1_000_000
    assert one("a 1 1520879607.789\n# EOF\n", OM)[2] == int(1520879607.789 * 1000)
    for bad in ("NaN", "+Inf", "x", "1e300", "1_0"):
        assert error(f"a 1 {bad}\n# EOF\n", OM).line == 1, bad


def test_om_eof_rules() -> None:
    """# EOF is required, ends the body (one final newline allowed), nothing may follow."""
    assert one("a 1\n# EOF", OM)[1] == 1.0
    assert "does not end with # EOF" in str(error("a 1\n", OM))
    assert error("a 1\n", OM).line == 2
    assert error("a 1\n# EOF\n\n", OM).line == 2
    assert error("a 1\n# EOF\nb 1\n", OM).line == 2
    assert error("# EOF \n", OM).line == 1


@pytest.mark.parametrize(
    "line",
    [
        "",
        " a 1",
        "a  1",
        "a 1 ",
        "a\t1",
        "a 1  2",
        'a {b="c"} 1',
        'a{b="c"}1',
        'a{b="c" d="e"} 1',
        'a{b="c", d="e"} 1',
        'a{ b="c"} 1',
        'a{b = "c"} 1',
        "# a comment",
        "#a comment",
        "# HELP a",
        "# TYPE a",
        "# TYPE a untyped",
        "# TYPE a counter ",
        "# UNIT a_bytes seconds",
        "# UNIT a bytes",
        'a 1 # {b="c"}',
        'a 1 # {b="c"} x',
        'a 1 # {b="c"} 1 NaN',
        'a 1 # {b="c"} 1 2 3',
        "a 1 # {b} 1",
        'a 1 #{b="c"} 1',
        'a 1 2 # {b="c"} 1 2 ',
        'a_total 1 2 # {b="c"} 1 2 ',
        'a{b="c",} 1',
        "a{,} 1",
        'a_total 1 # {b="c",} 1',
        'a 1 # {b="c"} 1',
        'a_sum 1 # {b="c"} 1',
    ],
)
def test_om_malformed_lines(line: str) -> None:
    """OpenMetrics is strict about spaces, comments and metadata; errors carry the line."""
    err = error(f"# TYPE ok gauge\nok 1\n{line}\nok 2\n# EOF\n", OM)
    assert err.line == 3, str(err)


def test_om_accepts_what_prometheus_accepts() -> None:
    """Empty braces, exemplars on counters and buckets, with or without timestamps, units."""
    assert one("a{} 1\n# EOF\n", OM)[0] == {"__name__": "a"}
    assert one('a_total 1 2 # {b="c"} 3\n# EOF\n', OM) == ({"__name__": "a_total"}, 1.0, 2000)
    assert one('a_bucket 1 # {b="c",d="e"} 3 4.5\n# EOF\n', OM)[2] is None
    assert one('a_total 1 # {b="c",b="e"} 3\n# EOF\n', OM)[1] == 1.0
    assert one("a_total 1 # {} 3\n# EOF\n", OM)[1] == 1.0
    body = "# UNIT a_seconds seconds\n# UNIT b \n# HELP c\xc3\xa9 x\n".encode()
    assert error(body + b"# EOF\n", OM).line == 3
    assert parse(b"# UNIT a_seconds seconds\n# UNIT b \n# HELP c \n# EOF\n", OM).samples == []


def test_om_label_escapes_and_duplicates() -> None:
    """Escapes as in the text format; raw newlines cannot occur; duplicates fail."""
    assert one('a{b="x\\"y\\\\z\\n"} 1\n# EOF\n', OM)[0]["b"] == 'x"y\\z\n'
    assert error('a{b="x\ny"} 1\n# EOF\n', OM).line == 1
    assert "duplicate label name" in str(error('a{b="1",b="2"} 1\n# EOF\n', OM))


def test_content_type_negotiation() -> None:
    """OpenMetrics for its media type (any version, any case); the text format otherwise."""
    om_only = b"a 1 1.5\n# EOF\n"
    assert parse(om_only, "Application/OpenMetrics-Text; version=0.0.1").samples[0].timestamp_ms
    assert media_type(" application/openmetrics-text ;version=1.0.0") == OM.split(";")[0]
    for kind in (None, "", TEXT, "text/plain", "application/json", "garbage;;;"):
        assert parse(b"a 1 15\n", kind).samples[0].timestamp_ms == 15
    assert "protobuf" in str(error(b"", "application/vnd.google.protobuf; proto=x"))


def test_accept_header_prefers_openmetrics_then_text() -> None:
    """The Accept header asks for OpenMetrics 1.0.0 first and text 0.0.4 after it."""
    parts = accept_header().split(",")
    assert parts[0] == "application/openmetrics-text;version=1.0.0"
    assert "text/plain;version=0.0.4;q=0.5" in parts
    assert parts[-1] == "*/*;q=0.1"


# --------------------------------------------------------------------------- internals, limits


def test_fast_and_exact_paths_agree_on_tricky_lines() -> None:
    """Lines that look like the common shape but are not give the same answer on both paths."""
    bodies = [
        'a{b="c"} 1} 2\n',
        'a{b="x"} 1"} 2\n',
        'a{b="} 1"} 2\n',
        'a{b="c"d="e"} 1\n',
        'a{} 1"} 2\n',
        'a"} 1\n',
        "} 1\n",
        'a{b="c",} 1\n',
        "a 1 \n",
        "a  1\n",
        "nan\n",
        "a 1 18446744073709551616\n",
        'a{b="c",b="d"} 1\n',
        'a{b="c"} 1 2 3\n',
        "a 1e400\n",
    ]
    for body in bodies:
        outcomes = []
        for fast in (True, False):
            try:
                result = parse_text(body, fast)
                outcomes.append(repr([dataclasses.astuple(s) for s in result.samples]))
            except ParseError as exc:
                outcomes.append(f"error {exc.line}")
        assert outcomes[0] == outcomes[1], body


def test_samples_equal_ones_built_by_the_constructor() -> None:
    """The hot path's samples are ordinary ScrapedSample values (the class has no hooks)."""
    assert not hasattr(ScrapedSample, "__post_init__")
    (sample,) = parse(b'a{b="c"} 1 5\n', TEXT).samples
    assert sample == ScrapedSample((("__name__", "a"), ("b", "c")), 1.0, 5)
    assert hash(sample) == hash(ScrapedSample((("__name__", "a"), ("b", "c")), 1.0, 5))
    with pytest.raises(dataclasses.FrozenInstanceError):
        sample.value = 2.0  # type: ignore[misc]


def test_go_float_and_name_checks() -> None:
    """The helpers behind the value and name rules."""
    assert go_float("-inf") == -math.inf
    with pytest.raises(ValueError):
        go_float("1e309")
    assert is_metric_name("a:b_1") and not is_metric_name("1a") and not is_metric_name("")
    assert is_label_name("_") and not is_label_name("a:b") and not is_label_name("ä")


@pytest.mark.parametrize("content_type", [TEXT, OM])
@pytest.mark.parametrize("escaped", [False, True])
def test_a_megabyte_label_value_parses_quickly(content_type: str, escaped: bool) -> None:
    """A 1 MB label value, plain or full of escapes, parses in well under a second."""
    big = ("x\\n" * 350_000) if escaped else ("x" * 1_000_000)
    body = f'a{{b="{big}"}} 1\n' + ("# EOF\n" if content_type == OM else "")
    start = time.perf_counter()
    (row,) = rows(body, content_type)
    assert time.perf_counter() - start < 1.0
    assert len(row[0]["b"]) == (700_000 if escaped else 1_000_000)


@pytest.mark.parametrize(
    "body",
    [
        'a{b="' + "x" * 1_000_000,
        'a{b="' + "x" * 1_000_000 + "\\",
        "a{" + 'b="c" ' * 200_000 + "} 1",
        "{" * 1_000_000,
        "a " + "9" * 1_000_000,
        "a 1 " + "9" * 1_000_000,
        "a" * 1_000_000,
        "\n".join(['a{b="x'] * 100_000),
        "#" * 1_000_000,
        "# TYPE " + "a" * 1_000_000 + " gauge",
    ],
)
def test_pathological_bodies_fail_or_parse_quickly(body: str) -> None:
    """Huge or unterminated input ends in a result or a ParseError within a second."""
    for content_type in (TEXT, OM):
        start = time.perf_counter()
        with contextlib.suppress(ParseError):
            parse(body.encode(), content_type)
        assert time.perf_counter() - start < 1.0
