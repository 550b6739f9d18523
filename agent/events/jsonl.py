"""The embedded event sink: one CloudEvents JSON object per line, size-rotated.

Rotation works like ``logging.handlers.RotatingFileHandler``: when the next line
would take ``events.jsonl`` past ``max_bytes`` it becomes ``events.jsonl.1``
(``.1`` becomes ``.2`` and so on, up to ``backups``) and a new file starts. Every
line is written whole with one ``write`` on an ``O_APPEND`` descriptor, so a
reader never sees half an event.

>>> import asyncio, tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "events.jsonl")
>>> async def demo() -> None:
...     async with JsonlEventSink(path) as sink:
...         await sink.emit(Event.new(type="t", source="s", subject=None, data={}, time=0))
>>> asyncio.run(demo())
>>> sum(1 for _ in open(path))
1
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from agent.errors import ComponentStateError, SinkError
from agent.model import Event


class JsonlEventSink:
    """Appends events as JSON lines to a size-rotated file."""

    def __init__(
        self,
        path: str | Path,
        *,
        max_bytes: int = 10 * 1024 * 1024,
        backups: int = 5,
        fsync: bool = False,
    ) -> None:
        self._path = Path(path)
        self._max_bytes = max_bytes
        self._backups = backups
        self._fsync = fsync
        self._fd: int | None = None
        self._size = 0
        self._state = "new"
        self._lock = asyncio.Lock()

    @property
    def path(self) -> Path:
        return self._path

    async def __aenter__(self) -> JsonlEventSink:
        self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def open(self) -> None:
        if self._state != "new":
            raise ComponentStateError(f"JSONL sink is {self._state}; it opens once")
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._open_fd()
        self._state = "open"

    def _open_fd(self) -> None:
        self._fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._size = os.fstat(self._fd).st_size

    async def emit(self, event: Event) -> None:
        if self._state != "open":
            raise ComponentStateError(f"JSONL sink is {self._state}")
        line = (json.dumps(event.to_dict(), separators=(",", ":"), default=str) + "\n").encode()
        async with self._lock:
            try:
                if self._size and self._size + len(line) > self._max_bytes:
                    self._rotate()
                assert self._fd is not None
                os.write(self._fd, line)
                self._size += len(line)
                if self._fsync:
                    await asyncio.to_thread(os.fsync, self._fd)
            except OSError as exc:
                raise SinkError(f"cannot write {self._path}: {exc.strerror}") from exc

    def _rotate(self) -> None:
        assert self._fd is not None
        os.close(self._fd)
        self._fd = None
        if self._backups > 0:
            for i in range(self._backups - 1, 0, -1):
                src = self._path.with_name(f"{self._path.name}.{i}")
                if src.exists():
                    src.replace(self._path.with_name(f"{self._path.name}.{i + 1}"))
            self._path.replace(self._path.with_name(f"{self._path.name}.1"))
        else:
            self._path.unlink(missing_ok=True)
        self._open_fd()

    async def aclose(self) -> None:
        if self._state == "closed":
            return
        self._state = "closed"
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
