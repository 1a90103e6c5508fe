"""Segmentation answers: each item's mask, in whichever format the model used, as a binary
PNG of its box's size.

Gemini has returned three mask formats (see ../shared/GEMINI.md, "Segmentation"); each
item's ``mask`` value says which one it is:

- **PNG probability map** (the image-understanding guide; Gemini 2.0 and early 2.5): a
  base64 PNG, with or without a ``data:image/png;base64,`` prefix, at any resolution,
  covering the item's box. Resized to the box (bilinear), then thresholded: above 127 is
  the object.
- **Mask tokens** (Gemini 2.5 since mid-2025, google-gemini/cookbook#798): a string
  ``<start_of_mask><seg_N>...<seg_N>[<end_of_mask>]`` standing for a 64x64 bitmap that
  covers the item's box. Google documents no decoding; visionq reads the tokens as run
  lengths (an unverified assumption: the emulator documents the same reading, so the
  tests cannot confirm it against Google): row-major over the 4,096 cells, runs
  alternating outside / inside, starting outside (``<seg_0>`` first when the first cell
  is inside), summing to exactly 4,096. Tokens that do not sum to 4,096 but are exactly
  512 are read as packed bytes instead (N in 0-255, 8 cells per token, the most
  significant bit leftmost: the reading of Princeton-Robot-Planning-and-Learning/
  prpl-mono#472). Sixteen tokens are PaliGemma-style VQ-VAE codewords (a 128-code book
  decoded by a learned decoder whose weights Gemini does not publish): that item is
  refused saying so. The bitmap is resized to the box with nearest neighbour.
- **Polygon** (Gemini 3.5 Flash, Robotics-ER): ``[[x, y], ...]`` in 0-1000 normalised
  coordinates of the whole image (x first, unlike box_2d), or a list of such rings.
  Vertices are scaled to pixels (to the nearest half pixel) and shifted to the box's
  origin; a pixel is the object when its centre is inside a ring or on its edge (filled
  with Pillow's ImageDraw.polygon on a grid of half pixels, then sampled at the pixel
  centres), so a ring along pixel corners covers exactly the pixels within, as box_2d
  does. Whatever lies outside the box is cut off.

An item whose box or mask cannot be read is skipped and counted, never guessed.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageDraw, UnidentifiedImageError

from visionq.vision.boxes import NORMALISED_MAX, InvalidBoxError, box_2d_to_pixels
from visionq.vision.parsing import AnswerParseError, detection_items, extract_json

# Google's guide thresholds the probability map at 127: above is inside the object.
MASK_THRESHOLD = 127
# A probability map bigger than this is not a mask but an attack (or a broken answer).
MAX_MASK_PIXELS = 4096 * 4096
# Mask tokens: a 64x64 bitmap, one byte (8 pixels) per token.
TOKEN_MASK_SIDE = 64
TOKEN_MASK_TOKENS = TOKEN_MASK_SIDE * TOKEN_MASK_SIDE // 8
# PaliGemma's VQ-VAE masks are 16 codewords; Gemini 2.5 has been seen answering those too.
VQ_CODEWORDS = 16
MASK_START = "<start_of_mask>"
MASK_END = "<end_of_mask>"
_SEG_TOKEN = re.compile(r"<seg_(\d+)>")
# More vertices than this is not an outline but a broken (or hostile) answer.
MAX_POLYGON_POINTS = 100_000


class InvalidMaskError(ValueError):
    """A mask that cannot be decoded in any of the formats Gemini uses."""


@dataclass(frozen=True)
class Segment:
    label: str
    box_2d: Any
    box: tuple[int, int, int, int]
    # Binary (mode "1") PNG of the box's size: white = the object.
    mask_png: bytes
    area: int


def decode_mask(
    mask: object, box: tuple[int, int, int, int], image_size: tuple[int, int] | None = None
) -> tuple[bytes, int]:
    """Binary PNG of the box's size and the object's area in pixels, for a mask in any of
    the three formats (see the module docstring). ``image_size`` (width, height) is needed
    for polygons, whose coordinates are the whole image's."""
    width, height = box[2] - box[0], box[3] - box[1]
    if width < 1 or height < 1:
        raise InvalidMaskError(f"the box {list(box)} has no pixels")
    if isinstance(mask, str):
        text = mask.strip()
        if text.startswith(MASK_START) or text.startswith("<seg_"):
            # A bitmap, not a probability map: nearest neighbour keeps its cells whole.
            bitmap = _token_bitmap(text).resize((width, height), Image.Resampling.NEAREST)
            return _encode(bitmap)
        return _binary_png(_png_map(text), width, height)
    if isinstance(mask, list):
        if image_size is None:
            raise InvalidMaskError("a polygon mask needs the image's size")
        return _polygon_mask(mask, box, image_size)
    raise InvalidMaskError(
        f"a mask must be a base64 PNG, mask tokens or a polygon, got {type(mask).__name__}"
    )


