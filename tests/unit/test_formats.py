import io

import pytest
from PIL import Image

from vision.formats import ImageRejectedError, inspect_image, sniff_mime_type


def encode(fmt: str, size: tuple[int, int] = (40, 30), mode: str = "RGB", **kw: object) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, "red").save(out, fmt, **kw)
    return out.getvalue()


@pytest.mark.parametrize(
    ("fmt", "mime"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")]
)
def test_formats_are_recognised_from_bytes(fmt: str, mime: str) -> None:
    info = inspect_image(encode(fmt), max_pixels=10**6)
    assert (info.mime_type, info.width, info.height) == (mime, 40, 30)


def test_heic_is_recognised() -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    data = encode("HEIF")
    assert sniff_mime_type(data) in ("image/heic", "image/heif")
    info = inspect_image(data, max_pixels=10**6)
    assert (info.width, info.height) == (40, 30)


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_other_formats_are_unsupported(fmt: str) -> None:
    with pytest.raises(ImageRejectedError) as caught:
        inspect_image(encode(fmt, mode="RGB" if fmt != "GIF" else "P"), max_pixels=10**6)
    assert caught.value.code == "unsupported_media_type"


def test_text_is_unsupported_even_with_an_image_name() -> None:
    with pytest.raises(ImageRejectedError) as caught:
        inspect_image(b"hello, I am not a picture", max_pixels=10**6)
    assert caught.value.code == "unsupported_media_type"


def test_truncated_header_is_corrupt() -> None:
    with pytest.raises(ImageRejectedError) as caught:
        inspect_image(encode("PNG")[:20], max_pixels=10**6)
    assert caught.value.code == "corrupt_image"


def test_too_many_pixels() -> None:
    with pytest.raises(ImageRejectedError) as caught:
        inspect_image(encode("PNG", size=(200, 200)), max_pixels=10_000)
    assert caught.value.code == "image_too_large"


def test_exif_rotation_gives_upright_size() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    info = inspect_image(encode("JPEG", size=(40, 30), exif=exif.tobytes()), max_pixels=10**6)
    assert (info.width, info.height, info.orientation) == (30, 40, 6)
