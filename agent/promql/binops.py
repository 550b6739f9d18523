"""Binary operators: arithmetic, comparison and set operators, with vector matching.

Vector/vector operations match samples by a signature: the label set
restricted to the ``on(...)`` labels, or without the ``ignoring(...)``
labels and ``__name__``. Matching errors are the ones Prometheus reports.

>>> from agent.promql.nodes import parse_query
>>> node = parse_query("a > bool 1")
>>> binary(node, InstantVector([(("__name__", "a"),)], [2.0]), 1.0).values
[1.0]
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable

from agent.promql.floats import go_div, go_mod, go_pow
from agent.promql.labels import NAME, drop_name, format_labels, get, keep_only, with_label, without
from agent.promql.nodes import Binary, Node
from agent.promql.value import QueryError
from agent.promql.vectors import InstantVector, Value, checked
from agent.tsdb.base import Labels

ARITHMETIC: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": go_div,
    "%": go_mod,
    "^": go_pow,
    "atan2": math.atan2,
}

COMPARISON: dict[str, Callable[[float, float], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
    ">=": operator.ge,
    "<=": operator.le,
}

SET_OPS = ("and", "or", "unless")

Signature = Callable[[Labels], Labels]


def binary(node: Node, lhs: Value, rhs: Value) -> Value:
    """Apply binary operation ``node`` to its evaluated operands."""
    assert isinstance(node, Binary)
    if isinstance(lhs, float) and isinstance(rhs, float):
        return _scalar_scalar(node, lhs, rhs)
    if isinstance(lhs, InstantVector) and isinstance(rhs, float):
        return _vector_scalar(node, lhs, rhs, swap=False)
    if isinstance(lhs, float) and isinstance(rhs, InstantVector):
        return _vector_scalar(node, rhs, lhs, swap=True)
    if isinstance(lhs, InstantVector) and isinstance(rhs, InstantVector):
        if node.op in SET_OPS:
            return _set_op(node, lhs, rhs)
        return _vector_vector(node, lhs, rhs)
    raise QueryError(f"invalid operands for binary operator {node.op}", "bad_data")


def _scalar_scalar(node: Binary, lhs: float, rhs: float) -> float:
    arith = ARITHMETIC.get(node.op)
    if arith is not None:
        return arith(lhs, rhs)
    return 1.0 if COMPARISON[node.op](lhs, rhs) else 0.0


def _vector_scalar(node: Binary, vec: InstantVector, scalar: float, swap: bool) -> InstantVector:
    arith = ARITHMETIC.get(node.op)
    if arith is not None:
        if swap:
            values = [arith(scalar, v) for v in vec.values]
        else:
            values = [arith(v, scalar) for v in vec.values]
        return checked(InstantVector([drop_name(lb) for lb in vec.labels], values))
    cmp = COMPARISON[node.op]
    if node.return_bool:
        if swap:
            flags = [cmp(scalar, v) for v in vec.values]
        else:
            flags = [cmp(v, scalar) for v in vec.values]
        labels = [drop_name(lb) for lb in vec.labels]
        return checked(InstantVector(labels, [1.0 if f else 0.0 for f in flags]))
    out = InstantVector([], [])
    for lb, v in zip(vec.labels, vec.values, strict=True):
        if cmp(scalar, v) if swap else cmp(v, scalar):
            out.labels.append(lb)
            out.values.append(v)
    return out


def signature(node: Binary) -> Signature:
    """The label set two samples must share to match under ``node``'s ``on``/``ignoring``."""
    if node.on:
        names = frozenset(node.matching)
        return lambda lb: keep_only(lb, names)
    ignored = frozenset(node.matching) | {NAME}
    return lambda lb: without(lb, ignored)


def _set_op(node: Binary, lhs: InstantVector, rhs: InstantVector) -> InstantVector:
    sig = signature(node)
    if node.op == "or":
        if not rhs.values:
            return lhs
        seen = {sig(lb) for lb in lhs.labels}
        out = InstantVector(list(lhs.labels), list(lhs.values))
        for lb, v in zip(rhs.labels, rhs.values, strict=True):
            if sig(lb) not in seen:
                out.labels.append(lb)
                out.values.append(v)
        return out
    if node.op == "and" and not rhs.values:
        return InstantVector([], [])
    right = {sig(lb) for lb in rhs.labels}
    want = node.op == "and"
    keep = [i for i, lb in enumerate(lhs.labels) if (sig(lb) in right) == want]
    return InstantVector([lhs.labels[i] for i in keep], [lhs.values[i] for i in keep])


