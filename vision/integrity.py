"""Integrity of an uploaded image: its container from the bytes, then a decode of its pixels.

Pure (bytes and Pillow images in, ``ImageRejectedError`` out); ``vision.prepare`` runs
these in the order its docstring gives. The container check holds even if some other code
sets Pillow's ``ImageFile.LOAD_TRUNCATED_IMAGES`` (never set nor relied on here).
"""

from __future__ import annotations

import struct
import warnings
from dataclasses import dataclass
from typing import cast

from PIL import Image

# zlib-ng: the same streams, checksums and API as zlib, with an inflate several times as
# fast (18x on flat, synthetic images); a PNG's check is mostly inflating its data.
from zlib_ng import zlib_ng

from visionq.vision.formats import FORMAT_NAMES, JPEG, PNG, WEBP, ImageRejectedError, corrupt_error

_PNG_CRITICAL = {b"IHDR", b"PLTE", b"IDAT", b"IEND"}
# Bytes per pixel of the 8-bit PNG colour types whose rows ``check_png_rows`` reads:
# grayscale, RGB, grayscale + alpha, RGBA.
PNG_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}
_PNG_FILTERS = 5  # row filter types 0-4
_INFLATE_STEP = 1 << 16  # bytes of rows inflated at a time: memory stays flat
# Bytes a PNG's data may inflate to past its last row (decoders ignore them). A bound, as
# a few compressed bytes can inflate to gigabytes that would cost seconds to read.
_PNG_SLACK = 1 << 20
_TRUNCATED = "truncated"
# zlib_ng.pyi types ``error`` as an instance; it is the exception class.
_INFLATE_ERROR = cast(type[Exception], zlib_ng.error)
# Decoder errors that mean "these bytes are not a good image".
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, RuntimeError, struct.error)


def check_container(data: bytes, mime_type: str) -> None:
    """Refuse a truncated or corrupt container, from the bytes alone (no decoding): a PNG
    must reach IEND with valid CRCs on its critical chunks, a JPEG must have an EOI marker
    after its first scan, a WEBP must hold as many bytes as its RIFF header says."""
    name = FORMAT_NAMES[mime_type]
    if mime_type == PNG:
        problem = _png_problem(data)
    elif mime_type == JPEG:
        problem = _jpeg_problem(data)
    elif mime_type == WEBP:
        problem = _webp_problem(data)
    else:
        problem = None  # HEIC/HEIF: libheif checks its boxes itself
    if problem == _TRUNCATED:
        raise _truncated_error(name)
    if problem is not None:
        raise corrupt_error(f"the {name} is corrupt: {problem}")


def _truncated_error(name: str) -> ImageRejectedError:
    return corrupt_error(
        f"the {name} data is truncated (the file ends early)", "upload the complete file"
    )


def _png_problem(data: bytes) -> str | None:
    view = memoryview(data)
    pos = 8
    while True:
        if pos + 12 > len(data):
            return _TRUNCATED
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if length > 0x7FFFFFFF:
            return f"chunk {kind!r} has an invalid length"
        if end > len(data):
            return _TRUNCATED
        if pos == 8 and kind != b"IHDR":
            return "the first chunk is not IHDR"
        if kind in _PNG_CRITICAL:
            expected = int.from_bytes(data[end - 4 : end], "big")
            if zlib_ng.crc32(view[pos + 4 : end - 4]) != expected:
                return f"the {kind.decode('ascii')} chunk fails its CRC check"
        if kind == b"IEND":
            return None
        pos = end


def _jpeg_problem(data: bytes) -> str | None:
    pos = 2
    while True:
        pos = data.find(b"\xff", pos)  # libjpeg skips stray bytes between segments too
        if pos < 0 or pos + 2 > len(data):
            return _TRUNCATED
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
        elif marker == 0xD9:
            return "the file ends (EOI) before any image data"
        elif marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            pos += 2
        else:
            if pos + 4 > len(data):
                return _TRUNCATED
            end = pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
            if end > len(data):
                return _TRUNCATED
            if marker == 0xDA:  # start of scan: the entropy-coded data follows
                break
            pos = end
    # 0xFF inside entropy-coded data is always stuffed (FF 00), so an FF D9 after the
    # first scan is the end of the image; without one the file was cut. Searched from the
    # end, where it normally is (a forward search stops at every stuffed FF of the scan).
    return None if data.rfind(b"\xff\xd9", end) >= 0 else _TRUNCATED


