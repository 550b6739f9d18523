"""The evaluator's own syntax tree, built once from ``promql_parser``'s AST.

``promql_parser`` hands out a fresh copy of a subtree on every attribute
access, so the evaluator converts the tree once into these plain frozen
dataclasses (durations and timestamps in integer milliseconds) and never
touches the parser's objects again.

>>> node = parse_query("sum by (job) (rate(up[5m]))")
>>> node.op, node.grouping, type(node.expr).__name__
('sum', ('job',), 'Call')
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from typing import Any, Literal

import promql_parser

from agent.promql.regex import go_regex
from agent.promql.value import QueryError
from agent.tsdb.base import Matcher, MatchOp

AtKind = Literal["at", "start", "end"]


@dataclass(frozen=True, slots=True)
class At:
    """An ``@`` modifier: a fixed time, or the query's ``start()``/``end()``."""

    kind: AtKind
    t_ms: int = 0


@dataclass(frozen=True, slots=True, eq=False)
class NumberLit:
    value: float


@dataclass(frozen=True, slots=True, eq=False)
class StringLit:
    value: str


@dataclass(frozen=True, slots=True, eq=False)
class VectorSel:
    """``name{matchers} offset o @ t``; ``matcher_sets`` has one set per ``or`` branch."""

    name: str | None
    matcher_sets: tuple[tuple[Matcher, ...], ...]
    offset_ms: int
    at: At | None


@dataclass(frozen=True, slots=True, eq=False)
class MatrixSel:
    vs: VectorSel
    range_ms: int


@dataclass(frozen=True, slots=True, eq=False)
class Subquery:
    expr: Node
    range_ms: int
    step_ms: int | None
    offset_ms: int
    at: At | None


@dataclass(frozen=True, slots=True, eq=False)
class Call:
    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True, slots=True, eq=False)
class Aggregate:
    op: str
    expr: Node
    param: Node | None
    grouping: tuple[str, ...]
    without: bool


@dataclass(frozen=True, slots=True, eq=False)
class Binary:
    """A binary operation; ``card`` is one of one-to-one, many-to-one, one-to-many, many-to-many.

    ``fill_left``/``fill_right`` stand in for a missing left/right sample (``fill(v)``).
    """

    op: str
    lhs: Node
    rhs: Node
    return_bool: bool
    card: str
    on: bool
    matching: tuple[str, ...]
    include: tuple[str, ...]
    fill_left: float | None = None
    fill_right: float | None = None


@dataclass(frozen=True, slots=True, eq=False)
class Unary:
    expr: Node


Node = NumberLit | StringLit | VectorSel | MatrixSel | Subquery | Call | Aggregate | Binary | Unary

_MATCH_OPS: dict[str, MatchOp] = {"Equal": "=", "NotEqual": "!=", "Re": "=~", "NotRe": "!~"}
_CARDS = {
    "OneToOne": "one-to-one",
    "ManyToOne": "many-to-one",
    "OneToMany": "one-to-many",
    "ManyToMany": "many-to-many",
}


def parse_query(text: str) -> Node:
    """Parse PromQL into :data:`Node`; syntax and type errors become ``bad_data``."""
    try:
        tree = promql_parser.parse(text)
    except ValueError as exc:
        raise QueryError(f"parse error: {exc}", "bad_data") from exc
    except BaseException as exc:  # pyo3 panics derive from BaseException
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        raise QueryError(f"parse error: {exc}", "bad_data") from exc
    return convert(tree, _byte_strings(text))


_ESCAPES = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92, "'": 39, '"': 34}
_HEX2 = re.compile(r"[0-9a-fA-F]{2}")
_QUOTED = re.compile(r""""((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'""")


def _go_unquote(body: str) -> tuple[str, str] | None:
    """``body`` decoded as the parser does (byte = char) and as Go does (bytes, then UTF-8)."""
    go = bytearray()
    lossy: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\" or i + 1 >= len(body):
            go += ch.encode()
            lossy.append(ch)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt == "x" and _HEX2.fullmatch(body, i + 2, i + 4):
            byte = int(body[i + 2 : i + 4], 16)
            go.append(byte)
            lossy.append(chr(byte))
            i += 4
        elif nxt in _ESCAPES:
            go.append(_ESCAPES[nxt])
            lossy.append(chr(_ESCAPES[nxt]))
            i += 2
        else:
            return None
    return "".join(lossy), go.decode("utf-8", "surrogateescape")


def _byte_strings(text: str) -> dict[str, str]:
    """String literals whose ``\\x`` escapes the parser decodes differently from Go."""
    if "\\x" not in text:
        return {}
    fixes: dict[str, str] = {}
    for found in _QUOTED.finditer(text):
        body = found.group(1) if found.group(1) is not None else found.group(2)
        decoded = _go_unquote(body) if "\\x" in body else None
        if decoded is not None and decoded[0] != decoded[1]:
            fixes[decoded[0]] = decoded[1]
    return fixes


