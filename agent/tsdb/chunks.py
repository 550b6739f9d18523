"""Compact sample chunks: delta-of-delta timestamps and narrowest-fit values.

A :class:`Chunk` holds up to ``chunk_size`` consecutive samples of one series
in two :mod:`array` buffers, never one Python object per sample:

* timestamps: ``mint`` (the first timestamp), ``step`` (the first delta) and
  ``dods``, the delta-of-delta of every later sample, in the narrowest of
  ``b``/``h``/``i``/``q`` that holds them. Regular scrapes have deltas-of-delta
  of a few milliseconds (jitter), so a timestamp costs one byte.
* values: ``b``/``h``/``i`` while every value is an integer that fits (``up``,
  most counters), ``d`` (IEEE 754 doubles, bit-exact: NaN payloads such as the
  stale marker are kept) as soon as one is not.

An array is widened (rebuilt with a wider typecode) when a sample does not fit.
A full chunk is *frozen*: both arrays are rebuilt at their exact size (``append``
over-allocates by about 1/16) and never change again.

>>> c = Chunk(1_000, 1.0)
>>> c.append(16_000, 2.0); c.append(31_003, 2.5)
>>> c.times(), list(c.values)
([1000, 16000, 31003], [1.0, 2.0, 2.5])
>>> c.dods.typecode, c.values.typecode
('b', 'd')
"""

from __future__ import annotations

import math
import sys
from array import array
from bisect import bisect_left, bisect_right
from itertools import accumulate
from typing import Any

# Signed integer typecodes in widening order, with the range each one holds.
_INT_CODES: tuple[tuple[str, int, int], ...] = (
    ("b", -(2**7), 2**7 - 1),
    ("h", -(2**15), 2**15 - 1),
    ("i", -(2**31), 2**31 - 1),
    ("q", -(2**63), 2**63 - 1),
)
# Value arrays stay integral up to "i" (4 bytes); past that a double is as small.
_VALUE_INT_CODES = _INT_CODES[:3]


def _int_code(n: int, codes: tuple[tuple[str, int, int], ...] = _INT_CODES) -> str | None:
    """The narrowest typecode among ``codes`` that holds ``n``, or None."""
    for code, lo, hi in codes:
        if lo <= n <= hi:
            return code
    return None


def _integral(v: float) -> bool:
    """Whether ``v`` is stored exactly as an int (finite, integral, not -0.0)."""
    return v.is_integer() and (v != 0.0 or math.copysign(1.0, v) > 0)


def _new_values(v: float) -> array[Any]:
    code = _int_code(int(v), _VALUE_INT_CODES) if _integral(v) else None
    if code is None:
        return array("d", (v,))
    return array(code, (int(v),))


class Chunk:
    """Up to a few hundred samples of one series, oldest first.

    Only the store's head chunk is appended to; :meth:`freeze` makes it
    immutable and exact-size. Samples must be appended in strictly increasing
    time order (the store checks it).

    >>> c = Chunk(0, 7.0)
    >>> c.append(15_000, 8.0)
    >>> c.freeze()
    >>> c.slice(1, 15_000)
    ([15000], array('d', [8.0]))
    """

    __slots__ = ("dods", "last_delta", "maxt", "mint", "step", "values")

    def __init__(self, t_ms: int, value: float) -> None:
        self.mint = t_ms
        self.maxt = t_ms
        self.step = 0
        self.last_delta = 0
        self.dods: array[int] = array("b")
        self.values: array[Any] = _new_values(value)

    def __len__(self) -> int:
        return len(self.values)

    def append(self, t_ms: int, value: float) -> None:
        """Add a sample later than :attr:`maxt`."""
        delta = t_ms - self.maxt
        if len(self.values) == 1:
            self.step = delta
        else:
            dod = delta - self.last_delta
            try:
                self.dods.append(dod)
            except OverflowError:
                code = _int_code(dod)
                if code is None:
                    raise
                self.dods = array(code, self.dods)
                self.dods.append(dod)
        self.last_delta = delta
        self.maxt = t_ms
        self._append_value(value)

    def _append_value(self, v: float) -> None:
        values = self.values
        if values.typecode != "d" and _integral(v):
            n = int(v)
            try:
                values.append(n)
                return
            except OverflowError:
                code = _int_code(n, _VALUE_INT_CODES)
            if code is not None:
                self.values = array(code, values)
                self.values.append(n)
                return
        if values.typecode != "d":
            self.values = values = array("d", values)
        values.append(v)

    def freeze(self) -> None:
        """Trim both arrays to their exact size; the chunk no longer changes."""
        self.dods = self.dods[:]
        self.values = self.values[:]
        self.last_delta = 0

    def times(self) -> list[int]:
        """Every timestamp of the chunk, decoded."""
        if len(self.values) == 1:
            return [self.mint]
        return list(accumulate(accumulate(self.dods, initial=self.step), initial=self.mint))

    def last_value(self) -> float:
        return float(self.values[-1])

    def slice(self, mint_ms: int, maxt_ms: int) -> tuple[list[int], array[float]]:
        """Timestamps and values of the samples in ``[mint_ms, maxt_ms]`` (copies)."""
        times = self.times()
        lo = 0 if mint_ms <= self.mint else bisect_left(times, mint_ms)
        hi = len(times) if maxt_ms >= self.maxt else bisect_right(times, maxt_ms)
        if lo == 0 and hi == len(times):
            return times, self.float_values(0, hi)
        return times[lo:hi], self.float_values(lo, hi)

    def float_values(self, lo: int, hi: int) -> array[float]:
        """Values ``lo:hi`` as a new ``array('d')``."""
        part = self.values[lo:hi]
        if part.typecode == "d":
            return part
        return array("d", part)

    def has_sample_in(self, mint_ms: int, maxt_ms: int) -> bool:
        """Whether any sample lies in ``[mint_ms, maxt_ms]``."""
        if maxt_ms < self.mint or mint_ms > self.maxt:
            return False
        if mint_ms <= self.mint or maxt_ms >= self.maxt:
            return True
        times = self.times()
        return bisect_left(times, mint_ms) < bisect_right(times, maxt_ms)

    def nbytes(self) -> int:
        """Estimated heap bytes held by this chunk (object, ints, arrays)."""
        ints = sys.getsizeof(self.mint) + sys.getsizeof(self.maxt) + sys.getsizeof(self.step)
        return sys.getsizeof(self) + ints + sys.getsizeof(self.dods) + sys.getsizeof(self.values)
