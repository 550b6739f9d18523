"""Template values, and how Go's ``fmt`` prints them.

Template values are plain Python: ``str``, ``int`` (Go's untyped integer
constants), ``float`` (float64), ``bool``, ``None`` (nil), :class:`LabelMap`
(a ``map[string]string``: a missing key reads as ""), ``dict`` (a
``map[string]interface{}``: a missing key reads as nil), :class:`QueryResult`
of :class:`Sample`, :class:`GoTime` and the :class:`AlertData` struct.
:func:`fmt_v`, :func:`sprint` and :func:`sprintf` print them as Go's ``fmt``
does (floats as ``strconv``'s shortest ``%g``: ``1e+06``, ``0.5``, ``3``).

>>> sprintf("%s is %.2f (%5d|%-4v|%q)", ["load", 0.4567, 42, True, "x"])
'load is 0.46 (   42|true|"x")'
>>> fmt_v(LabelMap(job="api", instance="a:1")), fmt_v(1e6)
('map[instance:a:1 job:api]', '1e+06')
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import ClassVar

from agent.promql.floats import format_g
from agent.rules.template_lex import go_quote


class LabelMap(dict[str, str]):
    """A Go ``map[string]string``: templates read a missing key as ""."""

    __slots__ = ()


@dataclass(slots=True)
class Sample:
    """One element of a ``query`` result: ``.Labels`` and ``.Value``."""

    Labels: LabelMap
    Value: float
    go_fields: ClassVar[tuple[str, ...]] = ("Labels", "Value")


class QueryResult(list[Sample]):
    """What ``query`` returns (Prometheus's ``queryResult``)."""

    __slots__ = ()


@dataclass(slots=True)
class AlertData:
    """The data an alert template runs over."""

    Labels: LabelMap
    ExternalLabels: LabelMap
    ExternalURL: str
    Value: float
    go_fields: ClassVar[tuple[str, ...]] = ("Labels", "ExternalLabels", "ExternalURL", "Value")


_ALERT_DATA_TYPE = (
    "struct { Labels map[string]string; ExternalLabels map[string]string; "
    "ExternalURL string; Value interface {} }"
)
_MONTHS: tuple[str, ...] = ("January", "February", "March", "April", "May", "June", "July")
_MONTHS += ("August", "September", "October", "November", "December")
_DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class GoEnum(int):
    """``time.Month`` / ``time.Weekday``: an int that prints as its name."""

    __slots__ = ()
    names: ClassVar[tuple[str, ...]] = ()
    base: ClassVar[int] = 0
    go_type: ClassVar[str] = "int"

    def __str__(self) -> str:
        return self.names[int(self) - self.base]


class Month(GoEnum):
    __slots__ = ()
    names = _MONTHS
    base = 1
    go_type = "time.Month"


class Weekday(GoEnum):
    __slots__ = ()
    names = _DAYS
    go_type = "time.Weekday"


@dataclass(frozen=True, slots=True)
class GoTime:
    """A UTC ``*time.Time`` (what ``toTime`` returns), at nanosecond precision."""

    ns: int

    @property
    def dt(self) -> datetime:
        return _EPOCH + timedelta(seconds=self.ns // 1_000_000_000)

    def string(self) -> str:
        """``time.Time.String()``: ``2015-06-23 13:19:44.128 +0000 UTC``."""
        return format_time(self, "2006-01-02 15:04:05.999999999 -0700 MST")


def truth(value: object) -> bool:
    """Go's template truth: false, 0, nil and empty strings, maps and lists are false."""
    if value is None:
        return False
    if isinstance(value, (bool, int, float)):
        return value != 0
    if isinstance(value, (str, dict, list)):
        return len(value) > 0
    return True


def type_name(value: object) -> str:
    """Go's ``%T`` of a template value."""
    if value is None:
        return "<nil>"
    if isinstance(value, GoEnum):
        return value.go_type
    simple = {bool: "bool", int: "int", float: "float64", str: "string"}
    if type(value) in simple:
        return simple[type(value)]
    if isinstance(value, LabelMap):
        return "map[string]string"
    if isinstance(value, dict):
        return "map[string]interface {}"
    if isinstance(value, QueryResult):
        return "template.queryResult"
    if isinstance(value, Sample):
        return "*template.sample"
    if isinstance(value, GoTime):
        return "*time.Time"
    if isinstance(value, AlertData):
        return _ALERT_DATA_TYPE
    return "[]interface {}" if isinstance(value, list) else type(value).__name__


# --- time formatting ----------------------------------------------------------

_CHUNKS = (
    "January", "Jan", "Monday", "Mon", "MST", "2006", "002", "__2", "_2", "01", "02", "03",
    "04", "05", "06", "15", "1", "2", "3", "4", "5", "PM", "pm",
    "-07:00:00", "-070000", "-07:00", "-0700", "-07", "Z07:00:00", "Z070000", "Z07:00", "Z0700",
    "Z07",
)  # fmt: skip
_FRACTION = re.compile(r"[.,](0+|9+)(?![0-9])")


def _chunk(layout: str, i: int) -> str | None:
    for chunk in _CHUNKS:
        if layout.startswith(chunk, i):
            if chunk in ("Jan", "Mon") and layout[i + 3 : i + 4].islower():
                continue
            if chunk == "_2" and layout.startswith("2006", i + 1):
                return None
            return chunk
    return None


def _render(chunk: str, dt: datetime) -> str:
    hour12 = (dt.hour % 12) or 12
    values = {
        "January": _MONTHS[dt.month - 1], "Jan": _MONTHS[dt.month - 1][:3],
        "Monday": _DAYS[(dt.weekday() + 1) % 7], "Mon": _DAYS[(dt.weekday() + 1) % 7][:3],
        "MST": "UTC", "2006": f"{dt.year:04d}", "06": f"{dt.year % 100:02d}",
        "002": f"{dt.timetuple().tm_yday:03d}", "__2": f"{dt.timetuple().tm_yday:3d}",
        "01": f"{dt.month:02d}", "1": str(dt.month), "02": f"{dt.day:02d}", "2": str(dt.day),
        "_2": f"{dt.day:2d}", "15": f"{dt.hour:02d}", "03": f"{hour12:02d}", "3": str(hour12),
        "04": f"{dt.minute:02d}", "4": str(dt.minute), "05": f"{dt.second:02d}",
        "5": str(dt.second), "PM": "PM" if dt.hour >= 12 else "AM",
        "pm": "pm" if dt.hour >= 12 else "am",
    }  # fmt: skip
    if chunk in values:
        return values[chunk]
    return "Z" if chunk.startswith("Z") else "+" + re.sub("[0-9]", "0", chunk[1:])


def format_time(t: GoTime, layout: str) -> str:
    """``time.Time.Format`` for a UTC time (Go's reference-time layouts)."""
    dt, frac = t.dt, t.ns % 1_000_000_000
    out: list[str] = []
    i = 0
    while i < len(layout):
        fraction = _FRACTION.match(layout, i) if layout[i] in ".," else None
        if fraction is not None:
            digits = f"{frac:09d}"[: len(fraction.group(1))]
            if fraction.group(1)[0] == "9":
                digits = digits.rstrip("0")
            out.append(layout[i] + digits if digits else "")
            i = fraction.end()
            continue
        chunk = _chunk(layout, i)
        out.append(layout[i] if chunk is None else _render(chunk, dt))
        i += 1 if chunk is None else len(chunk)
    return "".join(out)


TIME_METHODS: dict[str, Callable[[GoTime], object]] = {
    "String": GoTime.string,
    "Unix": lambda t: t.ns // 1_000_000_000,
    "UnixMilli": lambda t: t.ns // 1_000_000,
    "UnixNano": lambda t: t.ns,
    "UTC": lambda t: t,
    "Year": lambda t: t.dt.year,
    "Month": lambda t: Month(t.dt.month),
    "Day": lambda t: t.dt.day,
    "YearDay": lambda t: t.dt.timetuple().tm_yday,
    "Weekday": lambda t: Weekday((t.dt.weekday() + 1) % 7),
    "Hour": lambda t: t.dt.hour,
    "Minute": lambda t: t.dt.minute,
    "Second": lambda t: t.dt.second,
    "Nanosecond": lambda t: t.ns % 1_000_000_000,
}


# --- Go's fmt ------------------------------------------------------------------


@dataclass(slots=True)
class _Spec:
    flags: str = ""
    width: int | None = None
    prec: int | None = None


_PLAIN = _Spec()
_VERB = re.compile(r"%([-+# 0]*)(\*|[0-9]+)?(?:\.(\*|[0-9]*))?(.?)", re.S)
_BASES = {"d": ("d", ""), "v": ("d", ""), "b": ("b", "0b"), "o": ("o", "0"), "O": ("o", "0o")}
_BASES |= {"x": ("x", "0x"), "X": ("X", "0X")}


def _pad(text: str, spec: _Spec, zero: str = "") -> str:
    """Pad to the width; ``zero`` "sign" pads numbers with zeros after the sign, "all" strings."""
    if spec.width is None or len(text) >= spec.width:
        return text
    fill = spec.width - len(text)
    if "-" in spec.flags:
        return text + " " * fill
    if "0" in spec.flags and zero:
        sign = text[0] if zero == "sign" and text[:1] in ("+", "-", " ") else ""
        return sign + "0" * fill + text[len(sign) :]
    return " " * fill + text


def _bad(value: object, verb: str) -> str:
    if value is None:
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({type_name(value)}={fmt_v(value)})"


def fmt_v(value: object) -> str:
    """Go's ``%v`` of a template value (``fmt.Sprint`` of one operand)."""
    if isinstance(value, str):
        return value
    if type(value) is float:
        return format_g(value)
    return _fmt(value, "v", _PLAIN)


def _fmt(value: object, verb: str, spec: _Spec) -> str:
    if verb == "T":
        return _pad(type_name(value), spec)
    if value is None:
        return _pad("<nil>", spec) if verb == "v" else _bad(value, verb)
    if isinstance(value, str):
        return _fmt_str(value, verb, spec)
    if isinstance(value, GoEnum) and verb in "vs":
        return _pad(str(value), spec)
    if isinstance(value, bool):
        return _pad("true" if value else "false", spec) if verb in "tv" else _bad(value, verb)
    if isinstance(value, int):
        return _fmt_int(value, verb, spec)
    if isinstance(value, float):
        return _fmt_float(value, verb, spec)
    if isinstance(value, GoTime):
        return _fmt_str(value.string(), verb, spec) if verb in "vsqxX" else _bad(value, verb)
    if isinstance(value, dict):
        items = (f"{_fmt(k, verb, spec)}:{_fmt(value[k], verb, spec)}" for k in sorted(value))
        return "map[" + " ".join(items) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_fmt(item, verb, spec) for item in value) + "]"
    if isinstance(value, (Sample, AlertData)):
        names = verb == "v" and "+" in spec.flags
        parts = (
            (f"{f}:" if names else "") + _fmt(getattr(value, f), verb, spec)
            for f in value.go_fields
        )
        return ("&" if isinstance(value, Sample) else "") + "{" + " ".join(parts) + "}"
    return _pad(str(value), spec)


def _fmt_str(text: str, verb: str, spec: _Spec) -> str:
    if spec.prec is not None and verb in "svq":
        text = text[: spec.prec]
    if verb in "sv":
        return _pad(text, spec, "all")
    if verb == "q":
        if "#" in spec.flags and "`" not in text and all(c.isprintable() for c in text):
            return _pad(f"`{text}`", spec)
        quoted = go_quote(text)
        if "+" in spec.flags:
            quoted = "".join(c if c.isascii() else _ascii_escape(c) for c in quoted)
        return _pad(quoted, spec)
    if verb in "xX":
        digits = [format(b, "02x" if verb == "x" else "02X") for b in text.encode()]
        prefix = ("0x" if verb == "x" else "0X") if "#" in spec.flags else ""
        joined = (
            " ".join(prefix + d for d in digits) if " " in spec.flags else prefix + "".join(digits)
        )
        return _pad(joined, spec)
    return _bad(text, verb)


def _ascii_escape(ch: str) -> str:
    code = ord(ch)
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _fmt_int(n: int, verb: str, spec: _Spec) -> str:
    if verb == "c":
        return _pad(chr(n) if 0 <= n <= 0x10FFFF else "\ufffd", spec)
    if verb == "U":
        return _pad(f"U+{n:04X}", spec)
    if verb not in _BASES:
        return _bad(n, verb)
    code, prefix = _BASES[verb]
    digits = format(abs(n), code)
    prefix = prefix if verb == "O" or "#" in spec.flags else ""
    if spec.prec is not None:
        digits = "" if spec.prec == 0 and n == 0 else digits.rjust(spec.prec, "0")
    sign = "-" if n < 0 else "+" if "+" in spec.flags else " " if " " in spec.flags else ""
    if spec.prec is None and spec.width and "0" in spec.flags and "-" not in spec.flags:
        digits = digits.rjust(spec.width - len(sign), "0")
    return _pad(sign + prefix + digits, spec)


def _fmt_float(x: float, verb: str, spec: _Spec) -> str:
    if verb not in "eEfFgGv":
        return _bad(x, verb)
    plus = "+" if "+" in spec.flags else " " if " " in spec.flags else ""
    if math.isnan(x) or math.isinf(x):
        text = "NaN" if math.isnan(x) else "Inf"
        sign = "-" if x < 0 else plus if text == "NaN" else (plus or "+")
        return _pad(sign + text, spec)
    sign = "-" if math.copysign(1.0, x) < 0 else plus
    body, alt = abs(x), "#" if "#" in spec.flags else ""
    if verb in "vgG":
        text = format_g(body) if spec.prec is None else format(body, f"{alt}.{spec.prec}g")
        text = text.upper() if verb == "G" else text
    else:
        prec = 6 if spec.prec is None else spec.prec
        text = format(body, f"{alt}.{prec}{'f' if verb in 'fF' else verb}")
    return _pad(sign + text, spec, "sign")


def sprint(args: Sequence[object]) -> str:
    """``fmt.Sprint``: spaces between operands when neither is a string."""
    out: list[str] = []
    prev_str = False
    for i, arg in enumerate(args):
        is_str = isinstance(arg, str)
        if i and not is_str and not prev_str:
            out.append(" ")
        out.append(fmt_v(arg))
        prev_str = is_str
    return "".join(out)


def sprintln(args: Sequence[object]) -> str:
    """``fmt.Sprintln``: operands separated by spaces, then a newline."""
    return " ".join(fmt_v(arg) for arg in args) + "\n"


def _star(args: Sequence[object], argi: int) -> tuple[int | None, int]:
    arg = args[argi] if argi < len(args) else None
    ok = isinstance(arg, int) and not isinstance(arg, bool)
    return (arg if ok else None), argi + 1  # type: ignore[return-value]


def sprintf(fmt: str, args: Sequence[object]) -> str:
    """``fmt.Sprintf`` with Go's verbs, flags, width and precision, and its ``%!`` errors."""
    out: list[str] = []
    pos = argi = 0
    for m in _VERB.finditer(fmt):
        out.append(fmt[pos : m.start()])
        pos = m.end()
        flags, width, prec, verb = m.groups()
        spec = _Spec(flags)
        if width == "*":
            spec.width, argi = _star(args, argi)
            if spec.width is None:
                out.append("%!(BADWIDTH)")
            elif spec.width < 0:
                spec.flags, spec.width = spec.flags + "-", -spec.width
        elif width:
            spec.width = int(width)
        if prec == "*":
            spec.prec, argi = _star(args, argi)
            if spec.prec is None or spec.prec < 0:
                out.append("%!(BADPREC)") if spec.prec is None else None
                spec.prec = None
        elif prec is not None:
            spec.prec = int(prec or "0")
        if verb == "%":
            out.append("%")
        elif not verb:
            out.append("%!(NOVERB)")
        elif argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
        else:
            out.append(_fmt(args[argi], verb, spec))
            argi += 1
    out.append(fmt[pos:])
    if argi < len(args):
        extra = (f"{type_name(a)}={fmt_v(a)}" if a is not None else "<nil>" for a in args[argi:])
        out.append("%!(EXTRA " + ", ".join(extra) + ")")
    return "".join(out)
