"""Segmentation answers: probability-map masks resized to their boxes and thresholded."""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass
from typing import Any

from PIL import Image, UnidentifiedImageError

from vision.boxes import InvalidBoxError, box_2d_to_pixels
from vision.parsing import AnswerParseError, detection_items, extract_json

# Google's guide thresholds the probability map at 127: above is inside the object.
MASK_THRESHOLD = 127
# A probability map bigger than this is not a mask but an attack (or a broken answer).
MAX_MASK_PIXELS = 4096 * 4096


class InvalidMaskError(ValueError):
    """A mask that is not a decodable PNG/JPEG image."""


@dataclass(frozen=True)
class Segment:
    label: str
    box_2d: Any
    box: tuple[int, int, int, int]
    # Binary (mode "1") PNG of the box's size: white = the object.
    mask_png: bytes
    area: int


def decode_mask(mask: str, box: tuple[int, int, int, int]) -> tuple[bytes, int]:
    """Binary PNG of the box's size and the object's area in pixels.

    The mask is a base64 PNG probability map, with or without a ``data:`` URL prefix, at
    whatever resolution the model chose: it is resized to the box, then thresholded.
    """
    width, height = box[2] - box[0], box[3] - box[1]
    if width < 1 or height < 1:
        raise InvalidMaskError(f"the box {list(box)} has no pixels")
    payload = mask.split(",", 1)[1] if mask.startswith("data:") else mask
    try:
        raw = base64.b64decode(payload.strip() + "=" * (-len(payload.strip()) % 4), validate=False)
        with Image.open(io.BytesIO(raw)) as decoded:
            if decoded.width * decoded.height > MAX_MASK_PIXELS:
                raise InvalidMaskError(f"mask of {decoded.width}x{decoded.height} is too large")
            probability = decoded.convert("L")
    except (
        binascii.Error,
        UnidentifiedImageError,
        OSError,
        ValueError,
        Image.DecompressionBombError,
    ) as exc:
        raise InvalidMaskError(f"undecodable mask: {exc}") from exc
    resized = probability.resize((width, height), Image.Resampling.BILINEAR)
    thresholded = resized.point(lambda value: 255 if value > MASK_THRESHOLD else 0)
    area = thresholded.histogram()[255]
    out = io.BytesIO()
    thresholded.convert("1").save(out, "PNG", optimize=True)
    return out.getvalue(), area


def parse_segments(text: str, width: int, height: int) -> tuple[list[Segment], int]:
    """Valid segments of the answer and how many items were skipped as invalid."""
    segments: list[Segment] = []
    skipped = 0
    for item in detection_items(extract_json(text)):
        if not isinstance(item, dict) or not isinstance(item.get("mask"), str):
            skipped += 1
            continue
        try:
            box = box_2d_to_pixels(item.get("box_2d"), width, height)
            mask_png, area = decode_mask(item["mask"], box)
        except (InvalidBoxError, InvalidMaskError):
            skipped += 1
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
        raise AnswerParseError(f"none of the {skipped} segmentation items was usable")
    return segments, skipped
