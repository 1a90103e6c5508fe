"""Segmentation masks in the three wire formats Gemini has used (see GEMINI.md).

Each function turns one shape's box-sized binary mask (mode ``L``, 0 or 255) into the
``mask`` value of a segmentation item; emulator/README.md documents the exact formats:

- ``png``: a grayscale PNG probability map at another size than the box, base64, with or
  without the ``data:image/png;base64,`` prefix (``mask_data_url`` in answers.py);
- ``seg_tokens``: ``<start_of_mask>`` + run lengths ``<seg_N>`` over a 64x64 bitmap of the
  box + ``<end_of_mask>``;
- ``polygon``: ``[[x, y], ...]``, the outline of the shape in 0-1000 image coordinates.
"""

from __future__ import annotations

from PIL import Image

SEG_GRID = 64
START_OF_MASK = "<start_of_mask>"
END_OF_MASK = "<end_of_mask>"
THRESHOLD = 127


def seg_tokens(mask: Image.Image) -> str:
    """Run-length mask tokens over the box resized to 64x64 (nearest neighbour).

    Row-major over the 4,096 cells, runs alternate background / inside, starting with a
    background run (``<seg_0>`` when the first cell is inside); the runs sum to 4,096.
    """
    grid = mask.convert("L").resize((SEG_GRID, SEG_GRID), Image.Resampling.NEAREST)
    cells = [value > THRESHOLD for value in grid.tobytes()]
    runs: list[int] = []
    current, length = False, 0
    for inside in cells:
        if inside == current:
            length += 1
            continue
        runs.append(length)
        current, length = inside, 1
    runs.append(length)
    return START_OF_MASK + "".join(f"<seg_{n}>" for n in runs) + END_OF_MASK


def _cross(o: tuple[int, int], a: tuple[int, int], b: tuple[int, int]) -> int:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _hull(points: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Convex hull (monotone chain), counter-clockwise in image axes, no repeated point."""
    ordered = sorted(set(points))
    if len(ordered) <= 2:
        return ordered
    lower: list[tuple[int, int]] = []
    upper: list[tuple[int, int]] = []
    for chain, sequence in ((lower, ordered), (upper, list(reversed(ordered)))):
        for point in sequence:
            while len(chain) >= 2 and _cross(chain[-2], chain[-1], point) <= 0:
                chain.pop()
            chain.append(point)
    return lower[:-1] + upper[:-1]


def polygon(
    mask: Image.Image, box: tuple[int, int, int, int], width: int, height: int
) -> list[list[int]]:
    """The outline of the mask as ``[[x, y], ...]`` in 0-1000 coordinates of the image.

    The outline is the convex hull of the mask's pixels (the synthetic shapes are
    rectangles, ellipses and triangles), taken on pixel corners so that a filled polygon
    covers the pixels; consecutive points that round to the same value are merged.
    """
    binary = mask.convert("L").point(lambda v: 255 if v > THRESHOLD else 0)
    data = binary.tobytes()
    corners: list[tuple[int, int]] = []
    for y in range(binary.height):
        row = data[y * binary.width : (y + 1) * binary.width]
        left = row.find(b"\xff")
        if left < 0:
            continue
        right = row.rfind(b"\xff") + 1
        corners.extend(((left, y), (left, y + 1), (right, y), (right, y + 1)))
    x0, y0 = box[0], box[1]
    points: list[list[int]] = []
    for px, py in _hull(corners):
        point = [round((x0 + px) / width * 1000), round((y0 + py) / height * 1000)]
        if not points or point != points[-1]:
            points.append(point)
    if len(points) > 1 and points[0] == points[-1]:
        points.pop()
    return points
