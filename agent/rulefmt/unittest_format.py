"""How ``promtool test rules`` renders its failures, so our output reads the same.

Labels print as Prometheus's ``labels.Labels.String()``, values as Go's
``strconv.FormatFloat(v, 'E', -1, 64)``, test times as ``model.Duration`` and
evaluation times as Go's ``time.Duration``.

>>> go_float(2.5), go_float(0.0), go_float(float("inf"))
('2.5E+00', '0E+00', '+Inf')
>>> prom_duration(90_000), go_duration(60_000)
('1m30s', '1m0s')
>>> labels_string((("job", "api"), ("severity", "page")))
'{job="api", severity="page"}'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal

LabelPairs = tuple[tuple[str, str], ...]
AlertView = tuple[LabelPairs, LabelPairs]
"""An alert as the test compares it: sorted labels and sorted annotations."""

_GO_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    "\\": "\\\\",
    '"': '\\"',
}


def go_quote(text: str) -> str:
    """Go's ``strconv.Quote`` (printable characters kept, the rest escaped)."""
    out = []
    for ch in text:
        if ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


def go_float(value: float) -> str:
    """Go's ``strconv.FormatFloat(value, 'E', -1, 64)``: shortest digits, ``E±dd`` exponent."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    sign, digits, exponent = Decimal(repr(value)).as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits)).rstrip("0") or "0"
    exp10 = exponent + len(digits) - 1 if any(digits) else 0
    mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
    return f"{'-' if sign else ''}{mantissa}E{exp10:+03d}"


def labels_string(labels: LabelPairs) -> str:
    """Prometheus's ``labels.Labels.String()``: ``{a="b", c="d"}``."""
    return "{" + ", ".join(f"{k}={go_quote(v)}" for k, v in labels) + "}"


def prom_duration(ms: int) -> str:
    """Prometheus's ``model.Duration.String()`` (``90d``, ``1w``, ``1m30s``, ``500ms``)."""
    if ms == 0:
        return "0s"
    out = ""
    units = (
        ("y", 365 * 86_400_000, True),
        ("w", 7 * 86_400_000, True),
        ("d", 86_400_000, False),
        ("h", 3_600_000, False),
        ("m", 60_000, False),
        ("s", 1000, False),
        ("ms", 1, False),
    )
    for unit, size, exact in units:
        if exact and ms % size:
            continue
        if count := ms // size:
            out += f"{count}{unit}"
            ms -= count * size
    return out


def go_duration(ms: int) -> str:
    """Go's ``time.Duration.String()`` for whole milliseconds (``0s``, ``500ms``, ``1m0s``)."""
    if ms == 0:
        return "0s"
    if abs(ms) < 1000:
        return f"{ms}ms"
    sign = "-" if ms < 0 else ""
    ms = abs(ms)
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds = f"{rest // 1000}" + (f".{rest % 1000:03d}".rstrip("0") if rest % 1000 else "")
    text = f"{seconds}s"
    if hours or minutes:
        text = f"{minutes}m{text}"
    if hours:
        text = f"{hours}h{text}"
    return sign + text


def _indent_lines(text: str, indent: str) -> str:
    return ("\n" + indent).join(text.split("\n"))


def _alerts_string(alerts: Sequence[AlertView]) -> str:
    if not alerts:
        return "[]"
    parts = []
    for i, (labels, annots) in enumerate(alerts):
        body = f"\nLabels:{labels_string(labels)}\nAnnotations:{labels_string(annots)}"
        parts.append(f"{i}:" + _indent_lines(body, "  "))
    return "[\n" + ",\n".join(parts) + "\n]"


def alert_mismatch(
    group_name: str,
    alertname: str,
    eval_ms: int,
    expected: Sequence[AlertView],
    got: Sequence[AlertView],
) -> str:
    """The failure text for an ``alert_rule_test`` whose firing alerts differ."""
    name = f"    name: {group_name},\n" if group_name else ""
    exp = _indent_lines(_alerts_string(expected), " " * 12)
    act = _indent_lines(_alerts_string(got), " " * 12)
    return (
        f"{name}    alertname: {alertname}, time: {prom_duration(eval_ms)}, \n"
        f"        exp:{exp}, \n        got:{act}"
    )


def samples_string(samples: Sequence[tuple[LabelPairs, float]]) -> str:
    """promtool's rendering of a sample list: ``{a="b"} 1E+00, ...`` or ``nil``."""
    if not samples:
        return "nil"
    return ", ".join(f"{labels_string(lb)} {go_float(v)}" for lb, v in samples)


def expr_mismatch(
    expr: str,
    eval_ms: int,
    expected: Sequence[tuple[LabelPairs, float]],
    got: Sequence[tuple[LabelPairs, float]],
) -> str:
    """The failure text for a ``promql_expr_test`` whose samples differ."""
    return (
        f"    expr: {go_quote(expr)}, time: {prom_duration(eval_ms)},\n"
        f"        exp: {samples_string(expected)}\n        got: {samples_string(got)}"
    )


def expr_error(expr: str, eval_ms: int, error: str) -> str:
    """The failure text for a ``promql_expr_test`` that could not be run."""
    return f"    expr: {go_quote(expr)}, time: {prom_duration(eval_ms)}, err: {error}"


def rule_error(rule: str, eval_ms: int, error: str) -> str:
    """The failure text for a rule whose evaluation failed (promtool stops the test there)."""
    return f"    rule: {rule}, time: {go_duration(eval_ms)}, err: {error}"
