"""Paged listing shared by files.list and batches.list.

A page token holds the sequence number of the last item returned (newest first), so
deletions between pages neither repeat nor skip items. Each listing has its own token
prefix, so a files token is refused by batches.list and the other way round.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import TypeVar

from visionq.emulator import errors

T = TypeVar("T")


def page_of(
    items: Sequence[T],
    seq: Callable[[T], int],
    *,
    page_size: int | None,
    page_token: str | None,
    sizes: tuple[int, int],
    kind: str,
) -> tuple[list[T], str]:
    """One page of ``items`` (already newest first) and the next token ("" on the last).

    ``sizes`` is (default, maximum) page size; ``kind`` names the listing in its tokens.
    """
    default, maximum = sizes
    size = min(page_size if page_size and page_size > 0 else default, maximum)
    ordered = list(items)
    if page_token:
        after = _decode_token(page_token, kind)
        ordered = [item for item in ordered if seq(item) < after]
    chosen = ordered[:size]
    more = len(ordered) > size
    return chosen, _encode_token(seq(chosen[-1]), kind) if more else ""


def _encode_token(seq: int, kind: str) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{seq}".encode()).decode("ascii").rstrip("=")


def _decode_token(token: str, kind: str) -> int:
    padded = token + "=" * (-len(token) % 4)
    try:
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError) as exc:
        raise errors.invalid_page_token() from exc
    prefix, _, number = text.partition(":")
    if prefix != kind or not number.isdigit():
        raise errors.invalid_page_token()
    return int(number)