def _ms(delta: _dt.timedelta | None) -> int:
    if delta is None:
        return 0
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


_SYSTEMTIME_RE = re.compile(r"tv_sec:\s*(-?\d+),\s*tv_nsec:\s*(\d+)")


def _at(owner: Any) -> At | None:
    """Read an ``@`` modifier, working around the parser's panic on negative times."""
    modifier = owner.at
    if modifier is None:
        return None
    kind = str(modifier.type).rsplit(".", 1)[-1]
    if kind == "Start":
        return At("start")
    if kind == "End":
        return At("end")
    try:
        when = modifier.at
    except BaseException as exc:  # pyo3 PanicException for times before 1970
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        found = _SYSTEMTIME_RE.search(repr(owner))
        if found is None:
            raise QueryError("unsupported @ modifier", "bad_data") from exc
        sec, nsec = int(found.group(1)), int(found.group(2))
        return At("at", sec * 1000 + nsec // 1_000_000)
    return At("at", round(when.timestamp() * 1000))


def _matcher(name: str, op: MatchOp, value: str) -> Matcher:
    if op in ("=~", "!~"):
        value = go_regex(value)
    try:
        return Matcher(name, op, value)
    except re.error as exc:
        raise QueryError(f"invalid regular expression {value!r}: {exc}", "bad_data") from exc


def _matchers(name: str | None, group: Any) -> tuple[Matcher, ...]:
    out = [_matcher(m.name, _MATCH_OPS[str(m.op).rsplit(".", 1)[-1]], m.value) for m in group]
    if name is not None and not any(m.name == "__name__" for m in out):
        out.insert(0, Matcher("__name__", "=", name))
    return tuple(out)


def _vector_sel(expr: Any) -> VectorSel:
    name = expr.name
    ms = expr.matchers
    sets = [_matchers(name, ms.matchers)] if ms.matchers or not ms.or_matchers else []
    sets.extend(_matchers(name, group) for group in ms.or_matchers)
    return VectorSel(name, tuple(sets), _ms(expr.offset), _at(expr))


def _binary(expr: Any, fix: dict[str, str]) -> Binary:
    op = str(expr.op)
    mod = expr.modifier
    if mod is None:
        card = "many-to-many" if op in ("and", "or", "unless") else "one-to-one"
        lhs, rhs = convert(expr.lhs, fix), convert(expr.rhs, fix)
        return Binary(op, lhs, rhs, False, card, False, (), ())
    card = _CARDS[str(mod.card).rsplit(".", 1)[-1]]
    matching = mod.matching
    on = matching is not None and str(matching.type).endswith("Include")
    names = tuple(matching.labels) if matching is not None else ()
    include = tuple(mod.group_labels or ())
    lhs, rhs = convert(expr.lhs, fix), convert(expr.rhs, fix)
    fill = mod.fill_values
    fill_left = None if fill is None or fill.lhs is None else float(fill.lhs)
    fill_right = None if fill is None or fill.rhs is None else float(fill.rhs)
    bool_ = bool(mod.return_bool)
    return Binary(op, lhs, rhs, bool_, card, on, names, include, fill_left, fill_right)


def _aggregate(expr: Any, fix: dict[str, str]) -> Aggregate:
    mod = expr.modifier
    grouping: tuple[str, ...] = ()
    without = False
    if mod is not None:
        grouping = tuple(mod.labels)
        without = str(mod.type).endswith("Without")
    param = expr.param
    return Aggregate(
        str(expr.op),
        convert(expr.expr, fix),
        None if param is None else convert(param, fix),
        grouping,
        without,
    )


def convert(expr: Any, fix: dict[str, str] | None = None) -> Node:
    """Convert one ``promql_parser`` node (and its subtree) into :data:`Node`.

    ``fix`` maps string literals as the parser decoded them to their Go value.
    """
    fix = fix or {}
    kind = type(expr).__name__
    if kind == "ParenExpr":
        return convert(expr.expr, fix)
    if kind == "NumberLiteral":
        return NumberLit(float(expr.val))
    if kind == "StringLiteral":
        value = str(expr.val)
        return StringLit(fix.get(value, value))
    if kind == "VectorSelector":
        return _vector_sel(expr)
    if kind == "MatrixSelector":
        return MatrixSel(_vector_sel(expr.vector_selector), _ms(expr.range))
    if kind == "SubqueryExpr":
        step = expr.step
        return Subquery(
            convert(expr.expr, fix),
            _ms(expr.range),
            None if step is None else _ms(step),
            _ms(expr.offset),
            _at(expr),
        )
    if kind == "Call":
        return Call(str(expr.func.name), tuple(convert(a, fix) for a in expr.args))
    if kind == "AggregateExpr":
        return _aggregate(expr, fix)
    if kind == "BinaryExpr":
        return _binary(expr, fix)
    if kind == "UnaryExpr":
        return Unary(convert(expr.expr, fix))
    raise QueryError(f"unsupported expression {kind}", "bad_data")
