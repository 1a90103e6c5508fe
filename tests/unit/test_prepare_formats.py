"""prepare_image by format: GIF/BMP/TIFF made PNG; unsupported, corrupt, oversized refused."""

import random
import struct
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageFile, JpegImagePlugin

from tests.unit.imagebytes import LIMIT, decode, encode, exif, frames, photo
from tests.unit.pngbytes import png
from visionq.vision.changes import Change
from visionq.vision.formats import ImageRejectedError
from visionq.vision.memory import DecodeLimits, MemoryBudget
from visionq.vision.prepare import PreparedImage, prepare_image


def reject(data: bytes, max_pixels: int = LIMIT) -> ImageRejectedError:
    with pytest.raises(ImageRejectedError) as caught:
        prepare_image(data, max_pixels=max_pixels)
    return caught.value


# --- GIF, BMP and TIFF become PNG -----------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "mode", "params", "codes"),
    [
        ("GIF", "P", {}, ("gif_to_png",)),
        ("GIF", "RGB", {"save_all": True, "duration": 80}, ("gif_to_png", "first_frame")),
        ("BMP", "RGB", {}, ("bmp_to_png",)),
        ("BMP", "L", {}, ("bmp_to_png",)),
        ("TIFF", "RGB", {"compression": "tiff_lzw"}, ("tiff_to_png",)),
        ("TIFF", "RGB", {"save_all": True}, ("tiff_to_png", "first_page")),
    ],
)
def test_gif_bmp_and_tiff_become_png_saying_so(
    fmt: str, mode: str, params: dict[str, Any], codes: tuple[str, ...]
) -> None:
    """Issue 17: Gemini does not take them; converted at submit like animated WEBP/CMYK."""
    first, *rest = (frame.convert(mode) for frame in frames())
    if params.get("save_all"):
        params = {**params, "append_images": rest}
    prepared = prepare_image(encode(first, fmt, **params), max_pixels=LIMIT)
    assert prepared.mime_type == "image/png" and prepared.data.startswith(b"\x89PNG")
    assert prepared.source_mime_type == f"image/{fmt.lower()}"
    # Codes, as for every other change (a new user's trial: these alone were sentences).
    assert prepared.changes == codes
    assert all(change in set(Change) for change in prepared.changes)
    assert (prepared.width, prepared.height) == (12, 10)
    # The first frame or page, pixel for pixel.
    assert (
        ImageChops.difference(decode(prepared.data).convert("RGB"), first.convert("RGB")).getbbox()
        is None
    )


def test_a_cmyk_tiff_and_a_transparent_gif_get_their_other_changes_too() -> None:
    cmyk = prepare_image(encode(Image.new("CMYK", (8, 8)), "TIFF"), max_pixels=LIMIT)
    assert cmyk.changes == ("tiff_to_png", "cmyk_to_rgb")
    clear = encode(Image.new("RGBA", (8, 8), (0, 0, 0, 0)), "GIF")
    assert prepare_image(clear, max_pixels=LIMIT).changes == (
        "gif_to_png", "palette_expanded",
    )  # fmt: skip


