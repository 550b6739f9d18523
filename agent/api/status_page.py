"""The status page: one server-rendered HTML page an on-call engineer reads at a glance.

No JavaScript and no external assets: inline CSS, inline SVG sparklines, and a
meta refresh every 5 seconds. Failing checks sort first. Every piece of text that
comes from configuration or from a target goes through :func:`html.escape`.

>>> page = render_status_page([], CheckHistory(), now=0.0)
>>> "0 checks configured" in page
True
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from html import escape

from agent.checks.history import CheckHistory, CheckStatus
from agent.config import CheckConfig
from agent.model import CheckResult, StepResult

REFRESH_SECONDS = 5
_STATE_RANK = {"failing": 0, "unknown": 1, "ok": 2}

_CSS = """
:root{--ok:#1a7f37;--fail:#cf222e;--unk:#6e7781;--fg:#1f2328;--muted:#59636e;--line:#d1d9e0}
*{box-sizing:border-box}
body{margin:0;font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--fg);background:#f6f8fa}
header{display:flex;align-items:baseline;gap:16px;flex-wrap:wrap;padding:12px 20px;
background:#fff;border-bottom:4px solid var(--unk)}
header.summary--ok{border-color:var(--ok)}header.summary--failing{border-color:var(--fail)}
h1{font-size:18px;margin:0}
.overall{margin:0;font-size:16px;font-weight:600}
.count{margin-right:12px}.count--ok{color:var(--ok)}.count--failing{color:var(--fail)}
.count--unknown{color:var(--unk)}.count--total{color:var(--muted);font-weight:400}
.meta{margin:0 0 0 auto;color:var(--muted);font-size:12px}
main{padding:12px 20px}
table{width:100%;border-collapse:collapse;background:#fff;border:1px solid var(--line)}
th,td{padding:6px 10px;text-align:left;vertical-align:top;border-bottom:1px solid var(--line)}
th{font-size:12px;color:var(--muted);font-weight:600;background:#f6f8fa;white-space:nowrap}
tr.check--failing{background:#fff5f5}
.badge{display:inline-block;min-width:64px;padding:2px 8px;border-radius:10px;color:#fff;
font-size:12px;font-weight:700;text-align:center}
.badge--ok{background:var(--ok)}.badge--failing{background:var(--fail)}
.badge--unknown{background:var(--unk)}
.name{font-weight:600}.num{text-align:right;font-variant-numeric:tabular-nums}
.nowrap,.num,.last-run{white-space:nowrap}.failures--some{color:var(--fail);font-weight:700}
.label{display:inline-block;margin:0 4px 2px 0;padding:0 6px;border-radius:4px;
background:#eef1f4;font:12px ui-monospace,SFMono-Regular,Menlo,monospace}
.error{color:var(--fail);font-family:ui-monospace,SFMono-Regular,Menlo,monospace;
font-size:12px;word-break:break-word;max-width:420px}
.error--past{color:var(--muted)}.stale{color:var(--fail);font-weight:600}
.steps{list-style:none;margin:4px 0 0;padding:0;font-weight:400;font-size:12px}
.step::before{display:inline-block;width:14px;font-weight:700}
.step--ok::before{content:"\\2713";color:var(--ok)}
.step--failing::before{content:"\\2717";color:var(--fail)}
.step-meta{color:var(--muted)}
.empty{padding:24px;text-align:center;color:var(--muted)}
footer{padding:0 20px 16px;color:var(--muted);font-size:12px}
"""


def render_status_page(
    checks: Sequence[CheckConfig], history: CheckHistory, *, now: float, title: str = "pilot-agent"
) -> str:
    """The whole page for the configured checks, as of ``now`` (Unix seconds)."""
    rows = sorted(
        ((check, history.get(check.name)) for check in checks),
        key=lambda row: (_STATE_RANK[_state(row[1])], row[0].name),
    )
    counts = dict.fromkeys(_STATE_RANK, 0)
    for _, status in rows:
        counts[_state(status)] += 1
    overall = "failing" if counts["failing"] else ("ok" if counts["ok"] else "unknown")
    body = "\n".join(_row(check, status, now) for check, status in rows)
    if not rows:
        body = '<tr><td colspan="9" class="empty">No checks configured.</td></tr>'
    return _PAGE.format(
        refresh=REFRESH_SECONDS,
        title=escape(title),
        tab_title=escape(f"{title} · {_headline(counts)}"),
        css=_CSS,
        overall=overall,
        summary=_summary(counts, len(rows)),
        updated=escape(_utc(now)),
        rows=body,
    )


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="{refresh}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{tab_title}</title>
<style>{css}</style>
</head>
<body>
<header class="summary summary--{overall}">
<h1>{title}</h1>
<p class="overall" id="overall">{summary}</p>
<p class="meta">Updated {updated} · refreshes every {refresh} s</p>
</header>
<main>
<table class="checks">
<thead><tr><th>State</th><th>Check</th><th>Kind</th><th>Labels</th><th>Last run</th>
<th class="num">Duration</th><th class="num">Failures</th><th>Last error</th><th>Recent runs</th>
</tr></thead>
<tbody>
{rows}
</tbody>
</table>
</main>
<footer><a href="metrics">/metrics</a> · <a href="api/v1/checks">/api/v1/checks</a></footer>
</body>
</html>
"""


def _state(status: CheckStatus | None) -> str:
    return "unknown" if status is None else status.state


def _headline(counts: dict[str, int]) -> str:
    if counts["failing"]:
        return f"{counts['failing']} failing"
    return "all ok" if counts["ok"] else "no results yet"


def _summary(counts: dict[str, int], total: int) -> str:
    parts = [
        f'<span class="count count--{state}">{counts[state]} {state}</span>'
        for state in ("failing", "ok", "unknown")
    ]
    checks = "check" if total == 1 else "checks"
    return "".join(parts) + f'<span class="count count--total">{total} {checks} configured</span>'


def _row(check: CheckConfig, status: CheckStatus | None, now: float) -> str:
    state = _state(status)
    name = escape(check.name)
    labels = "".join(
        f'<span class="label">{escape(k)}={escape(v)}</span>'
        for k, v in sorted(check.labels.items())
    )
    cells = [
        f'<td><span class="badge badge--{state}">{state.upper()}</span></td>',
        f'<td class="name">{name}{_steps(status.latest.steps if status else ())}</td>',
        f'<td class="kind">{escape(check.kind)}</td>',
        f'<td class="labels">{labels}</td>',
        _last_run_cell(check, status, now),
        f'<td class="num duration">{_duration(status.latest.duration_seconds) if status else ""}'
        "</td>",
        _failures_cell(status),
        _error_cell(status, now),
        f'<td class="spark">{sparkline(list(status.recent)) if status else ""}</td>',
    ]
    return (
        f'<tr class="check check--{state}" data-check="{name}" data-state="{state}">'
        + "".join(cells)
        + "</tr>"
    )


def _last_run_cell(check: CheckConfig, status: CheckStatus | None, now: float) -> str:
    if status is None:
        return '<td class="last-run">never</td>'
    age = now - status.latest.started_at
    when = escape(_utc(status.latest.started_at))
    if age > 3 * check.interval:
        attrs = 'class="last-run stale" title="no result for more than 3 intervals"'
    else:
        attrs = f'class="last-run" title="{when}"'
    return f"<td {attrs}>{_age(age)}</td>"


def _failures_cell(status: CheckStatus | None) -> str:
    if status is None:
        return '<td class="num failures"></td>'
    n = status.consecutive_failures
    cls = "num failures failures--some" if n else "num failures"
    return f'<td class="{cls}">{n}</td>'


def _error_cell(status: CheckStatus | None, now: float) -> str:
    if status is None:
        return '<td class="error error--past">no result yet</td>'
    if not status.latest.success:
        return f'<td class="error">{escape(status.latest.reason or "failed")}</td>'
    past = status.last_failure
    if past is None:
        return '<td class="error"></td>'
    ago = _age(now - past.started_at)
    return f'<td class="error error--past">{ago}: {escape(past.reason or "failed")}</td>'


def _steps(steps: Sequence[StepResult]) -> str:
    if not steps:
        return ""
    items = []
    for step in steps:
        state = "ok" if step.success else "failing"
        meta = _duration(step.duration_seconds)
        if step.status_code is not None:
            meta += f" · {step.status_code}"
        reason = f" · {escape(step.reason)}" if step.reason else ""
        items.append(
            f'<li class="step step--{state}" data-step="{escape(step.name)}">'
            f'{escape(step.name)} <span class="step-meta">{meta}{reason}</span></li>'
        )
    return f'<ul class="steps">{"".join(items)}</ul>'


def sparkline(results: Sequence[CheckResult], *, width: int = 120, height: int = 26) -> str:
    """An inline SVG line of run durations, oldest first; failed runs are red dots.

    >>> sparkline([]) == ""
    True
    """
    if not results:
        return ""
    pad = 3.0
    top = max(r.duration_seconds for r in results) or 1.0
    step = (width - 2 * pad) / max(len(results) - 1, 1)
    points = [
        (pad + i * step, height - pad - r.duration_seconds / top * (height - 2 * pad))
        for i, r in enumerate(results)
    ]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    dots = "".join(
        f'<circle class="fail" cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="#cf222e"/>'
        for (x, y), r in zip(points, results, strict=True)
        if not r.success
    )
    failed = sum(not r.success for r in results)
    label = f"last {len(results)} runs, slowest {_duration(top)}, {failed} failed"
    return (
        f'<svg class="sparkline" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(label)}" viewBox="0 0 {width} {height}">'
        f"<title>{escape(label)}</title>"
        f'<polyline points="{line}" fill="none" stroke="#0969da" stroke-width="1.5"/>'
        f"{dots}</svg>"
    )


def _duration(seconds: float) -> str:
    if seconds < 0.01:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s"


def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s ago"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m ago"
    if seconds < 86400:
        return f"{seconds // 3600:.0f}h ago"
    return f"{seconds // 86400:.0f}d ago"


def _utc(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, tz=_dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
