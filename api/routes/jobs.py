"""The job endpoints: submit, read, list, cancel. Thin: checks live in api/job_checks.py."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from visionq.api.deps import CallerDep, ResourcesDep, SessionDep
from visionq.api.errors import ApiError
from visionq.api.jobids import JOB_ID_DESCRIPTION, job_id_of, job_not_found
from visionq.api.openapi import IDEMPOTENCY_KEY_PARAMETER, error_responses, inline_refs
from visionq.api.request_body import read_job_request
from visionq.api.schemas import JobCreate, JobPage, JobPublic
from visionq.api.submission import authorize_submit, submit
from visionq.models.batchjobs import batch_refs
from visionq.models.jobrefs import get_jobs
from visionq.models.jobs import (
    InvalidCursorError,
    JobFilter,
    cancel_job,
    get_job,
    job_ids_passing,
    list_jobs,
)
from visionq.models.metrics import count_ended
from visionq.models.table_base import URL_MAX_CHARS
from visionq.models.tables import Job, JobStatus
from visionq.vision.tasks import TaskKind
from visionq.vision.tiers import Tier

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

# The errors each route can answer (api.openapi has what each status means).
SUBMIT_ERRORS = error_responses(400, 401, 402, 413, 415, 422, 429, 502, 503, 504, 507, tiers=True)
JOB_ERRORS = error_responses(401, 404, 409, 422, 503)
LIST_ERRORS = error_responses(400, 401, 422, 503)
JobIdPath = Annotated[str, Path(description=JOB_ID_DESCRIPTION)]


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
            "description": "One or more image files (PNG, JPEG, WEBP, HEIC, HEIF; GIF, BMP and "
            "TIFF are converted to PNG).",
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
        "webhook_url": {
            "type": "string",
            "minLength": 1,
            "maxLength": URL_MAX_CHARS,
            "description": "Where the job's end event is also POSTed (signed; see JSON body).",
        },
        "priority": {
            "type": "integer",
            "minimum": 0,
            "maximum": 9,
            "description": "Order among your own waiting jobs, 9 first (see JSON body).",
        },
    },
}

_CREATE_CONTENT = {
    "multipart/form-data": {"schema": _MULTIPART_SCHEMA},
    "application/json": {"schema": inline_refs(JobCreate.model_json_schema())},
}
CREATE_BODY: dict[str, Any] = {
    "requestBody": {"required": True, "content": _CREATE_CONTENT},
    "parameters": [IDEMPOTENCY_KEY_PARAMETER],
}
ESTIMATE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The same body as POST /v1/jobs.",
        "content": _CREATE_CONTENT,
    }
}


@router.post(
    "",
    status_code=202,
    response_model=JobPublic,
    responses=SUBMIT_ERRORS,
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


@router.get("/{job_id}", response_model=JobPublic, responses=JOB_ERRORS, summary="Read a job")
def read_job(job_id: JobIdPath, caller: CallerDep, session: SessionDep) -> JobPublic:
    """Status, timestamps, attempts, usage, and the result or the error."""
    full_id = job_id_of(session, caller.tenant, job_id)
    job = get_job(session, tenant=caller.tenant, job_id=full_id)
    if job is None:  # deleted since it was resolved
        raise job_not_found(job_id)
    return _with_batches(session, [job])[0]


def _with_batches(session: Session, jobs: Sequence[Job]) -> list[JobPublic]:
    """The jobs as answered, each with the batch item it is the latest job of (one query)."""
    refs = batch_refs(session, [job.id for job in jobs]) if jobs else {}
    return [JobPublic.of(job, refs.get(job.id)) for job in jobs]


@router.get("", response_model=JobPage, responses=LIST_ERRORS, summary="List jobs, newest first")
def read_jobs(
    *,
    caller: CallerDep,
    session: SessionDep,
    resources: ResourcesDep,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this status.")] = None,
    task: Annotated[TaskKind | None, Query(description="Only jobs of this task.")] = None,
    model: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=100,
            description="Only jobs asking this model (its id as stored).",
        ),
    ] = None,
    tier: Annotated[
        Tier | None, Query(description="Only jobs that asked this tier (JobPublic.tier).")
    ] = None,
    batch: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=100,
            description="Only the jobs that are an item's latest job in this batch (its full "
            "id, as JobPublic.batch_id); a batch of no job of this key gives an empty page.",
        ),
    ] = None,
    created_after: Annotated[
        datetime | None,
        Query(description="Only jobs created at or after this time (ISO 8601; no zone = UTC)."),
    ] = None,
    created_before: Annotated[
        datetime | None,
        Query(description="Only jobs created before this time (ISO 8601; no zone = UTC)."),
    ] = None,
    limit: Annotated[
        int,
        Query(
            ge=1,
            description="Page size, at most VISIONQ_PAGE_SIZE_MAX (the document's maximum is "
            "this server's); a larger value is served as that maximum.",
        ),
    ] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
    ids: Annotated[
        list[str] | None,
        Query(
            description="Only these jobs (full ids; repeat the parameter or separate ids by "
            "commas), at most VISIONQ_PAGE_SIZE_MAX, in the order given, in one page: ids "
            "of no job of this key are listed in `missing`. Not with cursor.",
        ),
    ] = None,
) -> JobPage:
    """The caller's jobs, newest first, a page at a time; or, with ``ids``, those jobs.

    Every filter given narrows the list (and the ``ids`` page) further."""
    where = JobFilter(
        status=status,
        task=task,
        model=model,
        tier=tier,
        batch_id=batch,
        created_after=_utc(created_after),
        created_before=_utc(created_before),
    )
    if where.created_after and where.created_before and where.created_after >= where.created_before:
        raise ApiError(
            "invalid_request",
            "created_after must be before created_before (the range includes created_after "
            "and excludes created_before).",
        )
    if ids is not None:
        return _jobs_by_id(
            session, caller.tenant, ids=ids, where=where, cursor=cursor, resources=resources
        )
    limit = min(limit, resources.settings.page_size_max)
    try:
        jobs, next_cursor = list_jobs(
            session, tenant=caller.tenant, limit=limit, cursor=cursor, where=where
        )
    except InvalidCursorError as exc:
        raise ApiError("invalid_cursor", "The cursor is invalid; start without one.") from exc
    return JobPage(jobs=_with_batches(session, jobs), next_cursor=next_cursor)


def _jobs_by_id(
    session: SessionDep,
    tenant: str,
    *,
    ids: list[str],
    where: JobFilter,
    cursor: str | None,
    resources: ResourcesDep,
) -> JobPage:
    """GET /v1/jobs?ids=...: the tenant's jobs among ``ids``, and the ids that are none."""
    wanted = list(dict.fromkeys(part.strip() for item in ids for part in item.split(",")))
    wanted = [job_id for job_id in wanted if job_id]
    limit = resources.settings.page_size_max
    if cursor is not None:
        raise ApiError("invalid_request", "ids and cursor do not go together: ids is one page.")
    if not wanted or len(wanted) > limit:
        raise ApiError(
            "invalid_request",
            f"ids: give 1 to {limit} job ids (got {len(wanted)}); split a longer list into "
            "several requests.",
        )
    jobs = get_jobs(session, tenant=tenant, job_ids=wanted)
    found = {job.id for job in jobs}
    passing = job_ids_passing(session, tenant=tenant, job_ids=sorted(found), where=where)
    answered = _with_batches(session, [job for job in jobs if job.id in passing])
    return JobPage(
        jobs=answered,
        next_cursor=None,
        missing=[job_id for job_id in wanted if job_id not in found],
    )


