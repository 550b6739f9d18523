"""Prometheus's own template functions (``template/template.go``).

Outputs mirror Prometheus and its tests: ``humanize 1234567`` is ``1.235M``,
``humanizeDuration 90061`` is ``1d 1h 1m 1s``, ``humanizeTimestamp`` prints a
UTC time as Go does. ``query`` runs PromQL through the injected
:data:`~agent.rules.model.QueryFunc`; its samples have ``.Labels`` and
``.Value``. :func:`context_funcs` is the whole function map of one expansion,
Go's builtins included.

>>> humanize(1234567.0), humanize1024(2048), humanize_duration(90061)
('1.235M', '2ki', '1d 1h 1m 1s')
>>> strip_domain("foo.example.com:9100"), graph_link("up == 0")
('foo:9100', '/graph?g0.expr=up+%3D%3D+0&g0.tab=0')
"""

from __future__ import annotations

import ipaddress
import math
import re
import urllib.parse
from collections.abc import Mapping

from agent.promql.floats import format_g, parse_go_float
from agent.promql.regex import go_regex
from agent.promql.value import QueryError
from agent.rules.model import QueryFunc
from agent.rules.template_builtins import BUILTINS, Func, FuncError
from agent.rules.template_fmt import GoTime, LabelMap, QueryResult, Sample, type_name
from agent.rules.template_lex import go_quote

# --- numbers -----------------------------------------------------------------


def to_float(value: object) -> float:
    """Prometheus's ``convertToFloat``: numbers as they are, strings by ``strconv.ParseFloat``."""
    if isinstance(value, float) or (isinstance(value, int) and not isinstance(value, bool)):
        return float(value)
    if not isinstance(value, str):
        raise FuncError(f"can't convert {type_name(value)} to float")
    try:
        result = parse_go_float(value)
    except ValueError:
        raise FuncError(f"strconv.ParseFloat: parsing {go_quote(value)}: invalid syntax") from None
    if math.isinf(result) and "inf" not in value.lower():
        raise FuncError(f"strconv.ParseFloat: parsing {go_quote(value)}: value out of range")
    return result


def _g4(v: float) -> str:
    """Go's ``%.4g``."""
    if math.isnan(v) or math.isinf(v):
        return "NaN" if math.isnan(v) else "+Inf" if v > 0 else "-Inf"
    return format(v, ".4g")


def _scale_down(v: float, prefixes: str) -> str:
    """Multiply a number below 1 by 1000 until it is at least 1, with SI prefixes."""
    prefix = ""
    for p in prefixes:
        if abs(v) >= 1:
            break
        prefix, v = p, v * 1000
    return _g4(v) + prefix


def humanize(value: object) -> str:
    """A number with SI prefixes and four significant digits: ``1.235M``, ``1.2m``."""
    v = to_float(value)
    if v == 0 or math.isnan(v) or math.isinf(v):
        return _g4(v)
    if abs(v) < 1:
        return _scale_down(v, "munpfazy")
    prefix = ""
    for p in "kMGTPEZY":
        if abs(v) < 1000:
            break
        prefix, v = p, v / 1000
    return _g4(v) + prefix


def humanize1024(value: object) -> str:
    """Like :func:`humanize` with base 1024: ``2ki``, ``1Mi``."""
    v = to_float(value)
    if abs(v) <= 1 or math.isnan(v) or math.isinf(v):
        return _g4(v)
    prefix = ""
    for p in ("ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"):
        if abs(v) < 1024:
            break
        prefix, v = p, v / 1024
    return _g4(v) + prefix


def humanize_duration(value: object) -> str:
    """Seconds as ``1d 1h 1m 1s``, ``1.234s`` or ``100ms``."""
    v = to_float(value)
    if math.isnan(v) or math.isinf(v):
        return _g4(v)
    if v == 0:
        return _g4(v) + "s"
    if abs(v) < 1:
        return _scale_down(v, "munpfazy") + "s"
    sign, v = ("-", -v) if v < 0 else ("", v)
    whole = int(v)
    days, hours, minutes, seconds = whole // 86400, whole // 3600 % 24, whole // 60 % 60, whole % 60
    if days:
        return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
    if hours:
        return f"{sign}{hours}h {minutes}m {seconds}s"
    if minutes:
        return f"{sign}{minutes}m {seconds}s"
    return f"{sign}{_g4(v)}s"


def humanize_percentage(value: object) -> str:
    """A ratio as a percentage with four significant digits: ``12.34%``."""
    return _g4(to_float(value) * 100) + "%"


