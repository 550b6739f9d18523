"""Alert templates: Go text/template syntax, Prometheus's functions, and its error texts.

Expected outputs come from Prometheus's template/template_test.go where it has
a case, and otherwise from what Go's text/template and fmt print.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.promql.value import QueryError, Sample, Vector
from agent.rules.template import PREFIX, check_template, expand
from agent.rules.template_funcs import (
    humanize,
    humanize1024,
    humanize_duration,
    humanize_percentage,
    humanize_timestamp,
)
from agent.tsdb.base import labels_from

URL = "http://prom.example:9090/prefix"
NOW = 1_700_000_000.0
LABELS = {"instance": "db1.example.com:9100", "job": "node", "severity": "page"}
MAX_INT64, MAX_UINT64 = 2**63 - 1, 2**64 - 1


class FakeQuery:
    """A QueryFunc returning fixed samples (or raising), recording what it was asked."""

    def __init__(self, *samples: Sample, error: Exception | None = None) -> None:
        self.samples, self.error = list(samples), error
        self.calls: list[tuple[str, float]] = []

    def __call__(self, expr: str, now: float) -> Vector:
        self.calls.append((expr, now))
        if self.error is not None:
            raise self.error
        return Vector(self.samples)


def sample(value: float, **labels: str) -> Sample:
    return Sample(labels_from({"__name__": "metric", **labels}), value, 0)


def run(
    text: str,
    *,
    value: float = 1234567.0,
    query: FakeQuery | None = None,
    labels: dict[str, str] | None = None,
    name: str = "Test",
) -> str:
    return expand(
        text,
        name=name,
        labels=LABELS if labels is None else labels,
        value=value,
        external_labels={"cluster": "eu1"},
        external_url=URL,
        query=FakeQuery() if query is None else query,
        now=NOW,
    )


def parse_error(msg: str, line: int = 1, name: str = "Test") -> str:
    where = f"__alert_{name}"
    head = f"<error expanding template: error parsing template {where}: "
    return f"{head}template: {where}:{line}: {msg}>"


def exec_error(text: str, at: str, msg: str, anchor: str = "", tmpl: str = "__alert_Test") -> str:
    """Go's execution error; the column is ``anchor``'s (or ``at``'s) offset after the prefix."""
    col = len(PREFIX) + text.index(anchor or at)
    where = "template: __alert_Test:1:"
    return (
        "<error expanding template: error executing template __alert_Test: "
        f'{where}{col}: executing "{tmpl}" at <{at}>: {msg}>'
    )


# -- syntax ----------------------------------------------------------------------------

SYNTAX = [
    ("plain text", "plain text"),
    ("{{ 1 }}", "1"),
    ("{{ 1.5 }} {{ 3.0 }} {{ 1e6 }} {{ 0.00001 }} {{ 123456.0 }}", "1.5 3 1e+06 1e-05 123456"),
    ("{{ -1 }} {{ 0x1F }} {{ 'a' }} {{ 1_000 }} {{ 017 }}", "-1 31 97 1000 15"),
    ("{{ true }} {{ false }}", "true false"),
    ('{{ "<b>" }}', "<b>"),
    ('{{ `raw\\n` }}|{{ "t\\t\\"q\\" \\u00e9\\x41" }}', 'raw\\n|t\t"q" éA'),
    ("{{ $labels.instance }}|{{ .Labels.instance }}", "db1.example.com:9100|db1.example.com:9100"),
    ('{{ index $labels "job" }}|{{ index .Labels "job" }}', "node|node"),
    ("{{ $value }}|{{ .Value }}", "1.234567e+06|1.234567e+06"),
    ("{{ $externalLabels.cluster }}|{{ .ExternalLabels.cluster }}", "eu1|eu1"),
    ("{{ $externalURL }}|{{ .ExternalURL }}", f"{URL}|{URL}"),
    ('[{{ $labels.missing }}][{{ index $labels "missing" }}]', "[][]"),
    ("{{ $labels }}", "map[instance:db1.example.com:9100 job:node severity:page]"),
    ("{{ $x := 1 }}{{ $x }}", "1"),
    ("{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}", "2"),
    ("{{ with $x := $labels.job }}{{ $x }}/{{ . }}{{ end }}", "node/node"),
    ("a  {{- 1 -}}  b", "a1b"),
    ("a\n{{- 1 }}\nb", "a1\nb"),
    ("{{ 1 -}}\n\t b", "1b"),
    ("{{-3}}", "-3"),
    ("a {{/* note */}} b", "a  b"),
    ("a {{- /* note */ -}} b", "ab"),
    ("{{/* multi\nline */}}x", "x"),
    ("{{ $value\n| humanize }}", "1.235M"),
    ('{{ $labels.job | toUpper | printf "%s!" }}', "NODE!"),
    ('{{ "a" | printf "%s-%s" "b" }}', "b-a"),
    ('{{ printf "%s" (toUpper $labels.job) }}', "NODE"),
    ('{{ if eq $labels.job "node" }}yes{{ else }}no{{ end }}', "yes"),
    ('{{ if eq .Labels.job "x" }}x{{ else if eq .Labels.job "node" }}n{{ else }}o{{ end }}', "n"),
    ("{{ if gt $value 1e6 }}big{{ end }}", "big"),
    ('{{ if and (eq $labels.job "node") (lt $value 2e6) }}both{{ end }}', "both"),
    ("{{ with $labels.job }}[{{ . }}]{{ end }}", "[node]"),
    ("{{ with $labels.nope }}x{{ else }}none{{ end }}", "none"),
    ("{{ with $labels.nope }}x{{ else with $labels.job }}{{ . }}{{ end }}", "node"),
    (
        "{{ range $k, $v := $labels }}{{ $k }}={{ $v }};{{ end }}",
        "instance=db1.example.com:9100;job=node;severity=page;",
    ),
    ("{{ range $labels }}{{ . }},{{ end }}", "db1.example.com:9100,node,page,"),
    ('{{ range $i, $e := args "a" "b" }}{{ $i }}:{{ $e }} {{ end }}', "arg0:a arg1:b "),
    ("{{ range 3 }}{{ . }}{{ end }}", "012"),
    ("{{ range args }}x{{ else }}empty{{ end }}", "empty"),
    (
        "{{ range args 1 2 3 4 }}{{ if eq . 2 }}{{ continue }}{{ end }}"
        "{{ if eq . 4 }}{{ break }}{{ end }}{{ . }}{{ end }}",
        "13",
    ),
    ("{{ $x := 0 }}{{ range args 5 6 }}{{ $x = . }}{{ end }}{{ $x }}", "6"),
    ('{{ define "x" }}{{ .arg0 }} {{ .arg1 }}{{ end }}{{ template "x" (args 1 "2") }}', "1 2"),
    (
        '{{ define "t" }}[{{ . }}]{{ end }}{{ template "t" $labels.job }}{{ template "t" }}',
        "[node][<no value>]",
    ),
    ('{{ block "b" $labels.job }}<{{ . }}>{{ end }}', "<node>"),
]


@pytest.mark.parametrize(("text", "expected"), SYNTAX)
def test_syntax(text: str, expected: str) -> None:
    """Actions, literals, variables, trim markers, comments, pipelines and control structures."""
    assert run(text) == expected


TRUTH = [
    ('""', False), ("0", False), ("0.0", False), ("false", False), ("(args).x", False),
    ("$labels.missing", False), ("args", False), ('(query "up")', False), ('"x"', True),
    ("1", True), ("-0.5", True), ("$labels", True), ("true", True), (".", True),
]  # fmt: skip


@pytest.mark.parametrize(("operand", "truthy"), TRUTH)
def test_if_uses_go_truth(operand: str, truthy: bool) -> None:
    """Empty strings, zero numbers, nil and empty collections are false, as in Go."""
    assert run(f"{{{{ if {operand} }}}}T{{{{ else }}}}F{{{{ end }}}}") == ("T" if truthy else "F")


def test_text_without_actions_is_returned_as_is_and_fast() -> None:
    """Plain text (the common case) comes back unchanged without being parsed."""
    text = "disk almost full } { $labels " * 2000
    start = time.perf_counter()
    for _ in range(2000):
        assert run(text) is text
    assert time.perf_counter() - start < 0.5


def test_expanding_a_typical_template_is_cheap() -> None:
    """A parsed template is cached, so re-expanding it every evaluation stays cheap."""
    text = "{{ $labels.instance }} of {{ $labels.job }} is down ({{ $value | humanize }})"
    start = time.perf_counter()
    for _ in range(2000):
        assert run(text) == "db1.example.com:9100 of node is down (1.235M)"
    assert time.perf_counter() - start < 2.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [(math.nan, "NaN NaN NaN"), (math.inf, "+Inf +Inf +Inf"), (-0.0, "-0 -0.00 -0")],
)
def test_special_values_print_like_go(value: float, expected: str) -> None:
    """NaN, infinities and negative zero print as Go's fmt prints them."""
    assert (
        run('{{ $value }} {{ printf "%.2f" $value }} {{ humanize $value }}', value=value)
        == expected
    )


