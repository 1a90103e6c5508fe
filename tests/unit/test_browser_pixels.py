"""The browser tests' pixel checks (tests/browser/pixels.py) catch a box drawn a few
pixels off, scaled, or filled, so a green browser test means the boxes sit where the
result says."""

from __future__ import annotations

import numpy as np
import pytest

from tests.browser.pixels import assert_box_drawn_at, iou, outline_distance

SHAPE = (500, 640)
RECT = (100.4, 80.7, 300.2, 250.9)


def stroke(rect: tuple[float, ...], width: float = 3) -> np.ndarray:
    """What the console draws for ``rect``: a ``width`` px stroke centred on its outline."""
    return outline_distance(SHAPE, rect) <= width / 2


def test_a_box_drawn_on_its_rectangle_passes() -> None:
    assert_box_drawn_at(stroke(RECT), RECT, "exact")


@pytest.mark.parametrize(
    "drawn",
    [
        (RECT[0] + 5, RECT[1], RECT[2] + 5, RECT[3]),  # shifted right
        (RECT[0], RECT[1] - 5, RECT[2], RECT[3] - 5),  # shifted up
        tuple(v * 1.05 for v in RECT),  # scaled 5 %
        tuple(v * 0.95 for v in RECT),
    ],
    ids=["right", "up", "larger", "smaller"],
)
def test_a_box_shifted_or_scaled_fails(drawn: tuple[float, ...]) -> None:
    with pytest.raises(AssertionError):
        assert_box_drawn_at(stroke(drawn), RECT, "off")


def test_a_filled_box_or_a_missing_edge_fails() -> None:
    dotted = stroke(RECT)
    dotted[160:163, 200:203] = True  # a few pixels inside, as a fill would draw
    with pytest.raises(AssertionError, match="inside"):
        assert_box_drawn_at(dotted, RECT, "filled")
    open_top = stroke(RECT)
    open_top[: round(RECT[1]) + 3] = False
    with pytest.raises(AssertionError, match="edge"):
        assert_box_drawn_at(open_top, RECT, "open")


def test_iou() -> None:
    a = np.zeros((10, 10), bool)
    b = np.zeros((10, 10), bool)
    a[:, :5] = True
    b[:, 2:7] = True
    assert iou(a, b) == pytest.approx(3 / 7)
    assert iou(a, a) == 1.0
    assert iou(np.zeros_like(a), np.zeros_like(a)) == 0.0
