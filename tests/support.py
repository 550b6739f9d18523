"""Small helpers shared by tests: free ports, waiting for servers."""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 20.0) -> None:
    """Block until something accepts TCP connections on host:port, or fail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


def require_binary(name: str) -> str:
    """Path of a server binary the tests need; a missing one is a failure, never a skip."""
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} is not installed; run `make test`, which installs it")
    return path
