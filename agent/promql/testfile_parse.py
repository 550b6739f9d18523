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
>>> expand_values("_x2 5x1 1-1x2")
(None, None, 5.0, 5.0, 1.0, 0.0, -1.0)

:func:`at_modifier_variant` rewrites an expression the way the harness does for
its extra instant runs: every selector and subquery not inside a subquery gets
``@ <t>`` unless it already has a numeric ``@``.

>>> at_modifier_variant("rate(x[5m]) + y @ start()", 60_000)
'rate(x[5m] @ 60.000) + y @ 60.000'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from agent.tsdb.base import STALE_NAN, Labels, labels_from

_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_MS |= {"w": 7 * _MS["d"], "y": 365 * _MS["d"]}
_DURATION = re.compile(
    r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?"
)
_DURATION_UNITS = ("y", "w", "d", "h", "m", "s", "ms")

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

_NUM = r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[iI][nN][fF]|[nN][aA][nN]"
_ITEM = re.compile(rf"(?P<base>[+-]?(?:{_NUM}))(?:(?P<inc>[+-](?:{_NUM}))?x(?P<times>[0-9]+))?")
_BLANKS = re.compile(r"_x([0-9]+)")
_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

Values = tuple[float | None, ...]
"""Expanded sample values; ``None`` is a missing point (``_``), stale is :data:`STALE_NAN`."""


