"""One target's scrape loop: fetch, parse, label, store, mark stale, report.

A :class:`ScrapeLoop` scrapes its target every ``interval`` at a stable offset
(a hash of its labels and URL, as Prometheus spreads targets), the timeout
bounding the whole HTTP exchange. A scrape fails *as a whole*, storing none of
its samples, on a connection error, a timeout, a status other than 200, a body
over ``body_size_limit`` (counted while streaming, after gunzip), a
:class:`~agent.scrape.base.ParseError`, more samples than ``sample_limit``
(after ``metric_relabel_configs``) or a sample with more labels than
``label_limit``. Then every series of the last successful scrape gets a stale
marker. On success each sample gets the target's labels (``honor_labels``
decides clashes; otherwise the exposed value moves to ``exported_<name>``), its
own timestamp if ``honor_timestamps``, then ``metric_relabel_configs``; series
that vanished since the last scrape get stale markers. Either way the loop
writes ``up``, ``scrape_duration_seconds``, ``scrape_samples_scraped``,
``scrape_samples_post_metric_relabeling`` and ``scrape_series_added`` with the
target's labels, and hands a :class:`~agent.scrape.base.ScrapeReport` to each
listener. Nothing raises out of the loop. A big body is parsed and relabelled in
a worker thread; only the writes to the store happen on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import decimal
import socket
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol
from urllib.parse import urlsplit, urlunsplit

import httpx
import structlog

from agent.config import ScrapeConfig, format_duration
from agent.errors import AgentError
from agent.promql.xxhash import labels_hash
from agent.scrape.base import ParseError, ParseResult, ScrapeListener, ScrapeReport
from agent.scrape.discovery import Target
from agent.scrape.parser import parse
from agent.scrape.relabel import merge_target_labels, relabel
from agent.tsdb.base import Appender, Labels, labels_from

log = structlog.get_logger(__name__)

USER_AGENT = "pilot-agent"
FAILURE_REASONS = (
    "connect",
    "timeout",
    "http_status",
    "body_size",
    "parse",
    "sample_limit",
    "label_limit",
    "internal",
)
REPORT_SERIES = (
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
)
OFFLOAD_BYTES = 256 * 1024
"""Bodies larger than this are parsed and relabelled in a worker thread."""
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})

Health = Literal["up", "down", "unknown"]


class ScrapeFailed(AgentError):
    """A scrape failed as a whole; ``reason`` is one of :data:`FAILURE_REASONS`."""

    retriable = True

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ScrapeMetrics(Protocol):
    """What the scrape engine reports about itself (``job`` is the scrape pool)."""

    def scrape_finished(
        self, job: str, instance: str, *, duration_seconds: float, samples: int, failure: str | None
    ) -> None:
        """A scrape ended: ``samples`` stored, ``failure`` the reason when it failed."""

    def targets_changed(self, job: str, *, active: int, dropped: int) -> None:
        """The job's targets after discovery and relabelling."""

    def target_removed(self, job: str, instance: str) -> None:
        """A target is gone; drop its series."""

    def job_removed(self, job: str) -> None:
        """A job is gone; drop its series."""


class NoopScrapeMetrics:
    """A :class:`ScrapeMetrics` that records nothing."""

    def scrape_finished(
        self, job: str, instance: str, *, duration_seconds: float, samples: int, failure: str | None
    ) -> None:
        pass

    def targets_changed(self, job: str, *, active: int, dropped: int) -> None:
        pass

    def target_removed(self, job: str, instance: str) -> None:
        pass

    def job_removed(self, job: str) -> None:
        pass


@dataclass(frozen=True, slots=True)
class TargetStatus:
    """One target as ``/api/v1/targets`` shows it; ``dropped`` ones only have discovered labels.

    ``last_scrape`` is Unix seconds (None before the first scrape); interval and
    timeout are seconds.
    """

    scrape_pool: str
    discovered_labels: Labels
    labels: Labels = ()
    scrape_url: str = ""
    global_url: str = ""
    health: Health = "unknown"
    last_error: str = ""
    last_scrape: float | None = None
    last_scrape_duration: float = 0.0
    scrape_interval: float = 0.0
    scrape_timeout: float = 0.0
    dropped: bool = False


