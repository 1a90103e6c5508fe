"""A small local HTTP server for tests that POST to it (worker.webhook_send, netguard's
pinned_send): quiet, threaded, served in a daemon thread for as long as the block runs."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator


class QuietServer(http.server.ThreadingHTTPServer):
    """A threaded server that logs nothing (aborted connections are part of the tests)."""

    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # aborted connections are part of the tests


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """HTTP/1.1 and no access log; subclasses answer do_POST."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serving(server: QuietServer) -> Iterator[int]:
    """Serve ``server`` in a daemon thread; yield its port; shut it down after the block."""
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
