"""Go ``text/template``'s builtin functions, and how template functions are declared.

A template function is a :class:`Func`: the Python callable plus the Go
parameter kinds (``str``, ``sample``, ``samples`` or ``any``) that the executor
checks arguments against with :func:`check_arg`. A failing function raises
:class:`FuncError`, reported as ``error calling <name>: <message>``. The
builtins follow Go: ``eq``/``lt`` refuse to compare an int with a float
(``incompatible types for comparison``), ``index`` of a missing map key gives
the zero value, ``html``/``js``/``urlquery`` escape as Go does.

>>> BUILTINS["printf"].fn("%d%%", 42), BUILTINS["html"].fn("<b>")
('42%', '&lt;b&gt;')
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

from agent.rules.template_fmt import (
    TIME_METHODS,
    GoTime,
    LabelMap,
    QueryResult,
    Sample,
    format_time,
    sprint,
    sprintf,
    sprintln,
    truth,
    type_name,
)


class FuncError(Exception):
    """A function failed; Go reports ``error calling <name>: <message>``."""


class ArgError(Exception):
    """An argument of the wrong type (``wrong type for value; expected string; got int``)."""


@dataclass(frozen=True, slots=True)
class Func:
    """A template function: ``params`` are Go parameter kinds, ``variadic`` the rest's kind."""

    fn: Callable[..., object]
    params: tuple[str, ...]
    variadic: str | None = None
    lazy: bool = False  # ``and`` / ``or``: the executor evaluates the arguments

    def kind(self, index: int) -> str:
        return self.params[index] if index < len(self.params) else self.variadic or "any"


_KIND_NAMES = {"str": "string", "sample": "*template.sample", "samples": "template.queryResult"}
_KIND_TYPES: dict[str, type] = {"str": str, "sample": Sample, "samples": QueryResult}


def check_arg(value: object, kind: str) -> object:
    """``value`` as a parameter of ``kind`` (nil becomes an empty result or nil sample)."""
    if kind == "any" or isinstance(value, _KIND_TYPES[kind]):
        return value
    if value is None and kind != "str":
        return QueryResult() if kind == "samples" else None
    if value is None:
        raise ArgError(f"invalid value; expected {_KIND_NAMES[kind]}")
    raise ArgError(f"wrong type for value; expected {_KIND_NAMES[kind]}; got {type_name(value)}")


def time_method(t: GoTime, name: str) -> Func | None:
    """The method ``name`` of a ``*time.Time`` bound to ``t`` (``Format`` takes a layout)."""
    if name == "Format":
        return Func(lambda layout: format_time(t, layout), ("str",))
    method = TIME_METHODS.get(name)
    return None if method is None else Func(lambda: method(t), ())


_HTML = str.maketrans(
    {"\0": "\ufffd", '"': "&#34;", "'": "&#39;", "&": "&amp;", "<": "&lt;", ">": "&gt;"}
)
_JS = {
    "\\": "\\\\",
    "'": "\\'",
    '"': '\\"',
    "<": "\\u003C",
    ">": "\\u003E",
    "&": "\\u0026",
    "=": "\\u003D",
}


def _js(text: str) -> str:
    """``template.JSEscapeString``."""
    out = []
    for ch in text:
        if ch in _JS:
            out.append(_JS[ch])
        elif ord(ch) < 0x20 or (not ch.isascii() and not ch.isprintable()):
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return "".join(out)


def _eval_args(args: tuple[object, ...]) -> str:
    """The text ``html``, ``js`` and ``urlquery`` escape: one string, or ``fmt.Sprint``."""
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return sprint(["<no value>" if a is None else a for a in args])


# --- builtins -------------------------------------------------------------


def _int_index(index: object, size: int) -> int:
    if index is None:
        raise FuncError("cannot index slice/array with nil")
    if not isinstance(index, int) or isinstance(index, bool):
        raise FuncError(f"cannot index slice/array with type {type_name(index)}")
    if not 0 <= index <= size:
        raise FuncError(f"index out of range: {index}")
    return index


def _index(item: object, *indexes: object) -> object:
    """``index x 1 "k"``: list and string positions, map keys (missing: the zero value)."""
    if item is None:
        raise FuncError("index of untyped nil")
    for index in indexes:
        if item is None:
            raise FuncError("index of nil pointer")
        if isinstance(item, (str, list)):
            seq = item.encode() if isinstance(item, str) else item
            i = _int_index(index, len(seq))
            if i == len(seq):
                raise FuncError(f"index out of range: {i}")
            item = seq[i]
        elif isinstance(item, dict):
            if not isinstance(index, str):
                raise FuncError(f"value has type {type_name(index)}; should be string")
            item = item.get(index, "" if isinstance(item, LabelMap) else None)
        else:
            raise FuncError(f"can't index item of type {type_name(item)}")
    return item