# --- Rejections -------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_converted_formats_keep_the_pixel_and_memory_bounds(fmt: str) -> None:
    big = encode(Image.new("RGB", (400, 300)), fmt)
    assert reject(big, max_pixels=100_000).code == "image_too_large"
    limits = DecodeLimits(per_image=400 * 300, budget=MemoryBudget(1 << 30, 1.0))
    with pytest.raises(ImageRejectedError) as caught:
        prepare_image(big, max_pixels=LIMIT, limits=limits)
    assert caught.value.code == "image_too_large" and "memory" in caught.value.message


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_a_truncated_gif_bmp_or_tiff_is_corrupt(fmt: str) -> None:
    rng = random.Random(3)
    noise = Image.frombytes("L", (120, 90), bytes(rng.randrange(256) for _ in range(120 * 90)))
    data = encode(noise, fmt)
    assert reject(data[: len(data) // 2]).code == "corrupt_image"


@pytest.mark.parametrize(("fmt", "mode"), [("ICO", "RGB"), ("PCX", "RGB"), ("PPM", "L")])
def test_other_formats_are_unsupported_and_named(fmt: str, mode: str) -> None:
    error = reject(encode(Image.new(mode, (8, 8)), fmt))
    assert error.code == "unsupported_media_type"
    assert "PNG, JPEG, WEBP, HEIC, HEIF, GIF, BMP or TIFF" in error.message


def test_unknown_bytes_are_unsupported() -> None:
    error = reject(b"%PDF-1.7 not an image at all")
    assert error.code == "unsupported_media_type"
    assert "PNG, JPEG, WEBP, HEIC, HEIF, GIF, BMP or TIFF" in error.message


@pytest.mark.parametrize("strict", [True, False])
@pytest.mark.parametrize(
    ("fmt", "cut"),
    [("JPEG", 0.5), ("JPEG", 0.9), ("JPEG", -2), ("PNG", 0.5), ("PNG", -12), ("WEBP", 0.5)],
)
def test_truncated_files_are_corrupt(
    fmt: str, cut: float, strict: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not strict:  # someone else in the process asked Pillow to tolerate truncation
        monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    data = encode(photo(), fmt)
    end = int(len(data) * cut) if cut > 0 else len(data) + int(cut)
    error = reject(data[:end])
    assert error.code == "corrupt_image"
    assert f"the {fmt} data is truncated (the file ends early)" in error.message


def test_prepare_never_sets_load_truncated_images() -> None:
    prepare_image(encode(photo(), "JPEG", exif=exif(6)), max_pixels=LIMIT)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_truncated_heic_is_corrupt() -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    data = encode(photo(), "HEIF")
    error = reject(data[: len(data) // 2])
    assert error.code == "corrupt_image"
    assert "HEIC" in error.message


def test_garbage_after_png_signature_is_corrupt() -> None:
    data = b"\x89PNG\r\n\x1a\n" + random.Random(1).randbytes(500)
    error = reject(data)
    assert error.code == "corrupt_image"
    assert "the PNG is corrupt" in error.message


def test_png_with_a_damaged_idat_crc_is_corrupt() -> None:
    data = bytearray(encode(photo(), "PNG"))
    data[len(data) // 2] ^= 0xFF
    error = reject(bytes(data))
    assert error.code == "corrupt_image"
    assert "IDAT chunk fails its CRC check" in error.message


def test_png_with_broken_compressed_data_is_corrupt() -> None:
    raw = b"".join(b"\x00" + bytes(30) for _ in range(10))
    broken = bytearray(zlib.compress(raw))
    broken[2:6] = b"\xff\xff\xff\xff"
    data = png(
        [
            (b"IHDR", struct.pack(">IIBBBBB", 10, 10, 8, 2, 0, 0, 0)),
            (b"IDAT", bytes(broken)),
            (b"IEND", b""),
        ]
    )
    error = reject(data)
    assert error.code == "corrupt_image"
    assert error.message.startswith("The image cannot be decoded: the PNG is corrupt: ")


def test_jpeg_without_a_scan_is_corrupt() -> None:
    error = reject(b"\xff\xd8\xff\xd9")
    assert error.code == "corrupt_image"


@pytest.fixture
def drafts(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int] | None]:
    """The sizes prepare_image asks JPEG drafts (1/8-scale decodes) for."""
    asked: list[tuple[int, int] | None] = []
    draft = JpegImagePlugin.JpegImageFile.draft

    def spy(self: JpegImagePlugin.JpegImageFile, mode: str | None, size: Any) -> Any:
        asked.append(size)
        return draft(self, mode, size)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    return asked


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_a_jpeg_kept_as_is_is_checked_at_one_eighth_scale_and_keeps_its_size(
    mode: str, drafts: list[tuple[int, int] | None]
) -> None:
    data = encode(photo((640, 480)).convert(mode), "JPEG", exif=exif(1))
    prepared = prepare_image(data, max_pixels=LIMIT)
    assert prepared == PreparedImage(data, "image/jpeg", 640, 480, "image/jpeg", ())
    assert drafts == [(80, 60)]


@pytest.mark.parametrize(
    ("image", "params"),
    [(photo((64, 48)), {"exif": exif(6)}), (photo((64, 48)).convert("CMYK"), {})],
)
def test_a_jpeg_that_changes_is_decoded_in_full(
    image: Image.Image, params: dict[str, Any], drafts: list[tuple[int, int] | None]
) -> None:
    prepared = prepare_image(encode(image, "JPEG", **params), max_pixels=LIMIT)
    assert prepared.changes and not drafts


@pytest.mark.parametrize("progressive", [False, True])
@pytest.mark.parametrize("where", [0.5, 0.95])
def test_a_jpeg_kept_as_is_is_still_decoded_to_the_end_of_its_scans(
    progressive: bool, where: float, drafts: list[tuple[int, int] | None]
) -> None:
    """The 1/8-scale check entropy-decodes every scan: damage late in the data still fails
    (here a DHT marker where scan data should be), with the full decode's message."""
    data = bytearray(encode(photo((320, 240)), "JPEG", quality=90, progressive=progressive))
    start = data.index(b"\xff\xda")
    at = start + int((len(data) - start) * where)
    data[at : at + 2] = b"\xff\xc4"
    error = reject(bytes(data))
    assert error.code == "corrupt_image"
    assert "the JPEG is corrupt: broken data stream" in error.message
    assert drafts == [(40, 30)]


def bomb_png(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return png([(b"IHDR", ihdr)])


def bomb_jpeg(width: int, height: int) -> bytes:
    sof = b"\xff\xc0\x00\x11\x08" + struct.pack(">HH", height, width) + b"\x03" + bytes(9)
    return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + sof


def bomb_webp(width: int, height: int) -> bytes:
    vp8x = b"VP8X" + struct.pack("<I", 10) + bytes(4)
    vp8x += (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return b"RIFF" + struct.pack("<I", 4 + len(vp8x)) + b"WEBP" + vp8x


@pytest.mark.parametrize("make", [bomb_png, bomb_jpeg, bomb_webp])
def test_decompression_bomb_is_refused_from_the_header_alone(
    make: Callable[[int, int], bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    width, height = (100_000, 100_000) if make is bomb_png else (16_000, 16_000)

    def no_pillow(*args: object, **kwargs: object) -> None:
        raise AssertionError("Pillow must not be asked to open a bomb")

    monkeypatch.setattr(Image, "open", no_pillow)
    error = reject(make(width, height), max_pixels=50_000_000)
    assert error.code == "image_too_large"
    assert f"{width}x{height} = {width * height:,} pixels" in error.message
    assert "50,000,000 allowed" in error.message
    assert "downscale it" in error.message


def test_real_image_above_the_limit_is_too_large() -> None:
    error = reject(encode(photo((200, 200)), "JPEG"), max_pixels=10_000)
    assert error.code == "image_too_large"
    assert "200x200 = 40,000 pixels" in error.message
    assert "for example to 100x100" in error.message


def test_pillows_own_bomb_guard_maps_to_too_large(monkeypatch: pytest.MonkeyPatch) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    data = encode(photo((200, 200)), "HEIF")  # no header parse of ours: Pillow's guard acts
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    error = reject(data)
    assert error.code == "image_too_large"
    assert "40000 pixels" in error.message and "downscale it" in error.message


def test_pillows_bomb_guard_on_a_png_within_max_pixels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    error = reject(encode(photo((200, 200)), "PNG"), max_pixels=10**6)
    assert error.code == "image_too_large"
    assert "exceeds limit of 2000 pixels" in error.message


def test_pillows_bomb_warning_does_not_escape(monkeypatch: pytest.MonkeyPatch) -> None:
    # 40,000 pixels is between MAX_IMAGE_PIXELS and twice it: Pillow only warns, and our
    # own limit (max_pixels) decides. pytest turns warnings into errors here.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 30_000)
    data = encode(photo((200, 200)), "PNG")
    assert prepare_image(data, max_pixels=LIMIT).data is data
