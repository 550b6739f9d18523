"""The inverted label index: label name → value → postings (the series carrying it).

Postings are plain lists of series objects in creation order rather than sets:
a list costs 8 bytes per entry where a set costs 30 to 60, series are only ever
added at the end, and removal (retention) happens in batches, so
:meth:`LabelIndex.discard` rebuilds only the lists it touches.

The index also interns label pairs: every series carrying ``job="api"`` shares
one ``("job", "api")`` tuple, so a series' own label set costs one tuple of
pointers.

A matcher narrows the candidates only when it does not match the empty string
(a missing label): ``{job="api"}`` and ``{job=~"a.*"}`` do, ``{job!="x"}`` and
``{job=~".*"}`` cannot, and a selector made only of those is a scan
(:meth:`LabelIndex.candidates` returns None).
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Iterable, Sequence
from typing import Generic, Protocol, TypeVar

from agent.tsdb.base import Labels, Matcher


class _HasLabels(Protocol):
    """Anything the index can hold: it only reads ``labels``."""

    @property
    def labels(self) -> Labels: ...


_S = TypeVar("_S", bound=_HasLabels)


def label_value(labels: Labels, name: str) -> str:
    """The value of label ``name``, or ``""`` when the series does not carry it."""
    for n, v in labels:
        if n == name:
            return v
    return ""


def matches_all(labels: Labels, matchers: Sequence[Matcher]) -> bool:
    """Whether every matcher accepts the series' labels (a missing label is ``""``)."""
    return all(m.matches(label_value(labels, m.name)) for m in matchers)


class LabelIndex(Generic[_S]):
    """Label name → value → postings list, plus interned label pairs.

    >>> from agent.tsdb.base import Matcher
    >>> class S:
    ...     def __init__(self, labels): self.labels = labels
    >>> idx = LabelIndex()
    >>> a = S(idx.canonical((("__name__", "up"), ("job", "api"))))
    >>> idx.add(a)
    >>> idx.candidates([Matcher("__name__", "=", "up")]) == [a]
    True
    >>> idx.candidates([Matcher("job", "!=", "x")]) is None
    True
    """

    def __init__(self) -> None:
        self._postings: dict[str, dict[str, list[_S]]] = {}
        self._pairs: dict[tuple[str, str], tuple[str, str]] = {}

    def canonical(self, labels: Labels) -> Labels:
        """``labels`` rebuilt from interned pairs (shared with other series)."""
        pairs = self._pairs
        return tuple([pairs.setdefault(pair, pair) for pair in labels])

    def add(self, series: _S) -> None:
        """Index a new series under each of its label pairs."""
        postings = self._postings
        for name, value in series.labels:
            by_value = postings.get(name)
            if by_value is None:
                by_value = postings[name] = {}
            entries = by_value.get(value)
            if entries is None:
                by_value[value] = [series]
            else:
                entries.append(series)

    def discard(self, removed: Collection[_S]) -> None:
        """Remove many series at once, dropping postings (and pairs) left empty."""
        if not removed:
            return
        gone = {id(s) for s in removed}
        touched = {pair for s in removed for pair in s.labels}
        for name, value in touched:
            by_value = self._postings[name]
            kept = [s for s in by_value[value] if id(s) not in gone]
            if kept:
                by_value[value] = kept
                continue
            del by_value[value]
            del self._pairs[(name, value)]
            if not by_value:
                del self._postings[name]

    def candidates(self, matchers: Sequence[Matcher]) -> list[_S] | None:
        """A superset of the series the matchers select, or None to scan all series.

        The smallest postings list of a non-empty ``=`` matcher is used; failing
        that, the smallest union of postings over the values of one label that
        a matcher not matching ``""`` accepts.
        """
        best: list[_S] | None = None
        for m in matchers:
            if m.op == "=" and m.value != "":
                entries = self._postings.get(m.name, {}).get(m.value)
                if entries is None:
                    return []
                if best is None or len(entries) < len(best):
                    best = entries
        if best is not None:
            return best
        for m in matchers:
            if m.matches(""):
                continue
            by_value = self._postings.get(m.name, {})
            union = [s for v, entries in by_value.items() if m.matches(v) for s in entries]
            if best is None or len(union) < len(best):
                best = union
        return best

    def names(self) -> Iterable[str]:
        """Every label name in use (unsorted)."""
        return self._postings.keys()

    def values(self, name: str) -> Iterable[str]:
        """Every value of label ``name`` in use (unsorted)."""
        return self._postings.get(name, {}).keys()

    def clear(self) -> None:
        self._postings.clear()
        self._pairs.clear()

    def nbytes(self) -> int:
        """Estimated heap bytes of the index (dicts, postings lists, interned pairs)."""
        total = sys.getsizeof(self._postings) + sys.getsizeof(self._pairs)
        for by_value in self._postings.values():
            total += sys.getsizeof(by_value)
            total += sum(sys.getsizeof(entries) for entries in by_value.values())
        total += sum(sys.getsizeof(pair) for pair in self._pairs)
        return total
