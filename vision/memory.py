"""How much memory decoding an image takes, known before decoding it, and a process-wide
budget that concurrent decodes draw from.

A compressed size says nothing about a decode's cost (a 10000x10000 single-colour lossless
WEBP is 3.9 KB and decodes to 1.5 GB), so the cost is computed from the dimensions and mode
the header gives, with each decoder's own buffers counted (measured with Pillow 13,
pillow-heif 1.9, libwebp 1.5; see tests/unit/test_image_memory.py):

- Pillow keeps 1 byte per pixel for modes 1, L and P, 2 for I;16 and 4 for every other mode
  (RGB is stored as RGBX).
- WEBP: Pillow decodes through libwebp's animation decoder, which keeps two RGBA canvases
  besides the lossless decoder's own ARGB buffer and Pillow's copy: about 15 bytes/pixel.
- HEIC/HEIF: libheif's planes plus its interleaved RGB, then Pillow's copy: about 7.
- JPEG: a progressive file keeps the coefficients of the whole image (2 bytes per sample of
  every component) until its last scan, whatever scale it is decoded at; a baseline file
  needs one row of blocks. The output image is 1/64 of the pixels at 1/8 scale (``draft``).
- A PNG kept as it is is only inflated in 64 KB steps (``check_png_rows``): no image.

Each image over the per-image bound is refused (``image_too_large``, naming the bound and a
size that fits); the rest wait for their bytes in a :class:`MemoryBudget`, so a process
never holds more than the budget in decodes at once, whatever arrives in parallel.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache

from visionq.vision.formats import HEIC, HEIF, WEBP, ImageRejectedError

MIB = 1 << 20
# Bytes per pixel Pillow holds for an image of each mode (see the module docstring).
_PIXEL_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
_WIDE_PIXEL = 4
# Bytes per pixel a decoder holds besides Pillow's image, at full scale (measured, rounded
# up: a WEBP decode peaked at 15.2 bytes/pixel in all, a HEIF one at 6.9).
_DECODER_OVERHEAD = {WEBP: 12, HEIC: 4, HEIF: 4}
# Bytes of buffers every decode has whatever its size (rows, tables, a re-encoded output).
_FIXED = 2 * MIB


def pixel_bytes(mode: str) -> int:
    """Bytes per pixel of a Pillow image in ``mode``."""
    return _PIXEL_BYTES.get(mode, _WIDE_PIXEL)


def decode_bytes(
    width: int,
    height: int,
    mime_type: str,
    mode: str,
    *,
    copies: int = 0,
    scale: int = 1,
    progressive_components: int = 0,
) -> int:
    """Peak bytes of decoding a ``width`` x ``height`` image of ``mode`` at 1/``scale``.

    ``copies``: further full-size images made from it (a turn, a mode conversion), each 4
    bytes per pixel at most. ``progressive_components``: the components of a progressive
    JPEG, whose coefficients are all kept at full size.
    """
    pixels = width * height
    scaled = math.ceil(width / scale) * math.ceil(height / scale)
    overhead = _DECODER_OVERHEAD.get(mime_type, 0) if scale == 1 else 0
    total = scaled * (pixel_bytes(mode) + overhead) + copies * scaled * _WIDE_PIXEL
    total += pixels * 2 * progressive_components
    # Encoders' and converters' own buffers: measured within 5% of the above, so 10% more.
    return total + total // 10 + _FIXED


def png_rows_bytes() -> int:
    """Peak bytes of ``check_png_rows`` (64 KB of rows at a time, whatever the size)."""
    return _FIXED


def too_much_memory_error(
    width: int, height: int, needed: int, limit: int, what: str = "decoding it"
) -> ImageRejectedError:
    """The ``image_too_large`` refusal of an image whose decode would take over ``limit``."""
    scale = math.sqrt(max(limit - _FIXED, MIB) / max(needed - _FIXED, 1))
    fit_w, fit_h = max(1, math.floor(width * scale)), max(1, math.floor(height * scale))
    return ImageRejectedError(
        "image_too_large",
        f"The image is {width}x{height}; {what} would take about {math.ceil(needed / MIB):,} "
        f"MB of memory, more than the {limit // MIB:,} MB allowed per image (the format "
        f"decides this, not the file size); downscale it (for example to {fit_w}x{fit_h}) "
        "or send it as a baseline JPEG, and submit it again.",
    )


class MemoryBusyError(RuntimeError):
    """The memory budget stayed taken for the whole wait: try again shortly."""

    def __init__(self, needed: int, budget: int, waited_s: float) -> None:
        super().__init__(
            f"other images are being decoded: this one needs about "
            f"{math.ceil(needed / MIB):,} MB of the {budget // MIB:,} MB decode budget and "
            f"none came free within {waited_s:g} s; retry after the Retry-After delay"
        )
        self.retry_after_s = max(1, math.ceil(waited_s / 2))


class MemoryBudget:
    """A process-wide budget in bytes: each decode holds its bytes until it ends.

    Waiters are served in arrival order (a large decode is not starved by a stream of small
    ones); a wait longer than ``wait_s`` raises :class:`MemoryBusyError`.
    """

    def __init__(self, total: int, wait_s: float) -> None:
        self.total = total
        self.wait_s = wait_s
        self._used = 0
        self._queue: list[object] = []
        self._changed = threading.Condition()

    @property
    def used(self) -> int:
        """Bytes held now."""
        with self._changed:
            return self._used

    @contextmanager
    def reserve(self, nbytes: int) -> Iterator[None]:
        """Hold ``nbytes`` (at most the whole budget) for the ``with`` block."""
        nbytes = min(nbytes, self.total)
        ticket = object()
        with self._changed:
            self._queue.append(ticket)
            try:
                granted = self._changed.wait_for(
                    lambda: self._queue[0] is ticket and self._used + nbytes <= self.total,
                    timeout=self.wait_s,
                )
            finally:
                self._queue.remove(ticket)
                self._changed.notify_all()
            if not granted:
                raise MemoryBusyError(nbytes, self.total, self.wait_s)
            self._used += nbytes
        try:
            yield
        finally:
            with self._changed:
                self._used -= nbytes
                self._changed.notify_all()


@dataclass(frozen=True)
class DecodeLimits:
    """The per-image bound and the process's budget that image decodes run under."""

    per_image: int
    budget: MemoryBudget

    def check(self, width: int, height: int, needed: int, what: str = "decoding it") -> None:
        """Refuse (``image_too_large``) a decode over the per-image bound."""
        if needed > self.per_image:
            raise too_much_memory_error(width, height, needed, self.per_image, what)

    @contextmanager
    def hold(self, width: int, height: int, needed: int) -> Iterator[None]:
        """Check ``needed`` against the bound, then hold it in the budget while decoding."""
        self.check(width, height, needed)
        with self.budget.reserve(needed):
            yield


@cache
def process_limits(per_image: int, budget: int, wait_s: float) -> DecodeLimits:
    """The one budget of this process for these settings (shared by every thread)."""
    return DecodeLimits(per_image=min(per_image, budget), budget=MemoryBudget(budget, wait_s))
