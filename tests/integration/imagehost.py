"""A tiny HTTP image host for the URL-input tests: 127.0.0.2 stands for a public host (the
integration stacks allow it); other local addresses stay forbidden."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.services import free_port

PUBLIC_HOST = "127.0.0.2"


@dataclass
class ImageHost:
    """A server that counts the requests it gets and serves one PNG at any path;
    ``/redirect?to=URL`` answers a 302 to URL."""

    host: str
    port: int
    png: bytes
    hits: int = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@contextlib.contextmanager
def serve_png(png: bytes, host: str = PUBLIC_HOST, port: int | None = None) -> Iterator[ImageHost]:
    """Serve ``png`` on ``host`` (a free port unless given) until the block ends."""
    served = ImageHost(host, free_port() if port is None else port, png)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served.hits += 1
            if self.path.startswith("/redirect"):
                self.send_response(302)
                self.send_header("Location", self.path.split("to=", 1)[1])
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(served.png)))
            self.end_headers()
            self.wfile.write(served.png)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((served.host, served.port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
