"""Parser for Prometheus's PromQL test scripts (the ``promqltest`` ``.test`` format).

A script is a list of statements, each starting at an unindented-or-indented line
and ending at the next blank line (a ``#`` comment line counts as blank, as in
Prometheus's harness)::

    load 5m
        http_requests{job="api"} 0+10x10 _ stale

    eval instant at 50m sum(http_requests)
        expect no_warn
        {} 100

    eval range from 0 to 10m step 5m http_requests
        http_requests{job="api"} 0 10 20

    clear

:func:`parse_script` never raises for a bad script: a statement it cannot read
becomes an :class:`Invalid` with the line and the reason, and parsing goes on with
the next block. Series that our engine cannot hold (native histograms ``{{...}}``,
``load_with_nhcb``'s converted histograms, ``@st`` start timestamps) are listed in
:attr:`Load.unsupported`, so the runner can skip the evals that read them.

>>> stmts = parse_script("load 1m\\n  up{job=\\"a\\"} 1+1x2 _ stale\\n")
>>> stmts[0].series[0].values[:3]
(1.0, 2.0, 3.0)

The value notations (durations, ``1+2x3``, label sets, quoted strings) are read by
:mod:`agent.promql.testfile_values`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from agent.promql.testfile_values import (
    Values,
    expand_values,
    parse_duration_ms,
    parse_number,
    split_series,
    unquote,
)
from agent.tsdb.base import Labels, labels_from

_LOAD = re.compile(r"^load(?:_(with_nhcb))?\s+(.+?)$")
_EVAL_INSTANT = re.compile(
    r"^eval(?:_(fail|warn|ordered|info))?\s+instant\s+(?:at\s+(.+?))?\s+(.+)$"
)
_EVAL_RANGE = re.compile(
    r"^eval(?:_(fail|warn|info))?\s+range\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+?)\s+(.+)$"
)
_EXPECT = re.compile(r"^expect\s+(ordered|fail|warn|no_warn|info|no_info)(?:\s+(regex|msg):(.+))?$")
_EXPECT_RANGE = re.compile(r"^expect range vector\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+)$")
_EXPECT_STRING = "expect string"


class ScriptError(ValueError):
    """A statement of the script that cannot be read; ``line`` is 1-based."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


# --- statements ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SeriesLine:
    """One series of a ``load`` block or of an expected result."""

    line: int
    labels: Labels
    values: Values


@dataclass(frozen=True, slots=True)
class Unsupported:
    """A series a ``load`` defines that the runner does not store, and why."""

    labels: Labels
    reason: str


@dataclass(frozen=True, slots=True)
class Load:
    """``load <step>``: samples at 0, step, 2*step, ... for each series."""

    line: int
    step_ms: int
    series: tuple[SeriesLine, ...]
    unsupported: tuple[Unsupported, ...] = ()


@dataclass(frozen=True, slots=True)
class Clear:
    """``clear``: drop everything loaded so far."""

    line: int


@dataclass(frozen=True, slots=True)
class Expectation:
    """One ``expect fail|warn|info`` line: an exact message, a regex, or anything."""

    message: str | None = None
    regex: re.Pattern[str] | None = None

    def matches(self, text: str) -> bool:
        if self.regex is not None:
            return self.regex.search(text) is not None
        return self.message is None or self.message == text

    def describe(self) -> str:
        if self.regex is not None:
            return f"pattern {self.regex.pattern!r}"
        return "anything" if self.message is None else f"message {self.message!r}"


@dataclass(slots=True)
class Eval:
    """``eval instant at <t> <expr>`` or ``eval range from <t> to <t> step <d> <expr>``.

    ``fail_checks`` all have to match the error when ``fail`` is set. Expected
    series are keyed by labels (a later line with the same labels replaces an
    earlier one, as in the harness); ``position`` is 1-based, for ordered results.
    """

    line: int
    expr: str
    is_range: bool
    start_ms: int
    end_ms: int = 0
    step_ms: int = 0
    fail: bool = False
    fail_checks: list[Expectation] = field(default_factory=list)
    ordered: bool = False
    warn: bool = False
    info: bool = False
    expect_warn: list[Expectation] = field(default_factory=list)
    expect_info: list[Expectation] = field(default_factory=list)
    no_warn: bool = False
    no_info: bool = False
    expected: dict[Labels, tuple[int, Values]] = field(default_factory=dict)
    expected_scalar: float | None = None
    expected_string: str = ""
    range_vector: bool = False
    exclude_from_range: bool = False
    unsupported: str | None = None

    @property
    def kind(self) -> str:
        return "eval range" if self.is_range else "eval instant"


