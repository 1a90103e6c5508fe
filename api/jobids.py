"""The job a /v1/jobs/{job_id}... path names: a full id or a unique prefix (models.jobrefs)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from api.errors import ApiError
from models.jobrefs import JobIdError, resolve_job_id

# What a JobIdError becomes: too short a prefix is the request's fault, an ambiguous one a
# conflict between the request and what exists.
_STATUS = {"invalid_job_id": 422, "job_not_found": 404, "ambiguous_job_id": 409}
# For the OpenAPI document of every route that takes a job id.
JOB_ID_DESCRIPTION = (
    "A job id, or a unique prefix of one (at least 8 hex characters): a shorter prefix is "
    "422 invalid_job_id, one that matches several jobs 409 ambiguous_job_id."
)


def job_id_of(session: Session, tenant: str, job_id: str) -> str:
    """The full id of the tenant's job named by ``job_id``, or the ApiError saying why not."""
    try:
        return resolve_job_id(session, tenant=tenant, job_id=job_id)
    except JobIdError as exc:
        raise ApiError(_STATUS[exc.code], exc.code, exc.message) from exc
