"""A job whose downscale (options.max_side) would pass the per-image memory bound is a 413
at submit, not a job that fails in the worker after waiting in the queue."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from api.errors import ApiError
from api.rawjob import RawJob
from api.validation import admit
from models.settings import Settings
from vision.catalogue import load_catalogue

MIB = 1024 * 1024


def _png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def big_png() -> bytes:
    # 4000x4000 RGB: checked row by row at submit (a few MB), but ~50 MB to downscale.
    return _png(4000, 4000)


def _settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, image_decode_max_bytes=16 * MIB)


def test_a_downscale_over_the_bound_is_refused_at_submit(tmp_path: Path, big_png: bytes) -> None:
    raw = RawJob(task="caption", options={"max_side": 512}, images=[big_png])
    with pytest.raises(ApiError) as caught:
        admit(raw, _settings(tmp_path), load_catalogue())
    assert caught.value.status == 413 and caught.value.code == "image_too_large"
    assert "downscaling it" in caught.value.message and "16 MB" in caught.value.message


def test_the_same_image_without_a_downscale_is_admitted(tmp_path: Path, big_png: bytes) -> None:
    admitted = admit(
        RawJob(task="caption", images=[big_png]), _settings(tmp_path), load_catalogue()
    )
    assert admitted.images[0].width == 4000
    small = admit(
        RawJob(task="caption", options={"max_side": 512}, images=[_png(800, 600)]),
        _settings(tmp_path),
        load_catalogue(),
    )
    assert small.options == {"max_side": 512}