def _utc(moment: datetime | None) -> datetime | None:
    """A query time as an aware UTC datetime (a time without a zone is UTC)."""
    if moment is None:
        return None
    try:
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError as exc:
        # e.g. 0001-01-01T00:00+01:00 is before year 1 in UTC: bad input, not a 500.
        raise ApiError(
            "invalid_request",
            "created_after/created_before: give a time between years 1 and 9999 in UTC.",
        ) from exc


@router.post(
    "/{job_id}/cancel", response_model=JobPublic, responses=JOB_ERRORS, summary="Cancel a job"
)
def cancel(
    job_id: JobIdPath, caller: CallerDep, session: SessionDep, resources: ResourcesDep
) -> JobPublic:
    """Cancel a queued or running job; a running job's late result is discarded.

    Cancelling a job that already ended changes nothing and returns it as it is.
    """
    full_id = job_id_of(session, caller.tenant, job_id)
    ended = cancel_job(session, tenant=caller.tenant, job_id=full_id)
    session.commit()
    if ended is not None:
        count_ended([ended])
        resources.queue.forget([(ended.id, ended.tenant)])
    job = get_job(session, tenant=caller.tenant, job_id=full_id)
    if job is None:
        raise job_not_found(job_id)
    return _with_batches(session, [job])[0]
