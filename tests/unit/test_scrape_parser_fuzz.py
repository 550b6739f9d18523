"""Property tests of the exposition parser: any input ends in a result or a ParseError.

Valid bodies are generated from samples and must parse back to the same samples;
garbage, truncations and random mutations of valid bodies must never raise
anything but :class:`ParseError`; and the fast path must agree with the exact one
on every body it may see.
"""

from __future__ import annotations

import math
import operator
import struct
from dataclasses import dataclass

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from agent.scrape.base import ParseError, ParseResult
from agent.scrape.parser import parse
from agent.scrape.parser_om import parse_openmetrics
from agent.scrape.parser_text import parse_text

TEXT = "text/plain; version=0.0.4"
OM = "application/openmetrics-text; version=1.0.0"
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW_CHARS = "\t\r\v\f\x1c\x1d\x1e\x1f"

LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"
metric_names = st.builds(
    operator.add,
    st.sampled_from(LETTERS + ":"),
    st.text(alphabet=LETTERS + ":0123456789", max_size=15),
)
label_names = st.builds(
    operator.add, st.sampled_from(LETTERS), st.text(alphabet=LETTERS + "0123456789", max_size=10)
).filter(lambda name: name != "__name__")
label_values = st.text(max_size=30) | st.sampled_from(["", "+Inf", "0.5", "/api/v1", 'a"b\\c\nd'])
values = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(2**53), 2**53).map(float)


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float
    timestamp_ms: int | None


samples = st.builds(
    Sample,
    metric_names,
    st.dictionaries(label_names, label_values, max_size=5),
    values,
    st.none() | st.integers(0, 2**63 - 1),
)
om_samples = st.builds(
    Sample,
    metric_names | metric_names.map(lambda name: name + "_total"),
    st.dictionaries(label_names, label_values, max_size=5),
    values,
    st.none() | st.integers(-(10**15), 10**15),
)


def escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_value(value: float, draw: st.DrawFn) -> str:
    if math.isnan(value):
        return draw(st.sampled_from(["NaN", "nan", "NAN"]))
    if math.isinf(value):
        word = draw(st.sampled_from(["Inf", "inf", "INF", "Infinity", "infinity"]))
        return ("-" if value < 0 else draw(st.sampled_from(["", "+"]))) + word
    return repr(value)


@st.composite
def text_bodies(draw: st.DrawFn) -> tuple[str, list[Sample]]:
    """A text-format body (with random but valid whitespace and commas) and its samples."""
    drawn = draw(st.lists(samples, max_size=8))
    sep = draw(st.sampled_from([" ", " ", "\t", "  ", " \t"]))
    comma = draw(st.sampled_from([",", ",", ", ", " , ", " "]))
    extra = draw(st.sampled_from(["", "  ", "# comment", "#", "\t", "# HELP x help \\\\ é"]))
    kind = draw(st.sampled_from(["counter", "gauge", "untyped", "summary"]))
    lines = [extra]
    for s in drawn:
        pairs = [f'{k}="{escape(v)}"' for k, v in s.labels.items()]
        labels = ("{" + comma.join(pairs) + "}") if pairs else ""
        lines.append(f"# TYPE {s.name} {kind}")
        stamp = "" if s.timestamp_ms is None else f"{sep}{s.timestamp_ms}"
        lines.append(f"{s.name}{labels}{sep}{render_value(s.value, draw)}{stamp}")
    return "\n".join(lines) + draw(st.sampled_from(["", "\n"])), drawn


def render_om_sample(s: Sample, draw: st.DrawFn) -> str:
    pairs = ",".join(f'{k}="{escape(v)}"' for k, v in s.labels.items())
    labels = "{" + pairs + "}" if pairs or draw(st.booleans()) else ""
    line = f"{s.name}{labels} {render_value(s.value, draw)}"
    if s.timestamp_ms is not None:
        line += f" {s.timestamp_ms / 1000!r}"
    if s.name.endswith("_total") and draw(st.booleans()):
        line += ' # {trace_id="x"} 1.5' + draw(st.sampled_from(["", " 1700000000.123"]))
    return line


