"""GIF, BMP and TIFF, which Gemini does not take, become a PNG at submit.

``vision.prepare`` decodes them like any image (the same pixel limit, decode-memory bound
and corrupt-file checks) and always re-encodes them as PNG, lossless. An animated GIF or a
multi-page TIFF gives its first frame or page, which every viewer shows first. What was
done is the image's changes ``conversion_changes`` gives (codes of ``vision.changes``),
e.g. ``gif_to_png`` and ``first_frame``. Frames and pages are counted from the bytes
(block and IFD headers only), never by decoding them.
"""

from __future__ import annotations

from typing import Literal

from visionq.vision.changes import Change
from visionq.vision.formats import BMP, GIF, TIFF

# Counting stops here: past it, the count makes no difference.
MAX_COUNTED = 10_000
_GIF_EXTENSION, _GIF_IMAGE, _GIF_TRAILER = 0x21, 0x2C, 0x3B
_GIF_COLOUR_TABLE = 0x80
_TO_PNG = {GIF: Change.GIF_TO_PNG, BMP: Change.BMP_TO_PNG, TIFF: Change.TIFF_TO_PNG}


def conversion_changes(data: bytes, source: str) -> tuple[Change, ...]:
    """The changes recorded for converting ``data`` (GIF, BMP or TIFF) to PNG."""
    if source == GIF and gif_frames(data) > 1:
        return (Change.GIF_TO_PNG, Change.FIRST_FRAME)
    if source == TIFF and tiff_pages(data) > 1:
        return (Change.TIFF_TO_PNG, Change.FIRST_PAGE)
    return (_TO_PNG[source],)


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