def _png_map(payload: str) -> Image.Image:
    """The probability map (mode "L") of a base64 PNG/JPEG, data-URL prefix or not."""
    payload = payload.split(",", 1)[1] if payload.startswith("data:") else payload
    payload = payload.strip()
    try:
        raw = base64.b64decode(payload + "=" * (-len(payload) % 4), validate=False)
        with Image.open(io.BytesIO(raw)) as decoded:
            if decoded.width * decoded.height > MAX_MASK_PIXELS:
                raise InvalidMaskError(f"mask of {decoded.width}x{decoded.height} is too large")
            return decoded.convert("L")
    except (
        binascii.Error,
        UnidentifiedImageError,
        OSError,
        ValueError,
        Image.DecompressionBombError,
    ) as exc:
        if isinstance(exc, InvalidMaskError):
            raise
        raise InvalidMaskError(f"undecodable mask: {exc}") from exc


def _token_bitmap(text: str) -> Image.Image:
    """The 64x64 bitmap (mode "L", 0/255) of a ``<start_of_mask><seg_N>...`` string."""
    body = text.removeprefix(MASK_START).strip().removesuffix(MASK_END)
    values = [int(match) for match in _SEG_TOKEN.findall(body)]
    leftover = _SEG_TOKEN.sub("", body).strip()
    if leftover:
        raise InvalidMaskError(f"mask tokens mixed with other text: {leftover[:40]!r}")
    side = TOKEN_MASK_SIDE
    if sum(values) == side * side:
        cells = bytearray()
        for index, run in enumerate(values):
            cells += (b"\xff" if index % 2 else b"\x00") * run
        return Image.frombytes("L", (side, side), bytes(cells))
    if len(values) == TOKEN_MASK_TOKENS and all(value <= 255 for value in values):
        return Image.frombytes("1", (side, side), bytes(values)).convert("L")
    if len(values) == VQ_CODEWORDS:
        raise InvalidMaskError(
            "16 VQ-VAE mask codewords (PaliGemma style): their decoder is not public, so "
            "this mask cannot be read; use a model whose masks are PNG maps or polygons"
        )
    raise InvalidMaskError(
        f"{len(values)} mask tokens summing to {sum(values)}: run lengths over a 64x64 "
        f"bitmap sum to {side * side} (or {TOKEN_MASK_TOKENS} byte tokens)"
    )


def _binary_png(probability: Image.Image, width: int, height: int) -> tuple[bytes, int]:
    """A probability map (mode "L") resized to width x height and thresholded."""
    resized = probability.resize((width, height), Image.Resampling.BILINEAR)
    thresholded = resized.point(lambda value: 255 if value > MASK_THRESHOLD else 0)
    return _encode(thresholded)


def _encode(binary: Image.Image) -> tuple[bytes, int]:
    """PNG bytes (mode "1") and white-pixel count of a 0/255 "L" image."""
    area = binary.histogram()[255]
    out = io.BytesIO()
    binary.convert("1").save(out, "PNG", optimize=True)
    return out.getvalue(), area


