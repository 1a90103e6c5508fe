"""A job whose downscale (options.max_side) would pass the per-image memory bound is a 413
at submit, not a job that fails in the worker after waiting in the queue."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageFile

from visionq.api.errors import ApiError
from visionq.api.job_checks import admit
from visionq.api.rawjob import RawJob
from visionq.models.settings import Settings
from visionq.vision.catalogue import load_catalogue
from visionq.vision.prepare import downscale_memory

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
    assert small.options.stored() == {"max_side": 512}


def test_the_downscale_cost_is_read_without_decoding_a_pixel(
    big_png: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pillow reads a PNG's orientation by decoding it whole: the estimate must not ask
    (8 parallel 10000x10000 PNG submits took the API to 2.8 GB that way)."""

    decoded: list[str] = []

    def record(self: ImageFile.ImageFile) -> None:
        # Recorded, not raised: an orientation read swallows errors.
        decoded.append(type(self).__name__)

    monkeypatch.setattr(ImageFile.ImageFile, "load", record)
    found = downscale_memory(big_png, 512)
    assert found is not None and found[:2] == (4000, 4000) and found[2] > 48 * MIB
    assert decoded == []
