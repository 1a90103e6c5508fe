"""A webhook receiver for tests: verifies every request with the Standard Webhooks reference
library (``standardwebhooks``), as a real consumer would, and records what it got.

It answers scripted statuses (``script(n)`` for the n-th request, counted from 1; 204 by
default) and can go ``down()`` (socket closed: the sender sees connection refused) and ``up()``
again on the same port.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError

PATH = "/hook"


@dataclass(frozen=True)
class Received:
    """One request as received: its Standard Webhooks id, event type, subject id (``data.id``),
    whether a signature verified with one of the receiver's secrets, and the status answered."""

    msg_id: str
    type: str
    subject_id: str
    verified: bool
    body: bytes
    headers: dict[str, str]
    at: float  # time.time() when it arrived
    status: int = 204

    @property
    def ok(self) -> bool:
        """True when the receiver answered 2xx (the sender counts it delivered)."""
        return 200 <= self.status < 300

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class Receiver:
    """A threaded HTTP receiver on ``host`` (127.0.0.1 by default; tests/integration stacks
    allow 127.0.0.2); ``url`` is where to point an endpoint."""

    def __init__(
        self,
        secrets: Sequence[str],
        *,
        port: int = 0,
        script: Callable[[int], int] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.secrets = list(secrets)
        self.host = host
        self.script = script
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._count = 0
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.up()

    @property
    def port(self) -> int:
        """The bound port (kept across down()/up())."""
        return self._port

    @property
    def url(self) -> str:
        """The URL to register: http://<host>:<port>/hook."""
        return f"http://{self.host}:{self._port}{PATH}"

    def up(self) -> None:
        """Start listening (again, on the same port); no-op when already up."""
        if self._server is not None:
            return
        server = ThreadingHTTPServer((self.host, self._port), self._handler())
        server.daemon_threads = True
        self._port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def down(self) -> None:
        """Stop listening and close the socket: new connections are refused."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def close(self) -> None:
        """Stop for good."""
        self.down()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def snapshot(self) -> list[Received]:
        """A copy of what was received so far."""
        with self._lock:
            return list(self.received)

    def delivered(self) -> list[Received]:
        """The requests answered 2xx."""
        return [r for r in self.snapshot() if r.ok]

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float) -> None:
        """Wait until ``predicate(received)`` holds; AssertionError with a summary on timeout."""
        end = time.monotonic() + timeout
        while True:
            got = self.snapshot()
            if predicate(got):
                return
            if time.monotonic() >= end:
                ok = sum(r.ok for r in got)
                raise AssertionError(
                    f"the receiver did not get what was expected in {timeout} s: "
                    f"{len(got)} requests ({ok} answered 2xx, "
                    f"{sum(not r.verified for r in got)} unverified)"
                )
            time.sleep(0.05)

    # --- request handling --------------------------------------------------------------

    def _verify(self, body: bytes, headers: dict[str, str]) -> bool:
        for secret in self.secrets:
            try:
                Webhook(secret).verify(body, headers)
            except WebhookVerificationError:
                continue
            return True
        return False

    def _answer(self, body: bytes, headers: dict[str, str]) -> int:
        with self._lock:
            self._count += 1
            n = self._count
        status = self.script(n) if self.script is not None else 204
        try:
            parsed = json.loads(body)
            kind = str(parsed.get("type", ""))
            subject = str((parsed.get("data") or {}).get("id", ""))
        except (ValueError, AttributeError):
            kind = subject = ""
        record = Received(
            msg_id=headers.get("webhook-id", ""),
            type=kind,
            subject_id=subject,
            verified=self._verify(body, headers),
            body=body,
            headers=headers,
            at=time.time(),
            status=status,
        )
        with self._lock:
            self.received.append(record)
        return status

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                status = receiver._answer(body, headers)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.send_header("connection", "close")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return  # quiet: tests read .received instead

        return Handler
