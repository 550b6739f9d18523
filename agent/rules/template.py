"""Prometheus's alert templates: Go ``text/template`` plus Prometheus's functions.

:func:`expand` renders an alert's label or annotation the way Prometheus's
rule manager does: it prepends ``{{$labels := .Labels}}{{$externalLabels :=
.ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}``, runs
the template over ``.Labels``, ``.ExternalLabels``, ``.ExternalURL`` and
``.Value`` (``missingkey=zero``), and turns any failure into
``<error expanding template: ...>`` instead of raising. ``query`` runs PromQL
through the injected :data:`~agent.rules.model.QueryFunc` at ``now``.
:func:`check_template` is the parse-only check of ``promtool check rules``.

>>> expand("{{ $labels.job }} at {{ $value | humanize }}", name="A", labels={"job": "api"},
...        value=1234567.0, external_labels={}, external_url="", query=None, now=0.0)
'api at 1.235M'
>>> check_template("{{ nope }}", name="A")
'template: __alert_A:1: function "nope" not defined'
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import NoReturn

from agent.rules.model import QueryFunc
from agent.rules.template_builtins import ArgError, Func, FuncError, check_arg, time_method
from agent.rules.template_fmt import AlertData, GoTime, LabelMap, Sample, fmt_v, truth, type_name
from agent.rules.template_funcs import FUNC_NAMES, context_funcs
from agent.rules.template_lex import go_quote
from agent.rules.template_parse import (
    Action,
    Branch,
    Chain,
    Command,
    Const,
    Dot,
    Field,
    Identifier,
    LoopControl,
    Nil,
    Node,
    Operand,
    Pipe,
    TemplateCall,
    TemplateError,
    Text,
    Tree,
    Variable,
    node_str,
    parse,
)

__all__ = ["TemplateError", "check_template", "expand"]

PREFIX = (
    "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}"
    "{{$externalURL := .ExternalURL}}{{$value := .Value}}"
)
"""What Prometheus prepends to every alert template."""

_MAX_DEPTH = 100
_MAX_STEPS = 100_000  # range iterations plus template calls: a runaway template fails
_MISSING = object()  # no value from a previous pipeline stage


def check_template(text: str, *, name: str = "") -> str | None:
    """None if ``text`` parses as an alert template, else Go's parse error message.

    ``name`` is the alert's name, used in the message as Prometheus does
    (``template: __alert_<name>:1: ...``).
    """
    if "{{" not in text:
        return None
    parsed = _parsed(f"__alert_{name}", PREFIX + text)
    return parsed if isinstance(parsed, str) else None


def expand(
    text: str,
    *,
    name: str,
    labels: Mapping[str, str],
    value: float,
    external_labels: Mapping[str, str],
    external_url: str,
    query: QueryFunc | None,
    now: float,
) -> str:
    """Expand like Prometheus's alert templates; never raises.

    On a parse or execution error it returns Prometheus's text,
    ``<error expanding template: error executing template __alert_<name>: ...>``.
    """
    if "{{" not in text:
        return text
    tmpl = f"__alert_{name}"
    parsed = _parsed(tmpl, PREFIX + text)
    if isinstance(parsed, str):
        return f"<error expanding template: error parsing template {tmpl}: {parsed}>"
    data = AlertData(LabelMap(labels), LabelMap(external_labels), external_url, float(value))
    funcs = context_funcs(query=query, now=now, external_url=external_url)
    try:
        return _Exec(parsed, funcs).run(data)
    except _ExecError as exc:
        return f"<error expanding template: error executing template {tmpl}: {exc}>"
    except Exception as exc:  # Prometheus recovers from panics while expanding too
        reason = f"{type(exc).__name__}: {exc}"
        return f"<error expanding template: panic expanding template {tmpl}: {reason}>"


@functools.lru_cache(maxsize=4096)
def _parsed(name: str, text: str) -> Tree | str:
    """The parse tree of ``text``, or its error message (cached: rules re-expand every cycle)."""
    try:
        return parse(name, text, FUNC_NAMES)
    except TemplateError as exc:
        return str(exc)
    except RecursionError:
        return f"template: {name}: expression nested too deeply"


class _ExecError(Exception):
    pass


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


def _printable(value: object) -> str:
    """What an action prints: Go's ``printableValue`` then ``fmt.Fprint``."""
    if isinstance(value, str):
        return value
    if value is None:
        return "<no value>"
    text = fmt_v(value)
    return text[1:] if isinstance(value, Sample) else text


