"""Sample images for the prepare_image and downscale tests (vision/prepare.py): encoded
and decoded bytes, EXIF orientations, pictures that tell every flip and turn apart and
animation frames."""

import io
import random
from typing import Any

from PIL import Image, ImageChops, ImageStat

LIMIT = 10**7
ORIENTATION = 0x0112
# The stored image for orientation o is the upright one turned by the inverse of what
# the EXIF tag asks a viewer to do.
INVERSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def encode(image: Image.Image, fmt: str, **params: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def decode(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.copy()


def exif(orientation: int) -> bytes:
    tags = Image.Exif()
    tags[ORIENTATION] = orientation
    tags[0x010F] = "TestCam"  # Make: other tags go too when the image is re-encoded
    return tags.tobytes()


def asymmetric(size: tuple[int, int] = (64, 48)) -> Image.Image:
    """Flat blocks (JPEG-friendly) that tell every flip and turn apart."""
    image = Image.new("RGB", size, (40, 40, 40))
    w, h = size
    image.paste((220, 30, 30), (0, 0, w // 2, h // 2))  # top-left red
    image.paste((30, 200, 30), (w // 2, 0, w, h // 4))  # top-right green strip
    image.paste((30, 30, 220), (0, 3 * h // 4, w // 4, h))  # bottom-left blue corner
    return image


def mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    assert a.size == b.size
    diff = ImageChops.difference(a.convert("RGB"), b.convert("RGB"))
    return sum(ImageStat.Stat(diff).mean) / 3


def photo(size: tuple[int, int] = (160, 120)) -> Image.Image:
    rng = random.Random(7)
    image = asymmetric(size)
    for _ in range(200):
        x, y = rng.randrange(max(1, size[0] - 8)), rng.randrange(max(1, size[1] - 8))
        image.paste(tuple(rng.randrange(256) for _ in range(3)), (x, y, x + 8, y + 8))
    return image


def frames() -> list[Image.Image]:
    return [Image.new("RGB", (12, 10), colour) for colour in ("red", "blue", "green")]
