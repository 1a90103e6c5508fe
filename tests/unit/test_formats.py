import io
import random
import struct
import zlib
from typing import Any

import pytest
from PIL import Image

from visionq.vision.formats import (
    ImageRejectedError,
    header_size,
    open_image,
    pillow_format_name,
    sniff_mime_type,
)
from visionq.vision.prepare import prepare_image


def encode(fmt: str, size: tuple[int, int] = (40, 30), mode: str = "RGB", **kw: object) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, "red").save(out, fmt, **kw)
    return out.getvalue()


@pytest.mark.parametrize(
    ("fmt", "mime"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")]
)
def test_formats_are_recognised_from_bytes(fmt: str, mime: str) -> None:
    info = prepare_image(encode(fmt), max_pixels=10**6)
    assert (info.mime_type, info.width, info.height) == (mime, 40, 30)


def test_heic_is_recognised() -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    data = encode("HEIF")
    assert sniff_mime_type(data) in ("image/heic", "image/heif")
    info = prepare_image(data, max_pixels=10**6)
    assert (info.width, info.height) == (40, 30)


@pytest.mark.parametrize("fmt", ["ICO", "PCX", "PPM"])
def test_other_formats_are_unsupported(fmt: str) -> None:
    with pytest.raises(ImageRejectedError) as caught:
        prepare_image(encode(fmt, mode="RGB"), max_pixels=10**6)
    assert caught.value.code == "unsupported_media_type"


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_gif_bmp_and_tiff_are_taken_and_become_png(fmt: str) -> None:
    data = encode(fmt, mode="RGB" if fmt != "GIF" else "P")
    assert sniff_mime_type(data) is None  # not a format Gemini takes
    prepared = prepare_image(data, max_pixels=10**6)
    assert prepared.mime_type == "image/png" and prepared.changes == (f"{fmt.lower()}_to_png",)


def test_text_is_unsupported_even_with_an_image_name() -> None:
    with pytest.raises(ImageRejectedError) as caught:
        prepare_image(b"hello, I am not a picture", max_pixels=10**6)
    assert caught.value.code == "unsupported_media_type"


def test_truncated_header_is_corrupt() -> None:
    with pytest.raises(ImageRejectedError) as caught:
        prepare_image(encode("PNG")[:20], max_pixels=10**6)
    assert caught.value.code == "corrupt_image"


def test_too_many_pixels() -> None:
    with pytest.raises(ImageRejectedError) as caught:
        prepare_image(encode("PNG", size=(200, 200)), max_pixels=10_000)
    assert caught.value.code == "image_too_large"


def test_exif_rotation_gives_upright_size() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    info = prepare_image(encode("JPEG", size=(40, 30), exif=exif.tobytes()), max_pixels=10**6)
    assert (info.width, info.height) == (30, 40)
    assert info.changes == ("exif_transposed",)


# --- Header parsing, naming and bombs (shared with vision.prepare) -----------------------


def test_avif_is_not_taken_for_heif() -> None:
    # AVIF also lists the generic 'mif1' brand; Gemini does not accept it as HEIF.
    data = encode("AVIF")
    assert b"mif1" in data[:32]
    assert sniff_mime_type(data) is None
    with pytest.raises(ImageRejectedError) as caught:
        prepare_image(data, max_pixels=10**6)
    assert caught.value.code == "unsupported_media_type"
    assert "The file is in AVIF format" in caught.value.message


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\0\0\0\0" + b"".join(compatible)
    return struct.pack(">I", 8 + len(body)) + b"ftyp" + body + b"\0" * 16


@pytest.mark.parametrize(
    ("box", "mime"),
    [
        (ftyp(b"heic", b"mif1", b"heic"), "image/heic"),
        (ftyp(b"mif1", b"heic"), "image/heic"),
        (ftyp(b"mif1", b"miaf"), "image/heif"),
        (ftyp(b"msf1", b"iso8"), "image/heif"),
        (ftyp(b"avif", b"mif1", b"miaf"), None),
        (ftyp(b"isom", b"mp42"), None),
    ],
)
def test_heif_brands(box: bytes, mime: str | None) -> None:
    assert sniff_mime_type(box) == mime


@pytest.mark.parametrize("fmt", ["ICO", "PCX"])
def test_unsupported_message_names_the_format(fmt: str) -> None:
    with pytest.raises(ImageRejectedError) as caught:
        prepare_image(encode(fmt, mode="RGB"), max_pixels=10**6)
    assert f"The file is in {fmt} format" in caught.value.message
    assert "PNG, JPEG, WEBP, HEIC, HEIF, GIF, BMP or TIFF" in caught.value.message


def test_unknown_bytes_have_no_pillow_name() -> None:
    assert pillow_format_name(random.Random(2).randbytes(64)) is None
    assert pillow_format_name(b"") is None


@pytest.mark.parametrize(
    ("fmt", "params"),
    [
        ("PNG", {}),
        ("JPEG", {}),
        ("JPEG", {"progressive": True}),
        ("WEBP", {}),
        ("WEBP", {"lossless": True}),
        ("WEBP", {"exif": b"Exif\0\0II*\0\x08\0\0\0\0\0"}),  # VP8X container
    ],
)
@pytest.mark.parametrize("size", [(1, 1), (37, 23), (1025, 3)])
def test_header_size_matches_pillow(
    fmt: str, params: dict[str, Any], size: tuple[int, int]
) -> None:
    data = encode(fmt, size=size, **params)
    mime = sniff_mime_type(data)
    assert mime is not None
    assert header_size(data, mime) == size == Image.open(io.BytesIO(data)).size


def test_header_size_of_animated_webp_is_the_canvas() -> None:
    out = io.BytesIO()
    frames = [Image.new("RGB", (30, 20), c) for c in ("red", "blue")]
    frames[0].save(out, "WEBP", save_all=True, append_images=frames[1:])
    assert header_size(out.getvalue(), "image/webp") == (30, 20)


@pytest.mark.parametrize("data", [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"RIFF\0\0\0\0WEBPVP8 "])
def test_header_size_of_a_cut_header_is_unknown(data: bytes) -> None:
    mime = sniff_mime_type(data)
    assert mime is not None
    assert header_size(data, mime) is None


def test_inspect_refuses_a_bomb_from_the_header_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr))

    def no_pillow(*args: object, **kwargs: object) -> None:
        raise AssertionError("Pillow must not be asked to open a bomb")

    monkeypatch.setattr(Image, "open", no_pillow)
    with pytest.raises(ImageRejectedError) as caught:
        prepare_image(data, max_pixels=50_000_000)
    assert caught.value.code == "image_too_large"
    assert "100000x100000 = 10,000,000,000 pixels" in caught.value.message
    assert "more than the 50,000,000 allowed" in caught.value.message


