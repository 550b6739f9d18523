"""Small file helpers of the state stores: read if present, replace atomically.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "s.json"
>>> write_atomically(path, "{}", fsync=False)
>>> read_text_if_exists(path)
'{}'
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def read_text_if_exists(path: Path) -> str | None:
    """The file's text, or None when there is no such file."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def write_atomically(path: Path, text: str, *, fsync: bool = True) -> None:
    """Replace ``path`` with ``text`` so that a reader or a crash sees the old or the new file.

    The text goes to a temporary file in the same directory, which is flushed,
    fsynced and renamed over ``path``; then the directory is fsynced so the
    rename itself is durable.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if fsync:
        _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    """fsync a directory (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
