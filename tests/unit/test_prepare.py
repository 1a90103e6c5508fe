import io
import random
import struct
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageCms, ImageFile, ImageOps, ImageStat, JpegImagePlugin

from tests.unit.pngbytes import png
from visionq.vision.annotate import open_upright
from visionq.vision.formats import ImageRejectedError
from visionq.vision.memory import DecodeLimits, MemoryBudget
from visionq.vision.prepare import PreparedImage, downscale, normalise_mode, prepare_image

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


def reject(data: bytes, max_pixels: int = LIMIT) -> ImageRejectedError:
    with pytest.raises(ImageRejectedError) as caught:
        prepare_image(data, max_pixels=max_pixels)
    return caught.value


# --- Unchanged images keep their bytes ----------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "mode", "params", "mime"),
    [
        ("JPEG", "RGB", {}, "image/jpeg"),
        ("JPEG", "L", {}, "image/jpeg"),
        ("JPEG", "RGB", {"exif": exif(1)}, "image/jpeg"),
        ("PNG", "RGB", {}, "image/png"),
        ("PNG", "RGBA", {}, "image/png"),
        ("PNG", "LA", {}, "image/png"),
        ("PNG", "L", {}, "image/png"),
        ("PNG", "1", {}, "image/png"),
        ("PNG", "P", {}, "image/png"),
        ("WEBP", "RGB", {}, "image/webp"),
        ("WEBP", "RGB", {"lossless": True}, "image/webp"),
        ("WEBP", "RGBA", {"lossless": True}, "image/webp"),
    ],
)
def test_upright_images_in_plain_modes_keep_their_bytes(
    fmt: str, mode: str, params: dict[str, Any], mime: str
) -> None:
    image = asymmetric().convert(mode)
    if mode in ("RGBA", "LA"):
        image.putalpha(Image.linear_gradient("L").resize(image.size))
    data = encode(image, fmt, **params)
    prepared = prepare_image(data, max_pixels=LIMIT)
    assert prepared == PreparedImage(data, mime, 64, 48, mime, ())
    assert prepared.data is data


def test_heic_upright_keeps_its_bytes() -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    data = encode(asymmetric(), "HEIF")
    prepared = prepare_image(data, max_pixels=LIMIT)
    assert prepared.data is data
    assert (prepared.mime_type, prepared.source_mime_type) == ("image/heic", "image/heic")
    assert (prepared.width, prepared.height, prepared.changes) == (64, 48, ())


def test_heic_rotation_boxes_are_applied_by_the_decoder_so_bytes_are_kept() -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    upright = asymmetric()
    # pillow-heif stores EXIF orientation 6 as an irot box, which libheif applies on decode.
    data = encode(upright.transpose(INVERSE[6]), "HEIF", exif=exif(6), quality=95)
    prepared = prepare_image(data, max_pixels=LIMIT)
    assert prepared.data is data and prepared.changes == ()
    assert (prepared.width, prepared.height) == (64, 48)
    assert mean_abs_diff(open_upright(prepared.data), upright) < 6


# --- EXIF orientation -------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize(
    ("fmt", "params", "out_mime", "tolerance"),
    [
        ("PNG", {}, "image/png", 0.0),
        ("WEBP", {"lossless": True}, "image/png", 0.0),
        ("JPEG", {"quality": 95}, "image/jpeg", 6.0),  # wrong turns differ by ~55
    ],
)
def test_exif_orientation_is_applied_and_removed(
    orientation: int, fmt: str, params: dict[str, Any], out_mime: str, tolerance: float
) -> None:
    upright = asymmetric()
    stored = upright.transpose(INVERSE[orientation]) if orientation in INVERSE else upright
    data = encode(stored, fmt, exif=exif(orientation), **params)
    prepared = prepare_image(data, max_pixels=LIMIT)
    assert (prepared.width, prepared.height) == upright.size
    if orientation == 1:
        assert prepared.data is data and prepared.changes == ()
        return
    assert prepared.changes == ("exif_transposed",)
    assert prepared.mime_type == out_mime
    assert prepared.source_mime_type == f"image/{fmt.lower()}"
    result = decode(prepared.data)
    assert result.size == upright.size
    if tolerance == 0:
        assert ImageChops.difference(result.convert("RGB"), upright).getbbox() is None
    else:
        assert mean_abs_diff(result, upright) <= tolerance
    # Same frame as the annotator's open_upright (ImageOps.exif_transpose) gives.
    assert mean_abs_diff(open_upright(data), result) <= tolerance
    # Nobody can apply the orientation twice: the output has no EXIF at all.
    assert result.getexif().get(ORIENTATION) is None
    assert "exif" not in result.info


