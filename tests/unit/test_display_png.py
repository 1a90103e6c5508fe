"""vision.annotate.display_png: a HEIC/HEIF shown as PNG decodes under submit's memory
bound and budget (review #6), so viewing an image costs no more than sending it did."""

from __future__ import annotations

import io

import pillow_heif
import pytest
from PIL import Image

from visionq.vision.annotate import display_png
from visionq.vision.formats import ImageRejectedError
from visionq.vision.memory import MIB, DecodeLimits, MemoryBudget, MemoryBusyError


def _heic(size: tuple[int, int] = (64, 48)) -> bytes:
    out = io.BytesIO()
    pillow_heif.from_pillow(Image.new("RGB", size, (200, 30, 60))).save(out, quality=90)
    return out.getvalue()


def test_display_png_within_limits() -> None:
    limits = DecodeLimits(per_image=64 * MIB, budget=MemoryBudget(64 * MIB, 1.0))
    png = display_png(_heic(), limits)
    with Image.open(io.BytesIO(png)) as shown:
        assert (shown.format, shown.size) == ("PNG", (64, 48))
    assert limits.budget.used == 0


def test_display_png_over_the_per_image_bound_is_refused() -> None:
    limits = DecodeLimits(per_image=1 * MIB, budget=MemoryBudget(64 * MIB, 1.0))
    with pytest.raises(ImageRejectedError) as caught:
        display_png(_heic(), limits)
    assert caught.value.code == "image_too_large"


def test_display_png_waits_for_the_budget() -> None:
    limits = DecodeLimits(per_image=64 * MIB, budget=MemoryBudget(64 * MIB, 0.05))
    with limits.budget.reserve(64 * MIB), pytest.raises(MemoryBusyError):
        display_png(_heic(), limits)
