"""While the server answers 503 (its store or database down), the client says it is
retrying and why, instead of waiting in silence (review of issue 23, finding 6)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from visionq.client.api import VisionqClient

OUTAGE = "The object store at http://minio:9000 failed or did not answer (timed out)"
JOB = {"id": "j1", "status": "queued", "task": "caption", "model": "m",
       "created_at": "2026-11-24T00:00:00Z"}  # fmt: skip


def _error(status: int, code: str, message: str) -> httpx.Response:
    body = {"error": {"code": code, "message": message}}
    return httpx.Response(status, json=body, headers={"Retry-After": "0"})


def test_each_retry_after_a_503_is_announced_with_its_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    answers = [
        _error(503, "unavailable", OUTAGE),
        _error(429, "rate_limited", "slow down"),  # a rate limit is routine: no notice
        httpx.Response(202, json=JOB),
    ]
    transport = httpx.MockTransport(lambda request: answers.pop(0))
    with (
        caplog.at_level(logging.WARNING, logger="visionq.client"),
        VisionqClient("http://api.test", "k", transport=transport) as client,
    ):
        assert client.submit([b"png"], task="caption", retries=3).id == "j1"
    lines = [record.getMessage() for record in caplog.records]
    expected = f"server unavailable (503 unavailable: {OUTAGE}); retrying in 0 s (try 2 of 4)"
    assert lines == [expected]


class _Unavailable(BaseHTTPRequestHandler):
    """Answers every request 503 with a store-outage message and Retry-After: 0."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"error": {"code": "unavailable", "message": OUTAGE}}).encode()
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Retry-After", "0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def unavailable_api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Unavailable)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_visionq_submit_prints_why_it_is_retrying(unavailable_api: str, tmp_path: Path) -> None:
    image = tmp_path / "a.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    done = subprocess.run(
        [sys.executable, "-m", "visionq.cli", "submit", str(image), "--task", "caption",
         "--url", unavailable_api, "--api-key", "k"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0  # gives up after its bounded retries
    notices = [line for line in done.stderr.splitlines() if "retrying in" in line]
    assert notices and OUTAGE in notices[0], done.stderr