def go_float(x: float) -> str:
    """Go's ``strconv.FormatFloat(x, 'f', -1, 64)``.

    >>> go_float(10.0), go_float(0.5), go_float(1e-05)
    ('10', '0.5', '0.00001')
    """
    text = format(decimal.Decimal(repr(x)), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def global_url(url: str, host: str) -> str:
    """The URL as seen from elsewhere: a loopback host becomes ``host`` (Prometheus's guess)."""
    parts = urlsplit(url)
    if parts.hostname not in _LOOPBACK or parts.port is None:
        return url
    return urlunsplit(parts._replace(netloc=f"{host}:{parts.port}"))


def _append_limited(body: bytearray, data: bytes, limit: int) -> None:
    if limit and len(body) + len(data) > limit:
        raise ScrapeFailed("body_size", "body size limit exceeded")
    body += data


async def read_body(response: httpx.Response, limit: int) -> bytes:
    """The (gunzipped) body, failing as soon as it would grow past ``limit`` (0: no limit)."""
    gzipped = response.headers.get("content-encoding", "").strip().lower() == "gzip"
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzipped else None
    body = bytearray()
    try:
        async for chunk in response.aiter_raw():
            data = chunk
            while data:
                if inflater is None:
                    _append_limited(body, data, limit)
                    break
                room = limit - len(body) + 1 if limit else 0
                _append_limited(body, inflater.decompress(data, room), limit)
                data = inflater.unconsumed_tail
        if inflater is not None:
            _append_limited(body, inflater.flush(), limit)
            if not inflater.eof:
                raise ScrapeFailed("parse", "gzip body is truncated")
    except zlib.error as exc:
        raise ScrapeFailed("parse", f"invalid gzip body: {exc}") from None
    return bytes(body)


@dataclass(slots=True)
class _Batch:
    """The samples of one parsed scrape, ready to append, or the reason it fails."""

    total: int
    added: int = 0
    samples: list[tuple[Labels, int | None, float]] = field(default_factory=list)
    error: ScrapeFailed | None = None


class ScrapeLoop:
    """Scrapes one target on its schedule; created, started and stopped by the manager.

    ``previous`` hands over the series state of a loop this one replaces (same
    target, changed job settings) so no stale markers are written in between.

    ::

        loop = ScrapeLoop(target, config=cfg, client=scrape_client(cfg),
                          appender=store, clock=time.time, listeners=[watcher.on_scrape])
        report = await loop.scrape_once()   # or loop.start() ... loop.cancel()
    """

    def __init__(
        self,
        target: Target,
        *,
        config: ScrapeConfig,
        client: httpx.AsyncClient,
        appender: Appender,
        clock: Callable[[], float],
        listeners: Sequence[ScrapeListener] = (),
        metrics: ScrapeMetrics | None = None,
        global_host: str | None = None,
        previous: ScrapeLoop | None = None,
    ) -> None:
        self.target = target
        self._config = config
        self._client = client
        self._appender = appender
        self._clock = clock
        self._listeners = list(listeners)
        self._metrics: ScrapeMetrics = metrics or NoopScrapeMetrics()
        self._global_url = global_url(target.url, global_host or socket.gethostname())
        self._headers = {"X-Prometheus-Scrape-Timeout-Seconds": go_float(target.timeout)}
        server_name = config.tls_config.server_name
        self._extensions = {"sni_hostname": server_name} if server_name else {}
        base = dict(target.labels)
        self._report_labels = {n: labels_from({**base, "__name__": n}) for n in REPORT_SERIES}
        self._series: dict[Labels, None] = {}  # tracked for staleness (no explicit timestamp)
        self._known: set[Labels] = set()  # stored by the last successful scrape
        self._cache: dict[Labels, Labels | None] = {}  # exposed labels → final labels
        self._health: Health = "unknown"
        self._last_error = ""
        self._last_scrape: float | None = None
        self._last_duration = 0.0
        self._task: asyncio.Task[None] | None = None
        if previous is not None:
            self._take_over(previous)
        self._log = log.bind(job=target.pool, instance=target.instance)

    def _take_over(self, old: ScrapeLoop) -> None:
        self._series, self._known = old._series, old._known
        self._health, self._last_error = old._health, old._last_error
        self._last_scrape, self._last_duration = old._last_scrape, old._last_duration
        old._series, old._known = {}, set()

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start scraping on the running event loop."""
        if self._task is None:
            name = f"scrape:{self.target.pool}:{self.target.url}"
            self._task = asyncio.create_task(self._run(), name=name)
            self._task.add_done_callback(self._task_done)

    def cancel(self) -> asyncio.Task[None] | None:
        """Stop scraping: nothing more is written once this returns. The task, to await."""
        task = self._task
        if task is not None:
            task.cancel()
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._log.error("scrape_loop_crashed", exc_info=task.exception())

    def mark_stale(self, t_ms: int) -> None:
        """The target is gone: stale markers for its series and its report series."""
        if self._last_scrape is None:
            return
        for labels in [*self._series, *self._report_labels.values()]:
            self._appender.append_stale(labels, t_ms)
        self._series = {}

    def offset(self) -> float:
        """The target's phase in ``[0, interval)``, stable across restarts."""
        interval_ns = max(1, round(self.target.interval * 1e9))
        key = (*self.target.labels, ("__url__", self.target.url))
        return (labels_hash(key) % interval_ns) / 1e9

    def _next_slot(self, now: float) -> float:
        interval, offset = self.target.interval, self.offset()
        shifted = now - offset
        return shifted - shifted % interval + offset + interval

    async def _run(self) -> None:
        due = self._next_slot(self._clock())
        while True:
            if due - self._clock() > self.target.interval:  # the clock went back: realign
                due = self._next_slot(self._clock())
            await asyncio.sleep(max(0.0, due - self._clock()))
            await self.scrape_once()
            due += self.target.interval
            now = self._clock()
            if due <= now:  # overran: like Go's ticker, one scrape at once, then on the grid
                due = self._next_slot(now) - self.target.interval

    # -- one scrape --------------------------------------------------------------------

    async def scrape_once(self) -> ScrapeReport:
        """Scrape now, store the result (or stale markers), report. Never raises."""
        start = self._clock()
        t_ms = int(start * 1000)
        began = time.monotonic()
        batch: _Batch | None = None
        failure: ScrapeFailed | None = None
        try:
            body, content_type = await self._fetch()
            if len(body) > OFFLOAD_BYTES:  # a big body: keep the event loop free meanwhile
                batch = await asyncio.to_thread(self._parse, body, content_type)
            else:
                batch = self._parse(body, content_type)
            failure = batch.error
        except ScrapeFailed as exc:
            failure = exc
        except ParseError as exc:
            failure = ScrapeFailed("parse", str(exc))
        except Exception as exc:
            self._log.exception("scrape_internal_error")
            failure = ScrapeFailed("internal", f"internal error: {exc.__class__.__name__}")
        stored: list[tuple[Labels, float]] = []
        series_added = 0
        if failure is None and batch is not None:
            stored, series_added = self._commit(batch, t_ms)
        else:
            self._stale_all(t_ms)
        duration = time.monotonic() - began
        counts = (batch.total, batch.added) if batch is not None else (0, 0)
        self._write_report(t_ms, failure is None, duration, *counts, series_added)
        return self._finish(start, t_ms, duration, failure, stored)

    async def _fetch(self) -> tuple[bytes, str | None]:
        timeout = self.target.timeout
        try:
            async with (
                asyncio.timeout(timeout),
                self._client.stream(
                    "GET", self.target.url, headers=self._headers, extensions=self._extensions
                ) as resp,
            ):
                if resp.status_code != 200:
                    status = f"{resp.status_code} {resp.reason_phrase}".strip()
                    raise ScrapeFailed("http_status", f"server returned HTTP status {status}")
                body = await read_body(resp, self._config.body_size_limit)
                return body, resp.headers.get("content-type")
        except (TimeoutError, httpx.TimeoutException):
            message = f"scrape timed out after {format_duration(timeout)}"
            raise ScrapeFailed("timeout", message) from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise ScrapeFailed("connect", str(exc) or exc.__class__.__name__) from None

    def _parse(self, body: bytes, content_type: str | None) -> _Batch:
        return self._prepare(parse(body, content_type))

    def _final_labels(self, exposed: Labels) -> Labels | None:
        cfg = self._config
        merged = merge_target_labels(exposed, self.target.labels, cfg.honor_labels)
        rules = cfg.metric_relabel_configs
        final = relabel(merged, rules) if rules else merged
        return labels_from(final) if final else None

    def _prepare(self, result: ParseResult) -> _Batch:
        cfg = self._config
        batch = _Batch(total=len(result.samples))
        old, self._cache = self._cache, {}  # only this scrape's entries stay cached
        for sample in result.samples:
            exposed = sample.labels
            labels = old[exposed] if exposed in old else self._final_labels(exposed)
            self._cache[exposed] = labels
            if labels is None:
                continue  # dropped by metric_relabel_configs
            if labels[0][0] != "__name__" and all(k != "__name__" for k, _ in labels):
                batch.error = ScrapeFailed("parse", "__name__ label is mandatory")
                break
            if cfg.label_limit and len(labels) > cfg.label_limit:
                message = (
                    f"label_limit exceeded (metric: {labels[0][1][:50]}, "
                    f"number of labels: {len(labels)}, limit: {cfg.label_limit})"
                )
                batch.error = ScrapeFailed("label_limit", message)
                break
            batch.added += 1
            if not cfg.sample_limit or batch.added <= cfg.sample_limit:
                ts = sample.timestamp_ms if cfg.honor_timestamps else None
                batch.samples.append((labels, ts, sample.value))
        if batch.error is None and cfg.sample_limit and batch.added > cfg.sample_limit:
            batch.error = ScrapeFailed("sample_limit", "sample limit exceeded")
        return batch

    def _commit(self, batch: _Batch, t_ms: int) -> tuple[list[tuple[Labels, float]], int]:
        append = self._appender.append
        seen: dict[Labels, None] = {}
        stored: list[tuple[Labels, float]] = []
        series_added = 0
        for labels, ts, value in batch.samples:
            if not append(labels, t_ms if ts is None else ts, value):
                continue  # out of order or duplicate: counted by the store
            stored.append((labels, value))
            if labels not in self._known:
                series_added += 1
            if ts is None:
                seen[labels] = None
        for labels in self._series:
            if labels not in seen:
                self._appender.append_stale(labels, t_ms)
        self._series = seen
        self._known = {labels for labels, _ in stored}
        return stored, series_added

    def _stale_all(self, t_ms: int) -> None:
        for labels in self._series:
            self._appender.append_stale(labels, t_ms)
        self._series = {}

    def _write_report(
        self, t_ms: int, up: bool, duration: float, total: int, added: int, series_added: int
    ) -> None:
        values = (1.0 if up else 0.0, duration, total, added, series_added)
        for name, value in zip(REPORT_SERIES, values, strict=True):
            self._appender.append(self._report_labels[name], t_ms, float(value))

    def _finish(
        self,
        start: float,
        t_ms: int,
        duration: float,
        failure: ScrapeFailed | None,
        stored: list[tuple[Labels, float]],
    ) -> ScrapeReport:
        error = str(failure) if failure is not None else ""
        health: Health = "up" if failure is None else "down"
        if health != self._health or error != self._last_error:
            if failure is None:
                self._log.info("scrape_target_up")
            else:
                self._log.warning("scrape_target_down", reason=failure.reason, error=error)
        self._health, self._last_error = health, error
        self._last_scrape, self._last_duration = start, duration
        t = self.target
        with _logged("scrape_metrics_failed"):
            self._metrics.scrape_finished(
                t.pool,
                t.instance,
                duration_seconds=duration,
                samples=len(stored),
                failure=None if failure is None else failure.reason,
            )
        report = ScrapeReport(
            t.job, t.instance, t.labels, t_ms, failure is None, error or None, duration, stored
        )
        for listener in self._listeners:
            with _logged("scrape_listener_failed"):
                listener(report)
        return report

    def status(self) -> TargetStatus:
        """The target's state now, for the targets API."""
        t = self.target
        return TargetStatus(
            scrape_pool=t.pool,
            discovered_labels=t.discovered,
            labels=t.labels,
            scrape_url=t.url,
            global_url=self._global_url,
            health=self._health,
            last_error=self._last_error,
            last_scrape=self._last_scrape,
            last_scrape_duration=self._last_duration,
            scrape_interval=t.interval,
            scrape_timeout=t.timeout,
        )


@contextlib.contextmanager
def _logged(event: str) -> Iterator[None]:
    """Log (never raise) an exception from a listener or the metrics."""
    try:
        yield
    except Exception:
        log.exception(event)