class ScriptError(ValueError):
    """A statement of the script that cannot be read; ``line`` is 1-based."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


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


# --- the harness's @-modifier rewrite --------------------------------------------------

_TOKEN = re.compile(
    r"""(?P<ws>\s+|\#[^\n]*)
    |(?P<str>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
    |(?P<dur>(?:[0-9]+(?:ms|[smhdwy]))+(?![\w.]))
    |(?P<num>0[xX][0-9a-fA-F]+|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)
    |(?P<ident>[a-zA-Z_][\w:]*)
    |(?P<op>==|!=|>=|<=|=~|!~|[-+*/%^<>=,(){}\[\]@:])""",
    re.X,
)
_AGGREGATORS = frozenset({"sum", "avg", "count", "min", "max", "group", "stddev", "stdvar"})
_AGGREGATORS |= {"topk", "bottomk", "count_values", "quantile", "limitk", "limit_ratio"}
_BINOPS = frozenset(("+", "-", "*", "/", "%", "^", "==", "!=", ">", "<", ">=", "<="))
_BINOPS |= {"and", "or", "unless", "atan2"}


@dataclass(slots=True)
class _Target:
    """A selector or subquery: where its text ends, and any ``@`` it carries."""

    end: int
    at: tuple[int, int] | None = None
    at_numeric: bool = False
    nested: bool = False


class _Scanner:
    """Finds selector and subquery spans in a PromQL expression (no semantic checks)."""

    def __init__(self, text: str) -> None:
        self.toks: list[tuple[str, str, int, int]] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None:
                raise ValueError(f"unexpected character at {pos}")
            kind = m.lastgroup or ""
            if kind != "ws":
                self.toks.append((kind, m.group(), m.start(), m.end()))
            pos = m.end()
        self.i = 0
        self.targets: list[_Target] = []

    def peek(self, ahead: int = 0) -> str:
        j = self.i + ahead
        return self.toks[j][1] if j < len(self.toks) else ""

    def take(self, expected: str | None = None) -> tuple[str, str, int, int]:
        if self.i >= len(self.toks) or (expected is not None and self.peek() != expected):
            raise ValueError(f"expected {expected or 'a token'} at token {self.i}")
        self.i += 1
        return self.toks[self.i - 1]

    def skip_group(self, open_: str, close: str) -> int:
        """Consume a balanced ``open_ ... close`` group; return the end offset."""
        self.take(open_)
        depth = 1
        while depth:
            tok = self.take()
            depth += (tok[1] == open_) - (tok[1] == close)
        return self.toks[self.i - 1][3]

    def expr(self) -> None:
        self.unary()
        while self.peek().lower() in _BINOPS:
            self.take()
            if self.peek().lower() == "bool":
                self.take()
            if self.peek().lower() in ("on", "ignoring"):
                self.take()
                self.skip_group("(", ")")
            if self.peek().lower() in ("group_left", "group_right"):
                self.take()
                if self.peek() == "(":
                    self.skip_group("(", ")")
            while (
                self.peek().lower() in ("fill", "fill_left", "fill_right") and self.peek(1) == "("
            ):
                self.take()
                self.skip_group("(", ")")
            self.unary()

    def unary(self) -> None:
        while self.peek() in ("+", "-"):
            self.take()
        self.postfix()

    def postfix(self) -> None:
        first = len(self.targets)
        current = self.primary()
        while True:
            if self.peek() == "[":
                start = self.i
                end = self.skip_group("[", "]")
                if ":" in (t[1] for t in self.toks[start : self.i]):
                    for target in self.targets[first:]:
                        target.nested = True
                    current = _Target(end)
                    self.targets.append(current)
                elif current is not None:
                    current.end = end
            elif self.peek().lower() == "offset":
                self.take()
                if self.peek() in ("+", "-"):
                    self.take()
                end = self.take()[3]
                if current is not None:
                    current.end = max(current.end, end)
            elif self.peek() == "@":
                self.at_modifier(current)
            else:
                return

    def at_modifier(self, target: _Target | None) -> None:
        start = self.take("@")[2]
        if self.peek() in ("+", "-"):
            self.take()
        kind, value, _, end = self.take()
        numeric = kind == "num" or value.lower() in ("inf", "nan")
        if not numeric:
            self.take("(")
            end = self.take(")")[3]
        if target is not None:
            target.at, target.at_numeric = (start, end), numeric
            target.end = max(target.end, end)

    def primary(self) -> _Target | None:
        kind, value, _, end = self.toks[self.i] if self.i < len(self.toks) else ("", "", 0, 0)
        if kind in ("num", "str") or value.lower() in ("inf", "nan"):
            self.take()
            return None
        if value == "(":
            self.take()
            self.expr()
            self.take(")")
            return None
        if kind == "ident" and (self.peek(1) == "(" or self._is_aggregation(value)):
            self.call(value)
            return None
        if kind == "ident":
            self.take()
        elif value != "{":
            raise ValueError(f"unexpected {value!r}")
        if self.peek() == "{":
            end = self.skip_group("{", "}")
        target = _Target(end)
        self.targets.append(target)
        return target

    def _is_aggregation(self, name: str) -> bool:
        return name.lower() in _AGGREGATORS and self.peek(1).lower() in ("by", "without")

    def call(self, name: str) -> None:
        self.take()
        grouping = name.lower() in _AGGREGATORS
        if grouping and self.peek().lower() in ("by", "without"):
            self.take()
            self.skip_group("(", ")")
        self.take("(")
        while self.peek() != ")":
            self.expr()
            if self.peek() == ",":
                self.take()
        self.take(")")
        if grouping and self.peek().lower() in ("by", "without"):
            self.take()
            self.skip_group("(", ")")


def at_modifier_variant(expr: str, t_ms: int) -> str | None:
    """``expr`` with ``@ t`` on every top-level selector and subquery, or None if unreadable.

    As in Prometheus's harness: selectors inside a subquery are left alone (the
    subquery gets the ``@``); a numeric ``@`` is kept; ``@ start()`` and ``@ end()``
    become ``@ t``.
    """
    try:
        scanner = _Scanner(expr)
        scanner.expr()
        if scanner.i != len(scanner.toks):
            return None
    except (ValueError, IndexError):
        return None
    at = f"@ {t_ms / 1000:.3f}"
    edits: list[tuple[int, int, str]] = []
    for target in scanner.targets:
        if target.nested or target.at_numeric:
            continue
        if target.at is not None:
            edits.append((target.at[0], target.at[1], at))
        else:
            edits.append((target.end, target.end, " " + at))
    for start, end, text in sorted(edits, reverse=True):
        expr = expr[:start] + text + expr[end:]
    return expr
