"""API errors name the image by its file name (multipart) or URL (JSON), and say "Image #N"
only for an image that has no name (issue 17, bug 3: "Image #1" for coffee.gif)."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from PIL import Image

from visionq.api.errors import ApiError
from visionq.api.job_checks import admit
from visionq.api.rawjob import RawJob, image_label
from visionq.api.request_body import _json_images
from visionq.api.schemas import JobCreate
from visionq.models.settings import Settings
from visionq.vision.catalogue import load_catalogue


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def _refusal(tmp_path: Path, raw: RawJob, **settings: object) -> ApiError:
    with pytest.raises(ApiError) as caught:
        admit(raw, Settings(data_dir=tmp_path, **settings), load_catalogue())  # type: ignore[arg-type]
    return caught.value


@pytest.mark.parametrize(
    ("names", "shown"),
    [
        (["shapes.png", "coffee.gif"], "Image 'coffee.gif': The file is not a"),
        ([None, "https://example.com/coffee.gif"], "Image 'https://example.com/coffee.gif': "),
        (["shapes.png", None], "Image #2: The file is not a"),
        ([], "Image #2: The file is not a"),
        (["shapes.png", "  "], "Image #2: "),
    ],
)
def test_a_bad_image_is_named(tmp_path: Path, names: list[str | None], shown: str) -> None:
    raw = RawJob(task="compare", images=[_png(), b"not an image at all\n"], image_names=names)
    refused = _refusal(tmp_path, raw)
    assert refused.code == "unsupported_media_type"
    assert refused.message.startswith(shown), refused.message
    assert "Image #1" not in refused.message


def test_an_empty_and_a_too_large_image_are_named(tmp_path: Path) -> None:
    empty = RawJob(task="caption", images=[b""], image_names=["coffee.gif"])
    assert _refusal(tmp_path, empty).message == "Image 'coffee.gif' is empty."
    big = RawJob(task="caption", images=[_png() + b"\0" * 2000], image_names=["coffee.gif"])
    message = _refusal(tmp_path, big, max_image_bytes=1024).message
    assert message.startswith("The image 'coffee.gif' is ")


def test_a_hostile_name_is_shown_printable_and_short() -> None:
    shown = image_label("a\nb\x1b[31m" + "x" * 500, 0)
    assert "\n" not in shown and "\x1b" not in shown and len(shown) < 140
    assert image_label(None, 4) == "Image #5"


def test_a_url_that_cannot_be_fetched_is_named(tmp_path: Path) -> None:
    url = "http://127.0.0.1:9/coffee.gif"
    payload = JobCreate(task="caption", images=[{"url": url}])
    with pytest.raises(ApiError) as caught:
        asyncio.run(_json_images(payload, Settings(data_dir=tmp_path)))
    assert caught.value.code == "url_host_not_allowed"
    assert caught.value.message.startswith(f"images[0].url {url}: ")
