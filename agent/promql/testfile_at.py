"""The expression work behind the harness's extra instant runs.

:func:`at_modifier_variant` rewrites an expression the way Prometheus's harness does
for its ``@`` reruns: every selector and subquery not inside a subquery gets
``@ <t>`` unless it already has a numeric ``@``.

>>> at_modifier_variant("rate(x[5m]) + y @ start()", 60_000)
'rate(x[5m] @ 60.000) + y @ 60.000'

:func:`expr_info` is what promql-parser makes of an expression: the selectors it
reads (to skip evals that read series we could not load), its node shape (to check
the rewrite kept the expression intact), and whether ``@`` reruns make sense for it.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

import promql_parser

from agent.tsdb.base import Labels, Matcher, MatchOp

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


# --- the expression checks done with promql-parser ---------------------------------------

_AT_UNSAFE = frozenset({"days_in_month", "day_of_month", "day_of_week", "day_of_year", "hour"})
_AT_UNSAFE |= {"minute", "month", "year", "predict_linear", "time", "timestamp"}
# v3.14's query-context functions: its data (``eval instant at 0s start()`` = 0) only
# passes if, as for time(), no @ reruns at other times are made for them.
_AT_UNSAFE |= {"start", "end", "range", "step"}
_OPS: dict[str, MatchOp] = {"Equal": "=", "NotEqual": "!=", "Re": "=~", "NotRe": "!~"}


@dataclass(slots=True)
class ExprInfo:
    """What the runner needs to know about a parsed expression."""

    selectors: list[list[Matcher]] = field(default_factory=list)
    shape: list[str] = field(default_factory=list)
    at_unsafe: bool = False
    top_level_at_ok: bool = True


@functools.lru_cache(maxsize=4096)
def expr_info(expr: str) -> ExprInfo | str:
    """What promql-parser makes of ``expr``, or its error (a Rust panic included).

    Cached; call ``expr_info.cache_clear()`` when the parser's function registry may
    have changed (an engine can register functions with it).
    """
    try:
        ast = promql_parser.parse(expr)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return _inspect(ast)


def _inspect(expr: promql_parser.Expr) -> ExprInfo:
    info, depth = ExprInfo(), [0]

    def pre(node: promql_parser.Expr) -> None:
        info.shape.append(type(node).__name__)
        if isinstance(node, promql_parser.VectorSelector):
            info.selectors += _matcher_groups(node)
        if depth[0] == 0:
            if isinstance(node, promql_parser.VectorSelector | promql_parser.SubqueryExpr):
                at = node.at
                ok = at is not None and at.type == promql_parser.AtModifierType.At
                info.top_level_at_ok = info.top_level_at_ok and ok
            if isinstance(node, promql_parser.Call) and node.func.name in _AT_UNSAFE:
                info.at_unsafe = True
        if isinstance(node, promql_parser.SubqueryExpr):
            depth[0] += 1

    def post(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.SubqueryExpr):
            depth[0] -= 1

    promql_parser.walk(expr, pre, post)
    return info


def _matcher_groups(node: promql_parser.VectorSelector) -> list[list[Matcher]]:
    base = [Matcher("__name__", "=", node.name)] if node.name else []
    groups = node.matchers.or_matchers or [node.matchers.matchers]
    out = []
    for group in groups:
        try:
            out.append(
                base + [Matcher(m.name, _OPS[str(m.op).rsplit(".", 1)[-1]], m.value) for m in group]
            )
        except re.error:
            out.append([])  # a regex Python cannot read: assume it may match anything
    return out


def reads(info: ExprInfo, labels: Labels) -> bool:
    """Whether one of the expression's selectors matches a series with ``labels``."""
    values = dict(labels)
    return any(all(m.matches(values.get(m.name, "")) for m in g) for g in info.selectors)
