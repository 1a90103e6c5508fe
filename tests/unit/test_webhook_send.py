"""worker.webhook_send.post: one attempt's outcome for each thing a receiver or the network
does (2xx, 410, other statuses with Retry-After, a redirect not followed, a stall cut at the
deadline, connection refused, a URL refused by the SSRF check at send time)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

from tests.unit.http_stub import QuietHandler, QuietServer, serving
from visionq.models.netguard import parse_networks
from visionq.worker.webhook_send import _retry_after, post

LOOPBACK = parse_networks(["127.0.0.0/8"])


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[str, list[bytes]]]:
    """Answers by path: /204, /410, /503 (Retry-After: 7), /302, /stall (no answer)."""
    bodies: list[bytes] = []
    stop = threading.Event()

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            bodies.append(self.rfile.read(int(self.headers.get("content-length") or 0)))
            self.close_connection = True
            with contextlib.suppress(OSError):
                if self.path == "/stall":
                    stop.wait(10)
                    return
                status = int(self.path.strip("/"))
                text = b"busy, come back later" if status == 503 else b""
                self.send_response(status)
                if status == 503:
                    self.send_header("Retry-After", "7")
                if status == 302:
                    self.send_header("Location", "http://127.0.0.1:1/elsewhere")
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

    with serving(QuietServer(("127.0.0.1", 0), Handler)) as port:
        yield f"http://127.0.0.1:{port}", bodies
        stop.set()


def _post(url: str, timeout_s: float = 3.0) -> tuple[str, int | None, str | None, float | None]:
    result = post(
        url, b'{"type":"job.succeeded"}', {"content-type": "application/json"},
        timeout_s=timeout_s, networks=LOOPBACK, require_https=False,
    )  # fmt: skip
    assert result.latency_ms >= 0
    return result.outcome, result.status_code, result.error, result.retry_after_s


def test_a_2xx_is_delivered(receiver: tuple[str, list[bytes]]) -> None:
    base, bodies = receiver
    assert _post(f"{base}/204") == ("succeeded", 204, None, None)
    assert bodies[-1] == b'{"type":"job.succeeded"}'


def test_410_means_gone(receiver: tuple[str, list[bytes]]) -> None:
    assert _post(f"{receiver[0]}/410")[:2] == ("gone", 410)


def test_a_503_keeps_its_text_and_retry_after(receiver: tuple[str, list[bytes]]) -> None:
    assert _post(f"{receiver[0]}/503") == (
        "http_error", 503, "HTTP 503: busy, come back later", 7.0,
    )  # fmt: skip


def test_a_redirect_is_a_failure_not_followed(receiver: tuple[str, list[bytes]]) -> None:
    count = len(receiver[1])
    assert _post(f"{receiver[0]}/302")[:2] == ("http_error", 302)
    assert len(receiver[1]) == count + 1


def test_a_stalled_receiver_is_a_timeout(receiver: tuple[str, list[bytes]]) -> None:
    outcome, status, error, _ = _post(f"{receiver[0]}/stall", timeout_s=0.5)
    assert (outcome, status) == ("timeout", None) and "0.5 s" in (error or "")


def test_a_closed_port_is_a_network_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert _post(f"http://127.0.0.1:{port}/")[:3] == ("network_error", None, "connection refused")


def test_a_private_address_is_refused_at_send_time() -> None:
    result = post(
        "http://hooks.test/in", b"{}", {}, timeout_s=1, networks=(), require_https=False,
        resolve=lambda host, port: ["10.0.0.5"],
    )  # fmt: skip
    assert result.outcome == "refused" and result.status_code is None
    assert result.error is not None and "10.0.0.5" in result.error


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(None, None), ("", None), ("12", 12.0), ("-3", None), ("soon", None), ("1e9", 86400.0),
     ("Wed, 21 Oct 2015 07:28:00 GMT", None)],
)  # fmt: skip
def test_retry_after_values(value: str | None, seconds: float | None) -> None:
    assert _retry_after(value) == seconds