# -- printf and friends ----------------------------------------------------------------

PRINTF = [
    ('{{ printf "%.2f|%5.1f|%08.3f" 3.14159 2.25 -3.14159 }}', "3.14|  2.2|-003.142"),
    ('{{ printf "%e %E %.1e" 1234.5 1234.5 0.000123 }}', "1.234500e+03 1.234500E+03 1.2e-04"),
    ('{{ printf "%g %g %.3g %G" 1e6 0.0001 1234.5678 1e-7 }}', "1e+06 0.0001 1.23e+03 1E-07"),
    ('{{ printf "%v %v %v %v" 100000.0 1e21 1e-5 0.1 }}', "100000 1e+21 1e-05 0.1"),
    ('{{ printf "%d|%5d|%-5d|%05d|%+d|%.3d" 42 42 42 42 42 7 }}', "42|   42|42   |00042|+42|007"),
    ('{{ printf "%x %X %#x %o %b %c %U" 255 255 255 8 5 65 65 }}', "ff FF 0xff 10 101 A U+0041"),
    (
        '{{ printf "%s|%6s|%-4s|%.2s|%05s" "abc" "abc" "ab" "abc" "ab" }}',
        "abc|   abc|ab  |ab|000ab",
    ),
    (
        '{{ printf "%q %#q %+q %x % X" "a\\"b" "ab" "é" "hi" "hi" }}',
        '"a\\"b" `ab` "\\u00e9" 6869 68 69',
    ),
    ('{{ printf "%t %v %v" true false nil }}', "true false <nil>"),
    ('{{ printf "%v|%d" $labels.job (args "x") }}', "node|map[%!d(string=arg0):%!d(string=x)]"),
    (
        '{{ printf "%T %T %T %T %T" 1 1.5 "s" $labels (args) }}',
        "int float64 string map[string]string map[string]interface {}",
    ),
    ('{{ printf "%*d|%-*d|%.*f" 4 7 3 1 1 2.25 }}', "   7|1  |2.2"),
    ('{{ printf "100%%" }}', "100%"),
    ('{{ printf "%d" }}', "%!d(MISSING)"),
    ('{{ printf "%d %s %f" "x" 1.5 1 }}', "%!d(string=x) %!s(float64=1.5) %!f(int=1)"),
    ('{{ printf "x" 1 "y" }}', "x%!(EXTRA int=1, string=y)"),
    ('{{ printf "%" }}', "%!(NOVERB)"),
    ('{{ print 1 2 "a" "b" 3 nil }}', "1 2ab3 <nil>"),
    ('{{ println 1 "a" }}', "1 a\n"),
    ('{{ html "<a href=\\"x\\">&\'" }}', "&lt;a href=&#34;x&#34;&gt;&amp;&#39;"),
    ('{{ js "it\'s <b>\\\\ a=b\\n" }}', "it\\'s \\u003Cb\\u003E\\\\ a\\u003Db\\u000A"),
    ('{{ urlquery "a b&c/d" }} {{ urlquery 1 "x" }}', "a+b%26c%2Fd 1x"),
]


