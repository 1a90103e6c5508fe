"""VisionqClient sends an image URL with other images to the real API (issue 17)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Stack
from tests.integration.helpers import scene_png
from tests.integration.imagehost import serve_png
from visionq.client.api import VisionqClient

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def image_url() -> Iterator[str]:
    """A PNG served on 127.0.0.2, the address the integration stack treats as public."""
    png, _ = scene_png(46, 320, 240)
    with serve_png(png) as host:
        yield f"{host.url}/scene.png"


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
