"""How many items (keys, sha256s) one batch call may carry: ``--chunk`` until the API says
fewer.

The API takes at most VISIONQ_BATCH_MAX_ITEMS_PER_ADD items per add or lookup call and
refuses a larger call whole (422 too_many_items), which the CLI cannot know before asking.
So a refused call is split, not fatal: the limit drops to the number the refusal names
("at most 500 per call"), or to half the refused call when it names none, and the run goes
on in pieces of that size; every later chunk is built at that size.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

from visionq.client import VisionqError

Value = TypeVar("Value")
Answer = TypeVar("Answer")

# "600 items; at most 500 per call ...", "... at most 500 of each per call ...".
_AT_MOST = re.compile(r"at most ([0-9]+)")


class CallLimit:
    """The most items per call, shared by the upload threads (lowered, never raised)."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self.lowered = False
        self._lock = threading.Lock()

    def lower(self, refused: int, error: VisionqError) -> None:
        """A call of ``refused`` items was refused with too_many_items: take the limit its
        message names, else half of ``refused`` (at least 1, below ``refused``)."""
        match = _AT_MOST.search(error.message)
        named = int(match.group(1)) if match else refused // 2
        with self._lock:
            self.size = max(1, min(self.size, named, refused - 1))
            self.lowered = True


def in_pieces(
    limit: CallLimit, values: Sequence[Value], call: Callable[[list[Value]], Answer]
) -> list[Answer]:
    """``call`` over ``values`` in pieces of at most ``limit.size``, in order; a piece
    refused with too_many_items lowers the limit and is sent again in smaller pieces
    (nothing of a refused call was stored, so nothing is sent twice)."""
    answers: list[Answer] = []
    start = 0
    while start < len(values):
        piece = list(values[start : start + limit.size])
        try:
            answers.append(call(piece))
        except VisionqError as exc:
            if exc.code != "too_many_items" or len(piece) <= 1:
                raise
            limit.lower(len(piece), exc)
            continue
        start += len(piece)
    return answers
