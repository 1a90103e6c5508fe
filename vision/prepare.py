"""Submit-time normalisation of an image, and the optional downscale before Gemini.

Pure: bytes in, bytes out (no files, no network). ``prepare_image`` runs once, before an
image is stored or estimated; the bytes it returns are what gets stored (content-
addressed by sha256), sent to Gemini and used for every pixel coordinate afterwards.

Checks, in order (each failure raises ``ImageRejectedError``):

1. Format, from the magic bytes: PNG, JPEG, WEBP, HEIC, HEIF, and GIF, BMP and TIFF,
   which are always converted to PNG (``vision.conversion``). Anything else is
   ``unsupported_media_type``; the message names the format when Pillow knows it.
2. Size, from the header, before any pixel is decoded: more than ``max_pixels`` pixels is
   ``image_too_large`` (as are Pillow's ``DecompressionBombError``/``Warning``).
3. Container integrity, from the bytes alone (so it holds even if some other code sets
   Pillow's ``ImageFile.LOAD_TRUNCATED_IMAGES``, which this module never sets nor relies
   on): a PNG must reach IEND with valid CRCs on its critical chunks, a JPEG must have an
   EOI marker after its first scan, a WEBP must hold as many bytes as its RIFF header says.
   Failing that is ``corrupt_image`` ("the JPEG data is truncated (the file ends early)").
4. Full decode of the (first) frame with ``Image.load()``: any decoder error is
   ``corrupt_image`` naming Pillow's reason ("the PNG is corrupt: ..."). A JPEG that keeps
   its bytes (RGB or L, upright) is decoded with libjpeg's 1/8-scale output (``draft``):
   every scan is still entropy-decoded to its end, so it fails exactly where a full
   decode fails, for about half the CPU (its pixels are not used). A PNG that keeps its
   bytes (8-bit gray, RGB or with alpha, not interlaced, nothing after its image data) is
   only inflated, to the end of its zlib stream, and each row's filter type read
   (``check_png_rows``, with zlib-ng's inflate): a bad filter, missing rows or broken
   compressed data fail as in a full decode, for 1/5 to 1/20 of its CPU. It is
   stricter than Pillow, which stops at the last row: a stream whose Adler-32 checksum
   is wrong, or that does not end, is corrupt even when every row inflates (a fuzz of
   20,000 damaged PNGs found no file the check accepts and a full decode refuses).

Memory: given ``limits`` (``vision.memory``), the peak memory of the path an image takes
(the 1/8-scale JPEG check, the PNG row check, or a full decode plus its copies) is computed
once the header is read, before any pixel is decoded: over the per-image bound the image
is ``image_too_large``; otherwise the decode waits for that many bytes of the process's
budget. A WEBP is checked from its header before Pillow opens it (and libwebp allocates).

Policy: the original bytes are kept, byte for byte, whenever the image is already upright
and in a mode Gemini handles (so duplicates stay identical and content addressing works);
otherwise the image is re-encoded: as JPEG quality 95 (ICC profile kept, 4:4:4 chroma
kept) when the source is a JPEG, HEIC or HEIF without alpha, and as PNG (lossless) for
everything else. Re-encoded output carries no EXIF and no XMP (so no orientation tag can
be applied twice) and keeps the ICC profile only while it still matches the colour model.
``PreparedImage.changes`` lists what was done (the codes of ``vision.changes``), and is
empty exactly when the bytes are the input's:

- EXIF orientation 2-8 (or an XMP tiff:Orientation, as Pillow reads it): the pixels are
  transposed to upright, as ``ImageOps.exif_transpose`` does -> ``exif_transposed``.
  HEIC/HEIF carry their rotation in irot/imir boxes, which libheif applies when decoding
  (pillow-heif then resets the EXIF tag), so an upright-decoding HEIC keeps its bytes.
- Modes kept as they are: RGB, RGBA, L, LA, 1 (1-bit) and P (palette) without
  transparency: every PNG/JPEG/WEBP/HEIF decoder shows these correctly, alpha included.
- P with transparency (tRNS or an RGBA palette) and PA -> RGBA PNG ``palette_expanded``.
- RGB, L or 1 with a tRNS colour key -> RGBA/LA PNG ``transparency_to_alpha``.
- CMYK (and YCCK, which libjpeg hands over as CMYK) JPEG -> RGB JPEG ``cmyk_to_rgb``,
  through the embedded ICC profile when there is one (LittleCMS), else Pillow's formula.
- 16-bit grayscale (I;16, I;16B, ...) -> 8-bit L PNG ``16bit_to_8bit`` by a linear stretch
  of the values actually present (min -> 0, max -> 255): 12-bit or narrow-range data
  stays visible instead of turning black, and nothing is clipped. A colour-key
  transparency on such an image is dropped. 32-bit integer (I) and float (F) images get the
  same stretch -> ``32bit_to_8bit``. 16-bit RGB/RGBA/LA PNGs, which Pillow reduces to their
  high byte (a full-range scale), are re-encoded as 8-bit PNG -> ``16bit_to_8bit``.
- Other modes (YCbCr, LAB, HSV, ...) -> RGB or RGBA -> ``<mode>_to_<mode>``.
- GIF, BMP and TIFF (which Gemini does not take) -> PNG ``gif_to_png``, ``bmp_to_png``,
  ``tiff_to_png``; the first frame of an animated GIF -> also ``first_frame``, the first
  page of a multi-page TIFF -> also ``first_page`` (``vision.conversion``), before any
  change below.
- Animated PNG (APNG) and animated WEBP: the first frame (for an APNG, the default image
  that non-animated decoders show) becomes a still PNG -> ``first_frame``. A multi-picture
  JPEG (MPO) or a multi-image HEIF is not an animation: its primary image is what every
  decoder shows, so its bytes are kept.

``downscale`` shrinks a prepared image for one job. Gemini's boxes are normalised to
0-1000 over the whole frame, and the downscaled image shows exactly the same frame, so a
box maps back to the ORIGINAL pixels by multiplying with the original (prepared) width and
height; no other mapping is needed.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, JpegImagePlugin

from visionq.vision.changes import Change
from visionq.vision.conversion import conversion_changes
from visionq.vision.formats import (
    CONVERTED_MIME_TYPES,
    HEIC,
    HEIF,
    JPEG,
    PNG,
    SUPPORTED_MIME_TYPES,
    WEBP,
    check_header,
    open_image,
    read_orientation,
    require_supported,
)
from visionq.vision.integrity import (
    PngChunk,
    check_container,
    check_png_rows,
    decode,
    png_chunks,
)
from visionq.vision.keepable import (
    PNG_ORIENTATION_KEYWORDS,
    chroma_subsampling,
    png_bit_depth,
    png_kept_as_is,
    webp_is_lossy,
)
from visionq.vision.memory import DecodeLimits, decode_bytes, png_rows_bytes
from visionq.vision.modes import KEPT_MODES, WIDE_GRAY_MODES, encode, matching_icc, normalise_mode

JPEG_QUALITY = 95
DOWNSCALE_JPEG_QUALITY = 90

# The same transpositions as ImageOps.exif_transpose.
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_NO_LIMIT = 2**62
_QUARTER_TURNS = {5, 6, 7, 8}  # orientations whose upright width is the stored height


@dataclass(frozen=True)
class PreparedImage:
    data: bytes
    mime_type: str
    width: int
    height: int
    source_mime_type: str
    # What was done to the image; empty exactly when ``data`` is the input unchanged.
    changes: tuple[str, ...]


def prepare_image(
    data: bytes, *, max_pixels: int, limits: DecodeLimits | None = None
) -> PreparedImage:
    """Check, decode and normalise an uploaded image (see the module docstring).

    With ``limits``, the decode's memory (``vision.memory``) is known before any pixel is
    decoded: over the per-image bound the image is refused, else the decode waits for its
    bytes in the process's budget (``MemoryBusyError`` when the wait runs out).

    Raises ImageRejectedError with code ``unsupported_media_type``, ``image_too_large``
    or ``corrupt_image``.
    """
    source = require_supported(data)
    declared = check_header(data, source, max_pixels)  # before anything reads past the header
    check_container(data, source)
    if limits is not None and declared is not None and source == WEBP:
        # Pillow sets up libwebp's decoder (and its canvases) when it opens the file.
        limits.check(*declared, decode_bytes(*declared, WEBP, "RGB"))
    with open_image(data, source, max_pixels=max_pixels) as image:
        chunks = png_chunks(data) if source == PNG else []
        if _jpeg_kept_as_is(image, source):
            path = _JPEG_CHECK
        elif png_kept_as_is(data, chunks):
            path = _PNG_ROWS
        else:
            path = _DECODE
        if limits is None:
            return _prepare_open(image, data, source, chunks, path)
        with limits.hold(*image.size, _prepare_bytes(image, source, chunks, path)):
            return _prepare_open(image, data, source, chunks, path)


_JPEG_CHECK, _PNG_ROWS, _DECODE = "jpeg_check", "png_rows", "decode"


def _prepare_bytes(image: Image.Image, source: str, chunks: list[PngChunk], path: str) -> int:
    """The peak memory of ``_prepare_open`` on ``path``, from the opened (undecoded) image."""
    width, height = image.size
    if path == _PNG_ROWS:
        return png_rows_bytes()
    components = _progressive_components(image)
    if path == _JPEG_CHECK:
        return decode_bytes(
            width, height, source, image.mode, scale=8, progressive_components=components
        )
    kinds = {chunk.kind for chunk in chunks}
    turned = read_orientation(image) in _TRANSPOSE or b"eXIf" in kinds
    animated = b"acTL" in kinds  # an APNG's decoder keeps the previous frame too
    return decode_bytes(
        width,
        height,
        source,
        image.mode,
        copies=int(turned) + int(animated) + _conversion_copies(image),
        progressive_components=components,
    )


def _conversion_copies(image: Image.Image) -> int:
    """Full-size images ``normalise_mode`` makes for ``image``'s mode."""
    mode = image.mode
    if mode in WIDE_GRAY_MODES:
        return 2  # to I, then to L
    if mode in ("RGB", "L", "1") and "transparency" in image.info:
        return 1
    if mode == "P" and image.has_transparency_data:
        return 1
    return 0 if mode in KEPT_MODES else 1


