"""Recording rules, and what every rule evaluation shares (Prometheus's rules/recording.go).

A recording rule writes its query result back as series ``record``: each
sample keeps its labels, ``__name__`` becomes the rule's name and the rule's
labels (group labels merged underneath) are set on top. Two samples that end
up with one label set make the evaluation fail, as does a result larger than
the group's ``limit``.

A scalar result is one sample without labels (Prometheus's ``EngineQueryFunc``);
strings and range vectors are errors.

>>> from agent.promql.value import Sample, Vector
>>> rule = RecordingRule(name="job:up:sum", expr="sum by (job) (up)", labels={"env": "prod"})
>>> record(rule, rule.labels, Vector([Sample((("job", "api"),), 3.0, 0)]))
[((('__name__', 'job:up:sum'), ('env', 'prod'), ('job', 'api')), 3.0)]
"""

from __future__ import annotations

from collections.abc import Mapping

from agent.errors import AgentError
from agent.promql.value import Sample, Scalar, Vector
from agent.rules.model import RecordingRule, Rule, RuleGroup
from agent.tsdb.base import Labels, labels_from

Output = list[tuple[Labels, float]]
"""The samples one rule evaluation writes: label sets (``__name__`` included) and values."""


class RuleError(AgentError):
    """One rule's evaluation failed; the message is Prometheus's ``lastError``."""


def eval_ms(t: float) -> int:
    """Unix seconds as the store's integer milliseconds (rounded, so 1.001 s is 1001 ms)."""
    return round(t * 1000)


def merged_labels(group: RuleGroup, rule: Rule) -> dict[str, str]:
    """The rule's labels over the group's: a rule label wins a collision (Prometheus 3.x)."""
    return {**group.labels, **rule.labels}


def as_vector(value: object) -> Vector:
    """A query result as rules see it: a scalar becomes one sample without labels."""
    if isinstance(value, Vector):
        return value
    if isinstance(value, Scalar):
        return Vector([Sample((), value.value, value.timestamp)])
    raise RuleError("rule result is not a vector or scalar")


def record(
    rule: RecordingRule, labels: Mapping[str, str], vector: Vector, limit: int = 0
) -> Output:
    """The series ``rule`` writes for ``vector``; ``labels`` are the rule's (merged) labels."""
    out: dict[Labels, float] = {}
    for sample in vector.samples:
        lset = dict(sample.labels)
        lset["__name__"] = rule.name
        lset.update(labels)
        key = labels_from(lset)
        if key in out:
            raise RuleError(
                "vector contains metrics with the same labelset after applying rule labels"
            )
        out[key] = sample.value
    if limit > 0 and len(out) > limit:
        raise RuleError(f"exceeded limit of {limit} with {len(out)} series")
    return list(out.items())