@st.composite
def om_bodies(draw: st.DrawFn) -> tuple[str, list[Sample]]:
    """An OpenMetrics body and its samples."""
    drawn = draw(st.lists(om_samples, max_size=8))
    kind = draw(st.sampled_from(["counter", "gauge", "unknown", "info"]))
    lines = []
    for s in drawn:
        lines.append(f"# TYPE {s.name} {kind}")
        lines.append(render_om_sample(s, draw))
    lines.append("# EOF")
    return "\n".join(lines) + draw(st.sampled_from(["", "\n"])), drawn


def value_key(value: float) -> object:
    return "NaN" if math.isnan(value) else struct.pack("<d", value)


def expected_rows(drawn: list[Sample], om: bool) -> list[object]:
    out = []
    for s in drawn:
        labels = tuple(sorted({**s.labels, "__name__": s.name}.items()))
        stamp = s.timestamp_ms
        if om and stamp is not None:
            stamp = int(float(repr(stamp / 1000)) * 1000)
        out.append((labels, value_key(s.value), stamp))
    return out


def got_rows(result: ParseResult) -> list[object]:
    return [(s.labels, value_key(s.value), s.timestamp_ms) for s in result.samples]


def outcome(body: bytes, content_type: str) -> object:
    """The parse result as comparable data, or the error's line; any other exception escapes."""
    try:
        return got_rows(parse(body, content_type))
    except ParseError as exc:
        return ("error", exc.line)


@FUZZ
@given(text_bodies())
def test_text_bodies_round_trip(case: tuple[str, list[Sample]]) -> None:
    """Generated samples rendered as text parse back to the same samples, in order."""
    body, drawn = case
    assert got_rows(parse(body.encode(), TEXT)) == expected_rows(drawn, om=False)


@FUZZ
@given(om_bodies())
def test_openmetrics_bodies_round_trip(case: tuple[str, list[Sample]]) -> None:
    """Generated samples rendered as OpenMetrics parse back to the same samples, in order."""
    body, drawn = case
    assert got_rows(parse(body.encode(), OM)) == expected_rows(drawn, om=True)


@FUZZ
@given(st.binary(max_size=500), st.sampled_from([TEXT, OM, None]))
def test_garbage_bytes_give_a_result_or_a_parse_error(body: bytes, content_type: str) -> None:
    """Random bytes never raise anything but ParseError."""
    outcome(body, content_type)


@FUZZ
@given(st.text(alphabet='ab{}=", \t\n#\\01.-+eEIinNfaTYPEHELP_:\x00\r', max_size=120))
def test_garbage_from_the_formats_alphabet(text: str) -> None:
    """Strings made of the formats' own characters never raise anything but ParseError."""
    for content_type in (TEXT, OM):
        outcome(text.encode(), content_type)


@st.composite
def mutated(draw: st.DrawFn, om: bool) -> str:
    """A valid body with a few random edits: deletions, insertions, replacements, a cut."""
    body, _ = draw(om_bodies() if om else text_bodies())
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(body)))
        kind = draw(st.sampled_from(["delete", "insert", "replace", "truncate"]))
        char = draw(st.sampled_from(list('{}=",\\ #\n\x00aZ9.-+eé')))
        if kind == "delete":
            body = body[:pos] + body[pos + 1 :]
        elif kind == "insert":
            body = body[:pos] + char + body[pos:]
        elif kind == "replace":
            body = body[:pos] + char + body[pos + 1 :]
        else:
            body = body[:pos]
    return body


@FUZZ
@given(mutated(om=False))
def test_mutated_text_bodies_give_a_result_or_a_parse_error(body: str) -> None:
    """Random edits of valid text bodies never raise anything but ParseError."""
    outcome(body.encode(), TEXT)


@FUZZ
@given(mutated(om=True))
def test_mutated_openmetrics_bodies_give_a_result_or_a_parse_error(body: str) -> None:
    """Random edits of valid OpenMetrics bodies never raise anything but ParseError."""
    outcome(body.encode(), OM)