def _progressive_components(image: Image.Image) -> int:
    """Components of a progressive JPEG (whose coefficients libjpeg keeps whole), else 0."""
    if isinstance(image, JpegImagePlugin.JpegImageFile) and image.info.get("progressive"):
        return max(1, len(image.mode))
    return 0


def _prepare_open(
    image: Image.Image, data: bytes, source: str, chunks: list[PngChunk], path: str
) -> PreparedImage:
    """``prepare_image`` once the image is open and the path chosen."""
    if path == _JPEG_CHECK:
        width, height = image.size  # before the draft below shrinks it
        decode(image, source, check_only=True)
        return PreparedImage(data, source, width, height, source, ())
    if path == _PNG_ROWS:
        check_png_rows(data, chunks)
        return PreparedImage(data, source, *image.size, source, ())
    decode(image, source)
    changes: list[str] = []
    if source in CONVERTED_MIME_TYPES:  # never kept: Gemini does not take the format
        changes.extend(conversion_changes(data, source))
    if source in (PNG, WEBP) and getattr(image, "is_animated", False):
        changes.append(Change.FIRST_FRAME)
    if source == PNG and png_bit_depth(data) == 16 and image.mode not in WIDE_GRAY_MODES:
        changes.append(Change.BITS16_TO_8BIT)  # Pillow already kept the high byte
    icc = image.info.get("icc_profile") or None
    subsampling = chroma_subsampling(image)
    upright = image
    orientation = read_orientation(image)
    if orientation in _TRANSPOSE:
        upright = image.transpose(_TRANSPOSE[orientation])
        changes.append(Change.EXIF_TRANSPOSED)
    output, mode_changes = normalise_mode(upright, icc)
    changes.extend(mode_changes)
    width, height = output.size
    if not changes:
        return PreparedImage(data, source, width, height, source, ())
    mime_type = JPEG if source in (JPEG, HEIC, HEIF) and output.mode in ("L", "RGB") else PNG
    encoded = encode(
        output,
        mime_type,
        quality=JPEG_QUALITY,
        icc=matching_icc(icc, output.mode),
        subsampling=subsampling,
    )
    return PreparedImage(encoded, mime_type, width, height, source, tuple(changes))