@pytest.mark.parametrize(("text", "expected"), PRINTF)
def test_print_functions_follow_go_fmt(text: str, expected: str) -> None:
    """printf's verbs, flags, width and precision, its %! errors, print, println and escapers."""
    assert run(text) == expected


# -- functions -------------------------------------------------------------------------

FUNCTIONS = [
    ("{{ humanize 1234567.0 }} {{ humanize 0.0012 }} {{ humanize 0.12 }}", "1.235M 1.2m 120m"),
    ('{{ humanize 0 }} {{ humanize -1234 }} {{ humanize "1234567.0" }}', "0 -1.234k 1.235M"),
    ("{{ humanize 9223372036854775807 }} {{ humanize 1e-30 }}", "9.223E 1e-06y"),
    (
        "{{ humanize1024 2048 }} {{ humanize1024 1048576.0 }} {{ humanize1024 0.12 }}",
        "2ki 1Mi 0.12",
    ),
    ("{{ humanize1024 1234567 }} {{ humanize1024 9223372036854775807 }}", "1.177Mi 8Ei"),
    ("{{ humanizeDuration 90061 }} {{ humanizeDuration 899.99 }}", "1d 1h 1m 1s 14m 59s"),
    (
        "{{ humanizeDuration 0 }} {{ humanizeDuration 0.1 }} {{ humanizeDuration -0.5 }}",
        "0s 100ms -500ms",
    ),
    ("{{ humanizePercentage 0.1234 }} {{ -0.22222 | humanizePercentage }}", "12.34% -22.22%"),
    ("{{ 0.0 | humanizePercentage }} {{ 0.1234567 | humanizePercentage }}", "0% 12.35%"),
    ('{{ 1.23456 | humanizePercentage }} {{ "0.5" | humanizePercentage }}', "123.5% 50%"),
    ("{{ 1435065584.128 | humanizeTimestamp }}", "2015-06-23 13:19:44.128 +0000 UTC"),
    ('{{ "1435065584.128" | humanizeTimestamp }}', "2015-06-23 13:19:44.128 +0000 UTC"),
    (
        "{{ humanizeTimestamp 1.5 }} {{ humanizeTimestamp 1.0000001 }}",
        "1970-01-01 00:00:01.5 +0000 UTC 1970-01-01 00:00:01 +0000 UTC",
    ),
    ('{{ (1435065584.128 | toTime).Format "2006" }}', "2015"),
    (
        '{{ ("1435065584.128" | toTime).Format "2006-01-02T15:04:05.000Z07:00" }}',
        "2015-06-23T13:19:44.128Z",
    ),
    (
        '{{ (toTime 1435065584).Format "Mon Jan _2 3:04PM -0700 MST .999" }}',
        "Tue Jun 23 1:19PM +0000 UTC ",
    ),
    (
        "{{ toTime 1435065584.128 }} {{ (toTime 1435065584).Unix }}",
        "2015-06-23 13:19:44.128 +0000 UTC 1435065584",
    ),
    (
        "{{ (toTime 0).Month }} {{ (toTime 0).Weekday }} {{ (toTime 0).Year }}",
        "January Thursday 1970",
    ),
    ('{{ "aa bb CC" | title }} {{ title "don\'t stop-me now" }}', "Aa Bb CC Don't Stop-Me Now"),
    ('{{ "aa bb CC" | toUpper }} {{ "aA bB CC" | toLower }}', "AA BB CC aa bb cc"),
    ('{{ match "a+" "aa" }} {{ match "a+" "b" }} {{ match "^b" "ab" }}', "true false false"),
    ('{{ reReplaceAll "(a)b" "x$1" "ab" }}', "xa"),
    ('{{ reReplaceAll "localhost:(.*)" "my.domain:$1" "localhost:3000" }}', "my.domain:3000"),
    ('{{ reReplaceAll "(?P<h>[^:]+):.*" "${h}!" "db1:9100" }}', "db1!"),
    ('{{ reReplaceAll "x*" "-" "abc" }} {{ reReplaceAll "a" "$$" "banana" }}', "-a-b-c- b$n$n$"),
    ('[{{ reReplaceAll "(a)" "$1x" "a" }}]', "[]"),
    (
        '{{ graphLink "up" }} {{ tableLink "up" }}',
        "/graph?g0.expr=up&g0.tab=0 /graph?g0.expr=up&g0.tab=1",
    ),
    ('{{ graphLink "rate(x[5m]) > 0" }}', "/graph?g0.expr=rate%28x%5B5m%5D%29+%3E+0&g0.tab=0"),
    ("{{ externalURL }} {{ pathPrefix }}", f"{URL} /prefix"),
    ('{{ printf "%0.2f" (parseDuration "1h2m10ms") }} {{ parseDuration "5m" }}', "3720.01 300"),
    (
        '{{ parseDuration "0" }} {{ parseDuration "1w1d" }} {{ parseDuration "1y" }}',
        "0 691200 3.1536e+07",
    ),
    ('{{ safeHtml "<b>" }}', "<b>"),
    ("{{ $labels.instance | stripPort | stripDomain }}", "db1"),
    ('{{ args 1 "x" }} {{ (args 1).arg0 }} {{ (args 1).arg9 }}', "map[arg0:1 arg1:x] 1 <no value>"),
    ('{{ len $labels }} {{ len "héllo" }} {{ len (args 1 2) }}', "3 6 2"),
    (
        '{{ index (args "a" "b") "arg1" }} {{ index "abc" 1 }} {{ index (args "x") "nope" }}',
        "b 98 <no value>",
    ),
    ('{{ slice "abcdef" 1 3 }} {{ slice "abc" 1 }} {{ slice "abc" }}', "bc bc abc"),
    (
        '{{ not 0 }} {{ not 1 }} {{ and 1 0 2 }} {{ and 1 2 }} {{ or 0 "" 3 }} {{ or 0 "" }}',
        "true false 0 2 3 ",
    ),
    (
        '{{ eq 1 1 }} {{ eq "a" "b" "a" }} {{ eq nil nil }} {{ ne 1 2 }} {{ ne "a" "a" }}',
        "true true true true false",
    ),
    ('{{ lt 1 2 }} {{ le 2 2 }} {{ gt 2.5 1.5 }} {{ ge "a" "b" }}', "true true true false"),
]


