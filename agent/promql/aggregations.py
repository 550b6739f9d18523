"""Aggregation operators: sum, avg, min, max, count, group, stddev, stdvar, quantile,
count_values, topk, bottomk, limitk and limit_ratio, with ``by``/``without``.

>>> from agent.promql.nodes import parse_query
>>> from agent.promql.vectors import Annotations
>>> node = parse_query("sum by (job) (x)")
>>> vec = InstantVector([(("job", "a"), ("i", "1")), (("job", "a"), ("i", "2"))], [1.0, 2.0])
>>> aggregate(node, vec, None, Annotations()).values
[3.0]
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

from agent.promql.floats import format_f, format_g, kahan_sum
from agent.promql.labels import NAME, is_valid_label_name, keep_only, quote, with_label, without
from agent.promql.nodes import Aggregate, Node
from agent.promql.rangefuncs import mean, quantile, variance
from agent.promql.value import QueryError
from agent.promql.vectors import Annotations, InstantVector, Value
from agent.promql.xxhash import labels_hash
from agent.tsdb.base import Labels

NAN = math.nan


def _max(values: Sequence[float]) -> float:
    best = values[0]
    for v in values:
        if v > best or best != best:
            best = v
    return best


def _min(values: Sequence[float]) -> float:
    best = values[0]
    for v in values:
        if v < best or best != best:
            best = v
    return best


def _stdvar(values: Sequence[float]) -> float:
    if not all(map(math.isfinite, values)):
        return NAN
    return variance(values)


_REDUCERS: dict[str, Callable[[Sequence[float]], float]] = {
    "sum": kahan_sum,
    "avg": mean,
    "max": _max,
    "min": _min,
    "count": lambda vs: float(len(vs)),
    "group": lambda vs: 1.0,
    "stdvar": _stdvar,
    "stddev": lambda vs: math.sqrt(_stdvar(vs)),
}


def group_key(node: Aggregate, grouping: Sequence[str] | None = None) -> Callable[[Labels], Labels]:
    """The function mapping a series' labels to its group's labels."""
    names = frozenset(node.grouping if grouping is None else grouping)
    if node.without:
        dropped = names | {NAME}
        return lambda lb: without(lb, dropped)
    if not names:
        return lambda lb: ()
    return lambda lb: keep_only(lb, names)


def _groups(vec: InstantVector, key: Callable[[Labels], Labels]) -> dict[Labels, list[int]]:
    groups: dict[Labels, list[int]] = {}
    for i, lb in enumerate(vec.labels):
        k = key(lb)
        members = groups.get(k)
        if members is None:
            groups[k] = [i]
        else:
            members.append(i)
    return groups


def aggregate(node: Node, vec: InstantVector, param: Value | None, ann: Annotations) -> Value:
    """Evaluate aggregation ``node`` over ``vec`` with its evaluated parameter."""
    assert isinstance(node, Aggregate)
    op = node.op
    if op in ("topk", "bottomk", "limitk", "limit_ratio"):
        return _select(node, vec, param, ann)
    if op == "count_values":
        assert isinstance(param, str)
        return _count_values(node, vec, param)
    reducer: Callable[[Sequence[float]], float]
    if op == "quantile":
        assert isinstance(param, float)
        phi = param
        if not 0 <= phi <= 1:
            ann.warn(f"quantile value should be between 0 and 1, got {format_g(phi)}")
        reducer = functools.partial(quantile, phi)
    else:
        reducer = _REDUCERS[op]
    if not node.grouping and not node.without:
        if not vec.values:
            return InstantVector([], [])
        return InstantVector([()], [reducer(vec.values)])
    groups = _groups(vec, group_key(node))
    values = vec.values
    return InstantVector(
        list(groups), [reducer([values[i] for i in idx]) for idx in groups.values()]
    )


def _count_values(node: Aggregate, vec: InstantVector, label: str) -> InstantVector:
    if not is_valid_label_name(label):
        raise QueryError(f"invalid label name {quote(label)}")
    drop = node.without
    grouping = [g for g in node.grouping if g != label] if drop else [*node.grouping, label]
    key = group_key(node, grouping)
    counts: dict[Labels, float] = {}
    for lb, v in zip(vec.labels, vec.values, strict=True):
        k = key(with_label(lb, label, format_f(v)))
        counts[k] = counts.get(k, 0.0) + 1
    return InstantVector(list(counts), list(counts.values()))


def _k_param(op: str, param: Value | None) -> int:
    assert isinstance(param, float)
    if param != param:
        raise QueryError("Parameter value is NaN")
    if param >= 2.0**63 or param < -(2.0**63):
        raise QueryError(f"Scalar value {format_g(param)} overflows int64")
    return int(param)


def _ratio_param(param: Value | None, ann: Annotations) -> float:
    assert isinstance(param, float)
    if param != param:
        raise QueryError("Ratio value is NaN")
    if not -1 <= param <= 1:
        capped = 1.0 if param > 1 else -1.0
        ann.warn(
            f"ratio value should be between -1 and 1, got {format_g(param)}, "
            f"capping to {format_g(capped)}"
        )
        return capped
    return param


def _ordered(values: list[float], idx: list[int], top: bool) -> list[int]:
    def key(i: int) -> tuple[int, float]:
        v = values[i]
        if v != v:
            return (1, 0.0)
        return (0, -v if top else v)

    return sorted(idx, key=key)


def _select(node: Aggregate, vec: InstantVector, param: Value | None, ann: Annotations) -> Value:
    """topk, bottomk, limitk and limit_ratio: a subset of the input samples, labels kept."""
    if node.op == "limit_ratio":
        ratio = _ratio_param(param, ann)
        keep = [i for i, lb in enumerate(vec.labels) if _in_ratio(lb, ratio)]
        return InstantVector([vec.labels[i] for i in keep], [vec.values[i] for i in keep])
    k = _k_param(node.op, param)
    if k < 1 or not vec.values:
        return InstantVector([], [])
    groups = _groups(vec, group_key(node))
    picked: list[int] = []
    for idx in groups.values():
        if node.op == "limitk":
            picked.extend(idx[:k])
        else:
            picked.extend(_ordered(vec.values, idx, node.op == "topk")[:k])
    return InstantVector([vec.labels[i] for i in picked], [vec.values[i] for i in picked])


def _in_ratio(labels: Labels, ratio: float) -> bool:
    offset = labels_hash(labels) / float(2**64 - 1)
    if ratio >= 0:
        return offset < ratio
    return offset >= 1.0 + ratio