def downscale(
    data: bytes, mime_type: str, *, max_side: int, limits: DecodeLimits | None = None
) -> tuple[bytes, str, int, int] | None:
    """Shrink an image so its longer side is ``max_side``; None if it already fits.

    ``data`` is a prepared image (any EXIF orientation left is applied anyway, so the
    result is upright). The longer side becomes exactly ``max_side`` and the shorter one
    keeps the aspect ratio, rounded to the nearest pixel (at least 1); the resampling is
    LANCZOS. A JPEG is decoded at the smallest DCT scale (1/2, 1/4, 1/8) still at least
    the target size, for a fraction of the memory. Re-encoded as JPEG quality 90 when
    ``mime_type`` is a photo format (JPEG, HEIC, HEIF, lossy WEBP) without alpha, else as
    PNG. Returns (bytes, mime type, width, height). Boxes Gemini returns for the
    downscaled image are normalised 0-1000 over the same frame: multiply them by the
    ORIGINAL width/height to get original pixels. With ``limits``, the decode's memory is
    checked against the per-image bound (``image_too_large``) and held in the budget.
    """
    if max_side < 1:
        raise ValueError(f"max_side must be at least 1, not {max_side}")
    source = require_supported(data)
    if {source, mime_type} - {HEIC, HEIF} and source != mime_type:
        raise ValueError(f"the data is {source}, not {mime_type}")
    # No pixel limit of our own here (the image passed prepare_image); Pillow's guard stays.
    with open_image(data, source, max_pixels=_NO_LIMIT) as image:
        stored = image.size
        if max(stored) <= max_side:  # a turn does not change the longer side
            return None
        if isinstance(image, JpegImagePlugin.JpegImageFile):
            image.draft(image.mode, _fit(*stored, max_side))
        if limits is None:
            return _downscale_open(image, data, source, stored, max_side)
        needed = _downscale_bytes(image, data, source, stored, max_side)
        with limits.hold(*stored, needed):
            return _downscale_open(image, data, source, stored, max_side)