@pytest.mark.parametrize(("text", "expected"), FUNCTIONS)
def test_functions(text: str, expected: str) -> None:
    """Prometheus's functions and Go's builtins give Prometheus's outputs."""
    assert run(text) == expected


HOST_PORTS = [
    ("foo.example.com", "foo.example.com", "foo"),
    ("foo.example.com:12345", "foo.example.com", "foo:12345"),
    ("192.0.2.1", "192.0.2.1", "192.0.2.1"),
    ("192.0.2.1:12345", "192.0.2.1", "192.0.2.1:12345"),
    ("2001:0DB8::1", "2001:0DB8::1", "2001:0DB8::1"),
    ("[2001:0DB8::1]:12345", "2001:0DB8::1", "[2001:0DB8::1]:12345"),
    ("[2001:0DB8::1]::12345", "[2001:0DB8::1]::12345", "[2001:0DB8::1]::12345"),
]


@pytest.mark.parametrize(("host", "no_port", "no_domain"), HOST_PORTS)
def test_strip_port_and_domain(host: str, no_port: str, no_domain: str) -> None:
    """stripPort and stripDomain match Prometheus's test table (IPs keep their domain part)."""
    assert run(f'{{{{ "{host}" | stripPort }}}}|{{{{ "{host}" | stripDomain }}}}') == (
        f"{no_port}|{no_domain}"
    )