def _slice(item: object, *indexes: object) -> object:
    """``slice x 1 2``: ``x[1:2]`` of a string (bytes) or list."""
    if item is None:
        raise FuncError("slice of untyped nil")
    if len(indexes) > 3:
        raise FuncError(f"too many slice indexes: {len(indexes)}")
    if isinstance(item, str) and len(indexes) == 3:
        raise FuncError("cannot 3-index slice a string")
    if not isinstance(item, (str, list)):
        raise FuncError(f"can't slice item of type {type_name(item)}")
    seq = item.encode() if isinstance(item, str) else item
    bounds = [0, len(seq), len(seq)]
    for i, index in enumerate(indexes):
        bounds[i] = _int_index(index, len(seq))
    for low, high in ((bounds[0], bounds[1]), (bounds[1], bounds[2])):
        if low > high:
            raise FuncError(f"invalid slice index: {low} > {high}")
    part = seq[bounds[0] : bounds[1]]
    if isinstance(part, bytes):
        return part.decode(errors="replace")
    return QueryResult(part) if isinstance(item, QueryResult) else part


def _len(item: object) -> int:
    if item is None:
        raise FuncError("len of nil pointer")
    if isinstance(item, str):
        return len(item.encode())
    if isinstance(item, (list, dict)):
        return len(item)
    raise FuncError(f"len of type {type_name(item)}")


def _kind(value: object) -> str:
    """Go's ``basicKind`` for comparisons."""
    if value is None:
        return "nil"
    for kind, types in (("bool", bool), ("int", int), ("float", float), ("string", str)):
        if isinstance(value, types):
            return kind
    return "other"


def _eq(a: object, *others: object) -> bool:
    """``eq a b c``: a equals any of the others (same basic kind, or an error)."""
    if not others:
        raise FuncError("missing argument for comparison")
    for b in others:
        if _kind(a) != _kind(b):
            if a is not None and b is not None:
                raise FuncError("incompatible types for comparison")
            continue
        if _kind(a) == "other":
            if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
                raise FuncError(f"non-comparable type {type_name(a)}")
            if a is b:
                return True
        elif a == b:
            return True
    return False


def _lt(a: object, b: object) -> bool:
    kinds = _kind(a), _kind(b)
    if "nil" in kinds or "other" in kinds:
        raise FuncError("invalid type for comparison")
    if kinds[0] != kinds[1]:
        raise FuncError("incompatible types for comparison")
    if kinds[0] == "bool":
        raise FuncError("invalid type for comparison")
    return bool(a < b)  # type: ignore[operator]


def _le(a: object, b: object) -> bool:
    return _lt(a, b) or _eq(a, b)


def _call(fn: object, *args: object) -> object:
    raise FuncError("call of nil" if fn is None else f"non-function of type {type_name(fn)}")


def _lazy(*args: object) -> object:
    raise AssertionError("and/or are evaluated by the executor")


_ANY = ("any",)
BUILTINS = {
    "and": Func(_lazy, _ANY, "any", lazy=True),
    "or": Func(_lazy, _ANY, "any", lazy=True),
    "not": Func(lambda a: not truth(a), _ANY),
    "len": Func(_len, _ANY),
    "index": Func(_index, _ANY, "any"),
    "slice": Func(_slice, _ANY, "any"),
    "call": Func(_call, _ANY, "any"),
    "print": Func(lambda *a: sprint(a), (), "any"),
    "println": Func(lambda *a: sprintln(a), (), "any"),
    "printf": Func(lambda f, *a: sprintf(f, a), ("str",), "any"),
    "html": Func(lambda *a: _eval_args(a).translate(_HTML), (), "any"),
    "js": Func(lambda *a: _js(_eval_args(a)), (), "any"),
    "urlquery": Func(lambda *a: urllib.parse.quote_plus(_eval_args(a), safe=""), (), "any"),
    "eq": Func(_eq, _ANY, "any"),
    "ne": Func(lambda a, b: not _eq(a, b), ("any", "any")),
    "lt": Func(_lt, ("any", "any")),
    "le": Func(_le, ("any", "any")),
    "gt": Func(lambda a, b: not _le(a, b), ("any", "any")),
    "ge": Func(lambda a, b: not _lt(a, b), ("any", "any")),
}
