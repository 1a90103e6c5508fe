"""The batch benchmark's unique image copies: other bytes (a new sha256), the same pixels."""

from __future__ import annotations

import hashlib
import io

from PIL import Image

from bench.perf.batch import unique_images
from bench.perf.images import image_pool


def test_copies_differ_in_bytes_not_in_pixels() -> None:
    pool = image_pool(2, sides=(256, 320))  # one JPEG, one PNG
    copies = unique_images(pool, 0, 6)
    assert len({hashlib.sha256(copy.data).hexdigest() for copy in copies}) == 6
    for index, copy in enumerate(copies):
        base = pool[index % 2]
        with Image.open(io.BytesIO(copy.data)) as made, Image.open(io.BytesIO(base.data)) as was:
            made.load()  # a broken chunk or segment fails here (PNG CRC, JPEG markers)
            assert made.format == was.format
            assert made.tobytes() == was.tobytes()
