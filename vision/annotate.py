"""Draw detection boxes and labels on the upright image (in memory, no I/O)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

from PIL import Image, ImageDraw, ImageFont, ImageOps

from visionq.vision.formats import HEIC, HEIF, register_heif, sniff_mime_type
from visionq.vision.memory import DecodeLimits, decode_bytes

# Distinct, saturated colours that stay readable on photos.
_COLOURS = [
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (0, 128, 128), (170, 110, 40),
]  # fmt: skip


def open_upright(data: bytes) -> Image.Image:
    """Decode an image and apply its EXIF orientation: the frame boxes refer to."""
    if sniff_mime_type(data) in (HEIC, HEIF):
        register_heif()
    with Image.open(io.BytesIO(data)) as image:
        upright = ImageOps.exif_transpose(image)
        return upright.convert("RGB")


def display_png(data: bytes, limits: DecodeLimits | None = None) -> bytes:
    """A PNG of an image browsers cannot show as stored (HEIC/HEIF), upright as stored.

    With ``limits`` the decode runs under the same per-image bound and process budget as
    submit's (``image_too_large`` / MemoryBusyError), so viewing costs no more memory than
    sending did."""
    mime_type = sniff_mime_type(data)
    if mime_type in (HEIC, HEIF):
        register_heif()
    out = io.BytesIO()
    with Image.open(io.BytesIO(data)) as image:
        # Decoded, then turned (exif_transpose) and converted to RGB: two more copies.
        needed = decode_bytes(*image.size, mime_type or "", image.mode, copies=2)
        with limits.hold(*image.size, needed) if limits else nullcontext():
            upright = ImageOps.exif_transpose(image).convert("RGB")
            # Fast zlib: the PNG goes to one browser once, CPU matters more than bytes.
            upright.save(out, "PNG", compress_level=1)
    return out.getvalue()


def _overlay_masks(
    image: Image.Image, objects: Sequence[dict[str, Any]], masks: Sequence[bytes | None]
) -> None:
    """Tint each mask's pixels with its object's colour, half transparent."""
    for index, (item, mask_png) in enumerate(zip(objects, masks, strict=False)):
        if mask_png is None:
            continue
        x1, y1, x2, y2 = (int(v) for v in item["box"])
        with Image.open(io.BytesIO(mask_png)) as decoded:
            mask = decoded.convert("L").resize((max(1, x2 - x1), max(1, y2 - y1)))
        tint = Image.new("RGB", mask.size, _COLOURS[index % len(_COLOURS)])
        region = image.crop((x1, y1, x1 + mask.width, y1 + mask.height))
        blended = Image.blend(region, tint, 0.5)
        region.paste(blended, (0, 0), mask)
        image.paste(region, (x1, y1))


def annotate_detections(
    data: bytes,
    objects: Sequence[dict[str, Any]],
    *,
    masks: Sequence[bytes | None] = (),
) -> bytes:
    """A PNG of the image with each object's ``box`` ([x1, y1, x2, y2]) and ``label``.

    ``masks`` (binary PNGs of each box's size, for segmentation) are overlaid too.
    """
    image = open_upright(data)
    _overlay_masks(image, objects, masks)
    draw = ImageDraw.Draw(image)
    side = min(image.size)
    line = max(2, side // 250)
    font = ImageFont.load_default(size=max(12, side // 40))
    for index, item in enumerate(objects):
        x1, y1, x2, y2 = (int(v) for v in item["box"])
        colour = _COLOURS[index % len(_COLOURS)]
        draw.rectangle((x1, y1, x2 - 1, y2 - 1), outline=colour, width=line)
        label = str(item.get("label") or "")
        if label:
            left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
            height = bottom - top + 2 * line
            # Above the box when there is room, else inside its top edge.
            y = y1 - height if y1 - height >= 0 else y1
            draw.rectangle((x1, y, x1 + right - left + 2 * line, y + height), fill=colour)
            draw.text((x1 + line, y + line - top), label, fill=(255, 255, 255), font=font)
    out = io.BytesIO()
    image.save(out, "PNG", optimize=False)
    return out.getvalue()
