"""Where targets come from: static and file_sd target groups, turned into targets.

A :class:`TargetGroup` is a list of addresses with common labels, as in
Prometheus's discovery. :class:`FileSDWatcher` reads Prometheus's ``file_sd``
files (JSON or YAML: a list of ``{targets: [...], labels: {...}}``), polls them
for a changed mtime or size every ``poll_interval`` seconds (no inotify) and
re-reads all of them every ``refresh_interval``; a file that cannot be read or
parsed keeps its last good groups and is logged. :func:`build_target` applies
Prometheus's label rules and ``relabel_configs`` to one address.

>>> from agent.config import ScrapeConfig
>>> cfg = ScrapeConfig(job_name="api", static_configs=[{"targets": ["h:9100"]}])
>>> t = build_target(cfg, "h:9100", (), interval=15.0, timeout=10.0)
>>> t.url, dict(t.labels)
('http://h:9100/metrics', {'instance': 'h:9100', 'job': 'api'})
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote, urlencode

import structlog
import yaml
from pydantic import BeforeValidator, Field, TypeAdapter, ValidationError

from agent.config import ScrapeConfig, format_duration, parse_duration
from agent.config.scrape import FileSDConfig
from agent.config.types import StrictModel
from agent.scrape.relabel import relabel
from agent.tsdb.base import Labels, labels_from

log = structlog.get_logger(__name__)

_EXTENSIONS = (".json", ".yml", ".yaml")


@dataclass(frozen=True, slots=True)
class TargetGroup:
    """Addresses sharing labels; ``source`` names where the group came from."""

    targets: tuple[str, ...]
    labels: Labels
    source: str


@dataclass(frozen=True, slots=True)
class Target:
    """A target after relabelling: where to scrape it and the labels its series get.

    ``labels`` are the public labels (no ``__`` prefix), attached to every
    sample; ``discovered`` are the labels before relabelling.
    """

    pool: str
    labels: Labels
    discovered: Labels
    url: str
    interval: float
    timeout: float

    def label(self, name: str, default: str = "") -> str:
        return next((v for k, v in self.labels if k == name), default)

    @property
    def instance(self) -> str:
        return self.label("instance")

    @property
    def job(self) -> str:
        return self.label("job", self.pool)


@dataclass(frozen=True, slots=True)
class DroppedTarget:
    """A target that relabelling dropped: its scrape pool and discovered labels."""

    pool: str
    discovered: Labels


class InvalidTarget(ValueError):
    """A target whose labels do not make a scrapable target (no address, bad interval)."""


def static_groups(cfg: ScrapeConfig) -> list[TargetGroup]:
    """The job's ``static_configs`` as target groups."""
    return [
        TargetGroup(tuple(sc.targets), labels_from(sc.labels), f"static:{i}")
        for i, sc in enumerate(cfg.static_configs)
    ]


def _discovered(
    cfg: ScrapeConfig, address: str, group_labels: Labels, interval: float, timeout: float
) -> dict[str, str]:
    out = {"__address__": address}
    for name, value in group_labels:
        out.setdefault(name, value)
    defaults = {
        "job": cfg.job_name,
        "__scrape_interval__": format_duration(interval),
        "__scrape_timeout__": format_duration(timeout),
        "__metrics_path__": cfg.metrics_path,
        "__scheme__": cfg.scheme,
    }
    for name, value in defaults.items():
        if not out.get(name):
            out[name] = value
    for key, values in cfg.params.items():
        if values and not out.get(f"__param_{key}"):
            out[f"__param_{key}"] = values[0]
    return out


def _duration(labels: Mapping[str, str], name: str, what: str) -> float:
    try:
        seconds = parse_duration(labels.get(name, ""))
    except ValueError as exc:
        raise InvalidTarget(f"error parsing {what}: {exc}") from None
    if seconds <= 0:
        raise InvalidTarget(f"{what} cannot be 0")
    return seconds


def _url(cfg: ScrapeConfig, labels: Mapping[str, str]) -> str:
    params = {k: list(v) for k, v in cfg.params.items()}
    for name, value in labels.items():
        if name.startswith("__param_"):
            key = name.removeprefix("__param_")
            if params.get(key):
                params[key][0] = value
            else:
                params[key] = [value]
    query = urlencode([(k, v) for k in sorted(params) for v in params[k]])
    path = quote(labels.get("__metrics_path__", ""), safe="/:@!$&'()*+,;=-._~%")
    url = f"{labels.get('__scheme__', 'http')}://{labels['__address__']}{path}"
    return f"{url}?{query}" if query else url


