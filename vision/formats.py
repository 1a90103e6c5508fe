"""Recognise an image from its bytes (never its name) and read its upright size.

Only the header is read here (cheap, no pixel decoding); ``vision.prepare`` does the full
decode and the normalisation. Both share the helpers below, so the API gives the same
error codes and messages whichever of the two it calls:

- ``unsupported_media_type``: not PNG, JPEG, WEBP, HEIC, HEIF, GIF, BMP or TIFF; the
  message names the format when Pillow recognises it ("The file is in ICO format, ...").
  GIF, BMP and TIFF are taken but Gemini is never sent them: ``vision.prepare`` converts
  them to PNG at submit (``CONVERTED_MIME_TYPES``).
- ``image_too_large``: the header declares more than ``max_pixels`` pixels (checked before
  any pixel is decoded; the message gives the size, the limit and a size that would fit).
- ``corrupt_image``: the bytes announce a supported format but cannot be read.
"""

from __future__ import annotations

import io
import math
import struct
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache

from PIL import Image, UnidentifiedImageError

from visionq.vision.errors import CodedError

PNG, JPEG, WEBP, HEIC, HEIF = "image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"
GIF, BMP, TIFF = "image/gif", "image/bmp", "image/tiff"
# What Gemini takes (and what is stored and sent); the others are converted to PNG first.
SUPPORTED_MIME_TYPES = (PNG, JPEG, WEBP, HEIC, HEIF)
CONVERTED_MIME_TYPES = (GIF, BMP, TIFF)

# Short names used in messages, and the Pillow format id that decodes each type.
FORMAT_NAMES = {PNG: "PNG", JPEG: "JPEG", WEBP: "WEBP", HEIC: "HEIC", HEIF: "HEIF",
                GIF: "GIF", BMP: "BMP", TIFF: "TIFF"}  # fmt: skip
_PILLOW_FORMATS = {PNG: "PNG", JPEG: "JPEG", WEBP: "WEBP", HEIC: "HEIF", HEIF: "HEIF",
                   GIF: "GIF", BMP: "BMP", TIFF: "TIFF"}  # fmt: skip
ACCEPTED_FORMATS_TEXT = "PNG, JPEG, WEBP, HEIC, HEIF, GIF, BMP or TIFF"
# The sizes of a BMP's info header (BITMAPCOREHEADER, BITMAPINFOHEADER, its v2-v5).
_BMP_HEADER_SIZES = {12, 40, 52, 56, 64, 108, 124}

# ISO-BMFF brands (the 'ftyp' box) of HEVC-coded images, and of generic HEIF images.
_HEIC_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs"}
_HEIF_BRANDS = {b"mif1", b"msf1"}
# AVIF is HEIF with AV1 inside: it carries 'mif1' too, but Gemini does not take it as HEIF.
_AVIF_BRANDS = {b"avif", b"avis"}
# EXIF orientations 5-8 turn the image a quarter: the upright width is the stored height.
_QUARTER_TURNS = {5, 6, 7, 8}
EXIF_ORIENTATION = 0x0112

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (they carry the size): C0-CF except DHT, JPG and DAC.
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
# JPEG markers without a length field: TEM, RST0-7, SOI, EOI.
_JPEG_STANDALONE = {0x01, *range(0xD0, 0xD8), 0xD8, 0xD9}
_JPEG_SOS = 0xDA


class ImageRejectedError(CodedError, ValueError):
    """The bytes are not an image we can send to Gemini: not a format we take, undecodable,
    or too large to decode within the memory bound. Raised at submit (the API refuses the
    image) and, for a downscale over the bound, in the worker (the job fails)."""

    codes = frozenset({"unsupported_media_type", "corrupt_image", "image_too_large"})


def sniff_mime_type(data: bytes) -> str | None:
    """The MIME type the magic bytes announce, among the formats Gemini accepts."""
    return _sniff_gemini(data)


def sniff_source_type(data: bytes) -> str | None:
    """The MIME type the magic bytes announce, among every format taken at submit: those
    Gemini accepts, and GIF, BMP and TIFF (converted to PNG)."""
    found = _sniff_gemini(data)
    if found is not None:
        return found
    if data.startswith((b"GIF87a", b"GIF89a")):
        return GIF
    if data.startswith((b"II*\0", b"MM\0*")):
        return TIFF
    if (
        data[:2] == b"BM"
        and len(data) >= 18
        and int.from_bytes(data[14:18], "little") in _BMP_HEADER_SIZES
    ):
        return BMP
    return None