INF, NAN = math.inf, math.nan
HUMANIZE = [
    (humanize, [0.0, 1.0, 1234567.0, 0.12], "0:1:1.235M:120m:"),
    (humanize, ["0.0", "1.0", "1234567.0", ".12"], "0:1:1.235M:120m:"),
    (humanize, [0, -1, 1, 1234567, MAX_INT64], "0:-1:1:1.235M:9.223E:"),
    (humanize, [0, 1, 1234567, MAX_UINT64], "0:1:1.235M:18.45E:"),
    (humanize1024, [0.0, 1.0, 1048576.0, 0.12], "0:1:1Mi:0.12:"),
    (humanize1024, ["0.0", "1.0", "1048576.0", ".12"], "0:1:1Mi:0.12:"),
    (humanize1024, [0, -1, 1, 1234567, MAX_INT64], "0:-1:1:1.177Mi:8Ei:"),
    (humanize1024, [0, 1, 1234567, MAX_UINT64], "0:1:1.177Mi:16Ei:"),
    (
        humanize_duration,
        [0, 1, 60, 3600, 86400, 86400 + 3600, -(86400 * 2 + 3600 * 3 + 60 * 4 + 5), 899.99],
        "0s:1s:1m 0s:1h 0m 0s:1d 0h 0m 0s:1d 1h 0m 0s:-2d 3h 4m 5s:14m 59s:",
    ),
    (humanize_duration, ["0", "1", "60", "3600", "86400"], "0s:1s:1m 0s:1h 0m 0s:1d 0h 0m 0s:"),
    (
        humanize_duration,
        [0.1, 0.0001, 0.12345, 60.1, 60.5, 1.2345, 12.345],
        "100ms:100us:123.5ms:1m 0s:1m 0s:1.234s:12.35s:",
    ),
    (humanize_duration, [0, -1, 1, 1234567], "0s:-1s:1s:14d 6h 56m 7s:"),
    (humanize_percentage, [0, -1, 1, 1234567, MAX_INT64], "0%:-100%:100%:1.235e+08%:9.223e+20%:"),
    (humanize_percentage, [0, 1, 1234567, MAX_UINT64], "0%:100%:1.235e+08%:1.845e+21%:"),
    (
        humanize_timestamp,
        [0, -1, 1, 1234567, 9223372036],
        "1970-01-01 00:00:00 +0000 UTC:1969-12-31 23:59:59 +0000 UTC:1970-01-01 00:00:01 +0000 UTC:"
        "1970-01-15 06:56:07 +0000 UTC:2262-04-11 23:47:16 +0000 UTC:",
    ),
    (humanize, [INF, -INF, NAN, "+Inf", "-Inf", "NaN"], "+Inf:-Inf:NaN:+Inf:-Inf:NaN:"),
    (humanize1024, [INF, -INF, NAN, "+Inf", "-Inf", "NaN"], "+Inf:-Inf:NaN:+Inf:-Inf:NaN:"),
    (humanize_duration, [INF, -INF, NAN, "+Inf", "-Inf", "NaN"], "+Inf:-Inf:NaN:+Inf:-Inf:NaN:"),
    (humanize_timestamp, [INF, -INF, NAN, "+Inf", "-Inf", "NaN"], "+Inf:-Inf:NaN:+Inf:-Inf:NaN:"),
]


