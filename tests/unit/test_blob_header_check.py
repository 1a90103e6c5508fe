"""Batch intake's downscale check of an image referenced by sha256 reads its header only
(api/batch_images.py::check_stored_downscale): one ranged read on S3/GCS, not the image."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from visionq.api.batch_images import HEADER_BYTES, check_stored_downscale
from visionq.api.errors import ApiError
from visionq.models.blobs import BlobStore
from visionq.models.settings import Settings

SETTINGS = Settings(image_decode_max_bytes=16 * 1024 * 1024)


def _jpeg(icc_bytes: int = 0) -> bytes:
    # 4000x3000 RGB: 36 MB decoded, over the 16 MiB bound when shrunk to 3900 px.
    out = io.BytesIO()
    extra = {"icc_profile": b"\0" * icc_bytes} if icc_bytes else {}
    Image.new("RGB", (4000, 3000), (200, 100, 50)).save(out, "JPEG", quality=50, **extra)
    # Bytes after the end-of-image marker (decoders ignore them) make it longer than the head.
    return out.getvalue() + b"\0" * HEADER_BYTES


class CountingStore(BlobStore):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.whole_reads = 0

    def get(self, sha256: str) -> bytes:
        self.whole_reads += 1
        return super().get(sha256)


@pytest.mark.parametrize("icc_bytes, whole_reads", [(0, 0), (HEADER_BYTES + 4096, 1)])
def test_header_within_the_head_is_checked_without_reading_the_image(
    tmp_path: Path, icc_bytes: int, whole_reads: int
) -> None:
    store = CountingStore(str(tmp_path))
    data = _jpeg(icc_bytes)
    assert len(data) > HEADER_BYTES  # else the head is the whole image anyway
    sha256 = store.put(data)
    with pytest.raises(ApiError) as raised:
        check_stored_downscale(store, sha256, 3900, SETTINGS, "Image 1")
    assert raised.value.code == "image_too_large"
    # A header past the first bytes (a large ICC block) falls back to the whole image.
    assert store.whole_reads == whole_reads
    check_stored_downscale(store, sha256, 5000, SETTINGS, "Image 1")  # already fits
