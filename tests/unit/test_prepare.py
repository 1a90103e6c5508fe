"""prepare_image (vision/prepare.py): bytes kept, EXIF orientation, modes and animations."""

import io
import struct
import zlib
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageCms, JpegImagePlugin

from tests.unit.imagebytes import (
    INVERSE,
    LIMIT,
    ORIENTATION,
    asymmetric,
    decode,
    encode,
    exif,
    frames,
    mean_abs_diff,
)
from tests.unit.pngbytes import png
from visionq.vision.annotate import open_upright
from visionq.vision.prepare import PreparedImage, normalise_mode, prepare_image

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
