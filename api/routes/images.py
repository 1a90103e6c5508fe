"""Images derived from a job: the detect result drawn on the original."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.deps import CallerDep, ResourcesDep, SessionDep
from api.errors import ApiError
from api.schemas import ErrorBody
from models.jobs import get_job
from models.tables import JobStatus
from vision.annotate import annotate_detections

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.get(
    "/{job_id}/annotated.png",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}}, "description": "The annotated image."},
        401: {"model": ErrorBody},
        404: {"model": ErrorBody},
        409: {"model": ErrorBody},
    },
    summary="A detect job's boxes drawn on its image",
)
def annotated_png(
    job_id: str, caller: CallerDep, session: SessionDep, resources: ResourcesDep
) -> Response:
    """The upright original image with the detected boxes and labels drawn on it."""
    job = get_job(session, tenant=caller.tenant, job_id=job_id)
    if job is None:
        raise ApiError(404, "job_not_found", f"No job {job_id} for this API key.")
    if job.task != "detect":
        raise ApiError(
            409, "no_annotation", f"Only detect jobs have one; this is a {job.task} job."
        )
    if job.status != JobStatus.SUCCEEDED or job.result is None:
        raise ApiError(
            409, "job_not_finished", f"The job is {job.status}; the image exists once it succeeded."
        )
    png = annotate_detections(
        resources.blobs.get(job.inputs[0].sha256), job.result.get("objects", [])
    )
    return Response(png, media_type="image/png")