def downscale_memory(data: bytes, max_side: int) -> tuple[int, int, int] | None:
    """(width, height, peak bytes) of ``downscale`` to ``max_side``, read from the header
    without decoding; None when the image already fits. For a check at submit: a job whose
    downscale would pass the per-image bound is refused before it is queued."""
    source = require_supported(data)
    with open_image(data, source, max_pixels=_NO_LIMIT) as image:
        stored = image.size
        if max(stored) <= max_side:
            return None
        if isinstance(image, JpegImagePlugin.JpegImageFile):
            image.draft(image.mode, _fit(*stored, max_side))
        return (*stored, _downscale_bytes(image, data, source, stored, max_side))


def _downscale_bytes(
    image: Image.Image, data: bytes, source: str, full: tuple[int, int], max_side: int
) -> int:
    """Peak bytes of downscaling ``image`` of ``full`` size (open, a JPEG's DCT scale
    chosen, so ``image.size`` may be smaller)."""
    scale = max(1, round(full[0] / image.size[0]))
    if source == PNG:
        # Pillow reads a PNG's orientation by decoding it whole (its eXIf may trail the
        # pixels): count a turn from its chunks instead, before any pixel is decoded.
        turned = b"eXIf" in data or any(key in data for key in PNG_ORIENTATION_KEYWORDS)
    else:
        turned = read_orientation(image) in _TRANSPOSE
    copies = int(turned) + _conversion_copies(image) + int(image.mode in ("1", "P"))
    needed = decode_bytes(
        *full,
        source,
        image.mode,
        scale=scale,
        copies=copies,
        progressive_components=_progressive_components(image),
    )
    # Pillow resizes in two passes, rows first (max_side x the decoded height), then the
    # small image and its encoding.
    return needed + 4 * max_side * (max(full) // scale + 1) + 8 * max_side * max_side


def _downscale_open(
    image: Image.Image, data: bytes, source: str, stored: tuple[int, int], max_side: int
) -> tuple[bytes, str, int, int]:
    """``downscale`` once the image is open (and a JPEG's DCT scale chosen)."""
    decode(image, source)
    icc = image.info.get("icc_profile") or None
    orientation = read_orientation(image)  # after the decode: a PNG's eXIf may trail
    upright = image.transpose(_TRANSPOSE[orientation]) if orientation in _TRANSPOSE else image
    # The full-size frame (a JPEG may be decoded smaller): it decides the output size.
    width, height = stored[::-1] if orientation in _QUARTER_TURNS else stored
    still, _ = normalise_mode(upright, icc)
    if still.mode in ("1", "P"):  # Pillow resizes these only with NEAREST
        still = still.convert("L" if still.mode == "1" else "RGB")
    size = _fit(width, height, max_side)
    small = still.resize(size, Image.Resampling.LANCZOS)
    photo = source in (JPEG, HEIC, HEIF) or (source == WEBP and webp_is_lossy(data))
    out_mime = JPEG if photo and small.mode in ("L", "RGB") else PNG
    encoded = encode(
        small, out_mime, quality=DOWNSCALE_JPEG_QUALITY, icc=matching_icc(icc, small.mode)
    )
    return encoded, out_mime, size[0], size[1]


def _fit(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) scaled so the longer side is ``max_side``, rounded half up."""
    longer, shorter = max(width, height), min(width, height)
    scaled = max(1, (2 * shorter * max_side + longer) // (2 * longer))
    return (max_side, scaled) if width >= height else (scaled, max_side)


def _jpeg_kept_as_is(image: Image.Image, mime_type: str) -> bool:
    """Whether a JPEG keeps its bytes (RGB or L, upright), known before any pixel is decoded.

    A JPEG's EXIF and XMP (hence its orientation) sit in APP segments, which Pillow reads
    when opening it; ``normalise_mode`` keeps RGB and L as they are.
    """
    return (
        mime_type == JPEG
        and image.mode in ("RGB", "L")
        and read_orientation(image) not in _TRANSPOSE
    )


__all__ = ["SUPPORTED_MIME_TYPES", "PreparedImage", "downscale", "normalise_mode", "prepare_image"]
