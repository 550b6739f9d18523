"""A real Prometheus server for integration tests."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from tests.support import free_port, require_binary


@asynccontextmanager
async def run_prometheus(
    tmp_path: Path, config: str | Callable[[int], str]
) -> AsyncIterator[httpx.AsyncClient]:
    """Run Prometheus on a free port with ``config`` (text, or a function of the port it
    listens on); yield a client for its API once ready."""
    binary = require_binary("prometheus")
    port = free_port()
    (tmp_path / "prometheus.yml").write_text(config(port) if callable(config) else config)
    with (tmp_path / "prometheus.log").open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            binary,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
                await _until_ready(client, proc)
                yield client
        finally:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def _until_ready(client: httpx.AsyncClient, proc: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and proc.returncode is None:
        try:
            if (await client.get("/-/ready")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise TimeoutError(f"Prometheus did not become ready (exit code {proc.returncode})")