@pytest.mark.parametrize(("func", "inputs", "expected"), HUMANIZE)
def test_humanize_formats_match_prometheus(
    func: object, inputs: Sequence[object], expected: str
) -> None:
    """The humanize family gives Prometheus's template_test.go outputs for floats, ints, strings."""
    assert callable(func)
    assert "".join(f"{func(x)}:" for x in inputs) == expected


# -- query -----------------------------------------------------------------------------


def test_query_runs_through_the_query_func_at_now() -> None:
    """query evaluates its expression through the injected QueryFunc at the evaluation time."""
    fake = FakeQuery(sample(11, instance="a"))
    assert run("{{ query \"metric{instance='a'}\" | first | value }}", query=fake) == "11"
    assert fake.calls == [("metric{instance='a'}", NOW)]


QUERIES = [
    ('{{ query "1.5" | first | value }}', [Sample((), 1.5, 0)], "1.5"),
    ('{{ query "metric" | first | label "instance" }}', [sample(11, instance="a")], "a"),
    ('[{{ query "metric" | first | label "foo" }}]', [sample(11, instance="a")], "[]"),
    ('{{ query "metric" | first | strvalue }}', [sample(11, __value__="a")], "a"),
    ('[{{ $x := query "metric" | first }}{{ $x.Labels.foo }}]', [sample(11, instance="a")], "[]"),
    (
        '{{ range query "metric" | sortByLabel "instance" }}'
        "{{.Labels.instance}}:{{.Value}}: {{end}}",
        [sample(21, instance="b"), sample(11, instance="a")],
        "a:11: b:21: ",
    ),
    (
        '{{ with query "metric" }}{{ . | first | value | humanize }}{{ else }}no data{{ end }}',
        [sample(1234.5)],
        "1.234k",
    ),
    ('{{ with query "metric" }}{{ . | first | value }}{{ else }}no data{{ end }}', [], "no data"),
    (
        '{{ query "metric" | len }} {{ range $i, $s := query "m" }}{{ $i }}{{ end }}',
        [sample(1), sample(2)],
        "2 01",
    ),
    (
        '{{ query "metric" | first }}',
        [sample(2, instance="a")],
        "{map[__name__:metric instance:a] 2}",
    ),
    ('{{ query "metric" }}', [sample(2)], "[&{map[__name__:metric] 2}]"),
]


@pytest.mark.parametrize(("text", "samples", "expected"), QUERIES)
def test_query_results_in_templates(text: str, samples: list[Sample], expected: str) -> None:
    """Query samples expose .Labels and .Value and work with first, label, value and sortByLabel."""
    assert run(text, query=FakeQuery(*samples)) == expected


def test_a_failing_query_is_reported_in_the_expansion() -> None:
    """A QueryError comes back as Prometheus's "error calling query" text."""
    text = '{{ query "rate(x[5m]" }}'
    fake = FakeQuery(error=QueryError("1:12: parse error: unclosed left bracket", "bad_data"))
    expected = "error calling query: 1:12: parse error: unclosed left bracket"
    assert run(text, query=fake) == exec_error(text, 'query "rate(x[5m]"', expected)


def test_query_without_a_query_func_is_an_error() -> None:
    """With no QueryFunc injected, query fails cleanly instead of raising."""
    out = expand('{{ query "up" }}', name="Test", labels={}, value=0.0, external_labels={},
                 external_url="", query=None, now=NOW)  # fmt: skip
    assert out.endswith("error calling query: queries are not available here>")


def test_an_unexpected_exception_is_returned_as_a_panic() -> None:
    """Like Prometheus recovering a panic, any other exception becomes the error text."""
    out = run('{{ query "up" }}', query=FakeQuery(error=RuntimeError("boom")))
    assert (
        out
        == "<error expanding template: panic expanding template __alert_Test: RuntimeError: boom>"
    )


# -- errors ----------------------------------------------------------------------------