def _webp_problem(data: bytes) -> str | None:
    riff_size = int.from_bytes(data[4:8], "little")
    if riff_size < 4:
        return f"the RIFF header declares an impossible size ({riff_size})"
    return _TRUNCATED if 8 + riff_size > len(data) else None


def decode(image: Image.Image, mime_type: str, *, check_only: bool = False) -> None:
    """Decode the current frame; map decoder errors to corrupt_image.

    ``check_only`` (a JPEG whose pixels are not used): libjpeg's 1/8-scale DCT output.
    Every scan is still read and entropy-decoded to its end, so a truncated or corrupt
    file fails as in a full decode, for about half the CPU of a full-size photo.
    """
    name = FORMAT_NAMES[mime_type]
    if check_only:
        width, height = image.size
        image.draft(image.mode, (max(1, width // 8), max(1, height // 8)))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.load()
    except Image.DecompressionBombError as exc:
        raise ImageRejectedError(
            "image_too_large", f"The image is too large to decode safely ({exc})."
        ) from exc
    except _DECODE_ERRORS as exc:
        reason = str(exc) or type(exc).__name__
        if "truncated" in reason.lower() or isinstance(exc, EOFError):
            raise _truncated_error(name) from exc
        raise corrupt_error(f"the {name} is corrupt: {reason}") from exc


@dataclass(frozen=True)
class PngChunk:
    kind: bytes
    start: int  # of the chunk's data
    end: int


def png_chunks(data: bytes) -> list[PngChunk]:
    """The chunks of a PNG that passed ``check_container``, up to IEND."""
    chunks, pos = [], 8
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        chunk = PngChunk(data[pos + 4 : pos + 8], pos + 8, pos + 8 + length)
        chunks.append(chunk)
        if chunk.kind == b"IEND":
            break
        pos = chunk.end + 4
    return chunks


def check_png_rows(data: bytes, chunks: list[PngChunk]) -> None:
    """Check the pixel data of a non-interlaced 8-bit PNG without building its pixels.

    The IDAT data is inflated to the end of its zlib stream (its Adler-32 checked) and
    every row's filter type byte is read, which is what a decoder can fail on; the rows
    are not unfiltered, which no corrupt file can fail. Failures are the ``corrupt_image``
    errors a full decode gives; with zlib-ng's inflate the bench's PNGs take about 0.2 ms
    instead of 3 ms for a full decode.
    """
    header = data[chunks[0].start : chunks[0].end]
    width, height = int.from_bytes(header[0:4], "big"), int.from_bytes(header[4:8], "big")
    stride = 1 + width * PNG_CHANNELS[header[9]]
    rows = stride * height
    view = memoryview(data)
    inflater = zlib_ng.decompressobj()
    done = 0  # bytes of the decompressed stream seen so far
    try:
        for chunk in (c for c in chunks if c.kind == b"IDAT"):
            pending: bytes | memoryview = view[chunk.start : chunk.end]
            while pending and not inflater.eof:
                out = inflater.decompress(pending, _INFLATE_STEP)
                pending = inflater.unconsumed_tail
                _check_filters(out, done, stride, rows)
                done += len(out)
                if done > rows + _PNG_SLACK:
                    raise corrupt_error(
                        "the PNG is corrupt: its image data is longer than its rows"
                    )
            if inflater.eof:
                break
    except _INFLATE_ERROR as exc:
        raise corrupt_error(f"the PNG is corrupt: its image data does not inflate ({exc})") from exc
    if done < rows:
        raise _truncated_error("PNG")
    if not inflater.eof:
        raise corrupt_error("the PNG is corrupt: its image data stream does not end")


def _check_filters(out: bytes, offset: int, stride: int, rows: int) -> None:
    """The filter type bytes of the rows in ``out`` (which starts at ``offset``)."""
    first = -offset % stride  # index in ``out`` of the first row start in it
    last = min(len(out), rows - offset)
    if first < last:
        worst = max(out[first:last:stride])
        if worst >= _PNG_FILTERS:
            raise corrupt_error(f"the PNG is corrupt: a row has an unknown filter type ({worst})")
