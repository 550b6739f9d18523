"""Functions that rewrite or order by labels: label_replace, label_join, sort_by_label.

Replacement templates follow Go's ``Regexp.Expand``: ``$1``, ``${1}``,
``$name``, ``${name}`` and ``$$``; an unknown group expands to nothing.

>>> import re
>>> expand_template("$1-${2}x-$$", re.fullmatch(r"(a)(b)", "ab"))
'a-bx-$'
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

from agent.promql.labels import get, is_valid_label_name, with_label
from agent.promql.regex import go_regex
from agent.promql.value import QueryError
from agent.promql.vectors import CallContext, InstantVector, Value, checked
from agent.tsdb.base import Labels

_NAME_CHARS = re.compile(r"\w+")


def _group_ref(template: str, pos: int) -> tuple[str, int] | None:
    """The group name after a ``$`` at ``pos``, and where the reference ends."""
    braced = template.startswith("{", pos)
    start = pos + 1 if braced else pos
    found = _NAME_CHARS.match(template, start)
    if found is None:
        return None
    end = found.end()
    if braced:
        if not template.startswith("}", end):
            return None
        end += 1
    return found.group(), end


def _group_value(match: re.Match[str], name: str) -> str:
    if name.isdigit() and name.isascii():
        if len(name) > 1 and name[0] == "0":
            return ""
        index = int(name)
        if index <= (match.re.groups or 0):
            return match.group(index) or ""
        return ""
    if name in match.re.groupindex:
        return match.group(name) or ""
    return ""


def expand_template(template: str, match: re.Match[str]) -> str:
    """Expand ``template`` with the groups of ``match`` as Go's ``Regexp.ExpandString`` does."""
    out: list[str] = []
    i = 0
    while True:
        j = template.find("$", i)
        if j < 0:
            out.append(template[i:])
            return "".join(out)
        out.append(template[i:j])
        if template.startswith("$", j + 1):
            out.append("$")
            i = j + 2
            continue
        ref = _group_ref(template, j + 1)
        if ref is None:
            out.append("$")
            i = j + 1
            continue
        name, i = ref
        out.append(_group_value(match, name))


def _compile(regex: str) -> re.Pattern[str]:
    try:
        return re.compile(f"(?s:{go_regex(regex)})")
    except re.error as exc:
        raise QueryError(
            f"invalid regular expression in label_replace(): {regex}", "execution"
        ) from exc


def _label_replace(args: list[Value], ctx: CallContext) -> Value:
    vec, dst, repl, src, regex = args
    assert isinstance(vec, InstantVector)
    assert isinstance(dst, str) and isinstance(repl, str)
    assert isinstance(src, str) and isinstance(regex, str)
    pattern = _compile(regex)
    if not is_valid_label_name(dst):
        raise QueryError(f"invalid destination label name in label_replace(): {dst}", "execution")
    labels: list[Labels] = []
    for lb in vec.labels:
        match = pattern.fullmatch(get(lb, src))
        if match is not None:
            lb = with_label(lb, dst, expand_template(repl, match))
        labels.append(lb)
    return checked(InstantVector(labels, list(vec.values)))


def _label_join(args: list[Value], ctx: CallContext) -> Value:
    vec, dst, sep, *srcs = args
    assert isinstance(vec, InstantVector) and isinstance(dst, str) and isinstance(sep, str)
    sources = [s for s in srcs if isinstance(s, str)]
    if not is_valid_label_name(dst):
        raise QueryError(f"invalid destination label name in label_join(): {dst}", "execution")
    for src in sources:
        if not is_valid_label_name(src):
            raise QueryError(f"invalid source label name in label_join(): {src}", "execution")
    labels = [with_label(lb, dst, sep.join(get(lb, s) for s in sources)) for lb in vec.labels]
    return checked(InstantVector(labels, list(vec.values)))


def _chunks(text: str) -> list[str]:
    return re.findall(r"\d+|\D+", text)


def natural_less(a: str, b: str) -> bool:
    """Natural ordering of label values: digit runs compare as numbers."""
    ca, cb = _chunks(a), _chunks(b)
    for i, x in enumerate(ca):
        if i >= len(cb):
            return False
        y = cb[i]
        if x.isdigit() and y.isdigit() and x.isascii() and y.isascii():
            if int(x) != int(y):
                return int(x) < int(y)
        elif x != y:
            return x < y
        if i == len(ca) - 1:
            return True
        if i == len(cb) - 1:
            return False
    return False


def _sort_by_label(descending: bool) -> Callable[[list[Value], CallContext], Value]:
    def apply(args: list[Value], ctx: CallContext) -> Value:
        vec, *names = args
        assert isinstance(vec, InstantVector)
        keys = [n for n in names if isinstance(n, str)]

        def compare(i: int, j: int) -> int:
            a, b = (vec.labels[j], vec.labels[i]) if descending else (vec.labels[i], vec.labels[j])
            for name in keys:
                va, vb = get(a, name), get(b, name)
                if va != vb:
                    return -1 if natural_less(va, vb) else 1
            return (a > b) - (a < b)

        if ctx.range_query:
            ctx.annotations.warn(
                "sort is ineffective for range queries since results are always ordered by labels"
            )
        order = sorted(range(len(vec)), key=functools.cmp_to_key(compare))
        return InstantVector([vec.labels[i] for i in order], [vec.values[i] for i in order])

    return apply


LABEL_FUNCTIONS: dict[str, Callable[[list[Value], CallContext], Value]] = {
    "label_replace": _label_replace,
    "label_join": _label_join,
    "sort_by_label": _sort_by_label(descending=False),
    "sort_by_label_desc": _sort_by_label(descending=True),
}