def test_orientation_with_a_quarter_turn_swaps_the_reported_size() -> None:
    data = encode(Image.new("RGB", (40, 30), "red"), "JPEG", exif=exif(6))
    prepared = prepare_image(data, max_pixels=LIMIT)
    assert (prepared.width, prepared.height) == (30, 40)
    assert decode(prepared.data).size == (30, 40)


def test_rotated_jpeg_keeps_its_icc_profile_and_full_chroma() -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = encode(asymmetric(), "JPEG", exif=exif(3), icc_profile=icc, subsampling=0)
    prepared = prepare_image(data, max_pixels=LIMIT)
    result = Image.open(io.BytesIO(prepared.data))
    assert result.info.get("icc_profile") == icc
    assert isinstance(result, JpegImagePlugin.JpegImageFile)
    assert JpegImagePlugin.get_sampling(result) == 0


@pytest.mark.parametrize("mode", ["1", "LA", "P"])
def test_rotated_special_modes_stay_lossless_png(mode: str) -> None:
    upright = asymmetric().convert(mode)
    data = encode(upright.transpose(INVERSE[8]), "PNG", exif=exif(8))
    prepared = prepare_image(data, max_pixels=LIMIT)
    result = decode(prepared.data)
    assert prepared.changes == ("exif_transposed",)
    assert result.mode == mode
    assert ImageChops.difference(result.convert("RGBA"), upright.convert("RGBA")).getbbox() is None


# --- Modes ------------------------------------------------------------------------------


def test_cmyk_jpeg_becomes_rgb_jpeg() -> None:
    cmyk = Image.new("CMYK", (32, 32), (0, 255, 255, 0))  # red
    cmyk.paste((255, 0, 255, 0), (0, 0, 16, 32))  # green on the left
    data = encode(cmyk, "JPEG", quality=95, exif=exif(1))
    prepared = prepare_image(data, max_pixels=LIMIT)
    assert prepared.changes == ("cmyk_to_rgb",)
    assert prepared.mime_type == "image/jpeg"
    result = decode(prepared.data)
    assert result.mode == "RGB"
    red, green = result.getpixel((24, 16)), result.getpixel((8, 16))
    assert isinstance(red, tuple) and isinstance(green, tuple)
    assert red[0] > 230 and red[1] < 30 and red[2] < 30
    assert green[1] > 230 and green[0] < 30 and green[2] < 30
    assert "exif" not in result.info


def test_cmyk_with_a_broken_icc_profile_falls_back_to_the_formula() -> None:
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))
    broken_icc = b"\0" * 16 + b"CMYK" + b"\0" * 108
    data = encode(cmyk, "JPEG", quality=95, icc_profile=broken_icc)
    prepared = prepare_image(data, max_pixels=LIMIT)
    pixel = decode(prepared.data).getpixel((8, 8))
    assert isinstance(pixel, tuple) and pixel[0] > 230 and pixel[1] < 30
    assert "icc_profile" not in Image.open(io.BytesIO(prepared.data)).info


def gradient16(low: int, high: int, size: tuple[int, int] = (256, 8)) -> Image.Image:
    image = Image.new("I;16", size)
    width = size[0]
    for x in range(width):
        value = low + (high - low) * x // (width - 1)
        for y in range(size[1]):
            image.putpixel((x, y), value)
    return image


def test_narrow_range_16bit_gray_is_stretched_not_clipped() -> None:
    # 1000-1200 out of 0-65535: a plain convert("L") would clip it all to white (255),
    # a >> 8 would make it black (3-4).
    data = encode(gradient16(1000, 1200), "PNG")
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    prepared = prepare_image(data, max_pixels=LIMIT)
    assert prepared.changes == ("16bit_to_8bit",)
    assert prepared.mime_type == "image/png"
    result = decode(prepared.data)
    assert result.mode == "L"
    assert result.getextrema() == (0, 255)
    row = [result.getpixel((x, 0)) for x in range(256)]
    assert row == sorted(row)  # order kept
    assert abs(int(row[128]) - 128) <= 2  # linear
    assert len(set(row)) > 150  # detail kept