def build_target(
    cfg: ScrapeConfig, address: str, group_labels: Labels, *, interval: float, timeout: float
) -> Target | DroppedTarget:
    """One address of a job as a target, the way Prometheus's ``PopulateLabels`` does.

    Raises :class:`InvalidTarget` when the relabelled labels cannot be scraped.
    """
    discovered = _discovered(cfg, address, group_labels, interval, timeout)
    before = labels_from(discovered)
    labels = relabel(discovered, cfg.relabel_configs)
    if labels is None:
        return DroppedTarget(cfg.job_name, before)
    addr = labels.get("__address__", "")
    if not addr:
        raise InvalidTarget("no address")
    if "/" in addr:
        raise InvalidTarget(f"{addr!r} is not a valid hostname")
    every = _duration(labels, "__scrape_interval__", "scrape interval")
    bound = _duration(labels, "__scrape_timeout__", "scrape timeout")
    if bound > every:
        raise InvalidTarget("scrape timeout cannot be greater than scrape interval")
    labels = {k: v for k, v in labels.items() if not k.startswith("__meta_")}
    labels.setdefault("instance", addr)
    public = labels_from({k: v for k, v in labels.items() if not k.startswith("__")})
    return Target(cfg.job_name, public, before, _url(cfg, labels), every, bound)


# --------------------------------------------------------------------------- file_sd


def _label_value(v: object) -> object:
    return str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v


class _FileGroup(StrictModel):
    targets: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    labels: dict[
        Annotated[str, Field(min_length=1)], Annotated[str, BeforeValidator(_label_value)]
    ] = Field(default_factory=dict)


_FILE_GROUPS: TypeAdapter[list[_FileGroup]] = TypeAdapter(list[_FileGroup])


def read_file_sd(path: str) -> list[TargetGroup]:
    """The target groups of one file_sd file; raises ValueError or OSError when it is bad."""
    if not path.endswith(_EXTENSIONS):
        raise ValueError("file_sd files must end in .json, .yml or .yaml")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"invalid YAML: {exc}") from None
    groups = _FILE_GROUPS.validate_python(data if data is not None else [])
    return [
        TargetGroup(
            tuple(g.targets), labels_from({**g.labels, "__meta_filepath": path}), f"{path}:{i}"
        )
        for i, g in enumerate(groups)
    ]


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"{where}: {first['msg']}" if where else first["msg"]
    if isinstance(exc, OSError):
        return exc.strerror or exc.__class__.__name__
    return str(exc)


@dataclass(slots=True)
class _File:
    stamp: tuple[int, int]
    groups: list[TargetGroup]


class FileSDWatcher:
    """Watches one ``file_sd_configs`` entry and calls ``on_change`` when its groups change.

    Paths and globs are relative to ``base_dir``. Until :meth:`start`, nothing
    polls; :meth:`refresh` reads synchronously (the manager calls it once on apply).

    >>> from pathlib import Path
    >>> w = FileSDWatcher(FileSDConfig(files=["none/*.json"]), "/nonexistent", lambda: None)
    >>> w.refresh(), w.groups()
    (False, [])
    """

    def __init__(
        self,
        config: FileSDConfig,
        base_dir: str | os.PathLike[str],
        on_change: Callable[[], None],
        *,
        poll_interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._patterns = [os.path.join(base_dir, p) for p in config.files]
        self._on_change = on_change
        self._poll = poll_interval
        self._clock = clock
        self._files: dict[str, _File] = {}
        self._last_full = clock()
        self._task: asyncio.Task[None] | None = None

    def groups(self) -> list[TargetGroup]:
        return [g for path in sorted(self._files) for g in self._files[path].groups]

    def _paths(self) -> list[str]:
        found = {p for pattern in self._patterns for p in glob.glob(pattern)}
        return sorted(found)

    def refresh(self, *, force: bool = False) -> bool:
        """Re-read new, changed (mtime or size) or, with ``force``, all files; True on change."""
        before = self.groups()
        seen: dict[str, _File] = {}
        for path in self._paths():
            try:
                st = os.stat(path)
            except OSError:
                continue  # vanished between glob and stat
            stamp = (st.st_mtime_ns, st.st_size)
            old = self._files.get(path)
            if old is not None and old.stamp == stamp and not force:
                seen[path] = old
                continue
            seen[path] = _File(stamp, self._read(path, old))
        self._files = seen
        return self.groups() != before

    @staticmethod
    def _read(path: str, old: _File | None) -> list[TargetGroup]:
        try:
            groups = read_file_sd(path)
        except (OSError, ValueError) as exc:
            log.error("file_sd_read_failed", path=path, error=_reason(exc), kept=old is not None)
            return old.groups if old is not None else []
        log.debug("file_sd_read", path=path, groups=len(groups))
        return groups

    def start(self) -> None:
        """Start polling (on the running event loop)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"file_sd:{self._patterns[0]}")
            self._task.add_done_callback(_crashed)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._poll)
            force = self._clock() - self._last_full >= self.config.refresh_interval
            if force:
                self._last_full = self._clock()
            if self.refresh(force=force):
                try:
                    self._on_change()
                except Exception:
                    log.exception("file_sd_update_failed", files=self.config.files)

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _crashed(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("file_sd_task_crashed", task=task.get_name(), exc_info=task.exception())
