"""Float arithmetic with Go's semantics, which PromQL results are defined by.

Python's ``math`` raises where Go returns ``NaN`` or ``±Inf``; these helpers
return what Prometheus returns.

>>> go_pow(0.0, -1.0), go_mod(-7.0, 3.0), format_g(1e6)
(inf, -1.0, '1e+06')
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal

INF = math.inf
NAN = math.nan


def kahan_inc(inc: float, total: float, comp: float) -> tuple[float, float]:
    """One step of Neumaier-compensated summation: the new ``(sum, compensation)``."""
    new = total + inc
    if math.isinf(new):
        return new, 0.0
    if abs(total) >= abs(inc):
        comp += (total - new) + inc
    else:
        comp += (inc - new) + total
    return new, comp


def kahan_terms(values: Sequence[float]) -> tuple[float, float]:
    """Neumaier-compensated summation: ``(sum, compensation)``, as Prometheus sums floats.

    Once the sum is infinite it stays infinite (or NaN), so the compensation is then
    meaningless and callers check the sum first.
    """
    total = 0.0
    comp = 0.0
    for v in values:
        new = total + v
        if abs(total) >= abs(v):
            comp += (total - new) + v
        else:
            comp += (v - new) + total
        total = new
    return total, comp


def kahan_sum(values: Sequence[float]) -> float:
    """The compensated sum of ``values``."""
    total, comp = kahan_terms(values)
    if math.isinf(total):
        return total
    return total + comp


def go_pow(x: float, y: float) -> float:
    """``math.Pow`` as Go defines it (no exceptions)."""
    try:
        return math.pow(x, y)
    except OverflowError:
        if x < 0 and y == math.floor(y) and int(y) % 2 == 1:
            return -INF
        return INF
    except ValueError:
        if x == 0:
            if y < 0:
                odd = y == math.floor(y) and int(y) % 2 == 1
                return math.copysign(INF, x) if odd else INF
            return 0.0
        return NAN


def go_mod(x: float, y: float) -> float:
    """``math.Mod``: the remainder with the sign of ``x``; NaN for ``y == 0`` or infinite ``x``."""
    if y == 0 or math.isinf(x) or math.isnan(x) or math.isnan(y):
        return NAN
    return math.fmod(x, y)


def go_div(x: float, y: float) -> float:
    """IEEE division: ``±Inf`` or ``NaN`` on a zero divisor."""
    if y == 0:
        if x == 0 or math.isnan(x):
            return NAN
        sign = math.copysign(1.0, x) * math.copysign(1.0, y)
        return math.copysign(INF, sign)
    return x / y


def go_max(a: float, b: float) -> float:
    """``math.Max``: NaN if either is NaN."""
    if a != a or b != b:
        return NAN
    return a if a > b else b


def go_min(a: float, b: float) -> float:
    """``math.Min``: NaN if either is NaN."""
    if a != a or b != b:
        return NAN
    return a if a < b else b


def _shortest_digits(value: float) -> tuple[str, int]:
    """Shortest round-trip decimal digits and the decimal point position."""
    _, digits, exponent = Decimal(repr(abs(value))).as_tuple()
    text = "".join(str(d) for d in digits).rstrip("0") or "0"
    assert isinstance(exponent, int)
    point = len(digits) + exponent
    if text == "0":
        point = 1
    return text, point


def _special(value: float) -> str | None:
    if value != value:
        return "NaN"
    if value == INF:
        return "+Inf"
    if value == -INF:
        return "-Inf"
    return None


def format_g(value: float) -> str:
    """Go's ``%g`` (``strconv.FormatFloat(f, 'g', -1, 64)``): exponent below 1e-4 and from 1e6."""
    special = _special(value)
    if special is not None:
        return special
    neg = "-" if math.copysign(1.0, value) < 0 else ""
    digits, point = _shortest_digits(value)
    exp = point - 1
    if exp < -4 or exp >= 6:
        mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{neg}{mant}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    return neg + _fixed(digits, point)


def format_f(value: float) -> str:
    """Go's ``strconv.FormatFloat(f, 'f', -1, 64)``: shortest digits, never an exponent."""
    special = _special(value)
    if special is not None:
        return special
    neg = "-" if math.copysign(1.0, value) < 0 else ""
    digits, point = _shortest_digits(value)
    return neg + _fixed(digits, point)


def _fixed(digits: str, point: int) -> str:
    if point <= 0:
        return "0." + "0" * (-point) + digits
    if point >= len(digits):
        return digits + "0" * (point - len(digits))
    return digits[:point] + "." + digits[point:]


def parse_go_float(text: str) -> float:
    """``strconv.ParseFloat(text, 64)``; raises ValueError on what Go rejects."""
    if text == "" or text != text.strip() or "_" in text:
        raise ValueError(text)
    body = text.lstrip("+-")
    if body[:2].lower() == "0x":
        value = float.fromhex(body)
        return -value if text.startswith("-") else value
    lowered = body.lower()
    if lowered in ("inf", "infinity"):
        return -INF if text.startswith("-") else INF
    if lowered == "nan":
        return NAN
    return float(text)