def _one_side_index(node: Binary, one: InstantVector, sig: Signature) -> dict[Labels, int]:
    index: dict[Labels, int] = {}
    for i, lb in enumerate(one.labels):
        s = sig(lb)
        if s in index:
            side = "left" if node.card == "one-to-many" else "right"
            raise QueryError(
                f"found duplicate series for the match group {format_labels(s)} on the {side} "
                f"hand-side of the operation: [{format_labels(lb)}, "
                f"{format_labels(one.labels[index[s]])}];many-to-many matching not allowed: "
                "matching labels must be unique on one side"
            )
        index[s] = i
    return index


def _result_labels(node: Binary, many: Labels, one: Labels) -> Labels:
    lb = many
    if node.op in ARITHMETIC or node.return_bool:
        lb = drop_name(lb)
    if node.card == "one-to-one":
        if node.on:
            lb = keep_only(lb, frozenset(node.matching))
        else:
            lb = without(lb, frozenset(node.matching))
    for name in node.include:
        lb = with_label(lb, name, get(one, name))
    return lb


def _apply(node: Binary, fl: float, fr: float) -> float | None:
    """The result value for one matched pair, or None when a comparison filters it out."""
    arith = ARITHMETIC.get(node.op)
    if arith is not None:
        return arith(fl, fr)
    keep = COMPARISON[node.op](fl, fr)
    if node.return_bool:
        return 1.0 if keep else 0.0
    return fl if keep else None


def _vector_vector(node: Binary, lhs: InstantVector, rhs: InstantVector) -> InstantVector:
    sig = signature(node)
    swapped = node.card == "one-to-many"
    many, one = (rhs, lhs) if swapped else (lhs, rhs)
    # As in Prometheus, fill_left/fill_right name the sides after group_right's swap.
    fill_one, fill_many = node.fill_right, node.fill_left
    index = _one_side_index(node, one, sig)
    matched: dict[Labels, set[Labels] | None] = {}
    seen: set[Labels] = set()
    out = InstantVector([], [])
    for lb, v in zip(many.labels, many.values, strict=True):
        s = sig(lb)
        seen.add(s)
        j = index.get(s)
        if j is None and fill_one is None:
            continue
        if node.card == "one-to-one":
            if s in matched:
                raise QueryError(
                    "multiple matches for labels: many-to-one matching must be explicit "
                    "(group_left/group_right)"
                )
            matched[s] = None
        other = fill_one if j is None else one.values[j]
        assert other is not None
        value = _apply(node, other, v) if swapped else _apply(node, v, other)
        if value is None:
            continue
        metric = _result_labels(node, lb, () if j is None else one.labels[j])
        if node.card != "one-to-one":
            _check_unique(matched, s, metric)
        out.labels.append(metric)
        out.values.append(value)
    if fill_many is not None:
        _fill_unmatched_one_side(node, one, index, seen, fill_many, out)
        return checked(out)
    return out


def _fill_unmatched_one_side(
    node: Binary,
    one: InstantVector,
    index: dict[Labels, int],
    seen: set[Labels],
    fill: float,
    out: InstantVector,
) -> None:
    """``fill_*`` for the many side: one result, labelled by the match group, per lonely sample."""
    swapped = node.card == "one-to-many"
    for s, j in index.items():
        if s in seen:
            continue
        v = one.values[j]
        value = _apply(node, v, fill) if swapped else _apply(node, fill, v)
        if value is not None:
            out.labels.append(s)
            out.values.append(value)


def _check_unique(matched: dict[Labels, set[Labels] | None], sig: Labels, metric: Labels) -> None:
    seen = matched.get(sig)
    if seen is None:
        matched[sig] = {metric}
    elif metric in seen:
        raise QueryError("multiple matches for labels: grouping labels must ensure unique matches")
    else:
        seen.add(metric)