class _Exec:
    """One execution of a parsed template (Go's ``state``)."""

    def __init__(self, tree: Tree, funcs: Mapping[str, Func]) -> None:
        self.tree, self.funcs = tree, funcs
        self.out: list[str] = []
        self.vars: list[list[object]] = []  # [name, value] pairs, innermost last
        self.node: Operand | Command | Node | None = None
        self.name = tree.name
        self.depth = 0
        self.steps = 0

    def run(self, data: object) -> str:
        self.vars = [["$", data]]
        self.walk_list(data, self.tree.root)
        return "".join(self.out)

    def at(self, node: Operand | Command | Node) -> None:
        self.node = node

    def fail(self, msg: str) -> NoReturn:
        if self.node is None:
            raise _ExecError(f"template: {self.name}: {msg}")
        before = self.tree.text[: self.node.pos]
        line = before.count("\n") + 1
        col = len(before[before.rfind("\n") + 1 :].encode())
        where = f"{self.tree.name}:{line}:{col}"
        raise _ExecError(
            f'template: {where}: executing "{self.name}" at <{node_str(self.node)}>: {msg}'
        )

    # statements

    def walk_list(self, dot: object, nodes: Sequence[Node]) -> None:
        for node in nodes:
            if isinstance(node, Text):
                self.out.append(node.text)
            elif isinstance(node, Action):
                value = self.eval_pipeline(dot, node.pipe)
                if not node.pipe.decl:
                    self.out.append(_printable(value))
            elif isinstance(node, Branch):
                if node.kind == "range":
                    self.walk_range(dot, node)
                else:
                    self.walk_if(dot, node)
            elif isinstance(node, TemplateCall):
                self.walk_template(dot, node)
            elif isinstance(node, LoopControl):
                raise _Break if node.kind == "break" else _Continue

    def walk_if(self, dot: object, node: Branch) -> None:
        mark = len(self.vars)
        value = self.eval_pipeline(dot, node.pipe)
        if truth(value):
            self.walk_list(value if node.kind == "with" else dot, node.body)
        elif node.else_body is not None:
            self.walk_list(dot, node.else_body)
        del self.vars[mark:]

    def walk_range(self, dot: object, node: Branch) -> None:
        self.at(node)
        mark = len(self.vars)
        count, items = self.range_items(self.eval_pipeline(dot, node.pipe), len(node.pipe.decl))
        inner = len(self.vars)
        try:
            for key, elem in items:
                self.step()
                self.set_range_vars(node.pipe, key, elem)
                with contextlib.suppress(_Continue):
                    self.walk_list(elem, node.body)
                del self.vars[inner:]
        except _Break:
            pass
        if not count and node.else_body is not None:
            self.walk_list(dot, node.else_body)
        del self.vars[mark:]

    def range_items(self, value: object, ndecl: int) -> tuple[int, Iterable[tuple[object, object]]]:
        """How many elements ``range`` visits, and the (key, element) pairs, as Go orders them."""
        if value is None:
            return 0, ()
        if isinstance(value, list):
            return len(value), list(enumerate(value))
        if isinstance(value, dict):
            return len(value), [(key, value[key]) for key in sorted(value)]
        if isinstance(value, int) and not isinstance(value, bool):
            if ndecl > 1:
                self.fail(f"can't use {value} to iterate over more than one variable")
            return max(value, 0), zip(range(value), range(value), strict=True)
        self.fail(f"range can't iterate over {fmt_v(value)}")

    def step(self) -> None:
        self.steps += 1
        if self.steps > _MAX_STEPS:
            self.fail(f"exceeded maximum template steps ({_MAX_STEPS})")

    def set_range_vars(self, pipe: Pipe, key: object, elem: object) -> None:
        if not pipe.decl:
            return
        if pipe.is_assign:
            if len(pipe.decl) > 1:
                self.set_var(pipe.decl[0], key)
            self.set_var(pipe.decl[-1], elem)
            return
        self.vars[-1][1] = elem
        if len(pipe.decl) > 1:
            self.vars[-2][1] = key

    def walk_template(self, dot: object, node: TemplateCall) -> None:
        self.at(node)
        body = self.tree.defs.get(node.name)
        if body is None:
            self.fail(f"template {go_quote(node.name)} not defined")
        if self.depth >= _MAX_DEPTH:
            self.fail(f"exceeded maximum template depth ({_MAX_DEPTH})")
        self.step()
        new_dot = None if node.pipe is None else self.eval_pipeline(dot, node.pipe)
        saved = self.vars, self.name
        self.vars, self.name = [["$", new_dot]], node.name
        self.depth += 1
        self.walk_list(new_dot, body)
        self.depth -= 1
        self.vars, self.name = saved

    # variables

    def var_value(self, name: str) -> object:
        for var in reversed(self.vars):
            if var[0] == name:
                return var[1]
        self.fail(f"undefined variable: {name}")

    def set_var(self, name: str, value: object) -> None:
        for var in reversed(self.vars):
            if var[0] == name:
                var[1] = value
                return
        self.fail(f"undefined variable: {name}")

    # expressions

    def eval_pipeline(self, dot: object, pipe: Pipe) -> object:
        self.at(pipe)
        value: object = _MISSING
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
        for name in pipe.decl:
            if pipe.is_assign:
                self.set_var(name, value)
            else:
                self.vars.append([name, value])
        return value

    def eval_command(self, dot: object, cmd: Command, final: object) -> object:
        first = cmd.args[0]
        if isinstance(first, Field):
            self.at(first)
            return self.eval_fields(dot, dot, first.idents, cmd.args, final)
        if isinstance(first, Chain):
            return self.eval_chain(dot, first, cmd.args, final)
        if isinstance(first, Identifier):
            self.at(first)
            return self.eval_call(dot, self.funcs[first.name], first.name, cmd, cmd.args, final)
        if isinstance(first, Variable):
            return self.eval_variable(dot, first, cmd.args, final)
        self.at(first)
        self.not_a_function(cmd.args, final)
        if isinstance(first, Pipe):
            return self.eval_pipeline(dot, first)
        if isinstance(first, Nil):
            self.fail("nil is not a command")
        return dot if isinstance(first, Dot) else first.value

    def not_a_function(self, args: Sequence[Operand] | None, final: object) -> None:
        if args and (len(args) > 1 or final is not _MISSING):
            self.fail(f"can't give argument to non-function {node_str(args[0])}")

    def eval_variable(
        self, dot: object, var: Variable, args: Sequence[Operand] | None, final: object
    ) -> object:
        self.at(var)
        value = self.var_value(var.idents[0])
        if len(var.idents) == 1:
            self.not_a_function(args, final)
            return value
        return self.eval_fields(dot, value, var.idents[1:], args, final)

    def eval_chain(
        self, dot: object, chain: Chain, args: Sequence[Operand] | None, final: object
    ) -> object:
        self.at(chain)
        if isinstance(chain.node, Nil):
            self.fail(f"indirection through explicit nil in {node_str(chain)}")
        receiver = self.eval_arg(dot, chain.node)
        return self.eval_fields(dot, receiver, chain.fields, args, final)

    def eval_fields(
        self,
        dot: object,
        receiver: object,
        idents: Sequence[str],
        args: Sequence[Operand] | None,
        final: object,
    ) -> object:
        node = self.node
        for ident in idents[:-1]:
            receiver = self.eval_field(dot, ident, receiver, None, _MISSING)
            self.node = node
        return self.eval_field(dot, idents[-1], receiver, args, final)

    def eval_field(
        self,
        dot: object,
        name: str,
        receiver: object,
        args: Sequence[Operand] | None,
        final: object,
    ) -> object:
        if receiver is None:
            return None
        node = self.node
        assert node is not None
        if isinstance(receiver, GoTime):
            method = time_method(receiver, name)
            if method is not None:
                return self.eval_call(dot, method, name, node, args, final)
        has_args = (args is not None and len(args) > 1) or final is not _MISSING
        if isinstance(receiver, (AlertData, Sample)) and name in receiver.go_fields:
            if has_args:
                self.fail(f"{name} has arguments but cannot be invoked as function")
            return getattr(receiver, name)
        if isinstance(receiver, dict):
            if has_args:
                self.fail(f"{name} is not a method but has arguments")
            return receiver.get(name, "" if isinstance(receiver, LabelMap) else None)
        self.fail(f"can't evaluate field {name} in type {type_name(receiver)}")

    def eval_arg(self, dot: object, node: Operand) -> object:
        self.at(node)
        if isinstance(node, Field):
            return self.eval_fields(dot, dot, node.idents, [node], _MISSING)
        if isinstance(node, Variable):
            return self.eval_variable(dot, node, None, _MISSING)
        if isinstance(node, Pipe):
            return self.eval_pipeline(dot, node)
        if isinstance(node, Identifier):
            return self.eval_call(dot, self.funcs[node.name], node.name, node, None, _MISSING)
        if isinstance(node, Chain):
            return self.eval_chain(dot, node, None, _MISSING)
        if isinstance(node, Const):
            return node.value
        return dot if isinstance(node, Dot) else None

    def eval_call(
        self,
        dot: object,
        func: Func,
        name: str,
        node: Operand | Command | Node,
        args: Sequence[Operand] | None,
        final: object,
    ) -> object:
        arg_nodes = args[1:] if args else ()
        given = len(arg_nodes) + (final is not _MISSING)
        fixed = len(func.params)
        if func.variadic is not None and given < fixed:
            self.fail(f"wrong number of args for {name}: want at least {fixed} got {given}")
        if func.variadic is None and given != fixed:
            self.fail(f"wrong number of args for {name}: want {fixed} got {given}")
        if func.lazy:
            return self.eval_and_or(dot, name, arg_nodes, final)
        values = [
            self.checked(self.eval_arg(dot, a), func.kind(i)) for i, a in enumerate(arg_nodes)
        ]
        if final is not _MISSING:
            values.append(self.checked(final, func.kind(given - 1)))
        try:
            return func.fn(*values)
        except FuncError as exc:
            self.at(node)
            self.fail(f"error calling {name}: {exc}")

    def eval_and_or(
        self, dot: object, name: str, arg_nodes: Sequence[Operand], final: object
    ) -> object:
        """``and`` / ``or`` evaluate their arguments lazily, as Go 1.18+ does."""
        value: object = None
        for arg in arg_nodes:
            value = self.eval_arg(dot, arg)
            if truth(value) == (name == "or"):
                return value
        return value if final is _MISSING else final

    def checked(self, value: object, kind: str) -> object:
        try:
            return check_arg(value, kind)
        except ArgError as exc:
            self.fail(str(exc))