@dataclass(frozen=True, slots=True)
class Invalid:
    """A statement that could not be parsed; reported as a failure."""

    line: int
    text: str
    error: str


Statement = Load | Clear | Eval | Invalid


def _lines(text: str) -> list[str]:
    """Trimmed lines, with comment lines blanked (so a comment ends a block)."""
    out = []
    for raw in text.split("\n"):
        line = raw.strip()
        out.append("" if line.startswith("#") else line)
    return out


def _block_end(lines: list[str], i: int) -> int:
    while i + 1 < len(lines) and lines[i + 1]:
        i += 1
    return i


def parse_script(text: str) -> list[Statement]:
    """Every statement of a test script, in order; unreadable ones as :class:`Invalid`."""
    lines = _lines(text)
    statements: list[Statement] = []
    i = 0
    while i < len(lines):
        head = lines[i]
        if not head:
            i += 1
            continue
        word = head.split(None, 1)[0].lower()
        try:
            if word == "clear":
                statements.append(Clear(i + 1))
            elif word.startswith("load"):
                i = _parse_load(lines, i, statements)
            elif word.startswith("eval"):
                i = _parse_eval(lines, i, statements)
            else:
                raise ScriptError(i + 1, f"invalid command {head!r}")
        except ScriptError as exc:
            statements.append(Invalid(i + 1, head, f"line {exc.line}: {exc}"))
            i = _block_end(lines, i)
        i += 1
    return statements


def _is_st_line(line: str) -> bool:
    first = line.split(None, 1)[0]
    return first.endswith("@st") and len(line.split(None, 1)) == 2


def _parse_load(lines: list[str], i: int, out: list[Statement]) -> int:
    m = _LOAD.match(lines[i])
    if m is None:
        raise ScriptError(i + 1, "invalid load command, expected load[_with_nhcb] <step>")
    try:
        step = parse_duration_ms(m[2])
    except ValueError as exc:
        raise ScriptError(i + 1, f"invalid step: {exc}") from None
    end = _block_end(lines, i)
    defined: dict[Labels, SeriesLine | Unsupported] = {}  # a later line replaces an earlier one
    has_st = False
    for n in range(i + 1, end + 1):
        if _is_st_line(lines[n]):
            has_st = True
            continue
        try:
            labels, raw = split_series(lines[n])
            if "{{" in raw:
                defined[labels] = Unsupported(labels, "native histogram samples")
            else:
                defined[labels] = SeriesLine(n + 1, labels, expand_values(raw))
        except ValueError as exc:
            raise ScriptError(n + 1, str(exc)) from None
    series = [d for d in defined.values() if isinstance(d, SeriesLine)]
    unsupported = [d for d in defined.values() if isinstance(d, Unsupported)]
    if has_st:
        reason = "start timestamps (@st lines)"
        unsupported += [Unsupported(s.labels, reason) for s in series]
        series = []
    if m[1]:
        unsupported += _nhcb_series(series)
    out.append(Load(i + 1, step, tuple(series), tuple(unsupported)))
    return end


def _nhcb_series(series: list[SeriesLine]) -> list[Unsupported]:
    """The histograms ``load_with_nhcb`` derives from classic ``_bucket/_count/_sum`` series."""
    derived = []
    for s in series:
        labels = dict(s.labels)
        name = labels.get("__name__", "")
        for suffix in ("_bucket", "_count", "_sum"):
            if name.endswith(suffix):
                labels["__name__"] = name.removesuffix(suffix)
                labels.pop("le", None)
                reason = "native histograms with custom buckets (load_with_nhcb)"
                derived.append(Unsupported(labels_from(labels), reason))
                break
    return derived


def _parse_eval_head(line: str, n: int) -> Eval:
    if m := _EVAL_INSTANT.match(line):
        mod, at, expr = m[1], m[2] or "", m[3]
        try:
            ev = Eval(n, expr, is_range=False, start_ms=parse_duration_ms(at))
        except ValueError as exc:
            raise ScriptError(n, f"invalid timestamp definition {at!r}: {exc}") from None
    elif m := _EVAL_RANGE.match(line):
        mod, expr = m[1], m[5]
        start, end, step = _range_spec(m[2], m[3], m[4], n)
        ev = Eval(n, expr, is_range=True, start_ms=start, end_ms=end, step_ms=step)
    else:
        raise ScriptError(
            n,
            "invalid eval command, expected 'eval instant at <t> <expr>' or "
            "'eval range from <t> to <t> step <d> <expr>'",
        )
    ev.fail, ev.warn, ev.info, ev.ordered = (mod == x for x in ("fail", "warn", "info", "ordered"))
    return ev