def _sniff_gemini(data: bytes) -> str | None:
    if data.startswith(_PNG_SIGNATURE):
        return PNG
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return WEBP
    if len(data) >= 12 and data[4:8] == b"ftyp":
        return _heif_type({data[8:12]} | _compatible_brands(data))
    return None


def _heif_type(brands: set[bytes]) -> str | None:
    if brands & _HEIC_BRANDS:
        return HEIC
    if brands & _HEIF_BRANDS and not brands & _AVIF_BRANDS:
        return HEIF
    return None


def _compatible_brands(data: bytes) -> set[bytes]:
    size = int.from_bytes(data[:4], "big")
    box = data[16 : min(size, 256)]
    return {box[i : i + 4] for i in range(0, len(box) - 3, 4)}


@cache
def register_heif() -> None:
    """Let Pillow open HEIC/HEIF images (pillow-heif), registered on first need."""
    # Imported lazily: pillow-heif is only needed when a HEIC/HEIF image shows up.
    from pillow_heif import register_heif_opener  # noqa: PLC0415

    register_heif_opener()


def pillow_format_name(data: bytes) -> str | None:
    """The format Pillow recognises in ``data`` ("GIF", "BMP", "TIFF", ...), if any.

    Only the header is parsed, and only to name the format in an error message.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                return image.format
    except Exception:  # any failure just means "unknown": this only words a message
        return None


def unsupported_error(data: bytes) -> ImageRejectedError:
    """The ``unsupported_media_type`` rejection for bytes that are no accepted format."""
    name = pillow_format_name(data) or _known_signature(data)
    if name:
        message = (
            f"The file is in {name} format, which Gemini does not accept; send "
            f"{ACCEPTED_FORMATS_TEXT} (convert it to PNG or JPEG first)."
        )
    else:
        message = (
            f"The file is not a {ACCEPTED_FORMATS_TEXT} image (checked from its bytes, not "
            "its name); convert it to one of these formats."
        )
    return ImageRejectedError("unsupported_media_type", message)


def _known_signature(data: bytes) -> str | None:
    # Formats named even when their body is too broken for Pillow to open.
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if data.startswith((b"II*\0", b"MM\0*")):
        return "TIFF"
    return None


def require_supported(data: bytes) -> str:
    """The sniffed MIME type of ``data`` (a format taken at submit, GIF/BMP/TIFF included);
    raise ``unsupported_media_type`` if none."""
    mime_type = sniff_source_type(data)
    if mime_type is None:
        raise unsupported_error(data)
    return mime_type


def header_size(data: bytes, mime_type: str) -> tuple[int, int] | None:
    """The stored (not EXIF-rotated) size declared by a PNG, JPEG, WEBP, GIF or BMP header.

    Read without Pillow, so a decompression bomb is refused from a few bytes. None when
    the header is too short or malformed (Pillow then reports the problem), for
    HEIC/HEIF, whose size comes from pillow-heif, and for TIFF, whose size sits in an IFD
    anywhere in the file (Pillow reads it there, before decoding any pixel).
    """
    reader = _SIZE_READERS.get(mime_type)
    try:
        return reader(data) if reader is not None else None
    except (struct.error, IndexError):
        return None


def _gif_size(data: bytes) -> tuple[int, int] | None:
    width, height = struct.unpack("<HH", data[6:10])  # the logical screen
    return int(width), int(height)


def _png_size(data: bytes) -> tuple[int, int] | None:
    if data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            pos += 1  # stray byte between segments: libjpeg skips these too
            continue
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1  # fill byte
            continue
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        if marker == _JPEG_SOS:
            return None
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return int(width), int(height)
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return None


def _bmp_size(data: bytes) -> tuple[int, int] | None:
    if int.from_bytes(data[14:18], "little") == 12:  # BITMAPCOREHEADER: 16-bit sizes
        width, height = struct.unpack("<HH", data[18:22])
        return int(width), int(height)
    width, height = struct.unpack("<ii", data[18:26])
    return abs(int(width)), abs(int(height))  # a negative height is a top-down bitmap


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return int(width) & 0x3FFF, int(height) & 0x3FFF
    if chunk == b"VP8L" and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


_SIZE_READERS: dict[str, Callable[[bytes], tuple[int, int] | None]] = {
    PNG: _png_size, JPEG: _jpeg_size, WEBP: _webp_size, GIF: _gif_size, BMP: _bmp_size,
}  # fmt: skip


def too_large_error(width: int, height: int, max_pixels: int) -> ImageRejectedError:
    """The ``image_too_large`` rejection, with a size that would fit."""
    scale = math.sqrt(max_pixels / (width * height))
    fit_w, fit_h = max(1, math.floor(width * scale)), max(1, math.floor(height * scale))
    return ImageRejectedError(
        "image_too_large",
        f"The image is {width}x{height} = {width * height:,} pixels, more than the "
        f"{max_pixels:,} allowed; downscale it (for example to {fit_w}x{fit_h}) and "
        "submit it again.",
    )


def check_pixels(width: int, height: int, max_pixels: int) -> None:
    """Refuse an empty image or one above the pixel limit."""
    if width < 1 or height < 1:
        raise ImageRejectedError("corrupt_image", f"The image has no pixels ({width}x{height}).")
    if width * height > max_pixels:
        raise too_large_error(width, height, max_pixels)


def check_header(data: bytes, mime_type: str, max_pixels: int) -> tuple[int, int] | None:
    """Refuse a decompression bomb from the header bytes alone; the declared size, if read."""
    declared = header_size(data, mime_type)
    if declared is not None:
        check_pixels(*declared, max_pixels)
    return declared


def corrupt_error(problem: str, hint: str = "re-save or re-export it") -> ImageRejectedError:
    """The ``corrupt_image`` rejection: ``problem`` says what is wrong, ``hint`` what to do."""
    return ImageRejectedError(
        "corrupt_image", f"The image cannot be decoded: {problem}; {hint} and submit it again."
    )


def _open_failure_reason(data: bytes, mime_type: str) -> str:
    # Image.open hides the plugin's own reason behind "cannot identify image file"; ask
    # the plugin directly for it (this runs only after Image.open has failed).
    opener = Image.OPEN.get(_PILLOW_FORMATS[mime_type])
    if opener is not None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                opener[0](io.BytesIO(data), "").close()
        except Exception as exc:  # the reason is all we want from it
            return str(exc) or type(exc).__name__
    return "its header cannot be parsed"


@contextmanager
def open_image(data: bytes, mime_type: str, *, max_pixels: int) -> Iterator[Image.Image]:
    """Open ``data`` with the Pillow plugin of ``mime_type``, reading the header only.

    Refuses decompression bombs before any pixel is decoded: first from our own header
    parse (PNG, JPEG, WEBP), then from the size Pillow reports (all formats). Pillow's
    own bomb guard (``Image.MAX_IMAGE_PIXELS``, not changed here) also maps to
    ``image_too_large``; its warning is silenced since ``max_pixels`` is the policy.
    """
    name = FORMAT_NAMES[mime_type]
    check_header(data, mime_type, max_pixels)
    if mime_type in (HEIC, HEIF):
        register_heif()
    try:
        with warnings.catch_warnings():
            # A bomb is refused by size below; other warnings (a TIFF's "Corrupt EXIF
            # data") are followed by an error, or by an image that decodes.
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(data), formats=[_PILLOW_FORMATS[mime_type]])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own limit, below max_pixels: its message gives the size and the limit.
        raise ImageRejectedError(
            "image_too_large",
            f"The image is too large to decode safely ({exc}); downscale it and submit it again.",
        ) from exc
    except UnidentifiedImageError as exc:
        reason = _open_failure_reason(data, mime_type)
        raise corrupt_error(f"the {name} is corrupt or truncated: {reason}") from exc
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError) as exc:
        raise corrupt_error(f"the {name} is corrupt: {exc}") from exc
    with image:
        check_pixels(image.width, image.height, max_pixels)
        yield image


def read_orientation(image: Image.Image) -> int:
    """The EXIF orientation (1-8) Pillow sees, or 1 when absent, invalid or unreadable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = image.getexif().get(EXIF_ORIENTATION, 1)
        orientation = int(value or 1)
    except Exception:  # a broken EXIF block must not make a decodable image unusable
        return 1
    return orientation if 1 <= orientation <= 8 else 1
