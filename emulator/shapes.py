"""Synthetic test scenes: solid shapes on a plain background, with exact ground truth.

The emulator's "vision" (scene.py) is tuned to read exactly these images back, so tests
and demos can compare detection boxes and masks against the boxes drawn here.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from typing import Any, Literal

import pillow_heif
from PIL import Image, ImageDraw

ShapeKind = Literal["rectangle", "ellipse", "triangle"]
ImageFormat = Literal["PNG", "JPEG", "WEBP", "HEIF"]

SHAPE_KINDS: tuple[ShapeKind, ...] = ("rectangle", "ellipse", "triangle")

# Colours are far apart in RGB so that JPEG noise and chroma blur never move a pixel
# into a neighbouring palette entry; white is the canonical background.
PALETTE: dict[str, tuple[int, int, int]] = {
    "white": (255, 255, 255),
    "black": (0, 0, 0),
    "red": (230, 30, 30),
    "green": (20, 170, 40),
    "blue": (30, 60, 230),
    "yellow": (250, 230, 20),
    "magenta": (230, 30, 200),
    "cyan": (20, 210, 230),
    "orange": (250, 140, 10),
    "purple": (120, 40, 170),
    "gray": (128, 128, 128),
}

SHAPE_COLORS: tuple[str, ...] = (
    "red",
    "green",
    "blue",
    "yellow",
    "magenta",
    "cyan",
    "orange",
    "purple",
    "black",
)


@dataclass(frozen=True)
class Shape:
    """One solid shape exactly filling ``box`` = (x1, y1, x2, y2), x2/y2 exclusive."""

    kind: ShapeKind
    color: str
    box: tuple[int, int, int, int]

    @property
    def label(self) -> str:
        """The label a detector should report, e.g. ``"red rectangle"``."""
        return f"{self.color} {self.kind}"

    @property
    def width(self) -> int:
        """Box width in pixels."""
        return self.box[2] - self.box[0]

    @property
    def height(self) -> int:
        """Box height in pixels."""
        return self.box[3] - self.box[1]


def triangle_points(box: tuple[int, int, int, int]) -> list[tuple[float, float]]:
    """Vertices of the isosceles triangle drawn in ``box``: apex at top centre, flat base.

    PIL coordinates are inclusive, so the last pixel row/column is ``x2 - 1``/``y2 - 1``.
    """
    x1, y1, x2, y2 = box
    return [((x1 + x2 - 1) / 2, y1), (x2 - 1, y2 - 1), (x1, y2 - 1)]


def draw_shape(draw: ImageDraw.ImageDraw, shape: Shape, fill: tuple[int, int, int] | int) -> None:
    """Draw ``shape`` filled with ``fill`` so that it touches every edge of its box."""
    x1, y1, x2, y2 = shape.box
    inclusive = (x1, y1, x2 - 1, y2 - 1)
    if shape.kind == "rectangle":
        draw.rectangle(inclusive, fill=fill)
    elif shape.kind == "ellipse":
        draw.ellipse(inclusive, fill=fill)
    else:
        draw.polygon(triangle_points(shape.box), fill=fill)


def draw_scene(
    width: int, height: int, shapes: list[Shape], background: str = "white"
) -> Image.Image:
    """Render ``shapes`` (palette colour names) on a solid ``background`` as an RGB image."""
    image = Image.new("RGB", (width, height), PALETTE[background])
    draw = ImageDraw.Draw(image)
    for shape in shapes:
        draw_shape(draw, shape, PALETTE[shape.color])
    return image


def _overlaps(box: tuple[int, int, int, int], other: tuple[int, int, int, int], gap: int) -> bool:
    return not (
        box[2] + gap <= other[0]
        or other[2] + gap <= box[0]
        or box[3] + gap <= other[1]
        or other[3] + gap <= box[1]
    )


def _random_box(
    rng: random.Random, size: tuple[int, int], sides: tuple[int, int], margin: int
) -> tuple[int, int, int, int]:
    width, height = size
    min_side, max_side = sides
    w = rng.randint(min_side, max_side)
    h = rng.randint(min_side, max_side)
    x1 = rng.randint(margin, width - margin - w)
    y1 = rng.randint(margin, height - margin - h)
    return (x1, y1, x1 + w, y1 + h)


def random_scene(
    seed: int,
    width: int = 640,
    height: int = 480,
    count: int = 3,
    *,
    min_side: int = 30,
    margin: int = 24,
) -> tuple[Image.Image, list[Shape]]:
    """A reproducible scene of ``count`` non-overlapping shapes with distinct labels.

    Shapes keep ``margin`` pixels from the edges and from each other (the detector isolates
    shapes on a coarse grid first, so same-coloured neighbours must not touch).
    """
    rng = random.Random(seed)
    max_side = max(min_side, min(width, height) // 3)
    labels = [(kind, color) for kind in SHAPE_KINDS for color in SHAPE_COLORS]
    rng.shuffle(labels)
    shapes: list[Shape] = []
    for kind, color in labels:
        if len(shapes) == count:
            break
        for _ in range(200):
            box = _random_box(rng, (width, height), (min_side, max_side), margin)
            if not any(_overlaps(box, s.box, margin) for s in shapes):
                shapes.append(Shape(kind=kind, color=color, box=box))
                break
    if len(shapes) < count:
        raise ValueError(f"cannot place {count} shapes on a {width}x{height} image")
    return draw_scene(width, height, shapes), shapes


def encode(image: Image.Image, fmt: ImageFormat = "PNG", **kw: Any) -> bytes:
    """Encode ``image`` as PNG, JPEG, WEBP or HEIF bytes; ``kw`` goes to ``Image.save``."""
    if fmt == "HEIF":
        pillow_heif.register_heif_opener()  # idempotent; Pillow has no HEIF writer of its own
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kw)
    return buffer.getvalue()