def _range_spec(start: str, end: str, step: str, n: int) -> tuple[int, int, int]:
    try:
        spec = parse_duration_ms(start), parse_duration_ms(end), parse_duration_ms(step)
    except ValueError as exc:
        raise ScriptError(n, str(exc)) from None
    if spec[1] < spec[0]:
        raise ScriptError(n, f"end timestamp ({end}) is before start timestamp ({start})")
    return spec


def _parse_eval(lines: list[str], i: int, out: list[Statement]) -> int:
    ev = _parse_eval_head(lines[i], i + 1)
    position = 0
    while i + 1 < len(lines) and lines[i + 1]:
        i += 1
        line = lines[i]
        if ev.fail and line.startswith(("expected_fail_message", "expected_fail_regexp")):
            ev.fail_checks.append(_legacy_fail_check(line, i + 1))
            break
        if line.startswith("expect") and line.split(None, 1)[0] == "expect":
            _parse_expect_line(ev, line, i + 1)
            continue
        if (number := parse_number(line)) is not None:
            ev.expected_scalar = number
            ev.expected.clear()
            break
        position += 1
        _parse_expected_series(ev, line, i + 1, position)
    out.append(ev)
    return i


def _legacy_fail_check(line: str, n: int) -> Expectation:
    if line.startswith("expected_fail_message"):
        return Expectation(message=line.removeprefix("expected_fail_message").strip())
    pattern = line.removeprefix("expected_fail_regexp").strip()
    try:
        return Expectation(regex=re.compile(pattern))
    except re.error as exc:
        raise ScriptError(
            n, f"invalid regexp {pattern!r} for expected_fail_regexp: {exc}"
        ) from None


def _parse_expect_line(ev: Eval, line: str, n: int) -> None:
    if line.startswith("expect range vector"):
        m = _EXPECT_RANGE.match(line)
        if m is None:
            raise ScriptError(n, f"invalid range vector definition {line!r}")
        ev.start_ms, ev.end_ms, ev.step_ms = _range_spec(m[1], m[2], m[3], n)
        ev.range_vector = ev.exclude_from_range = True
        return
    if line.startswith(_EXPECT_STRING):
        try:
            ev.expected_string = unquote(line.removeprefix(_EXPECT_STRING).strip())
        except ValueError as exc:
            raise ScriptError(n, f"expected string literal not valid: {exc}") from None
        ev.exclude_from_range = True
        return
    m = _EXPECT.match(line)
    if m is None:
        raise ScriptError(
            n, "invalid expect statement, must match `expect <type> <match_type>: <string>`"
        )
    kind, how, text = m[1], m[2], (m[3] or "").strip()
    if kind == "ordered":
        ev.ordered = True
    elif kind in ("no_warn", "no_info"):
        setattr(ev, kind, True)
    else:
        expectation = _expectation(how, text, n)
        {"fail": ev.fail_checks, "warn": ev.expect_warn, "info": ev.expect_info}[kind].append(
            expectation
        )
    _validate_expects(ev, n)


def _expectation(how: str | None, text: str, n: int) -> Expectation:
    if how == "msg":
        return Expectation(message=text)
    if how == "regex":
        try:
            return Expectation(regex=re.compile(text))
        except re.error as exc:
            raise ScriptError(n, f"invalid regex {text!r}: {exc}") from None
    return Expectation()


def _validate_expects(ev: Eval, n: int) -> None:
    if ev.expect_info and ev.no_info:
        raise ScriptError(n, "invalid expect lines, info and no_info cannot be used together")
    if ev.expect_warn and ev.no_warn:
        raise ScriptError(n, "invalid expect lines, warn and no_warn cannot be used together")
    if len(ev.fail_checks) > 1:
        raise ScriptError(n, "invalid expect lines, multiple expect fail lines are not allowed")
    ev.fail = ev.fail or bool(ev.fail_checks)


def _parse_expected_series(ev: Eval, line: str, n: int, position: int) -> None:
    try:
        labels, raw = split_series(line)
        if "{{" in raw:
            ev.unsupported = "native histogram values in the expected result"
            return
        values = expand_values(raw)
    except ValueError as exc:
        raise ScriptError(n, str(exc)) from None
    if len(values) > 1 and not ev.is_range and not ev.range_vector:
        raise ScriptError(n, "expecting multiple values in instant evaluation not allowed")
    ev.expected[labels] = (position, values)
    ev.expected_scalar = None
