"""Sentry reports leave the process with every configured secret scrubbed."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sentry_sdk

from agent.logs import SCRUBBER, init_sentry

pytestmark = pytest.mark.integration


class _Collector(BaseHTTPRequestHandler):
    bodies: list[bytes] = []

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Encoding") == "gzip":
            raw = gzip.decompress(raw)
        _Collector.bodies.append(raw)
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.fixture
def sentry_endpoint() -> Iterator[str]:
    """A local HTTP server standing in for Sentry's ingest endpoint."""
    _Collector.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://publickey@127.0.0.1:{server.server_address[1]}/1"
    server.shutdown()
    server.server_close()
    thread.join()


def test_sentry_starts_only_with_a_dsn() -> None:
    """Without SENTRY_DSN nothing is initialised."""
    assert init_sentry({}, "0.0.0") is False


def test_sentry_events_are_scrubbed_and_carry_no_pii(sentry_endpoint: str) -> None:
    """A reported error reaches Sentry with secrets and URL credentials redacted."""
    SCRUBBER.update({"tok-super-secret-1"})
    try:
        assert init_sentry({"SENTRY_DSN": sentry_endpoint}, "0.1.0") is True
        try:
            raise RuntimeError("call to https://bot:pw-in-url@api/x failed: tok-super-secret-1")
        except RuntimeError as exc:
            sentry_sdk.capture_exception(exc)
        sentry_sdk.flush(timeout=5)
    finally:
        sentry_sdk.get_client().close(timeout=2)
        SCRUBBER.update(())
    body = b"".join(_Collector.bodies)
    assert b"RuntimeError" in body
    assert b"tok-super-secret-1" not in body
    assert b"pw-in-url" not in body
    assert b"[redacted]" in body