def test_an_icc_profile_that_no_longer_fits_the_mode_is_dropped() -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = encode(gradient16(0, 4000), "PNG", icc_profile=srgb)
    assert Image.open(io.BytesIO(data)).info.get("icc_profile") == srgb
    result = Image.open(io.BytesIO(prepare_image(data, max_pixels=LIMIT).data))
    assert result.mode == "L"
    assert "icc_profile" not in result.info


def test_constant_16bit_gray_keeps_its_level() -> None:
    data = encode(Image.new("I;16", (8, 8), 32768), "PNG")
    result = decode(prepare_image(data, max_pixels=LIMIT).data)
    assert result.getextrema() == (128, 128)


def test_16bit_rgb_png_is_reencoded_as_8bit() -> None:
    raw = b"".join(b"\x00" + b"\x12\x34\x56\x78\x9a\xbc" * 4 for _ in range(3))
    data = png(
        [
            (b"IHDR", struct.pack(">IIBBBBB", 4, 3, 16, 2, 0, 0, 0)),
            (b"IDAT", zlib.compress(raw)),
            (b"IEND", b""),
        ]
    )
    prepared = prepare_image(data, max_pixels=LIMIT)
    assert prepared.changes == ("16bit_to_8bit",)
    assert prepared.data[24] == 8  # IHDR bit depth
    assert decode(prepared.data).getpixel((0, 0)) == (0x12, 0x56, 0x9A)


def test_palette_with_trns_becomes_rgba() -> None:
    image = Image.new("P", (8, 8), 1)
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255])
    image.paste(2, (0, 0, 4, 8))
    data = encode(image, "PNG", transparency=1)
    prepared = prepare_image(data, max_pixels=LIMIT)
    assert prepared.changes == ("palette_expanded",)
    result = decode(prepared.data)
    assert result.mode == "RGBA"
    assert result.getpixel((6, 4)) == (255, 0, 0, 0)  # transparent index
    assert result.getpixel((1, 4)) == (0, 0, 255, 255)


@pytest.mark.parametrize(("mode", "out_mode"), [("RGB", "RGBA"), ("L", "LA"), ("1", "LA")])
def test_colour_key_transparency_becomes_alpha(mode: str, out_mode: str) -> None:
    image = Image.new(mode, (8, 8), 0)
    image.paste(255 if mode != "RGB" else (255, 255, 255), (0, 0, 4, 8))
    key: Any = (255, 255, 255) if mode == "RGB" else 255
    prepared = prepare_image(encode(image, "PNG", transparency=key), max_pixels=LIMIT)
    assert prepared.changes == ("transparency_to_alpha",)
    result = decode(prepared.data)
    assert result.mode == out_mode
    assert result.getchannel("A").getpixel((1, 1)) == 0
    assert result.getchannel("A").getpixel((6, 1)) == 255


@pytest.mark.parametrize(
    ("mode", "change"),
    [("I;16B", "16bit_to_8bit"), ("I;16", "16bit_to_8bit"), ("I", "32bit_to_8bit")],
)
def test_wide_integer_modes_stretch_to_l(mode: str, change: str) -> None:
    image = gradient16(300, 700).convert("I")
    if mode != "I":
        image = image.convert(mode)
    result, changes = normalise_mode(image)
    assert changes == [change]
    assert result.mode == "L" and result.getextrema() == (0, 255)


def test_float_mode_stretches_to_l() -> None:
    image = Image.linear_gradient("L").convert("F").point(lambda v: v / 1000.0 + 0.2)
    result, changes = normalise_mode(image)
    assert changes == ["32bit_to_8bit"]
    assert result.mode == "L" and result.getextrema() == (0, 255)
    assert result.getpixel((0, 128)) in (127, 128, 129)


@pytest.mark.parametrize(
    ("mode", "out_mode", "change"),
    [
        ("PA", "RGBA", "palette_expanded"),
        ("YCbCr", "RGB", "ycbcr_to_rgb"),
        ("LAB", "RGB", "lab_to_rgb"),
        ("RGBX", "RGB", "rgbx_to_rgb"),
        ("CMYK", "RGB", "cmyk_to_rgb"),
    ],
)
def test_other_modes_convert(mode: str, out_mode: str, change: str) -> None:
    result, changes = normalise_mode(Image.new(mode, (4, 4)))
    assert (result.mode, changes) == (out_mode, [change])


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGB", "RGBA"])
def test_plain_modes_are_untouched(mode: str) -> None:
    image = Image.new(mode, (4, 4))
    result, changes = normalise_mode(image)
    assert result is image and changes == []


