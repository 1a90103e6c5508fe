"""A job's input images as stored (upright), for clients that show them: the console."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import StreamingResponse

from visionq.api.deps import CallerDep, ResourcesDep, SessionDep
from visionq.api.errors import ApiError
from visionq.api.jobids import job_id_of, job_not_found
from visionq.api.openapi import IMAGE_RESPONSE, error_responses
from visionq.api.routes.jobs import JobIdPath
from visionq.api.schemas import ErrorBody
from visionq.models.blobs import BlobNotFoundError
from visionq.models.jobs import get_job
from visionq.vision.annotate import display_png
from visionq.vision.formats import HEIC, HEIF, ImageRejectedError
from visionq.vision.memory import MemoryBusyError, process_limits

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

# A browser's cache is keyed by URL, not by the key that fetched it: it may keep the image
# but must ask again each time (with If-None-Match: a 304 costs no image), so the server
# checks every key's tenant; Vary keeps an answer to one key from serving another.
CACHE_CONTROL = "private, no-cache"
_RESPONSES: dict[int | str, dict[str, Any]] = {
    **IMAGE_RESPONSE,
    304: {"description": "Not modified: If-None-Match names this image's ETag."},
    **error_responses(401, 404, 409, 413, 422, 503),
    410: {
        "model": ErrorBody,
        "description": "The job's images are no longer stored (job_inputs_gone).",
    },
}


@router.get(
    "/{job_id}/images/{position}",
    response_class=Response,
    responses=_RESPONSES,
    summary="One of a job's input images",
)
def input_image(
    *,
    job_id: JobIdPath,
    position: Annotated[int, Path(ge=0, description="The image's position (0 = first).")],
    caller: CallerDep,
    session: SessionDep,
    resources: ResourcesDep,
    request: Request,
) -> Response:
    """Input image ``position`` as stored: upright (EXIF orientation applied at submit), so
    a result's pixel boxes fit it as they are. Any job status; HEIC and HEIF come as PNG."""
    tenant = caller.tenant
    job = get_job(session, tenant=tenant, job_id=job_id_of(session, tenant, job_id))
    if job is None:
        raise job_not_found(job_id)
    inputs = sorted(job.inputs, key=lambda item: item.position)
    if not 0 <= position < len(inputs):
        raise ApiError("image_not_found", _positions(len(inputs)))
    item = inputs[position]
    shown_as_png = item.mime_type in (HEIC, HEIF)
    # The ETag names the bytes sent: a HEIC's PNG is not the HEIC its sha256 names.
    etag = f'"{item.sha256}.png"' if shown_as_png else f'"{item.sha256}"'
    headers = {"Cache-Control": CACHE_CONTROL, "ETag": etag, "Vary": "Authorization"}
    try:
        # Sized first: a removed image is a 410 before any byte (or a 304) is sent.
        size = resources.blobs.size(item.sha256)
        if _matches(request.headers.get("if-none-match"), etag):
            return Response(status_code=304, headers=headers)
        if shown_as_png:
            data = resources.blobs.get(item.sha256)
            return Response(_as_png(data, resources), media_type="image/png", headers=headers)
        chunks = resources.blobs.iter_chunks(item.sha256)
    except BlobNotFoundError as exc:
        raise ApiError(
            "job_inputs_gone",
            f"Job {job.id}'s images are no longer stored (removed by retention).",
        ) from exc
    # Streamed from the store in chunks (S3/GCS: ranged reads), not held whole in memory.
    headers["Content-Length"] = str(size)
    return StreamingResponse(chunks, media_type=item.mime_type, headers=headers)


def _as_png(data: bytes, resources: ResourcesDep) -> bytes:
    """The HEIC/HEIF as PNG, decoded under submit's memory bound and budget."""
    settings = resources.settings
    limits = process_limits(
        settings.image_decode_max_bytes,
        settings.image_decode_budget_bytes,
        settings.image_decode_wait_s,
    )
    try:
        return display_png(data, limits)
    except ImageRejectedError as exc:
        raise ApiError.of(exc, f"Cannot show this image: {exc.message}") from exc
    except MemoryBusyError as exc:
        raise ApiError(
            "unavailable", f"{exc}.", headers={"Retry-After": str(exc.retry_after_s)}
        ) from exc


def _matches(if_none_match: str | None, etag: str) -> bool:
    """True when an If-None-Match header names ``etag`` (weakly, as RFC 9110 compares)."""
    if not if_none_match:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag in tags


def _positions(count: int) -> str:
    """What an out-of-range position is told: the positions the job has."""
    if count == 0:
        return "The job has no input images."
    if count == 1:
        return "The job has 1 image (position 0)."
    return f"The job has {count} images (positions 0-{count - 1})."
