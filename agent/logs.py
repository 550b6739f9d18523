"""structlog and Sentry, configured once at start.

Logs are JSON when stderr is not a TTY and a readable console rendering when it
is. Context variables (``check=``, ``rule=``) come first, and a
:class:`~agent.secrets.Scrubber` runs last before rendering, so no secret reaches
a log line. Sentry starts only when ``SENTRY_DSN`` is set, with
the equivalent of ``send_default_pii=False`` (sentry-sdk's ``data_collection``)
and the same scrubber in ``before_send``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any, Literal

import structlog

from agent.secrets import Scrubber

LogFormat = Literal["auto", "json", "console"]

SCRUBBER = Scrubber()


def configure_logging(level: str = "info", fmt: LogFormat = "auto") -> None:
    """Configure structlog (and the stdlib root logger libraries use) once."""
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer()
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    numeric = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            SCRUBBER,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                SCRUBBER,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.WARNING))
    # The scheduler's own warnings (skipped runs) are counted and logged by us as check_misfired.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)


def init_sentry(env: Mapping[str, str], release: str) -> bool:
    """Start Sentry when ``SENTRY_DSN`` is set; returns whether it started."""
    dsn = env.get("SENTRY_DSN")
    if not dsn:
        return False
    import sentry_sdk

    def before_send(event: Any, _hint: Any) -> Any:
        return SCRUBBER.scrub(event)

    sentry_sdk.init(
        dsn=dsn,
        release=f"pilot-agent@{release}",
        environment=env.get("SENTRY_ENVIRONMENT", "pilot"),
        # `send_default_pii=False`, as sentry-sdk 2.7x spells it (the old flag is deprecated):
        # no user identity, no HTTP bodies, no frame variables (where secrets would live).
        data_collection={"user_info": False, "http_bodies": [], "stack_frame_variables": False},
        before_send=before_send,
        before_send_transaction=before_send,
    )
    return True