PARSE_ERRORS = [
    ("{{", "unclosed action"),
    ("{{\u00a0}}", "unrecognized character in action: U+00A0"),
    ("{{ nope }}", 'function "nope" not defined'),
    ('{{ tmpl "x" . }}', 'function "tmpl" not defined'),
    ("{{ end }}", "unexpected {{end}}"),
    ("{{ else }}", "unexpected {{else}}"),
    ("{{ if 1 }}", "unexpected EOF"),
    ("{{ if 1 }}{{ else }}{{ else }}{{ end }}", "expected end; found {{else}}"),
    ("{{ $x }}", 'undefined variable "$x"'),
    ('{{ define "x" }}{{ $labels }}{{ end }}', 'undefined variable "$labels"'),
    ("{{ 1 | 2 }}", "non executable command in pipeline stage 2"),
    ("{{ if }}{{ end }}", "missing value for if"),
    ("{{ }}", "missing value for command"),
    ('{{ "abc }}', "unterminated quoted string"),
    ("{{ `abc }}", "unterminated raw quoted string"),
    ("{{ 1x }}", 'bad number syntax: "1x"'),
    ("{{ ( 1 }}", "unclosed left paren"),
    ("{{ ) }}", "unexpected right paren"),
    ("{{/* x", "unclosed comment"),
    ("{{/* x */ }}", "comment ends before closing delimiter"),
    ("{{ /* x */ }}", 'unexpected "/" in command'),
    ("{{ break }}", "{{break}} outside {{range}}"),
    ('{{ "\\q" }}', "invalid syntax"),
    ("{{ true.x }}", 'unexpected . after term "true"'),
    ("{{ $x := 1 := 2 }}", 'unexpected ":=" in operand'),
    ("{{ range $a, $b, $c := . }}{{ end }}", "too many declarations in range"),
    ("{{ .a$ }}", "bad character U+0024 '$'"),
    ("{{ 99999999999999999999 }}", 'integer overflow: "99999999999999999999"'),
]


@pytest.mark.parametrize(("text", "msg"), PARSE_ERRORS)
def test_parse_errors_use_go_messages(text: str, msg: str) -> None:
    """Templates that do not parse expand to Prometheus's "error parsing template" text."""
    assert run(text) == parse_error(msg)
    assert check_template(text, name="Test") == f"template: __alert_Test:1: {msg}"


def test_parse_errors_name_the_alert_and_the_line() -> None:
    """The message carries __alert_<name> and the line of the offending token."""
    assert run("line 1\nline 2\n{{ nope }}", name="HighLatency") == parse_error(
        'function "nope" not defined', line=3, name="HighLatency"
    )


AT_STRUCT = (
    "can't evaluate field Foo in type struct { Labels map[string]string; "
    "ExternalLabels map[string]string; ExternalURL string; Value interface {} }"
)
CALL = "error calling "
BAD_ONE = ': strconv.ParseFloat: parsing "one": invalid syntax'
TS_OVERFLOW = "cannot be represented as a nanoseconds timestamp since it overflows int64"
EXEC_ERRORS = [
    (
        '{{ query "missing" | first }}',
        "first",
        CALL + "first: first() called on vector with no elements",
    ),
    (
        '{{ (query "missing").banana }}',
        '"missing"',
        "can't evaluate field banana in type template.queryResult",
    ),
    ('{{ humanize "one" }}', 'humanize "one"', CALL + "humanize" + BAD_ONE),
    ('{{ humanize1024 "one" }}', 'humanize1024 "one"', CALL + "humanize1024" + BAD_ONE),
    ('{{ humanizeDuration "one" }}', 'humanizeDuration "one"', CALL + "humanizeDuration" + BAD_ONE),
    (
        '{{ "one" | humanizePercentage }}',
        "humanizePercentage",
        CALL + "humanizePercentage" + BAD_ONE,
    ),
    (
        "{{ humanizeTimestamp -9223372036854775808 }}",
        "humanizeTimestamp -9223372036854775808",
        CALL + "humanizeTimestamp: -9.223372036854776e+18 " + TS_OVERFLOW,
    ),
    (
        '{{ humanize "1e400" }}',
        'humanize "1e400"',
        CALL + 'humanize: strconv.ParseFloat: parsing "1e400": value out of range',
    ),
    (
        "{{ humanize $labels }}",
        "humanize $labels",
        CALL + "humanize: can't convert map[string]string to float",
    ),
    ("{{ .Foo }}", ".Foo", AT_STRUCT),
    ("{{ $labels.job.x }}", "$labels.job.x", "can't evaluate field x in type string", ".job"),
    ("{{ gt $value 10 }}", "gt $value 10", CALL + "gt: incompatible types for comparison"),
    ("{{ eq 1 1.0 }}", "eq 1 1.0", CALL + "eq: incompatible types for comparison"),
    ("{{ lt true false }}", "lt true false", CALL + "lt: invalid type for comparison"),
    (
        "{{ index $labels 1 }}",
        "index $labels 1",
        CALL + "index: value has type int; should be string",
    ),
    ('{{ index "abc" 5 }}', 'index "abc" 5', CALL + "index: index out of range: 5"),
    ("{{ len 3 }}", "len 3", CALL + "len: len of type int"),
    ("{{ toUpper 1 }}", "1", "wrong type for value; expected string; got int"),
    (
        "{{ first $labels }}",
        "$labels",
        "wrong type for value; expected template.queryResult; got map[string]string",
    ),
    ("{{ printf }}", "printf", "wrong number of args for printf: want at least 1 got 0"),
    ("{{ humanize }}", "humanize", "wrong number of args for humanize: want 1 got 0"),
    ("{{ 1 2 }}", "1", "can't give argument to non-function 1"),
    ("{{ nil }}", "nil", "nil is not a command"),
    ("{{ range $labels.job }}{{ end }}", "$labels.job", "range can't iterate over node", ".job"),
    ('{{ template "nope" }}', '{{template "nope"}}', 'template "nope" not defined', '"nope"'),
    (
        '{{ parseDuration "5x" }}',
        'parseDuration "5x"',
        CALL + 'parseDuration: unknown unit "x" in duration "5x"',
    ),
    (
        '{{ parseDuration "1h1h" }}',
        'parseDuration "1h1h"',
        CALL + 'parseDuration: not a valid duration string: "1h1h"',
    ),
    ("{{ toTime $value }}", "toTime $value", CALL + "toTime: value is NaN or Inf"),
]