def _polygon_mask(
    polygon: list[Any], box: tuple[int, int, int, int], image_size: tuple[int, int]
) -> tuple[bytes, int]:
    """A polygon (or a list of rings) in 0-1000 image coordinates filled inside the box."""
    rings = polygon if polygon and all(_is_ring(item) for item in polygon) else [polygon]
    width, height = image_size
    box_width, box_height = box[2] - box[0], box[3] - box[1]
    if box_width * box_height > MAX_MASK_PIXELS:
        raise InvalidMaskError(f"a box of {box_width}x{box_height} is too large for a mask")
    # Half pixels: Pillow fills a polygon with its edges, so sampling a grid of half pixels
    # at the pixel centres (NEAREST at half size picks cell 2i + 1) gives centre sampling.
    grid = Image.new("L", (2 * box_width, 2 * box_height), 0)
    draw = ImageDraw.Draw(grid)
    total = 0
    for ring in rings:
        points = _ring_points(ring)
        total += len(points)
        if total > MAX_POLYGON_POINTS:
            raise InvalidMaskError(f"a polygon of more than {MAX_POLYGON_POINTS} points")
        halves = [
            (
                round(2 * x / NORMALISED_MAX * width) - 2 * box[0],
                round(2 * y / NORMALISED_MAX * height) - 2 * box[1],
            )
            for x, y in points
        ]
        draw.polygon(halves, fill=255, outline=255)
    return _encode(grid.resize((box_width, box_height), Image.Resampling.NEAREST))


def _is_ring(item: object) -> bool:
    return isinstance(item, list) and bool(item) and all(isinstance(p, list) for p in item)


def _ring_points(ring: object) -> list[tuple[float, float]]:
    """The [x, y] vertices of one ring, checked: numbers in (about) 0-1000, at least 3."""
    if not isinstance(ring, list):
        raise InvalidMaskError(f"a polygon is a list of [x, y] points, got {ring!r:.60}")
    points = [_point(item) for item in ring]
    if len(points) < 3:
        raise InvalidMaskError(f"a polygon needs at least 3 points, got {len(points)}")
    return points


def _point(item: object) -> tuple[float, float]:
    if (
        not isinstance(item, Sequence)
        or isinstance(item, str)
        or len(item) != 2
        or any(isinstance(v, bool) or not isinstance(v, int | float) for v in item)
    ):
        raise InvalidMaskError(f"a polygon point is [x, y] (two numbers), got {item!r:.60}")
    x, y = float(item[0]), float(item[1])
    # Like box_2d: a slight overshoot is rounding on the model's side; far outside is garbage.
    if not all(-10 <= v <= NORMALISED_MAX + 10 for v in (x, y)):
        raise InvalidMaskError(f"a polygon point outside 0-1000: [{x:g}, {y:g}]")
    return x, y


def parse_segments(text: str, width: int, height: int) -> tuple[list[Segment], int]:
    """Valid segments of the answer and how many items were skipped as invalid."""
    segments: list[Segment] = []
    skipped = 0
    reasons: list[str] = []
    for item in detection_items(extract_json(text)):
        if not isinstance(item, dict) or not isinstance(item.get("mask"), str | list):
            skipped += 1
            continue
        try:
            box = box_2d_to_pixels(item.get("box_2d"), width, height)
            mask_png, area = decode_mask(item["mask"], box, (width, height))
        except (InvalidBoxError, InvalidMaskError) as exc:
            skipped += 1
            reasons.append(str(exc))
            continue
        label = item.get("label")
        segments.append(
            Segment(
                label=str(label) if label is not None else "",
                box_2d=item["box_2d"],
                box=box,
                mask_png=mask_png,
                area=area,
            )
        )
    if not segments and skipped:
        # Everything was unusable: that is a bad answer, not an empty scene.
        why = f" (first: {reasons[0]})" if reasons else ""
        raise AnswerParseError(f"none of the {skipped} segmentation items was usable{why}")
    return segments, skipped
