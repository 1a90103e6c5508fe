"""Build the Gemini request of a job: images (inline or File API), then the text."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from google.genai import types

from visionq.models.blobs import BlobStore
from visionq.models.leases import JobSpec
from visionq.models.settings import Settings
from visionq.vision.catalogue import Catalogue
from visionq.vision.generation import generation_config
from visionq.vision.memory import DecodeLimits, process_limits
from visionq.vision.prepare import downscale
from visionq.vision.tasks import JobOptions, TaskKind, build_prompt
from visionq.vision.transport import FILE, plan_transport
from visionq.worker.files import UploadCache


@dataclass(frozen=True)
class SentImage:
    """An image as it is sent: the original, or a downscaled copy (also in the blob store)."""

    sha256: str
    mime_type: str
    size: int
    data: bytes


@dataclass
class GeminiRequest:
    model: str
    parts: list[types.Part]
    config: dict[str, Any]
    transports: list[str]
    file_uris: list[str] = field(default_factory=list)


def decode_limits(settings: Settings) -> DecodeLimits:
    """This worker process's image decode bound and budget. A downscale waits for its
    share as long as a job may run: the pool's concurrency already bounds the waiters."""
    return process_limits(
        settings.image_decode_max_bytes, settings.image_decode_budget_bytes, settings.job_deadline_s
    )


def images_to_send(
    job: JobSpec, blobs: BlobStore, options: JobOptions, limits: DecodeLimits | None = None
) -> list[SentImage]:
    """The job's images, downscaled to options.max_side when asked.

    Boxes come back normalised to 0-1000, so they map to the original pixels with the
    original width and height whatever size was sent. ``limits``: the worker's decode
    memory bound and budget (vision/memory.py).
    """
    sent = []
    for item in job.inputs:
        data = blobs.get(item.sha256)
        smaller = (
            downscale(data, item.mime_type, max_side=options.max_side, limits=limits)
            if options.max_side
            else None
        )
        if smaller is None:
            sent.append(SentImage(item.sha256, item.mime_type, len(data), data))
            continue
        small_data, mime_type, _, _ = smaller
        sent.append(SentImage(blobs.put(small_data), mime_type, len(small_data), small_data))
    return sent


def build_request(
    job: JobSpec,
    *,
    blobs: BlobStore,
    uploads: UploadCache,
    inline_limit: int,
    catalogue: Catalogue,
    limits: DecodeLimits | None = None,
) -> GeminiRequest:
    """Parts and config for a job; images over the inline budget go through the File API.

    What the model takes (how to make it think less, which options it ignores) comes from
    its entry in ``catalogue``. ``limits`` bound the memory of downscaling its images.
    """
    task = TaskKind(job.task)
    options = job.options
    text = build_prompt(task, prompt=job.prompt, labels=job.labels, options=options)
    images = images_to_send(job, blobs, options, limits)
    transports = plan_transport(
        [image.size for image in images], text_bytes=len(text.encode()), inline_limit=inline_limit
    )
    request = GeminiRequest(
        model=job.model,
        parts=[],
        config=generation_config(
            task, options, job.response_schema, entry=catalogue.entry(job.model)
        ),
        transports=transports,
    )
    levels = options.image_media_resolution or [None] * len(images)
    for image, transport, level in zip(images, transports, levels, strict=True):
        # Gemini 3 only: the image's own media_resolution (it overrides the request's).
        resolution = f"MEDIA_RESOLUTION_{level}" if level else None
        if transport == FILE:
            uri = uploads.uri_for(image.sha256, image.mime_type, image.size)
            request.file_uris.append(uri)
            request.parts.append(
                types.Part.from_uri(
                    file_uri=uri, mime_type=image.mime_type, media_resolution=resolution
                )
            )
        else:
            request.parts.append(
                types.Part.from_bytes(
                    data=image.data, mime_type=image.mime_type, media_resolution=resolution
                )
            )
    # Gemini's advice: the text after the image(s).
    request.parts.append(types.Part.from_text(text=text))
    return request