@pytest.mark.parametrize("case", EXEC_ERRORS, ids=[case[0] for case in EXEC_ERRORS])
def test_execution_errors_use_go_messages(case: tuple[str, ...]) -> None:
    """Failing functions and bad operands give Go's located error text (``$x.a`` sits at ``.a``)."""
    text = case[0]
    value = math.inf if "toTime" in text else 1234567.0
    assert run(text, value=value) == exec_error(*case)


def test_execution_errors_name_the_defined_template_and_line() -> None:
    """An error inside a {{define}}d template names it, with the failing call's line and column."""
    text = '{{ define "x" }}\n  {{ humanize "a" }}{{ end }}{{ template "x" }}'
    out = run(text)
    assert out.startswith(
        "<error expanding template: error executing template __alert_Test: "
        'template: __alert_Test:2:5: executing "x" at <humanize "a">: error calling humanize:'
    )


def test_a_bad_regexp_is_an_error_not_a_crash() -> None:
    """An invalid pattern in match or reReplaceAll is reported as the function's error."""
    assert "error calling match: error parsing regexp:" in run('{{ match "(" "x" }}')
    assert "error calling reReplaceAll: regexp: Compile(" in run('{{ reReplaceAll "(" "" "x" }}')


def test_runaway_templates_stop() -> None:
    """Unbounded recursion and huge loops end in an error instead of hanging the rule loop."""
    recursive = '{{ define "a" }}{{ template "a" }}{{ template "a" }}{{ end }}{{ template "a" }}'
    assert "exceeded maximum template depth" in run(recursive)
    assert "exceeded maximum template steps" in run("{{ range 100000000 }}{{ end }}")
    assert "nested too deeply" in run("{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}")


# -- check_template --------------------------------------------------------------------


def test_check_template_only_parses() -> None:
    """Valid templates (even ones that would fail to run) pass; invalid ones get Go's message."""
    assert check_template("no actions at all") is None
    assert check_template('{{ $labels.instance }} {{ query "up" | first | value }}') is None
    assert check_template('{{ .NoSuchField }} {{ humanize "x" }}') is None
    assert check_template("{{ nope }}") == 'template: __alert_:1: function "nope" not defined'
    assert check_template("{{ if }}", name="A") == "template: __alert_A:1: missing value for if"


# -- robustness ------------------------------------------------------------------------

PIECES = [
    "{{", "}}", "{{-", "-}}", " ", "if", "else", "end", "range", "with", "define", "template",
    "$x", "$labels", ":=", "=", "|", "(", ")", '"a"', "`b`", "1", "-2.5", ".", ".Labels", ".Value",
    "humanize", "printf", "query", "index", "args", "first", "nil", "true", ",", "/*", "*/", "\n",
    "break", "'c'", "%d", "eq", "and",
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=25).map("".join))
def test_expand_never_raises(text: str) -> None:
    """Whatever the template, expand returns a string and check_template agrees on parsing."""
    out = run(text, query=FakeQuery(sample(1.0, instance="a")))
    assert isinstance(out, str)
    error = check_template(text, name="Test")
    assert (error is not None) == out.startswith("<error expanding template: error parsing")
