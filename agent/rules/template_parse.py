"""Go ``text/template`` syntax: the parser into a small node tree.

Prometheus expands alert labels and annotations with Go's ``text/template``.
This module reads that syntax (text, ``{{ }}`` actions with ``{{-``/``-}}``
trim markers, ``{{/* */}}`` comments, pipelines, variables, ``if``/``with``/
``range``/``break``/``continue``, ``define``/``template``/``block``) and fails
with Go's wording, e.g. ``template: t:1: function "nope" not defined``.
Evaluation lives in :mod:`agent.rules.template`.

>>> tree = parse("t", "{{ if .Up }}up{{ end }}", frozenset())
>>> node_str(tree.root[0].pipe)
'.Up'
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import NoReturn

from agent.rules.template_lex import KEYWORDS, Tok, go_quote, lex, number_value, unquote


class TemplateError(Exception):
    """A template that does not parse, with Go's message."""


# --- nodes -------------------------------------------------------------------


@dataclass(slots=True)
class Text:
    pos: int
    text: str


@dataclass(slots=True)
class Field:
    pos: int
    idents: tuple[str, ...]


@dataclass(slots=True)
class Variable:
    pos: int
    idents: tuple[str, ...]


@dataclass(slots=True)
class Dot:
    pos: int


@dataclass(slots=True)
class Nil:
    pos: int


@dataclass(slots=True)
class Const:
    """A bool, number or string literal; ``text`` is its source."""

    pos: int
    text: str
    value: bool | int | float | str


@dataclass(slots=True)
class Identifier:
    pos: int
    name: str


@dataclass(slots=True)
class Chain:
    """``(pipeline).Field``: fields applied to a term that is not a field or variable."""

    pos: int
    node: Operand
    fields: tuple[str, ...]


@dataclass(slots=True)
class Command:
    pos: int
    args: list[Operand]


@dataclass(slots=True)
class Pipe:
    pos: int
    decl: list[str]
    is_assign: bool
    cmds: list[Command]


@dataclass(slots=True)
class Action:
    pos: int
    pipe: Pipe


@dataclass(slots=True)
class Branch:
    """``if``, ``with`` or ``range``; ``else_body`` is None without ``{{else}}``."""

    kind: str
    pos: int
    pipe: Pipe
    body: list[Node]
    else_body: list[Node] | None


@dataclass(slots=True)
class TemplateCall:
    pos: int
    name: str
    pipe: Pipe | None


@dataclass(slots=True)
class LoopControl:
    kind: str  # "break" or "continue"
    pos: int


@dataclass(slots=True)
class _Marker:
    """``{{end}}`` or ``{{else}}`` while parsing a list."""

    kind: str
    pos: int

    def __str__(self) -> str:
        return "{{" + self.kind + "}}"


Operand = Field | Variable | Dot | Nil | Const | Identifier | Chain | Pipe
Node = Text | Action | Branch | TemplateCall | LoopControl


@dataclass(slots=True)
class Tree:
    """A parsed template: its body, the ``define``d templates, and the source for positions."""

    name: str
    text: str
    root: list[Node]
    defs: dict[str, list[Node]]


def node_str(node: Operand | Command | Node) -> str:
    """Go's ``Node.String()``, used in execution errors (``at <humanize "x">``)."""
    if isinstance(node, Field):
        return "." + ".".join(node.idents)
    if isinstance(node, Variable):
        return ".".join(node.idents)
    if isinstance(node, (Dot, Nil)):
        return "." if isinstance(node, Dot) else "nil"
    if isinstance(node, Const):
        return node.text
    if isinstance(node, Identifier):
        return node.name
    if isinstance(node, Chain):
        return _arg_str(node.node) + "".join("." + f for f in node.fields)
    if isinstance(node, Command):
        return " ".join(_arg_str(arg) for arg in node.args)
    if isinstance(node, Pipe):
        decl = ", ".join(node.decl) + (" = " if node.is_assign else " := ") if node.decl else ""
        return decl + " | ".join(node_str(cmd) for cmd in node.cmds)
    if isinstance(node, Action):
        return "{{" + node_str(node.pipe) + "}}"
    if isinstance(node, Branch):
        return "{{" + node.kind + " " + node_str(node.pipe) + "}}"
    if isinstance(node, TemplateCall):
        return "{{template " + go_quote(node.name) + "}}"
    return repr(node)


def _arg_str(node: Operand) -> str:
    return f"({node_str(node)})" if isinstance(node, Pipe) else node_str(node)


# --- parser ------------------------------------------------------------------

_OPERAND_START = frozenset(
    ("bool", "charconst", "dot", "field", "ident", "number", "nil", "raw", "string", "var", "(")
)


def parse(name: str, text: str, funcs: Collection[str]) -> Tree:
    """Parse ``text``; ``funcs`` are the function names it may call. Raises TemplateError."""
    return _Parser(name, text, funcs).parse()


