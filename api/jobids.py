"""The job a /v1/jobs/{job_id}... path names: a full id or a unique prefix (models.jobrefs)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from visionq.api.errors import ApiError
from visionq.models.jobrefs import MIN_PREFIX, JobIdError, not_found_message, resolve_job_id

# For the OpenAPI document of every route that takes a job id.
JOB_ID_DESCRIPTION = (
    f"A job id, or a unique prefix of one (at least {MIN_PREFIX} hex characters): a shorter "
    "prefix is 422 invalid_job_id, one that matches several jobs 409 ambiguous_job_id."
)


def job_id_of(session: Session, tenant: str, job_id: str) -> str:
    """The full id of the tenant's job named by ``job_id``, or the ApiError saying why not."""
    try:
        return resolve_job_id(session, tenant=tenant, job_id=job_id)
    except JobIdError as exc:
        raise ApiError.of(exc) from exc


def job_not_found(job_id: str) -> ApiError:
    """The 404 for a job id that names no job of the caller's key (e.g. deleted since)."""
    return ApiError("job_not_found", not_found_message(job_id))
