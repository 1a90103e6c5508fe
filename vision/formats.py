"""Recognise an image from its bytes (never its name) and read its upright size."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

PNG, JPEG, WEBP, HEIC, HEIF = "image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"
SUPPORTED_MIME_TYPES = (PNG, JPEG, WEBP, HEIC, HEIF)

# ISO-BMFF brands (the 'ftyp' box) of HEVC-coded images, and of generic HEIF images.
_HEIC_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs"}
_HEIF_BRANDS = {b"mif1", b"msf1"}
# EXIF orientations 5-8 turn the image a quarter: the upright width is the stored height.
_QUARTER_TURNS = {5, 6, 7, 8}
_EXIF_ORIENTATION = 0x0112


class ImageRejectedError(ValueError):
    """The bytes are not an image we can send to Gemini; ``code`` names the reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ImageInfo:
    mime_type: str
    width: int
    height: int
    # EXIF orientation (1 = upright); width and height above are already upright.
    orientation: int


def sniff_mime_type(data: bytes) -> str | None:
    """The MIME type the magic bytes announce, among the formats Gemini accepts."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return WEBP
    if len(data) >= 12 and data[4:8] == b"ftyp":
        brands = {data[8:12]} | _compatible_brands(data)
        if brands & _HEIC_BRANDS:
            return HEIC
        if brands & _HEIF_BRANDS:
            return HEIF
    return None


def _compatible_brands(data: bytes) -> set[bytes]:
    size = int.from_bytes(data[:4], "big")
    box = data[16 : min(size, 256)]
    return {box[i : i + 4] for i in range(0, len(box) - 3, 4)}


def _register_heif() -> None:
    # Imported lazily: pillow-heif is only needed when a HEIC/HEIF image shows up.
    from pillow_heif import register_heif_opener  # noqa: PLC0415

    register_heif_opener()


def inspect_image(data: bytes, *, max_pixels: int) -> ImageInfo:
    """Check that ``data`` is a supported, readable image and return its upright size.

    Raises ImageRejectedError with code ``unsupported_media_type``, ``corrupt_image`` or
    ``image_too_large``.
    """
    mime_type = sniff_mime_type(data)
    if mime_type is None:
        raise ImageRejectedError(
            "unsupported_media_type",
            "The file is not a PNG, JPEG, WEBP, HEIC or HEIF image (checked from its bytes); "
            "convert it to one of these formats.",
        )
    if mime_type in (HEIC, HEIF):
        _register_heif()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                orientation = int(image.getexif().get(_EXIF_ORIENTATION, 1) or 1)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageRejectedError(
            "corrupt_image", f"The {mime_type} image cannot be read ({exc}); check the file."
        ) from exc
    except Image.DecompressionBombError as exc:
        raise ImageRejectedError("image_too_large", str(exc)) from exc
    if width < 1 or height < 1:
        raise ImageRejectedError("corrupt_image", f"The image has no pixels ({width}x{height}).")
    if width * height > max_pixels:
        raise ImageRejectedError(
            "image_too_large",
            f"The image has {width}x{height} = {width * height:,} pixels, more than the "
            f"{max_pixels:,} allowed; downscale it first.",
        )
    if orientation in _QUARTER_TURNS:
        width, height = height, width
    return ImageInfo(mime_type=mime_type, width=width, height=height, orientation=orientation)
