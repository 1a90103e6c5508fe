"""GIF, BMP and TIFF, which Gemini does not take, become a PNG at submit.

``vision.prepare`` decodes them like any image (the same pixel limit, decode-memory bound
and corrupt-file checks) and always re-encodes them as PNG, lossless. An animated GIF or a
multi-page TIFF gives its first frame or page, which every viewer shows first. What was
done is the image's change ``conversion_note`` words, e.g. "converted GIF to PNG (first
frame of 12)". Frames and pages are counted from the bytes (block and IFD headers only),
never by decoding them.
"""

from __future__ import annotations

from typing import Literal

from visionq.vision.formats import BMP, FORMAT_NAMES, GIF, TIFF

# Counting stops here: a note saying "of 10000+" is as useful as the exact number.
MAX_COUNTED = 10_000
_GIF_EXTENSION, _GIF_IMAGE, _GIF_TRAILER = 0x21, 0x2C, 0x3B
_GIF_COLOUR_TABLE = 0x80


def conversion_note(data: bytes, source: str) -> str:
    """The change recorded for converting ``data`` (GIF, BMP or TIFF) to PNG."""
    name = FORMAT_NAMES[source]
    count = gif_frames(data) if source == GIF else tiff_pages(data) if source == TIFF else 1
    if source == BMP or count <= 1:
        return f"converted {name} to PNG"
    what = "frame" if source == GIF else "page"
    of = f"{count}+" if count >= MAX_COUNTED else str(count)
    return f"converted {name} to PNG (first {what} of {of})"


def _skip_sub_blocks(data: bytes, pos: int) -> int:
    """The position after a GIF's data sub-blocks starting at ``pos`` (its terminator)."""
    while pos < len(data):
        size = data[pos]
        pos += 1 + size
        if size == 0:
            return pos
    return len(data)


def gif_frames(data: bytes) -> int:
    """The images (frames) a GIF holds, from its block structure (at least 1)."""
    flags = data[10] if len(data) > 10 else 0
    pos = 13 + (3 * 2 ** ((flags & 7) + 1) if flags & _GIF_COLOUR_TABLE else 0)
    frames = 0
    while pos < len(data) and frames < MAX_COUNTED:
        kind = data[pos]
        if kind == _GIF_IMAGE:
            frames += 1
            local = data[pos + 9] if pos + 9 < len(data) else 0
            pos += 10 + (3 * 2 ** ((local & 7) + 1) if local & _GIF_COLOUR_TABLE else 0)
            pos = _skip_sub_blocks(data, pos + 1)  # after the LZW minimum code size
        elif kind == _GIF_EXTENSION:
            pos = _skip_sub_blocks(data, pos + 2)
        else:  # the trailer, or bytes that are no block: the count so far
            break
    return max(frames, 1)


def tiff_pages(data: bytes) -> int:
    """The pages (IFDs) of a classic TIFF, following the IFD chain (at least 1)."""
    order: Literal["little", "big"] = "little" if data[:2] == b"II" else "big"
    offset = int.from_bytes(data[4:8], order)
    seen: set[int] = set()
    while 8 <= offset < len(data) - 2 and offset not in seen and len(seen) < MAX_COUNTED:
        seen.add(offset)
        entries = int.from_bytes(data[offset : offset + 2], order)
        next_at = offset + 2 + 12 * entries
        if next_at + 4 > len(data):
            break
        offset = int.from_bytes(data[next_at : next_at + 4], order)
    return max(len(seen), 1)
