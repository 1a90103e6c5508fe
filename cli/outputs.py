"""`--out DIR`: each finished job's JSON, its annotated image and its segmentation masks."""

from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image

from visionq.client import Job, VisionqClient
from visionq.vision.task_registry import has_boxes, has_masks

# The rule for the annotated image's format, from the INPUT (the annotated copy always has
# many colours: its labels are anti-aliased): a camera format (JPEG, HEIC, HEIF) is a photo,
# written as JPEG; any other input (PNG, WEBP, GIF, BMP, TIFF) is a drawing or a screenshot,
# written as PNG (lossless, and smaller for flat colours), unless it has more colours than
# this (a photo saved as PNG).
_PHOTO_MIME_TYPES = frozenset({"image/jpeg", "image/heic", "image/heif"})
_DRAWING_MAX_COLOURS = 256
_JPEG_QUALITY = 90


def photo_input(job: Job, source: Path | None) -> bool:
    """True when the job's (first) input is a photograph: a camera format, or an image of
    more than 256 colours (``source``: the local file it was read from, when known)."""
    if job.inputs and job.inputs[0].mime_type in _PHOTO_MIME_TYPES:
        return True
    if source is None:
        return False
    try:
        with Image.open(source) as decoded:
            return decoded.convert("RGB").getcolors(maxcolors=_DRAWING_MAX_COLOURS) is None
    except (OSError, ValueError, Image.DecompressionBombError):
        # Unreadable now (moved, too large, a format this Pillow lacks): the lossless choice.
        return False


def compact_image(png: bytes, *, photo: bool) -> tuple[bytes, str]:
    """The annotated PNG the API returns, re-encoded no larger than it needs to be: JPEG
    (quality 90) for a ``photo`` (see photo_input), an optimised PNG otherwise. Returns
    (bytes, extension).
    """
    with Image.open(io.BytesIO(png)) as decoded:
        image = decoded.convert("RGB")
    out = io.BytesIO()
    if photo:
        image.save(out, "JPEG", quality=_JPEG_QUALITY, optimize=True)
        return out.getvalue(), "jpg"
    image.save(out, "PNG", optimize=True)
    encoded = out.getvalue()
    # Never larger than what the API sent.
    return (encoded if len(encoded) < len(png) else png), "png"


def write_outputs(
    client: VisionqClient,
    jobs: dict[str, Job],
    stems: dict[str, str],
    out: Path,
    sources: dict[str, Path] | None = None,
) -> list[Path]:
    """Write every job's files into ``out``; returns the paths written.

    Per job ``STEM-ID.json``; for a succeeded detect or segment job
    ``STEM-ID.annotated.jpg|png`` (JPEG when its input, ``sources[ID]`` if known, is a
    photo: photo_input); for a succeeded segment job ``STEM-ID.mask-N.png`` per object.
    Jobs still running get nothing (their JSON is written by a later run).
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
        photo = photo_input(job, (sources or {}).get(job.id))
        data, extension = compact_image(client.annotated_png(job.id), photo=photo)
        write(f"{stem}.annotated.{extension}", data)
        if has_masks(job.task):
            for index, obj in enumerate((job.result or {}).get("objects", [])):
                if obj.get("mask_sha256"):
                    write(f"{stem}.mask-{index}.png", client.mask_png(job.id, index))
    return written


def written_line(jobs: dict[str, Job], out: Path, *, fresh: bool) -> str:
    """What ``--out`` wrote, said after the results: how many jobs' files, and how to get
    the files of the jobs still running when --timeout expired (``fresh``: the run used
    --new, so running it again would submit new jobs instead of finding these)."""
    total, done = len(jobs), sum(job.done for job in jobs.values())
    if done == total:
        return f"results of {total} job(s) written to {out}/"
    later = (
        "visionq wait ID... shows their results when they end, but writes no files"
        if fresh
        else "run the same command again to write theirs once they end (it finds the same "
        "jobs, it does not submit them again)"
    )
    if done == 0:
        return f"no results written to {out}/: none of the {total} job(s) has finished; {later}"
    return (
        f"{done} of {total} jobs' results written to {out}/; the other {total - done} have not "
        f"finished: {later}"
    )
