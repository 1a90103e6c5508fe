"""The job endpoints: submit, read, list, cancel. Thin: validation lives in intake/vision."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from api.deps import CallerDep, ResourcesDep, SessionDep
from api.errors import ApiError
from api.intake import read_job_request
from api.schemas import ErrorBody, JobCreate, JobPage, JobPublic
from api.submission import authorize_submit, submit
from models.jobs import InvalidCursorError, cancel_job, get_job, list_jobs
from models.tables import JobStatus
from vision.tasks import TaskKind

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody}
    for status in (400, 401, 402, 404, 413, 415, 422, 429, 502, 503, 504)
}


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """JobCreate's JSON schema with its $defs inlined, for the hand-written request body."""
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(value) for value in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


_MULTIPART_SCHEMA = {
    "type": "object",
    "required": ["task", "image"],
    "additionalProperties": False,
    "properties": {
        "task": {"type": "string", "enum": [kind.value for kind in TaskKind]},
        "image": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "string", "format": "binary"},
            "description": "One or more image files (PNG, JPEG, WEBP, HEIC, HEIF).",
        },
        "prompt": {"type": "string"},
        "model": {"type": "string"},
        "labels": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Repeated fields, one comma-separated field, or a JSON list.",
        },
        "options": {"type": "string", "description": 'A JSON object, e.g. {"temperature": 0}.'},
        "schema": {"type": "string", "description": "custom: a JSON Schema, as JSON text."},
    },
}

CREATE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {"schema": _MULTIPART_SCHEMA},
            "application/json": {"schema": _inline_refs(JobCreate.model_json_schema())},
        },
    }
}


@router.post(
    "",
    status_code=202,
    response_model=JobPublic,
    responses=ERRORS,
    openapi_extra=CREATE_BODY,
    summary="Submit a vision job",
)
async def submit_job(request: Request, response: Response, resources: ResourcesDep) -> JobPublic:
    """Accept a job (multipart or JSON), store its images and queue it. Answers 202.

    With an `Idempotency-Key` header, a repeated request (same key, same body) returns the
    job the first one created (header `Idempotent-Replayed: true`) instead of a new one.
    """
    # Two thread-pool round trips in all: the checks before the body (the API key first),
    # then everything after it; the body is read on the event loop in between.
    caller, key = await run_in_threadpool(authorize_submit, request, resources)
    raw = await read_job_request(request, resources.settings)
    job, replayed = await run_in_threadpool(submit, raw, caller, resources, key)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return job


@router.get("/{job_id}", response_model=JobPublic, responses=ERRORS, summary="Read a job")
def read_job(job_id: str, caller: CallerDep, session: SessionDep) -> JobPublic:
    """Status, timestamps, attempts, usage, and the result or the error."""
    job = get_job(session, tenant=caller.tenant, job_id=job_id)
    if job is None:
        raise ApiError(404, "job_not_found", f"No job {job_id} for this API key.")
    return JobPublic.of(job)


@router.get("", response_model=JobPage, responses=ERRORS, summary="List jobs, newest first")
def read_jobs(
    *,
    caller: CallerDep,
    session: SessionDep,
    resources: ResourcesDep,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this status.")] = None,
    limit: Annotated[int, Query(ge=1, description="Page size.")] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
) -> JobPage:
    """The caller's jobs, newest first, a page at a time."""
    limit = min(limit, resources.settings.page_size_max)
    try:
        jobs, next_cursor = list_jobs(
            session, tenant=caller.tenant, status=status, limit=limit, cursor=cursor
        )
    except InvalidCursorError as exc:
        raise ApiError(400, "invalid_cursor", "The cursor is invalid; start without one.") from exc
    return JobPage(jobs=[JobPublic.of(job) for job in jobs], next_cursor=next_cursor)


@router.post("/{job_id}/cancel", response_model=JobPublic, responses=ERRORS, summary="Cancel a job")
def cancel(job_id: str, caller: CallerDep, session: SessionDep) -> JobPublic:
    """Cancel a queued or running job; a running job's late result is discarded.

    Cancelling a job that already ended changes nothing and returns it as it is.
    """
    cancel_job(session, tenant=caller.tenant, job_id=job_id)
    session.commit()
    job = get_job(session, tenant=caller.tenant, job_id=job_id)
    if job is None:
        raise ApiError(404, "job_not_found", f"No job {job_id} for this API key.")
    return JobPublic.of(job)
