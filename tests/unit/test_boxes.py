import pytest

from visionq.vision.boxes import InvalidBoxError, box_2d_to_pixels, validate_box_2d


def test_converts_normalised_box_to_pixels() -> None:
    # [ymin, xmin, ymax, xmax] in 0-1000 -> [x1, y1, x2, y2] in pixels.
    assert box_2d_to_pixels([100, 250, 500, 750], 800, 600) == (200, 60, 600, 300)


def test_full_image_box() -> None:
    assert box_2d_to_pixels([0, 0, 1000, 1000], 1234, 567) == (0, 0, 1234, 567)


def test_rounds_to_nearest_pixel() -> None:
    assert box_2d_to_pixels([333, 333, 667, 667], 100, 100) == (33, 33, 67, 67)


def test_slight_overshoot_is_clamped_and_swapped_corners_are_ordered() -> None:
    assert validate_box_2d([1003, 500, 200, -2]) == (200.0, 0.0, 1000.0, 500.0)


@pytest.mark.parametrize(
    "box",
    [
        [1, 2, 3],
        [1, 2, 3, 4, 5],
        "0,0,10,10",
        [0, 0, "a", 10],
        [0, 0, 5000, 10],
        [10, 10, 10, 20],
        None,
        [True, 0, 10, 10],
    ],
)
def test_invalid_boxes_are_rejected(box: object) -> None:
    with pytest.raises(InvalidBoxError):
        box_2d_to_pixels(box, 100, 100)