# --- Animation --------------------------------------------------------------------------


def frames() -> list[Image.Image]:
    return [Image.new("RGB", (12, 10), colour) for colour in ("red", "blue", "green")]


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_animations_keep_the_first_frame_as_a_still_png(fmt: str) -> None:
    first, *rest = frames()
    params = {"lossless": True} if fmt == "WEBP" else {}
    data = encode(first, fmt, save_all=True, append_images=rest, **params)
    prepared = prepare_image(data, max_pixels=LIMIT)
    assert prepared.changes == ("first_frame",)
    assert prepared.mime_type == "image/png"
    with Image.open(io.BytesIO(prepared.data)) as result:
        assert not getattr(result, "is_animated", False)
        assert result.convert("RGB").getpixel((5, 5)) == (255, 0, 0)


def test_apng_default_image_is_the_frame_kept() -> None:
    default, *animation = frames()
    data = encode(default, "PNG", save_all=True, append_images=animation, default_image=True)
    prepared = prepare_image(data, max_pixels=LIMIT)
    assert decode(prepared.data).convert("RGB").getpixel((0, 0)) == (255, 0, 0)


def test_multi_picture_jpeg_is_not_an_animation() -> None:
    first, *rest = frames()
    data = encode(first, "MPO", save_all=True, append_images=rest)
    prepared = prepare_image(data, max_pixels=LIMIT)
    assert prepared.data is data and prepared.changes == ()


# --- Rejections -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "mode", "params", "note"),
    [
        ("GIF", "P", {}, "converted GIF to PNG"),
        (
            "GIF",
            "RGB",
            {"save_all": True, "duration": 80},
            "converted GIF to PNG (first frame of 3)",
        ),
        ("BMP", "RGB", {}, "converted BMP to PNG"),
        ("BMP", "L", {}, "converted BMP to PNG"),
        ("TIFF", "RGB", {"compression": "tiff_lzw"}, "converted TIFF to PNG"),
        ("TIFF", "RGB", {"save_all": True}, "converted TIFF to PNG (first page of 3)"),
    ],
)
def test_gif_bmp_and_tiff_become_png_saying_so(
    fmt: str, mode: str, params: dict[str, Any], note: str
) -> None:
    """Issue 17: Gemini does not take them; converted at submit like animated WEBP/CMYK."""
    first, *rest = (frame.convert(mode) for frame in frames())
    if params.get("save_all"):
        params = {**params, "append_images": rest}
    prepared = prepare_image(encode(first, fmt, **params), max_pixels=LIMIT)
    assert prepared.mime_type == "image/png" and prepared.data.startswith(b"\x89PNG")
    assert prepared.source_mime_type == f"image/{fmt.lower()}"
    assert prepared.changes[0] == note
    assert (prepared.width, prepared.height) == (12, 10)
    # The first frame or page, pixel for pixel.
    assert (
        ImageChops.difference(decode(prepared.data).convert("RGB"), first.convert("RGB")).getbbox()
        is None
    )


def test_a_cmyk_tiff_and_a_transparent_gif_get_their_other_changes_too() -> None:
    cmyk = prepare_image(encode(Image.new("CMYK", (8, 8)), "TIFF"), max_pixels=LIMIT)
    assert cmyk.changes == ("converted TIFF to PNG", "cmyk_to_rgb")
    clear = encode(Image.new("RGBA", (8, 8), (0, 0, 0, 0)), "GIF")
    assert prepare_image(clear, max_pixels=LIMIT).changes == (
        "converted GIF to PNG", "palette_expanded",
    )  # fmt: skip


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


def photo(size: tuple[int, int] = (160, 120)) -> Image.Image:
    rng = random.Random(7)
    image = asymmetric(size)
    for _ in range(200):
        x, y = rng.randrange(max(1, size[0] - 8)), rng.randrange(max(1, size[1] - 8))
        image.paste(tuple(rng.randrange(256) for _ in range(3)), (x, y, x + 8, y + 8))
    return image


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
