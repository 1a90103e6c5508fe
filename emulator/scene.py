"""Deterministic "vision": read solid shapes and measurable facts out of an image.

Pure Pillow, no numpy. Pixels are mapped to the nearest palette colour in C
(``Image.quantize``), shapes are found as connected regions on a coarse grid in Python,
and each region's box is then made pixel-exact at full resolution with C-level masks.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import pillow_heif
from PIL import Image, ImageChops, ImageFilter, ImageOps, ImageStat, UnidentifiedImageError

from visionq.emulator.edges import colour_lut, extend_tips, trace_tips
from visionq.emulator.photo import colour_measures
from visionq.emulator.shapes import PALETTE

GRID_MAX_SIDE = 256
# A grid cell is dilated by this many cells before refinement, so shape pixels in cells
# whose sample point missed the shape (thin triangle tips) are still found.
DILATE_CELLS = 2
MIN_SHAPE_AREA = 64
MIN_SHAPE_SIDE = 4
MIN_FILL_RATIO = 0.3
# An image counts as a synthetic scene when almost every pixel sits near a palette colour.
PALETTE_TOLERANCE = 48
MAX_OFF_PALETTE_FRACTION = 0.05
STATS_SIDE = 128

PALETTE_NAMES: tuple[str, ...] = tuple(PALETTE)

# Wider set of names for describing photos, where the shape palette is too coarse.
NAMED_COLORS: dict[str, tuple[int, int, int]] = {
    **PALETTE,
    "silver": (192, 192, 192),
    "pink": (255, 170, 190),
    "brown": (120, 70, 30),
    "navy": (20, 30, 110),
    "olive": (110, 110, 20),
    "teal": (0, 120, 120),
    "beige": (225, 210, 170),
    "dark green": (10, 80, 20),
    "maroon": (120, 10, 20),
}

Box = tuple[int, int, int, int]
RGB = tuple[int, int, int]


class UndecodableImageError(ValueError):
    """The bytes do not decode as an image."""


@dataclass(frozen=True)
class DetectedShape:
    """A solid shape: palette colour, kind, pixel box (x2/y2 exclusive), area and mask."""

    kind: str
    color: str
    box: Box
    area: int
    mask: Image.Image = field(compare=False, repr=False)

    @property
    def label(self) -> str:
        """E.g. ``"red rectangle"``."""
        return f"{self.color} {self.kind}"


@dataclass(frozen=True)
class SceneFacts:
    """Everything the answer logic may say about one image."""

    width: int
    height: int
    synthetic: bool
    background: str | None
    shapes: tuple[DetectedShape, ...]
    mean_color: RGB
    mean_color_name: str
    dominant_colors: tuple[str, ...]
    brightness: float
    # Mean HSV saturation (0-255) and the dominant hue family of the coloured pixels
    # (emulator/photo.py): what classify reads in a photograph.
    saturation: float = 0.0
    hue: str | None = None

    @property
    def brightness_word(self) -> str:
        """ "dark", "medium" or "bright" by mean luminance."""
        if self.brightness < 85:
            return "dark"
        return "bright" if self.brightness > 170 else "medium"


@functools.cache
def _register_heif() -> None:
    # Registering an opener mutates Pillow's registry; once per process is enough.
    pillow_heif.register_heif_opener()


def load_image(data: bytes) -> Image.Image:
    """Decode ``data``, apply EXIF orientation and return an upright RGB image."""
    _register_heif()
    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
            upright = ImageOps.exif_transpose(opened)
            return upright.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise UndecodableImageError(str(exc)) from exc


def image_size(data: bytes) -> tuple[int, int]:
    """Upright (width, height) without decoding the pixels (EXIF 5-8 swap the sides)."""
    _register_heif()
    try:
        with Image.open(io.BytesIO(data)) as opened:
            width, height = opened.size
            orientation = opened.getexif().get(0x0112, 1)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise UndecodableImageError(str(exc)) from exc
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def nearest_color_name(rgb: RGB, colors: dict[str, RGB] = NAMED_COLORS) -> str:
    """The name of the colour in ``colors`` closest to ``rgb`` (Euclidean RGB)."""
    return min(colors, key=lambda name: math.dist(colors[name], rgb))


def _palette_image(colors: tuple[RGB, ...]) -> Image.Image:
    # Unused palette slots repeat the last colour, so a match on them is clamped back.
    flat = [channel for rgb in colors for channel in rgb]
    flat += list(colors[-1]) * (256 - len(colors))
    palette = Image.new("P", (1, 1))
    palette.putpalette(flat)
    return palette


def quantise(image: Image.Image, colors: tuple[RGB, ...]) -> Image.Image:
    """An "L" image whose values are indices into ``colors`` (nearest colour, no dither)."""
    mapped = image.quantize(palette=_palette_image(colors), dither=Image.Dither.NONE)
    indices = Image.frombytes("L", mapped.size, mapped.tobytes())
    last = len(colors) - 1
    return indices.point([min(i, last) for i in range(256)])


def _index_counts(indices: Image.Image) -> list[tuple[int, int]]:
    """(count, index) pairs of an "L" index image, most frequent first."""
    histogram = indices.histogram()
    return sorted(((n, v) for v, n in enumerate(histogram) if n), reverse=True)


def _background_index(indices: Image.Image) -> int:
    width, height = indices.size
    counts: dict[int, int] = {}
    strips = (
        (0, 0, width, 1),
        (0, height - 1, width, height),
        (0, 0, 1, height),
        (width - 1, 0, width, height),
    )
    for strip in strips:
        for count, value in _index_counts(indices.crop(strip)):
            counts[value] = counts.get(value, 0) + count
    return max(counts, key=lambda v: counts[v])


def _off_palette_fraction(image: Image.Image, indices: Image.Image, size: tuple[int, int]) -> float:
    small_rgb = image.resize(size, Image.Resampling.NEAREST)
    small_idx = indices.resize(size, Image.Resampling.NEAREST)
    colors = [PALETTE[name] for name in PALETTE_NAMES]
    bands = [
        small_idx.point([colors[min(i, len(colors) - 1)][band] for i in range(256)])
        for band in range(3)
    ]
    diff = ImageChops.difference(small_rgb, Image.merge("RGB", bands))
    threshold = [255 if v > PALETTE_TOLERANCE else 0 for v in range(256)]
    r, g, b = (band.point(threshold) for band in diff.split())
    off = ImageChops.lighter(ImageChops.lighter(r, g), b)
    return off.histogram()[255] / (size[0] * size[1])


@dataclass
class _Grid:
    """The index image sampled every ``step`` pixels (cell centres)."""

    step: int
    width: int
    height: int
    cells: bytes


def _sample_grid(indices: Image.Image, background: int) -> _Grid:
    width, height = indices.size
    step = max(1, math.ceil(max(width, height) / GRID_MAX_SIDE))
    grid_w, grid_h = math.ceil(width / step), math.ceil(height / step)
    padded = Image.new("L", (grid_w * step, grid_h * step), background)
    padded.paste(indices, (0, 0))
    sampled = padded.resize((grid_w, grid_h), Image.Resampling.NEAREST)
    return _Grid(step=step, width=grid_w, height=grid_h, cells=sampled.tobytes())


def _neighbours(cell: int, grid: _Grid) -> Iterator[int]:
    x = cell % grid.width
    if x > 0:
        yield cell - 1
    if x < grid.width - 1:
        yield cell + 1
    if cell >= grid.width:
        yield cell - grid.width
    if cell < grid.width * (grid.height - 1):
        yield cell + grid.width


def _components(grid: _Grid, background: int) -> list[tuple[int, list[int]]]:
    """4-connected regions of equal non-background value: (value, cell indices)."""
    seen = bytearray(len(grid.cells))
    found: list[tuple[int, list[int]]] = []
    for start, value in enumerate(grid.cells):
        if value == background or seen[start]:
            continue
        seen[start] = 1
        stack, members = [start], []
        while stack:
            cell = stack.pop()
            members.append(cell)
            for nxt in _neighbours(cell, grid):
                if not seen[nxt] and grid.cells[nxt] == value:
                    seen[nxt] = 1
                    stack.append(nxt)
        found.append((value, members))
    return found


def _refine(
    indices: Image.Image, grid: _Grid, value: int, cells: list[int]
) -> tuple[Box, Image.Image] | None:
    """Pixel-exact box and mask of the shape of colour ``value`` around ``cells``."""
    xs = [c % grid.width for c in cells]
    ys = [c // grid.width for c in cells]
    gx1, gy1 = min(xs) - DILATE_CELLS, min(ys) - DILATE_CELLS
    span_w, span_h = max(xs) + DILATE_CELLS + 1 - gx1, max(ys) + DILATE_CELLS + 1 - gy1
    near = bytearray(span_w * span_h)
    for x, y in zip(xs, ys, strict=True):
        near[(y - gy1) * span_w + (x - gx1)] = 255
    region = Image.frombytes("L", (span_w, span_h), bytes(near))
    region = region.filter(ImageFilter.MaxFilter(2 * DILATE_CELLS + 1))
    step = grid.step
    region = region.resize((span_w * step, span_h * step), Image.Resampling.NEAREST)
    origin_x, origin_y = gx1 * step, gy1 * step
    crop = indices.crop((origin_x, origin_y, origin_x + span_w * step, origin_y + span_h * step))
    bbox = ImageChops.darker(crop.point(colour_lut(value)), region).getbbox()
    if bbox is None:
        return None
    box = (
        max(0, origin_x + bbox[0]),
        max(0, origin_y + bbox[1]),
        min(indices.width, origin_x + bbox[2]),
        min(indices.height, origin_y + bbox[3]),
    )
    box = trace_tips(indices, value, box)
    return box, indices.crop(box).point(colour_lut(value))


def classify_fill(fill: float) -> str:
    """Shape kind from the fraction of its box it covers (1.0, ~0.785, ~0.5)."""
    if fill >= 0.92:
        return "rectangle"
    return "ellipse" if fill >= 0.65 else "triangle"


def _to_shape(
    value: int, box: Box, mask: Image.Image, size: tuple[int, int]
) -> DetectedShape | None:
    width, height = box[2] - box[0], box[3] - box[1]
    area = mask.histogram()[255]
    if min(width, height) < MIN_SHAPE_SIDE or area < MIN_SHAPE_AREA:
        return None
    fill = area / (width * height)
    if fill < MIN_FILL_RATIO:
        return None
    kind = classify_fill(fill)
    if kind == "triangle":
        extended = extend_tips(box, mask, size)
        if extended != box:
            padded = Image.new("L", (extended[2] - extended[0], extended[3] - extended[1]))
            padded.paste(mask, (box[0] - extended[0], box[1] - extended[1]))
            box, mask = extended, padded
    return DetectedShape(kind=kind, color=PALETTE_NAMES[value], box=box, area=area, mask=mask)


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _merge_split(
    refined: list[tuple[int, list[int], Box]],
) -> list[tuple[int, list[int], Box]]:
    """Join same-colour regions whose refined boxes overlap (one shape split on the grid)."""
    merged: list[tuple[int, list[int], Box]] = []
    for value, cells, box in refined:
        for index, (other_value, other_cells, other_box) in enumerate(merged):
            if other_value == value and _overlap(box, other_box):
                union = (
                    min(box[0], other_box[0]),
                    min(box[1], other_box[1]),
                    max(box[2], other_box[2]),
                    max(box[3], other_box[3]),
                )
                merged[index] = (value, other_cells + cells, union)
                break
        else:
            merged.append((value, cells, box))
    return merged


def find_shapes(indices: Image.Image, background: int) -> list[DetectedShape]:
    """Solid shapes in a palette-index image, sorted top-to-bottom, left-to-right."""
    grid = _sample_grid(indices, background)
    refined: list[tuple[int, list[int], Box]] = []
    for value, cells in _components(grid, background):
        if len(cells) < 2:
            continue  # a single cell is JPEG noise or an anti-aliased edge
        result = _refine(indices, grid, value, cells)
        if result is not None:
            refined.append((value, cells, result[0]))
    shapes: list[DetectedShape] = []
    for value, cells, _ in _merge_split(refined):
        result = _refine(indices, grid, value, cells)
        shape = _to_shape(value, *result, indices.size) if result is not None else None
        if shape is not None:
            shapes.append(shape)
    return sorted(shapes, key=lambda s: (s.box[1], s.box[0]))


def _colour_stats(
    image: Image.Image,
) -> tuple[RGB, float, tuple[str, ...], tuple[float, str | None]]:
    small = image.copy()
    small.thumbnail((STATS_SIDE, STATS_SIDE))
    mean = ImageStat.Stat(small).mean
    mean_rgb: RGB = (round(mean[0]), round(mean[1]), round(mean[2]))
    brightness = ImageStat.Stat(small.convert("L")).mean[0]
    names = tuple(NAMED_COLORS)
    indices = quantise(small, tuple(NAMED_COLORS.values()))
    total = small.width * small.height
    counted = _index_counts(indices)
    dominant = tuple(names[value] for count, value in counted[:3] if count >= 0.05 * total)
    return mean_rgb, brightness, dominant, colour_measures(small)


def analyse(image: Image.Image) -> SceneFacts:
    """Facts about an upright RGB image: size, colours, brightness and solid shapes."""
    mean_rgb, brightness, dominant, (saturation, hue) = _colour_stats(image)
    colors = tuple(PALETTE[name] for name in PALETTE_NAMES)
    indices = quantise(image, colors)
    background = _background_index(indices)
    grid_size = (min(image.width, GRID_MAX_SIDE), min(image.height, GRID_MAX_SIDE))
    synthetic = _off_palette_fraction(image, indices, grid_size) <= MAX_OFF_PALETTE_FRACTION
    shapes = tuple(find_shapes(indices, background)) if synthetic else ()
    return SceneFacts(
        width=image.width,
        height=image.height,
        synthetic=synthetic,
        background=PALETTE_NAMES[background] if synthetic else None,
        shapes=shapes,
        mean_color=mean_rgb,
        mean_color_name=nearest_color_name(mean_rgb),
        dominant_colors=dominant,
        brightness=brightness,
        saturation=saturation,
        hue=hue,
    )


def analyse_bytes(data: bytes) -> SceneFacts:
    """Decode ``data`` (EXIF-upright) and analyse it."""
    return analyse(load_image(data))
