"""A minimal, fast HTTP/1.1 target for the benchmarks: ``GET /health`` answers 200.

It is an ``asyncio.Protocol`` that parses just enough HTTP/1.1 to serve
health checks: keep-alive (the default in 1.1) and ``Connection: close`` are
both honoured, request bodies announced by ``Content-Length`` are skipped.
It binds only 127.0.0.1, prints ``listening <port>`` once it accepts
connections, and exits when its parent dies or after ``--max-seconds``, so a
benchmark that crashes never leaves it behind.

    python benchmarks/_target.py --port 0 --cpu 1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
from pathlib import Path

_BODY = b'{"status":"ok"}'
_OK = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Length: " + str(len(_BODY)).encode() + b"\r\n"
)
_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
_BAD = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_MAX_HEAD = 16 * 1024


class HealthProtocol(asyncio.Protocol):
    """One connection: answers each complete request head as it arrives."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._skip = 0  # body bytes of the current request still to discard

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buf += data
        while self._transport is not None and not self._transport.is_closing():
            if self._skip:
                dropped = min(self._skip, len(self._buf))
                del self._buf[:dropped]
                self._skip -= dropped
                if self._skip:
                    return
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > _MAX_HEAD:
                    self._transport.write(_BAD)
                    self._transport.close()
                return
            head = bytes(self._buf[:end])
            del self._buf[: end + 4]
            self._answer(head)

    def _answer(self, head: bytes) -> None:
        assert self._transport is not None
        request_line, _, header_block = head.partition(b"\r\n")
        parts = request_line.split(b" ")
        if len(parts) != 3:
            self._transport.write(_BAD)
            self._transport.close()
            return
        method, target, version = parts
        keep_alive = version == b"HTTP/1.1"
        for line in header_block.split(b"\r\n"):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"connection":
                token = value.strip().lower()
                keep_alive = token != b"close" and (keep_alive or token == b"keep-alive")
            elif name == b"content-length" and value.strip().isdigit():
                self._skip = int(value.strip())
        status = _OK if method in (b"GET", b"HEAD") and target == b"/health" else _NOT_FOUND
        closing = b"" if keep_alive else b"Connection: close\r\n"
        body = _BODY if status is _OK and method == b"GET" else b""
        self._transport.write(status + closing + b"\r\n" + body)
        if not keep_alive:
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None


async def serve(port: int, max_seconds: float) -> None:
    """Serve until the parent process goes away or ``max_seconds`` pass."""
    loop = asyncio.get_running_loop()
    parent = os.getppid()
    server = await loop.create_server(
        HealthProtocol, "127.0.0.1", port, backlog=4096, reuse_address=True
    )
    bound = server.sockets[0].getsockname()[1]
    print(f"listening {bound}", flush=True)
    stop = asyncio.Event()
    loop.call_later(max_seconds, stop.set)
    pidfd = os.pidfd_open(parent)  # readable once the parent has exited
    loop.add_reader(pidfd, stop.set)
    try:
        async with server:
            await stop.wait()
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)


class TargetProcess:
    """This server in a child process, pinned to ``cpu``; killed on exit.

    >>> with TargetProcess(cpu=1, max_seconds=60) as target:    # doctest: +SKIP
    ...     url = f"http://127.0.0.1:{target.port}/health"
    """

    def __init__(self, cpu: int | None, max_seconds: float) -> None:
        self._cpu = cpu
        self._max_seconds = max_seconds
        self._proc: subprocess.Popen[str] | None = None
        self.port = 0

    def __enter__(self) -> TargetProcess:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--port", "0"]
        cmd += ["--max-seconds", str(self._max_seconds)]
        if self._cpu is not None:
            cmd += ["--cpu", str(self._cpu)]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().split()
        if len(line) != 2 or line[0] != "listening":
            self.__exit__()
            raise RuntimeError(f"target did not start: {line!r}")
        self.port = int(line[1])
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
        if self._proc is not None:
            self._proc.wait(timeout=10)
            if self._proc.stdout is not None:
                self._proc.stdout.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--cpu", type=int, default=None, help="pin to this CPU")
    parser.add_argument("--max-seconds", type=float, default=900.0)
    args = parser.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, args.max_seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
