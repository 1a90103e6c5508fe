"""The codes an input's ``changes`` lists: what submit did to an uploaded image before
storing it (``vision.prepare``, whose docstring has the policy). Declared here only: the
code making a change, the API schema's field description and README's lines read them.

Stored rows keep the strings they were written with: rows from before these codes may
hold sentences ("converted GIF to PNG (first frame of 12)"), shown as they are.
"""

from __future__ import annotations

import enum


class Change(enum.StrEnum):
    GIF_TO_PNG = "gif_to_png"
    BMP_TO_PNG = "bmp_to_png"
    TIFF_TO_PNG = "tiff_to_png"
    FIRST_FRAME = "first_frame"
    FIRST_PAGE = "first_page"
    EXIF_TRANSPOSED = "exif_transposed"
    PALETTE_EXPANDED = "palette_expanded"
    TRANSPARENCY_TO_ALPHA = "transparency_to_alpha"
    CMYK_TO_RGB = "cmyk_to_rgb"
    BITS16_TO_8BIT = "16bit_to_8bit"
    BITS32_TO_8BIT = "32bit_to_8bit"


MEANINGS: dict[Change, str] = {
    Change.GIF_TO_PNG: "a GIF, which Gemini does not take, re-encoded as PNG",
    Change.BMP_TO_PNG: "a BMP re-encoded as PNG",
    Change.TIFF_TO_PNG: "a TIFF re-encoded as PNG",
    Change.FIRST_FRAME: "an animation (GIF, APNG, WEBP) kept as its first frame",
    Change.FIRST_PAGE: "a multi-page TIFF kept as its first page",
    Change.EXIF_TRANSPOSED: "turned upright by its EXIF orientation",
    Change.PALETTE_EXPANDED: "a palette image with transparency expanded to RGBA",
    Change.TRANSPARENCY_TO_ALPHA: "a colour-key transparency made an alpha channel",
    Change.CMYK_TO_RGB: "CMYK converted to RGB",
    Change.BITS16_TO_8BIT: "16-bit samples reduced to 8-bit",
    Change.BITS32_TO_8BIT: "32-bit integer or float samples reduced to 8-bit",
}


def mode_change(mode: str, target: str) -> str:
    """The code for a conversion between other Pillow modes, e.g. ``ycbcr_to_rgb``."""
    return f"{mode.lower()}_to_{target.lower()}"


def changes_description() -> str:
    """The codes, for the API schema's field description."""
    codes = ", ".join(f"{change.value} ({MEANINGS[change]})" for change in Change)
    return (
        "What submit did to the uploaded image before storing it, as codes: "
        f"{codes}; <mode>_to_<mode> (e.g. ycbcr_to_rgb) for other Pillow modes. Empty when "
        "it is stored as sent. Jobs stored before these codes may hold sentences "
        '("converted GIF to PNG (first frame of 12)").'
    )