def both_paths(parse_fn: object, text: str) -> list[object]:
    results = []
    for fast in (True, False):
        try:
            result = parse_fn(text, fast)  # type: ignore[operator]
            results.append([*got_rows(result), sorted(result.types.items())])
        except ParseError as exc:
            results.append(("error", exc.line))
    return results


@FUZZ
@given(mutated(om=False) | st.text(alphabet='ab{}=", \n#\\01.-+eEInNf_:', max_size=80))
def test_text_fast_path_agrees_with_the_exact_path(text: str) -> None:
    """The fast path never reads a line differently from the exact path (or accepts more)."""
    assume(not any(char in text for char in SLOW_CHARS))
    fast, exact = both_paths(parse_text, text)
    assert fast == exact


@FUZZ
@given(mutated(om=True) | st.text(alphabet='ab{}=", \n#\\01.-+eEInNf_:', max_size=80))
def test_openmetrics_fast_path_agrees_with_the_exact_path(text: str) -> None:
    """The same agreement for OpenMetrics bodies."""
    assume(not any(char in text for char in SLOW_CHARS))
    fast, exact = both_paths(parse_openmetrics, text)
    assert fast == exact


@FUZZ
@given(
    st.sampled_from(["", "+", "-"]),
    st.sampled_from(["inf", "infinity", "nan", "infin", "na", "infinityy", "in"]),
    st.randoms(use_true_random=False),
    st.sampled_from([TEXT, OM]),
)
def test_special_value_spellings(sign: str, word: str, rnd: object, content_type: str) -> None:
    """Inf/Infinity in any case with any sign, NaN in any case unsigned; nothing else."""
    spelled = "".join(c.upper() if rnd.random() < 0.5 else c for c in word)  # type: ignore[attr-defined]
    body = f"a {sign}{spelled}\n" + ("# EOF\n" if content_type == OM else "")
    valid = word in ("inf", "infinity") or (word == "nan" and not sign)
    got = outcome(body.encode(), content_type)
    assert (got != ("error", 1)) == valid, (sign, spelled)


@FUZZ
@given(st.text(alphabet='\\"nqt\nx', max_size=40))
def test_escapes_in_label_values(raw: str) -> None:
    r"""A label value's escapes: \\, \" and \n unescaped, others kept; bad quoting fails."""
    body = f'a{{b="{raw}"}} 1\n'.encode()
    try:
        ((labels, _, _),) = got_rows(parse(body, TEXT))  # type: ignore[misc]
    except ParseError:
        return
    expected, i = [], 0
    while i < len(raw):
        if raw[i] == "\\":
            nxt = raw[i + 1]
            expected.append({"\\": "\\", '"': '"', "n": "\n"}.get(nxt, "\\" + nxt))
            i += 2
        else:
            assert raw[i] != '"'
            expected.append(raw[i])
            i += 1
    assert dict(labels)["b"] == "".join(expected)  # type: ignore[call-overload]


@settings(max_examples=8, deadline=None)
@given(st.integers(100_000, 1_000_000), st.sampled_from(["x", "é", "\\n", '\\"']))
def test_huge_label_values(size: int, unit: str) -> None:
    """Label values of up to a megabyte parse, in both formats."""
    big = unit * (size // len(unit))
    for content_type, tail in ((TEXT, ""), (OM, "# EOF\n")):
        body = f'a{{b="{big}",c="d"}} 1\n{tail}'.encode()
        (row,) = got_rows(parse(body, content_type))
        assert len(dict(row[0])["b"]) == size // len(unit)  # type: ignore[index]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text_bodies(), st.integers(2, 4))
def test_duplicate_series_are_all_returned(case: tuple[str, list[Sample]], times: int) -> None:
    """A body repeated (every series several times) gives every sample, in order."""
    body, drawn = case
    assume(drawn)
    doubled = "\n".join([body.rstrip("\n")] * times)
    assert got_rows(parse(doubled.encode(), TEXT)) == expected_rows(drawn, om=False) * times
