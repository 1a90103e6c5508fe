"""VisionqClient sends an image URL with other images to the real API (issue 17)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.integration.conftest import Stack
from tests.integration.helpers import scene_png
from tests.services import free_port
from visionq.client.api import VisionqClient

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def image_url() -> Iterator[str]:
    """A PNG served on 127.0.0.2, the address the integration stack treats as public."""
    png, _ = scene_png(46, 320, 240)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(png)))
            self.end_headers()
            self.wfile.write(png)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.2", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.2:{server.server_address[1]}/scene.png"
    finally:
        server.shutdown()
        server.server_close()


def test_a_url_a_path_and_bytes_in_one_job(stack: Stack, image_url: str, tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    photo.write_bytes(scene_png(47, 400, 300)[0])
    with VisionqClient(stack.api_url, stack.keys["acme"]) as client:
        estimate = client.estimate([image_url, photo], task="compare")
        job = client.submit([image_url, photo, scene_png(48, 480, 360)[0]], task="compare")
        done = client.wait([job.id], timeout=60)[job.id]
    assert [image["width"] for image in estimate["images"]] == [320, 400]
    assert done.status == "succeeded", done.error
    sizes = [(item.width, item.height) for item in done.inputs]
    assert sizes == [(320, 240), (400, 300), (480, 360)]
