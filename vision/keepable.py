"""What an image's bytes and header say before any pixel is decoded: whether it can be
kept as it is, and the facts a re-encode must preserve (PNG bit depth, chroma
subsampling, lossy or lossless WEBP)."""

from __future__ import annotations

from PIL import Image, JpegImagePlugin

from visionq.vision.integrity import PNG_CHANNELS, PngChunk

# Chunks that may make a PNG change: transparency to turn into alpha, an animation, an
# EXIF block (its orientation). Text chunks only with these keywords, which can hold an
# orientation too (Pillow reads one from XMP and from ImageMagick's raw EXIF profile).
_PNG_CHANGING = {b"tRNS", b"acTL", b"eXIf"}
_PNG_TEXT = {b"tEXt", b"zTXt", b"iTXt"}
PNG_ORIENTATION_KEYWORDS = (b"XML:com.adobe.xmp", b"Raw profile type exif")


def png_kept_as_is(data: bytes, chunks: list[PngChunk]) -> bool:
    """Whether a PNG keeps its bytes, known from its chunks without decoding a pixel: 8-bit
    gray, RGB, gray + alpha or RGBA, not interlaced, with nothing ``normalise_mode`` or
    the orientation would change. Every chunk but IDAT and IEND must come before the image
    data, where opening the file read (and CRC-checked) them as a full decode would.
    """
    if not chunks or chunks[0].kind != b"IHDR" or chunks[0].end - chunks[0].start != 13:
        return False
    header = data[chunks[0].start : chunks[0].end]
    if header[8] != 8 or header[9] not in PNG_CHANNELS or header[12] != 0:
        return False
    kinds = [chunk.kind for chunk in chunks]
    if b"IDAT" not in kinds:
        return False
    after_data = kinds[kinds.index(b"IDAT") :]
    if set(after_data) - {b"IDAT", b"IEND"} or _PNG_CHANGING.intersection(kinds):
        return False
    return not any(
        chunk.kind in _PNG_TEXT
        and data[chunk.start : chunk.end].startswith(PNG_ORIENTATION_KEYWORDS)
        for chunk in chunks
    )


def png_bit_depth(data: bytes) -> int:
    """The bit depth in a PNG's IHDR (8 when the file is too short to say)."""
    return data[24] if len(data) > 24 else 8


def chroma_subsampling(image: Image.Image) -> int | None:
    """0 (4:4:4) when the source keeps full chroma, so a re-encode keeps it too."""
    if isinstance(image, JpegImagePlugin.JpegImageFile):
        return 0 if JpegImagePlugin.get_sampling(image) == 0 else None
    if image.info.get("chroma") == 444:  # pillow-heif
        return 0
    return None


def webp_is_lossy(data: bytes) -> bool:
    """Whether the first image chunk of a WEBP is VP8 (lossy) rather than VP8L."""
    pos, end = 12, len(data)
    while pos + 8 <= end:
        kind = data[pos : pos + 4]
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        if kind == b"VP8 ":
            return True
        if kind == b"VP8L":
            return False
        # An animation frame (ANMF) holds its image chunks after a 16-byte header.
        pos = pos + 24 if kind == b"ANMF" else pos + 8 + size + (size & 1)
    return False
