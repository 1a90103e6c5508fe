"""Edge refinement for detected shapes: follow thin tips the coarse grid missed.

Grid sampling misses tips narrower than a cell, and JPEG blurs 1-2 px wide tips into the
background; these helpers move box edges out to where the shape really ends.
"""

from __future__ import annotations

from PIL import Image

Box = tuple[int, int, int, int]

MAX_TIP_OVERHANG = 6
MIN_TIP_SLOPE = 0.05
MAX_TIP_SLOPE = 3.0


def colour_lut(value: int) -> list[int]:
    """A ``point`` table turning palette index ``value`` into 255 and the rest into 0."""
    return [255 if v == value else 0 for v in range(256)]


def _line(indices: Image.Image, vertical: bool, at: int) -> bytes:
    """Row ``at`` (or column, if ``vertical``) of the index image."""
    if vertical:
        return indices.crop((at, 0, at + 1, indices.height)).tobytes()
    return indices.crop((0, at, indices.width, at + 1)).tobytes()


def _run_touching(line: bytes, value: int, lo: int, hi: int) -> tuple[int, int] | None:
    """Extent of ``value`` pixels in ``line`` 8-connected to the run ``lo..hi``."""
    start, end = max(0, lo - 1), min(len(line) - 1, hi + 1)
    hits = [i for i in range(start, end + 1) if line[i] == value]
    if not hits:
        return None
    lo, hi = hits[0], hits[-1]
    while lo > 0 and line[lo - 1] == value:
        lo -= 1
    while hi < len(line) - 1 and line[hi + 1] == value:
        hi += 1
    return lo, hi


def _trace_edge(indices: Image.Image, value: int, box: Box, side: int) -> int:
    """Move one edge of ``box`` outwards while the shape continues past it.

    Grid sampling misses thin tips (a tall triangle's apex is narrower than a cell), so
    the shape is followed line by line from its outermost line. ``side``: 0 left, 1 top,
    2 right, 3 bottom; returns the new edge coordinate (exclusive for right/bottom).
    """
    vertical = side in (0, 2)
    outward = -1 if side in (0, 1) else 1
    edge = box[side] if side in (0, 1) else box[side] - 1
    limit = indices.width if vertical else indices.height
    lo, hi = (box[1], box[3] - 1) if vertical else (box[0], box[2] - 1)
    run = _run_touching(_line(indices, vertical, edge), value, lo, hi)
    while run is not None and 0 <= edge + outward < limit:
        nxt = _run_touching(_line(indices, vertical, edge + outward), value, *run)
        if nxt is None:
            break
        edge, run = edge + outward, nxt
    return edge if side in (0, 1) else edge + 1


def trace_tips(indices: Image.Image, value: int, box: Box) -> Box:
    """``box`` with all four edges followed outwards along the shape of colour ``value``."""
    traced = [_trace_edge(indices, value, box, side) for side in range(4)]
    return (traced[0], traced[1], traced[2], traced[3])


def _line_counts(mask: Image.Image) -> list[int]:
    """Number of set pixels in each row of a 0/255 mask."""
    data, width = mask.tobytes(), mask.width
    return [data.count(255, row * width, (row + 1) * width) for row in range(mask.height)]


def _tip_overhang(counts: list[int]) -> int:
    """How many lines a tapering tip extends beyond the first line of ``counts``.

    A triangle's profile grows linearly from its tips; JPEG blurs the last 1-2 px wide
    lines into the background, so the tip is put where the fitted line reaches one pixel.
    """
    first, last = len(counts) // 10, len(counts) // 2
    if last - first < 4:
        return 0
    xs = range(first, last)
    mean_x = sum(xs) / len(xs)
    mean_y = sum(counts[x] for x in xs) / len(xs)
    slope = sum((x - mean_x) * (counts[x] - mean_y) for x in xs) / sum(
        (x - mean_x) ** 2 for x in xs
    )
    if not MIN_TIP_SLOPE < slope < MAX_TIP_SLOPE:
        return 0  # no taper, or so steep that its outer line is too wide for JPEG to lose
    tip = mean_x + (1 - mean_y) / slope
    return min(MAX_TIP_OVERHANG, max(0, round(-tip)))


def extend_tips(box: Box, mask: Image.Image, size: tuple[int, int]) -> Box:
    """Box of a triangle with each tapering side moved out to its extrapolated tip."""
    rows = _line_counts(mask)
    cols = _line_counts(mask.transpose(Image.Transpose.TRANSPOSE))
    return (
        max(0, box[0] - _tip_overhang(cols)),
        max(0, box[1] - _tip_overhang(rows)),
        min(size[0], box[2] + _tip_overhang(cols[::-1])),
        min(size[1], box[3] + _tip_overhang(rows[::-1])),
    )
