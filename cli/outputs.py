"""`--out DIR`: each finished job's JSON, its annotated image and its segmentation masks."""

from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image

from visionq.client import Job, VisionqClient
from visionq.vision.task_registry import has_boxes, has_masks

# More distinct colours than this in the annotated image: a photograph, stored as JPEG;
# fewer: a drawing or a screenshot, stored as PNG (lossless and smaller for flat colours).
_DRAWING_MAX_COLOURS = 256
_JPEG_QUALITY = 90


def compact_image(png: bytes, *, photo_hint: bool) -> tuple[bytes, str]:
    """The annotated PNG the API returns, re-encoded no larger than it needs to be.

    JPEG (quality 90) for a photograph (``photo_hint``: the input was a JPEG, or the
    image has many colours); an optimised PNG otherwise. Returns (bytes, extension).
    """
    with Image.open(io.BytesIO(png)) as decoded:
        image = decoded.convert("RGB")
    photo = photo_hint or image.getcolors(maxcolors=_DRAWING_MAX_COLOURS) is None
    out = io.BytesIO()
    if photo:
        image.save(out, "JPEG", quality=_JPEG_QUALITY, optimize=True)
        return out.getvalue(), "jpg"
    image.save(out, "PNG", optimize=True)
    encoded = out.getvalue()
    # Never larger than what the API sent.
    return (encoded if len(encoded) < len(png) else png), "png"


def write_outputs(
    client: VisionqClient, jobs: dict[str, Job], stems: dict[str, str], out: Path
) -> list[Path]:
    """Write every job's files into ``out``; returns the paths written.

    Per job ``STEM-ID.json``; for a succeeded detect or segment job
    ``STEM-ID.annotated.jpg|png``; for a succeeded segment job ``STEM-ID.mask-N.png`` per
    object. Jobs still running get nothing (their JSON is written by a later run).
    """
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def write(name: str, data: bytes) -> None:
        path = out / name
        path.write_bytes(data)
        written.append(path)

    for job in jobs.values():
        if not job.done:
            continue
        stem = f"{stems.get(job.id, 'job')}-{job.id}"
        write(f"{stem}.json", (json.dumps(job.model_dump(mode="json"), indent=2) + "\n").encode())
        if job.status != "succeeded" or not has_boxes(job.task):
            continue
        photo_hint = bool(job.inputs) and job.inputs[0].mime_type == "image/jpeg"
        data, extension = compact_image(client.annotated_png(job.id), photo_hint=photo_hint)
        write(f"{stem}.annotated.{extension}", data)
        if has_masks(job.task):
            for index, obj in enumerate((job.result or {}).get("objects", [])):
                if obj.get("mask_sha256"):
                    write(f"{stem}.mask-{index}.png", client.mask_png(job.id, index))
    return written
