"""downscale (vision/prepare.py): the size, encoding and frame of a smaller copy."""

from typing import Any

import pytest
from PIL import Image, ImageOps

from tests.unit.imagebytes import INVERSE, LIMIT, decode, encode, exif, mean_abs_diff, photo
from visionq.vision.prepare import downscale, prepare_image

# --- Downscale --------------------------------------------------------------------------


def test_downscale_is_none_when_the_image_fits() -> None:
    assert downscale(encode(photo((160, 120)), "JPEG"), "image/jpeg", max_side=160) is None
    assert downscale(encode(photo((160, 120)), "PNG"), "image/png", max_side=1024) is None


@pytest.mark.parametrize(
    ("size", "max_side", "expected"),
    [
        ((300, 200), 100, (100, 67)),
        ((200, 300), 100, (67, 100)),
        ((400, 201), 200, (200, 101)),  # 100.5 rounds up
        ((400, 199), 200, (200, 100)),  # 99.5 rounds up
        ((1000, 3), 100, (100, 1)),  # never zero
        ((256, 256), 64, (64, 64)),
    ],
)
def test_downscale_gives_the_exact_size(
    size: tuple[int, int], max_side: int, expected: tuple[int, int]
) -> None:
    result = downscale(encode(photo(size), "PNG"), "image/png", max_side=max_side)
    assert result is not None
    data, mime, width, height = result
    assert (mime, (width, height)) == ("image/png", expected)
    assert decode(data).size == expected


@pytest.mark.parametrize(
    ("fmt", "mode", "params", "mime", "out_mime", "out_mode"),
    [
        ("JPEG", "RGB", {}, "image/jpeg", "image/jpeg", "RGB"),
        ("JPEG", "L", {}, "image/jpeg", "image/jpeg", "L"),
        ("WEBP", "RGB", {}, "image/webp", "image/jpeg", "RGB"),
        ("WEBP", "RGB", {"lossless": True}, "image/webp", "image/png", "RGB"),
        ("PNG", "RGB", {}, "image/png", "image/png", "RGB"),
        ("PNG", "RGBA", {}, "image/png", "image/png", "RGBA"),
        ("PNG", "P", {}, "image/png", "image/png", "RGB"),
        ("PNG", "1", {}, "image/png", "image/png", "L"),
    ],
)
def test_downscale_encoding_follows_the_source(
    fmt: str, mode: str, params: dict[str, Any], mime: str, out_mime: str, out_mode: str
) -> None:
    image = photo((320, 240)).convert(mode)
    if mode == "RGBA":
        image.putalpha(128)
    result = downscale(encode(image, fmt, **params), mime, max_side=160)
    assert result is not None
    assert result[1:] == (out_mime, 160, 120)
    assert decode(result[0]).mode == out_mode


def test_downscale_heic_gives_jpeg() -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    result = downscale(encode(photo((320, 240)), "HEIF"), "image/heic", max_side=100)
    assert result is not None and result[1:] == ("image/jpeg", 100, 75)


def test_downscale_keeps_the_frame_so_normalised_boxes_map_back() -> None:
    original = Image.new("RGB", (1000, 600), "white")
    # Box [ymin, xmin, ymax, xmax] = [250, 400, 500, 700] on the 0-1000 scale.
    original.paste((200, 0, 0), (400, 150, 700, 300))
    result = downscale(encode(original, "PNG"), "image/png", max_side=250)
    assert result is not None
    small = decode(result[0])
    assert small.size == (250, 150)
    # The box's centre, normalised the same way, lands in the marked area.
    inside = small.getpixel((round(550 / 1000 * 250), round(375 / 1000 * 150)))
    outside = small.getpixel((round(200 / 1000 * 250), round(375 / 1000 * 150)))
    assert inside == (200, 0, 0) and outside == (255, 255, 255)


def test_downscale_applies_a_leftover_orientation() -> None:
    upright = photo((320, 240))
    data = encode(upright.transpose(INVERSE[6]), "JPEG", exif=exif(6), quality=95)
    result = downscale(data, "image/jpeg", max_side=160)
    assert result is not None and result[2:] == (160, 120)
    assert (
        mean_abs_diff(decode(result[0]), upright.resize((160, 120), Image.Resampling.LANCZOS)) < 12
    )


def test_downscale_checks_its_arguments() -> None:
    data = encode(photo(), "PNG")
    with pytest.raises(ValueError, match="max_side"):
        downscale(data, "image/png", max_side=0)
    with pytest.raises(ValueError, match="image/png, not image/jpeg"):
        downscale(data, "image/jpeg", max_side=10)


def test_prepared_image_then_downscale_round_trip() -> None:
    data = encode(photo((640, 480)).transpose(INVERSE[8]), "JPEG", exif=exif(8))
    prepared = prepare_image(data, max_pixels=LIMIT)
    assert (prepared.width, prepared.height) == (640, 480)
    result = downscale(prepared.data, prepared.mime_type, max_side=320)
    assert result is not None and result[1:] == ("image/jpeg", 320, 240)
    assert ImageOps.exif_transpose(decode(result[0])).size == (320, 240)
