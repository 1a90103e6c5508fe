"""Gemini's normalised boxes ([ymin, xmin, ymax, xmax] in 0-1000) to image pixels."""

from __future__ import annotations

from collections.abc import Sequence

NORMALISED_MAX = 1000


class InvalidBoxError(ValueError):
    """A box_2d that is not four numbers describing a non-empty box in 0-1000."""


def _as_number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidBoxError(f"box_2d holds a non-number: {value!r}")
    return float(value)


def validate_box_2d(box_2d: object) -> tuple[float, float, float, float]:
    """Return (ymin, xmin, ymax, xmax) clamped to 0-1000, or raise InvalidBoxError."""
    if not isinstance(box_2d, Sequence) or isinstance(box_2d, str) or len(box_2d) != 4:
        raise InvalidBoxError(f"box_2d must be 4 numbers, got {box_2d!r}")
    ymin, xmin, ymax, xmax = (_as_number(v) for v in box_2d)
    # A slight overshoot (e.g. 1001) is rounding on the model's side; far outside is garbage.
    if any(v < -10 or v > NORMALISED_MAX + 10 for v in (ymin, xmin, ymax, xmax)):
        raise InvalidBoxError(f"box_2d outside 0-1000: {list(box_2d)}")
    ymin, ymax = sorted((_clamp(ymin), _clamp(ymax)))
    xmin, xmax = sorted((_clamp(xmin), _clamp(xmax)))
    if ymin == ymax or xmin == xmax:
        raise InvalidBoxError(f"box_2d is empty: {list(box_2d)}")
    return ymin, xmin, ymax, xmax


def _clamp(value: float) -> float:
    return min(max(value, 0.0), float(NORMALISED_MAX))


def box_2d_to_pixels(box_2d: object, width: int, height: int) -> tuple[int, int, int, int]:
    """Pixel box [x1, y1, x2, y2] (x2, y2 exclusive) in an image of width x height."""
    ymin, xmin, ymax, xmax = validate_box_2d(box_2d)
    return (
        round(xmin / NORMALISED_MAX * width),
        round(ymin / NORMALISED_MAX * height),
        round(xmax / NORMALISED_MAX * width),
        round(ymax / NORMALISED_MAX * height),
    )
