"""``GET /api/v1/targets`` in Prometheus's JSON shape.

``state=active|dropped|any`` (default any) and ``scrapePool`` filter as in
Prometheus; the list not asked for comes back empty. Times are RFC 3339 (Go's
zero time before the first scrape), durations Prometheus-style (``15s``).

>>> from agent.scrape.target import TargetStatus
>>> _active_json(TargetStatus("api", (("__address__", "h:1"),)))["health"]
'unknown'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from agent.api.rules import rfc3339
from agent.config import format_duration
from agent.scrape.target import TargetStatus


class TargetsContext(Protocol):
    """What the targets API needs from the agent (``ScrapeManager.targets``)."""

    def scrape_targets(self) -> Sequence[TargetStatus]: ...


def _active_json(t: TargetStatus) -> dict[str, Any]:
    return {
        "discoveredLabels": dict(t.discovered_labels),
        "labels": dict(t.labels),
        "scrapePool": t.scrape_pool,
        "scrapeUrl": t.scrape_url,
        "globalUrl": t.global_url,
        "lastError": t.last_error,
        "lastScrape": rfc3339(t.last_scrape),
        "lastScrapeDuration": t.last_scrape_duration,
        "health": t.health,
        "scrapeInterval": format_duration(t.scrape_interval),
        "scrapeTimeout": format_duration(t.scrape_timeout),
    }


def _dropped_json(t: TargetStatus) -> dict[str, Any]:
    return {"discoveredLabels": dict(t.discovered_labels), "scrapePool": t.scrape_pool}


def targets_json(
    targets: Sequence[TargetStatus], state: str = "any", pool: str | None = None
) -> dict[str, Any]:
    """The ``data`` of ``/api/v1/targets`` for these targets."""
    state = state.lower() or "any"
    chosen = [t for t in targets if pool is None or t.scrape_pool == pool]
    active = [t for t in chosen if not t.dropped]
    dropped = [t for t in chosen if t.dropped]
    data: dict[str, Any] = {"activeTargets": [], "droppedTargets": []}
    if state in ("any", "active"):
        data["activeTargets"] = [_active_json(t) for t in active]
    if state in ("any", "dropped"):
        data["droppedTargets"] = [_dropped_json(t) for t in dropped]
        counts = dict.fromkeys(sorted({t.scrape_pool for t in chosen}), 0)
        for t in dropped:
            counts[t.scrape_pool] += 1
        data["droppedTargetCounts"] = counts
    return data


def add_targets_routes(app: FastAPI, ctx: TargetsContext) -> None:
    """Mount ``/api/v1/targets``."""

    @app.get("/api/v1/targets")
    async def targets(request: Request) -> JSONResponse:
        q = request.query_params
        data = targets_json(ctx.scrape_targets(), q.get("state", "any"), q.get("scrapePool"))
        return JSONResponse({"status": "success", "data": data})
