"""Inline bytes or the File API, per image, so each request stays under the inline limit."""

from __future__ import annotations

from collections.abc import Sequence

INLINE = "inline"
FILE = "file"
# JSON around each part and the request (keys, mime types, config), generously rounded up.
_REQUEST_OVERHEAD = 4096
_PART_OVERHEAD = 256
_FILE_PART_BYTES = 300  # a fileData part: the URI and MIME type


def base64_size(byte_size: int) -> int:
    """Bytes of the base64 text of ``byte_size`` bytes."""
    return 4 * ((byte_size + 2) // 3)


def plan_transport(image_sizes: Sequence[int], *, text_bytes: int, inline_limit: int) -> list[str]:
    """INLINE or FILE for each image: inline while the whole request fits the limit.

    The largest images move to the File API first, so the fewest uploads happen; one
    request can mix both, as Google's guide shows.
    """
    transports = [INLINE] * len(image_sizes)
    total = (
        _REQUEST_OVERHEAD
        + text_bytes
        + sum(base64_size(size) + _PART_OVERHEAD for size in image_sizes)
    )
    for index in sorted(range(len(image_sizes)), key=lambda i: image_sizes[i], reverse=True):
        if total <= inline_limit:
            break
        transports[index] = FILE
        total -= base64_size(image_sizes[index]) + _PART_OVERHEAD - _FILE_PART_BYTES
    return transports