def test_corrupt_message_gives_pillows_reason() -> None:
    with pytest.raises(ImageRejectedError) as caught:
        data = b"\x89PNG\r\n\x1a\n" + random.Random(1).randbytes(100)
        with open_image(data, "image/png", max_pixels=10**6):
            pass
    assert caught.value.code == "corrupt_image"
    assert "the PNG is corrupt or truncated: broken PNG file" in caught.value.message
    assert "BytesIO" not in caught.value.message


@pytest.mark.parametrize("orientation", [0, 9, 65535])
def test_invalid_orientation_counts_as_upright(orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    info = prepare_image(encode("JPEG", size=(40, 30), exif=exif.tobytes()), max_pixels=10**6)
    assert (info.width, info.height, info.changes) == (40, 30, ())


def test_inspect_reads_a_png_exif_orientation_and_rejects_a_broken_png() -> None:
    exif = Image.Exif()
    exif[0x0112] = 8
    data = encode("PNG", size=(40, 30), exif=exif.tobytes())
    info = prepare_image(data, max_pixels=10**6)
    assert (info.width, info.height, info.changes) == (30, 40, ("exif_transposed",))
    with pytest.raises(ImageRejectedError) as caught:
        prepare_image(data[: len(data) // 2], max_pixels=10**6)
    assert caught.value.code == "corrupt_image"


@pytest.mark.parametrize(
    ("data", "name"), [(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "GIF"), (b"II*\x00junk", "TIFF")]
)
def test_broken_gif_and_tiff_are_corrupt_and_named(data: bytes, name: str) -> None:
    with pytest.raises(ImageRejectedError) as caught:
        prepare_image(data, max_pixels=10**6)
    assert caught.value.code == "corrupt_image"
    assert f"the {name} is corrupt" in caught.value.message
