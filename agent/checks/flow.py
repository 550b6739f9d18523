"""Flow check: ordered HTTP steps on one client, passing captured values forward.

A step may capture values from its answer (a JSONPath over its JSON body, or a
response header); later steps refer to them as ``${name}`` in their URL, headers
and body. Each finished step is appended to the report at once, so a run cut short
by its timeout still shows how far it got.

>>> render("${base}/orders/${id}", {"id": "42"})
'${base}/orders/42'
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Mapping

import structlog

from agent.checks.base import ProbeReport
from agent.checks.http import (
    HttpAnswer,
    HttpClients,
    TransportFactory,
    check_answer,
    send_request,
)
from agent.checks.jsonpath import JsonPathError, JsonPathMissing, find
from agent.config import FlowCheck, FlowStep
from agent.errors import CheckError, CheckFailed
from agent.model import StepResult

log = structlog.get_logger(__name__)

_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def render(text: str, values: Mapping[str, str]) -> str:
    """Replace ``${name}`` by a captured value; unknown names stay as they are."""
    return _VAR_RE.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def render_step(step: FlowStep, values: Mapping[str, str]) -> FlowStep:
    """``step`` with captured values filled into its URL, headers and body."""
    if not values:
        return step
    return step.model_copy(
        update={
            "url": render(step.url, values),
            "headers": {k: render(v, values) for k, v in step.headers.items()},
            "body": render(step.body, values) if step.body is not None else None,
        }
    )


def capture(step: FlowStep, answer: HttpAnswer) -> dict[str, str]:
    """The values ``step`` captures from its answer, as strings.

    A JSON string is taken as is; any other JSON value is taken as its JSON text.
    """
    out: dict[str, str] = {}
    for name, spec in step.capture.items():
        if spec.json_ is not None:
            try:
                value = find(answer.json(), spec.json_)
            except (JsonPathError, JsonPathMissing) as exc:
                raise CheckFailed(f"capture {name}: {exc}") from exc
            out[name] = value if isinstance(value, str) else json.dumps(value)
        elif spec.header is not None:
            header = answer.headers.get(spec.header)
            if header is None:
                raise CheckFailed(f"capture {name}: header {spec.header} is missing")
            out[name] = header
    return out


class FlowChecker:
    """Runs a flow's steps in order; the first failing step ends the run.

    >>> from agent.config import FlowStep
    >>> FlowChecker(FlowCheck(steps=[FlowStep(name="home", url="http://x/")])).kind
    'flow'
    """

    kind = "flow"

    def __init__(
        self, spec: FlowCheck, *, transport_factory: TransportFactory | None = None
    ) -> None:
        self._spec = spec
        self._clients = HttpClients(transport_factory)

    async def probe(self, report: ProbeReport) -> None:
        self._clients.forget_cookies()
        values: dict[str, str] = {}
        for step in self._spec.steps:
            values.update(await self._run_step(step, values, report))

    async def _run_step(
        self, step: FlowStep, values: Mapping[str, str], report: ProbeReport
    ) -> dict[str, str]:
        report.status_code = None
        started = time.perf_counter()
        try:
            client = self._clients.get(step.tls_config)
            answer = await send_request(client, render_step(step, values), report)
            check_answer(step.expect, answer)
            captured = capture(step, answer)
        except CheckError as exc:
            report.steps.append(_step_result(step, started, report, str(exc)))
            log.debug("flow_step_failed", step=step.name)
            raise type(exc)(f"step {step.name}: {exc}") from exc
        except asyncio.CancelledError:
            report.steps.append(_step_result(step, started, report, "did not finish"))
            raise
        report.steps.append(_step_result(step, started, report, None))
        return captured

    async def aclose(self) -> None:
        await self._clients.aclose()


def _step_result(
    step: FlowStep, started: float, report: ProbeReport, reason: str | None
) -> StepResult:
    return StepResult(
        name=step.name,
        success=reason is None,
        duration_seconds=time.perf_counter() - started,
        status_code=report.status_code,
        reason=reason,
    )
