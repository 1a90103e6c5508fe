"""Image modes Gemini shows correctly, the conversions into them, and the encoder
``vision.prepare`` writes its outputs with (the policy is in its module docstring)."""

from __future__ import annotations

import io
from typing import Any, cast

from PIL import Image

from visionq.vision.changes import Change, mode_change
from visionq.vision.formats import JPEG

KEPT_MODES = {"1", "L", "LA", "P", "RGB", "RGBA"}
WIDE_GRAY_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I", "F"}
# The colour model an ICC profile must describe (header bytes 16-20) to stay valid.
_ICC_SPACE = {"RGB": b"RGB ", "RGBA": b"RGB ", "P": b"RGB ", "L": b"GRAY", "LA": b"GRAY"}


def normalise_mode(image: Image.Image, icc: bytes | None = None) -> tuple[Image.Image, list[str]]:
    """``image`` in a mode every decoder shows correctly, and the change made (if any).

    The policy is in the module docstring; ``icc`` is the source's ICC profile, used to
    turn CMYK into RGB.
    """
    mode = image.mode
    if mode in ("RGB", "L", "1") and "transparency" in image.info:
        return image.convert("RGBA" if mode == "RGB" else "LA"), [Change.TRANSPARENCY_TO_ALPHA]
    if mode == "PA" or (mode == "P" and image.has_transparency_data):
        return image.convert("RGBA"), [Change.PALETTE_EXPANDED]
    if mode in KEPT_MODES:
        return image, []
    if mode == "CMYK":
        return _cmyk_to_rgb(image, icc), [Change.CMYK_TO_RGB]
    if mode in WIDE_GRAY_MODES:
        change = Change.BITS16_TO_8BIT if mode.startswith("I;16") else Change.BITS32_TO_8BIT
        return _stretch_to_l(image), [change]
    target = "RGBA" if image.has_transparency_data else "RGB"
    return image.convert(target), [mode_change(mode, target)]


def _cmyk_to_rgb(image: Image.Image, icc: bytes | None) -> Image.Image:
    if icc and icc[16:20] == b"CMYK":
        try:
            from PIL import ImageCms  # noqa: PLC0415 - LittleCMS is optional in Pillow

            converted = ImageCms.profileToProfile(
                image,
                ImageCms.ImageCmsProfile(io.BytesIO(icc)),
                ImageCms.createProfile("sRGB"),
                outputMode="RGB",
            )
            if converted is not None:
                return converted
        except (ImportError, OSError, ValueError, ImageCms.PyCMSError):
            pass  # a broken profile: fall back on the plain formula
    return image.convert("RGB")


def _stretch_to_l(image: Image.Image) -> Image.Image:
    """8-bit L from a 16/32-bit or float image: the present range stretched to 0-255."""
    wide = image if image.mode in ("I", "F") else image.convert("I")
    low, high = cast("tuple[float, float]", wide.getextrema())
    if high <= low:  # one value: keep its place in the nominal range (0-65535, or 0-1)
        nominal = 1.0 if wide.mode == "F" else 65535.0
        level = round(255 * min(max(float(low) / nominal, 0.0), 1.0))
        return Image.new("L", image.size, level)
    scale = 255.0 / (float(high) - float(low))
    # Mode I truncates the result, so add 0.5 to round; F -> L rounds by itself.
    offset = -float(low) * scale + (0.5 if wide.mode == "I" else 0.0)
    return wide.point(lambda value: value * scale + offset).convert("L")


def matching_icc(icc: bytes | None, mode: str) -> bytes | None:
    """The ICC profile if it still describes ``mode``'s colour model, else None."""
    if icc and len(icc) >= 20 and _ICC_SPACE.get(mode) == icc[16:20]:
        return icc
    return None


def encode(
    image: Image.Image,
    mime_type: str,
    *,
    quality: int,
    icc: bytes | None,
    subsampling: int | None = None,
) -> bytes:
    """``image`` as ``mime_type`` bytes (JPEG at ``quality``, else PNG), with ``icc`` only."""
    # Nothing of the source's metadata rides along (EXIF, XMP, comments, tRNS already
    # turned into alpha): only what is passed here is written.
    image.info = {}
    out = io.BytesIO()
    params: dict[str, Any] = {"icc_profile": icc}
    if mime_type == JPEG:
        params.update(quality=quality, optimize=False)
        if subsampling is not None:
            params["subsampling"] = subsampling
        image.save(out, "JPEG", **params)
    else:
        image.save(out, "PNG", **params)
    return out.getvalue()