def _time_of(v: float) -> GoTime:
    """Prometheus's ``floatToTime``: Unix seconds to a time, truncated to milliseconds."""
    nanos = v * 1e9
    if nanos > 2.0**63 or nanos < -(2.0**63):
        reason = "cannot be represented as a nanoseconds timestamp since it overflows int64"
        raise FuncError(f"{format_g(v)} {reason}")
    millis = int(int(nanos) / 1_000_000)
    return GoTime(millis * 1_000_000)


def humanize_timestamp(value: object) -> str:
    """Unix seconds as Go prints a UTC time: ``2015-06-23 13:19:44.128 +0000 UTC``."""
    v = to_float(value)
    if math.isnan(v) or math.isinf(v):
        return _g4(v)
    return _time_of(v).string()


def to_time(value: object) -> GoTime:
    """Unix seconds as a ``*time.Time`` (``{{ (toTime $value).Format "2006" }}``)."""
    v = to_float(value)
    if math.isnan(v) or math.isinf(v):
        raise FuncError("value is NaN or Inf")
    return _time_of(v)


_DURATION_UNITS = {"y": 365 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION_PART = re.compile(r"([0-9]+)([^0-9]*)")


def parse_duration(text: str) -> float:
    """Prometheus's ``model.ParseDuration`` (``1h2m10ms``), in seconds."""
    if text == "0":
        return 0.0
    if not text:
        raise FuncError("empty duration string")
    units = [*_DURATION_UNITS, "ms"]
    nanos, last, pos = 0, -1, 0
    while pos < len(text):
        m = _DURATION_PART.match(text, pos)
        if m is None or not m.group(2):
            raise FuncError(f"not a valid duration string: {go_quote(text)}")
        unit = m.group(2)
        if unit not in units:
            raise FuncError(f"unknown unit {go_quote(unit)} in duration {go_quote(text)}")
        if units.index(unit) <= last:
            raise FuncError(f"not a valid duration string: {go_quote(text)}")
        last = units.index(unit)
        nanos += int(m.group(1)) * (10**6 if unit == "ms" else _DURATION_UNITS[unit] * 10**9)
        if nanos >= 2**63:
            raise FuncError("duration out of range")
        pos = m.end()
    return nanos / 1e9


# --- strings -----------------------------------------------------------------


def title(text: str) -> str:
    """Upper-case the first letter of each word, leaving the rest (``cases.Title``, NoLower)."""
    out: list[str] = []
    prev = prev2 = " "
    for ch in text:
        inside = prev.isalnum() or prev == "_" or (prev in ".:'\u2019" and prev2.isalpha())
        out.append(ch if inside else ch.title())
        prev2, prev = prev, ch
    return "".join(out)


def _split_host_port(hostport: str) -> tuple[str, str] | None:
    """Go's ``net.SplitHostPort``; None where Go returns an error."""
    colon = hostport.rfind(":")
    if colon < 0:
        return None
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0 or end + 1 != colon:
            return None
        host, j, k = hostport[1:end], 1, end + 1
    else:
        host, j, k = hostport[:colon], 0, 0
        if ":" in host:
            return None
    if "[" in hostport[j:] or "]" in hostport[k:]:
        return None
    return host, hostport[colon + 1 :]


def strip_port(hostport: str) -> str:
    """The host of ``host:port`` (``[::1]:9090`` gives ``::1``); unchanged if there is no port."""
    split = _split_host_port(hostport)
    return hostport if split is None else split[0]


def strip_domain(hostport: str) -> str:
    """Drop the domain of a host name, keeping a port; IP addresses are left alone."""
    host, port = _split_host_port(hostport) or (hostport, "")
    try:
        ipaddress.ip_address(host)
        return hostport
    except ValueError:
        pass
    host = host.split(".")[0]
    if not port:
        return host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def graph_link(expr: str) -> str:
    """The expression browser's graph view of ``expr``."""
    return f"/graph?g0.expr={urllib.parse.quote_plus(expr, safe='')}&g0.tab=0"


def table_link(expr: str) -> str:
    """The expression browser's table view of ``expr``."""
    return f"/graph?g0.expr={urllib.parse.quote_plus(expr, safe='')}&g0.tab=1"


def _compile(pattern: str, must: bool) -> re.Pattern[str]:
    try:
        return re.compile(go_regex(pattern))
    except re.error as exc:
        where = f"regexp: Compile({go_quote(pattern)}): " if must else ""
        raise FuncError(f"{where}error parsing regexp: {exc}") from None


def match(pattern: str, text: str) -> bool:
    """``regexp.MatchString``: an unanchored match."""
    return _compile(pattern, must=False).search(text) is not None


_GROUP_REF = re.compile(r"\{(\w+)\}|(\w+)")


def _group(m: re.Match[str], name: str) -> str:
    if name.isascii() and name.isdigit() and (name == "0" or not name.startswith("0")):
        index = int(name)
        return (m.group(index) or "") if index <= m.re.groups else ""
    return (m.group(name) or "") if name in m.re.groupindex else ""


def _expand(template: str, m: re.Match[str]) -> str:
    """Go's ``Regexp.Expand``: ``$1``, ``${1}``, ``$name``, ``${name}`` and ``$$``."""
    out: list[str] = []
    pos = 0
    while (dollar := template.find("$", pos)) >= 0:
        out.append(template[pos:dollar])
        if template.startswith("$", dollar + 1):
            out.append("$")
            pos = dollar + 2
            continue
        ref = _GROUP_REF.match(template, dollar + 1)
        if ref is None:
            out.append("$")
            pos = dollar + 1
            continue
        out.append(_group(m, ref.group(1) or ref.group(2)))
        pos = ref.end()
    out.append(template[pos:])
    return "".join(out)


def re_replace_all(pattern: str, repl: str, text: str) -> str:
    """``Regexp.ReplaceAllString``: an empty match right after a match is not replaced."""
    out: list[str] = []
    last, prev_end = 0, -1
    for m in _compile(pattern, must=True).finditer(text):
        start, end = m.span()
        if start == end == prev_end:
            continue
        out.append(text[last:start])
        out.append(_expand(repl, m))
        last = prev_end = end
    out.append(text[last:])
    return "".join(out)


# --- query results -----------------------------------------------------------


def _sample(s: Sample | None) -> Sample:
    if s is None:
        raise FuncError("runtime error: invalid memory address or nil pointer dereference")
    return s


def _first(v: QueryResult) -> Sample:
    if not v:
        raise FuncError("first() called on vector with no elements")
    return v[0]


def _run_query(query: QueryFunc | None, expr: str, now: float) -> QueryResult:
    """``query``: run ``expr`` at ``now``; each sample gets ``.Labels`` and ``.Value``."""
    if query is None:
        raise FuncError("queries are not available here")
    try:
        vector = query(expr, now)
    except QueryError as exc:
        raise FuncError(str(exc)) from exc
    return QueryResult(Sample(LabelMap(s.labels), s.value) for s in vector.samples)


_ANY, _STR, _SAMPLE = ("any",), ("str",), ("sample",)
_PROMETHEUS = {
    "humanize": Func(humanize, _ANY),
    "humanize1024": Func(humanize1024, _ANY),
    "humanizeDuration": Func(humanize_duration, _ANY),
    "humanizePercentage": Func(humanize_percentage, _ANY),
    "humanizeTimestamp": Func(humanize_timestamp, _ANY),
    "toTime": Func(to_time, _ANY),
    "parseDuration": Func(parse_duration, _STR),
    "title": Func(title, _STR),
    "toUpper": Func(str.upper, _STR),
    "toLower": Func(str.lower, _STR),
    "match": Func(match, ("str", "str")),
    "reReplaceAll": Func(re_replace_all, ("str", "str", "str")),
    "safeHtml": Func(lambda text: text, _STR),
    "stripPort": Func(strip_port, _STR),
    "stripDomain": Func(strip_domain, _STR),
    "graphLink": Func(graph_link, _STR),
    "tableLink": Func(table_link, _STR),
    "first": Func(_first, ("samples",)),
    "label": Func(lambda name, s: _sample(s).Labels.get(name, ""), ("str", "sample")),
    "value": Func(lambda s: _sample(s).Value, _SAMPLE),
    "strvalue": Func(lambda s: _sample(s).Labels.get("__value__", ""), _SAMPLE),
    "sortByLabel": Func(
        lambda name, v: QueryResult(sorted(v, key=lambda s: s.Labels.get(name, ""))),
        ("str", "samples"),
    ),
    "args": Func(lambda *a: {f"arg{i}": arg for i, arg in enumerate(a)}, (), "any"),
}
_STATIC = BUILTINS | _PROMETHEUS
FUNC_NAMES = frozenset(_STATIC) | {"query", "externalURL", "pathPrefix"}
"""Every function a template may call (``tmpl`` is console-only in Prometheus)."""


def context_funcs(*, query: QueryFunc | None, now: float, external_url: str) -> Mapping[str, Func]:
    """All functions, with ``query``, ``externalURL`` and ``pathPrefix`` bound to one expansion."""
    path = urllib.parse.urlsplit(external_url).path
    return _STATIC | {
        "query": Func(lambda expr: _run_query(query, expr, now), _STR),
        "externalURL": Func(lambda: external_url, ()),
        "pathPrefix": Func(lambda: path, ()),
    }
