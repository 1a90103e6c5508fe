"""Pixel checks of what the console draws over an image, on numpy arrays of screenshots.

Pure functions (no browser), so tests/unit/test_browser_pixels.py shows they fail for a box
drawn shifted or scaled by a few pixels, and for a mask in the wrong place.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

NEAR_PX = 3  # the 3 px stroke straddles the edge; antialiasing adds one more pixel
INSET_PX = 6


def outline_distance(shape: tuple[int, int], rect: tuple[float, ...]) -> NDArray[np.float64]:
    """Each pixel's distance (px, Chebyshev) to the outline of ``rect`` = (x0, y0, x1, y1)."""
    height, width = shape
    ys, xs = np.mgrid[0:height, 0:width] + 0.5  # pixel centres
    x0, y0, x1, y1 = rect
    inside_x = (xs >= x0 - NEAR_PX) & (xs <= x1 + NEAR_PX)
    inside_y = (ys >= y0 - NEAR_PX) & (ys <= y1 + NEAR_PX)
    to_vertical = np.minimum(np.abs(xs - x0), np.abs(xs - x1))
    to_horizontal = np.minimum(np.abs(ys - y0), np.abs(ys - y1))
    far = np.full(shape, np.inf)
    distance = np.minimum(
        np.where(inside_y, to_vertical, far), np.where(inside_x, to_horizontal, far)
    )
    return distance


def assert_box_drawn_at(drawn: NDArray[np.bool_], rect: tuple[float, ...], what: str) -> None:
    """``drawn`` (the on/off difference) is the outline of ``rect`` in screenshot pixels."""
    assert drawn.sum() > 0, f"{what}: showing the box changed no pixel"
    distance = outline_distance(drawn.shape, rect)
    near = (distance <= NEAR_PX)[drawn].mean()
    assert near >= 0.95, f"{what}: only {near:.0%} of the drawn pixels lie on {rect}"
    x0, y0, x1, y1 = rect
    height, width = drawn.shape

    def hit(x: float, y: float) -> bool:
        left, top = max(0, round(x) - NEAR_PX), max(0, round(y) - NEAR_PX)
        return bool(drawn[top : min(height, round(y) + NEAR_PX + 1),
                          left : min(width, round(x) + NEAR_PX + 1)].any())  # fmt: skip

    for x in np.arange(x0, x1, 4):
        assert hit(x, y0) and hit(x, y1), f"{what}: top/bottom edge missing at x={x:.0f}"
    for y in np.arange(y0, y1, 4):
        assert hit(x0, y) and hit(x1, y), f"{what}: left/right edge missing at y={y:.0f}"
    inner = drawn[round(y0 + INSET_PX) : round(y1 - INSET_PX),
                  round(x0 + INSET_PX) : round(x1 - INSET_PX)]  # fmt: skip
    assert not inner.any(), f"{what}: pixels drawn inside the box (a box is a stroke)"


def iou(a: NDArray[np.bool_], b: NDArray[np.bool_]) -> float:
    """Intersection over union of two masks of one shape (0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0