def _tok_str(tok: Tok) -> str:
    """Go's ``item.String()`` in ``unexpected ... in ...`` messages."""
    if tok.kind == "eof":
        return "EOF"
    if tok.kind in KEYWORDS or tok.kind == "dot":
        return f"<{tok.val}>"
    return go_quote(tok.val[:10]) + "..." if len(tok.val) > 10 else go_quote(tok.val)


class _Parser:
    def __init__(self, name: str, text: str, funcs: Collection[str]) -> None:
        self.name, self.text, self.funcs = name, text, funcs
        self.toks = lex(text)
        self.i = 0
        self.cur = self.toks[0]
        self.vars = ["$"]
        self.range_depth = 0
        self.defs: dict[str, list[Node]] = {}

    # token stream

    def next(self) -> Tok:
        tok = self.toks[min(self.i, len(self.toks) - 1)]
        self.i += 1
        self.cur = tok
        if tok.kind == "error":
            self.fail(tok.val)
        return tok

    def backup(self) -> None:
        self.i -= 1

    def peek(self) -> Tok:
        tok = self.next()
        self.backup()
        return tok

    def next_non_space(self) -> Tok:
        tok = self.next()
        while tok.kind == "space":
            tok = self.next()
        return tok

    def peek_non_space(self) -> Tok:
        tok = self.next_non_space()
        self.backup()
        return tok

    def expect(self, kind: str, context: str) -> Tok:
        tok = self.next_non_space()
        if tok.kind != kind:
            self.unexpected(tok, context)
        return tok

    def fail(self, msg: str) -> NoReturn:
        line = self.text.count("\n", 0, self.cur.pos) + 1
        raise TemplateError(f"template: {self.name}:{line}: {msg}")

    def unexpected(self, tok: Tok, context: str) -> NoReturn:
        self.fail(f"unexpected {_tok_str(tok)} in {context}")

    # structure

    def parse(self) -> Tree:
        root: list[Node] = []
        while self.peek().kind != "eof":
            if self.peek().kind == "{{":
                start = self.i
                self.next()
                if self.next_non_space().kind == "define":
                    self.definition()
                    continue
                self.i = start
            node = self.text_or_action()
            if isinstance(node, _Marker):
                self.fail(f"unexpected {node}")
            root.append(node)
        return Tree(self.name, self.text, root, self.defs)

    def text_or_action(self) -> Node | _Marker:
        tok = self.next_non_space()
        if tok.kind == "text":
            return Text(tok.pos, tok.val)
        if tok.kind != "{{":
            self.unexpected(tok, "input")
        return self.action()

    def item_list(self) -> tuple[list[Node], _Marker]:
        body: list[Node] = []
        while self.peek_non_space().kind != "eof":
            node = self.text_or_action()
            if isinstance(node, _Marker):
                return body, node
            body.append(node)
        self.fail("unexpected EOF")

    def action(self) -> Node | _Marker:
        tok = self.next_non_space()
        kind = tok.kind
        if kind in ("if", "with", "range"):
            return self.control(kind)
        if kind == "else":
            after = self.peek_non_space()
            if after.kind in ("if", "with"):
                return _Marker("else", after.pos)
            return _Marker("else", self.expect("}}", "else").pos)
        if kind == "end":
            return _Marker("end", self.expect("}}", "end").pos)
        if kind in ("break", "continue"):
            if self.next_non_space().kind != "}}":
                self.unexpected(self.cur, "{{" + kind + "}}")
            if not self.range_depth:
                self.fail("{{" + kind + "}} outside {{range}}")
            return LoopControl(kind, tok.pos)
        if kind in ("template", "block"):
            return self.template_call(kind)
        self.backup()
        return Action(self.peek().pos, self.pipeline("command", "}}"))

    def control(self, kind: str) -> Branch:
        mark = len(self.vars)
        pipe = self.pipeline(kind, "}}")
        self.range_depth += kind == "range"
        body, end = self.item_list()
        self.range_depth -= kind == "range"
        else_body: list[Node] | None = None
        if end.kind == "else":
            after = self.peek()
            if kind != "range" and after.kind == kind:
                self.next()
                else_body = [self.control(kind)]
            else:
                else_body, end = self.item_list()
                if end.kind != "end":
                    self.fail(f"expected end; found {end}")
        del self.vars[mark:]
        return Branch(kind, pipe.pos, pipe, body, else_body)

    def template_name(self, context: str) -> tuple[Tok, str]:
        tok = self.next_non_space()
        if tok.kind not in ("string", "raw"):
            self.unexpected(tok, context)
        return tok, self.unquote(tok)

    def template_call(self, kind: str) -> TemplateCall:
        context = f"{kind} clause"
        tok, name = self.template_name(context)
        pipe = None
        if kind == "block":
            pipe = self.pipeline(context, "}}")
            self.add_def(name, self.sub_template(context))
        elif self.next_non_space().kind != "}}":
            self.backup()
            pipe = self.pipeline(context, "}}")
        return TemplateCall(tok.pos, name, pipe)

    def definition(self) -> None:
        _, name = self.template_name("define clause")
        self.expect("}}", "define clause")
        self.add_def(name, self.sub_template("define clause"))

    def sub_template(self, context: str) -> list[Node]:
        saved = self.vars, self.range_depth
        self.vars, self.range_depth = ["$"], 0
        body, end = self.item_list()
        if end.kind != "end":
            self.fail(f"unexpected {end} in {context}")
        self.vars, self.range_depth = saved
        return body

    def add_def(self, name: str, body: list[Node]) -> None:
        empty = all(isinstance(n, Text) and not n.text.strip() for n in body)
        if not (empty and name in self.defs):
            self.defs[name] = body

    # pipelines

    def pipeline(self, context: str, end: str) -> Pipe:
        pipe = Pipe(self.peek_non_space().pos, [], False, [])
        self.declarations(pipe, context)
        while True:
            tok = self.next_non_space()
            if tok.kind == end:
                self.check_pipeline(pipe, context)
                return pipe
            if tok.kind not in _OPERAND_START:
                self.unexpected(tok, context)
            self.backup()
            pipe.cmds.append(self.command())

    def declarations(self, pipe: Pipe, context: str) -> None:
        while self.peek_non_space().kind == "var":
            start = self.i
            var = self.next_non_space()
            after = self.next_non_space()
            if after.kind in (":=", "="):
                pipe.is_assign = after.kind == "="
                pipe.decl.append(var.val)
                self.vars.append(var.val)
                return
            if after.kind == "char" and after.val == ",":
                pipe.decl.append(var.val)
                self.vars.append(var.val)
                if context == "range" and len(pipe.decl) < 2:
                    if self.peek_non_space().kind in ("var", "}}", ")"):
                        continue
                    self.fail("range can only initialize variables")
                self.fail(f"too many declarations in {context}")
            self.i = start
            return

    def check_pipeline(self, pipe: Pipe, context: str) -> None:
        if not pipe.cmds:
            self.fail(f"missing value for {context}")
        for stage, cmd in enumerate(pipe.cmds[1:], start=2):
            if isinstance(cmd.args[0], (Const, Dot, Nil)):
                self.fail(f"non executable command in pipeline stage {stage}")

    def command(self) -> Command:
        cmd = Command(self.peek_non_space().pos, [])
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                cmd.args.append(operand)
            tok = self.next()
            if tok.kind == "space":
                continue
            if tok.kind in ("}}", ")"):
                self.backup()
            elif tok.kind != "|":
                self.unexpected(tok, "operand")
            break
        if not cmd.args:
            self.fail("empty command")
        return cmd

    def operand(self) -> Operand | None:
        node = self.term()
        if node is None or self.peek().kind != "field":
            return node
        pos = self.peek().pos
        fields: list[str] = []
        while self.peek().kind == "field":
            fields.append(self.next().val[1:])
        if isinstance(node, Field):
            return Field(pos, node.idents + tuple(fields))
        if isinstance(node, Variable):
            return Variable(pos, node.idents + tuple(fields))
        if isinstance(node, (Const, Nil, Dot)):
            self.fail(f"unexpected . after term {go_quote(node_str(node))}")
        return Chain(pos, node, tuple(fields))

    def term(self) -> Operand | None:
        tok = self.next_non_space()
        kind, pos, val = tok
        if kind == "ident":
            if val not in self.funcs:
                self.fail(f"function {go_quote(val)} not defined")
            return Identifier(pos, val)
        if kind in ("dot", "nil"):
            return Dot(pos) if kind == "dot" else Nil(pos)
        if kind == "var":
            if val not in self.vars:
                self.fail(f"undefined variable {go_quote(val)}")
            return Variable(pos, (val,))
        if kind == "field":
            return Field(pos, (val[1:],))
        if kind == "bool":
            return Const(pos, val, val == "true")
        if kind in ("number", "charconst"):
            return Const(pos, val, self.number(tok))
        if kind == "(":
            return self.pipeline("parenthesized pipeline", ")")
        if kind in ("string", "raw"):
            return Const(pos, val, self.unquote(tok))
        self.backup()
        return None

    def unquote(self, tok: Tok) -> str:
        try:
            return unquote(tok.val)
        except ValueError:
            self.fail("invalid syntax")

    def number(self, tok: Tok) -> int | float:
        if tok.kind == "charconst":
            rune = self.unquote(tok)
            if len(rune) != 1:
                self.fail(f"malformed character constant: {tok.val}")
            return ord(rune)
        try:
            return number_value(tok.val)
        except OverflowError:
            self.fail(f"integer overflow: {go_quote(tok.val)}")
        except ValueError:
            self.fail(f"illegal number syntax: {go_quote(tok.val)}")
