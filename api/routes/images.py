"""Images derived from a job: detections drawn on the original, segmentation masks."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from visionq.api.deps import CallerDep, ResourcesDep, SessionDep
from visionq.api.errors import ApiError
from visionq.api.jobids import job_id_of, job_not_found
from visionq.api.openapi import PNG_RESPONSE, error_responses
from visionq.api.routes.jobs import JobIdPath
from visionq.api.schemas import ErrorBody
from visionq.models.blobs import BlobNotFoundError
from visionq.models.jobs import get_job
from visionq.models.tables import Job, JobStatus
from visionq.vision.annotate import annotate_detections
from visionq.vision.task_registry import kinds_with

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

# 409: not a detect/segment job, not succeeded yet, or an ambiguous id prefix; 422: too
# short a prefix (or, for a mask, an index that is not a number).
_PNG_RESPONSES: dict[int | str, dict[str, Any]] = {
    **PNG_RESPONSE,
    **error_responses(401, 404, 409, 422, 503),
    410: {"model": ErrorBody, "description": "The job's images are no longer stored."},
}
_BOX_TASKS = kinds_with(lambda spec: spec.boxes)
_MASK_TASKS = kinds_with(lambda spec: spec.masks)


def _finished_job(session: SessionDep, tenant: str, job_id: str, tasks: tuple[str, ...]) -> Job:
    job = get_job(session, tenant=tenant, job_id=job_id_of(session, tenant, job_id))
    if job is None:
        raise job_not_found(job_id)
    if job.task not in tasks:
        raise ApiError(
            "no_annotation",
            f"Only {' and '.join(tasks)} jobs have one; this is a {job.task} job.",
        )
    if job.status != JobStatus.SUCCEEDED or job.result is None:
        raise ApiError(
            "job_not_finished", f"The job is {job.status}; the image exists once it succeeded."
        )
    return job


@router.get(
    "/{job_id}/annotated.png",
    response_class=Response,
    responses=_PNG_RESPONSES,
    summary="A detect or segment job's boxes (and masks) drawn on its image",
)
def annotated_png(
    job_id: JobIdPath, caller: CallerDep, session: SessionDep, resources: ResourcesDep
) -> Response:
    """The upright original image with the boxes, labels and masks drawn on it."""
    job = _finished_job(session, caller.tenant, job_id, _BOX_TASKS)
    assert job.result is not None
    objects = job.result.get("objects", [])
    try:
        masks = [
            resources.blobs.get(obj["mask_sha256"]) if obj.get("mask_sha256") else None
            for obj in objects
        ]
        image = resources.blobs.get(job.inputs[0].sha256)
    except BlobNotFoundError as exc:
        raise _gone(job.id, "images") from exc
    png = annotate_detections(image, objects, masks=masks)
    return Response(png, media_type="image/png")


@router.get(
    "/{job_id}/masks/{index}.png",
    response_class=Response,
    responses=_PNG_RESPONSES,
    summary="One segmentation mask (binary PNG of its box's size)",
)
def mask_png(
    job_id: JobIdPath, index: int, caller: CallerDep, session: SessionDep, resources: ResourcesDep
) -> Response:
    """Mask ``index`` of a segment job: white where the object is, sized to its box."""
    job = _finished_job(session, caller.tenant, job_id, _MASK_TASKS)
    assert job.result is not None
    objects = job.result.get("objects", [])
    if not 0 <= index < len(objects):
        raise ApiError(
            "mask_not_found", f"The job has {len(objects)} masks (0-{len(objects) - 1})."
        )
    try:
        # Read whole before the answer starts (a mask is small: streaming buys nothing):
        # a missing mask is a 410 and a failing store a 503, never a cut answer.
        png = resources.blobs.get(objects[index]["mask_sha256"])
    except BlobNotFoundError as exc:
        raise _gone(job.id, "masks") from exc
    return Response(png, media_type="image/png")


def _gone(job_id: str, what: str) -> ApiError:
    return ApiError(
        "job_inputs_gone", f"Job {job_id}'s {what} are no longer stored (removed by retention)."
    )
