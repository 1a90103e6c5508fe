"""POST /v1/jobs/{id}/retry: a new job from a finished job's stored inputs.

The stored request (images from the blob store, task, prompt, labels, model, options,
schema) goes through the submit path (api/submission.py) as a new request would: it is
admitted again (a model retired since is refused), budgets and rate limits apply, and an
Idempotency-Key makes a repeated retry return the job the first one made.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from fastapi.concurrency import run_in_threadpool

from visionq.api.deps import ApiResources, Caller, ResourcesDep
from visionq.api.errors import ApiError
from visionq.api.jobids import JOB_ID_DESCRIPTION, job_id_of, job_not_found
from visionq.api.openapi import IDEMPOTENCY_KEY_PARAMETER, error_responses
from visionq.api.rawjob import RawJob
from visionq.api.schemas import ErrorBody, JobPublic
from visionq.api.submission import authorize_submit, submit
from visionq.models.blobs import BlobNotFoundError
from visionq.models.idempotency import recall
from visionq.models.jobrefs import MIN_PREFIX
from visionq.models.jobs import get_job
from visionq.models.retries import JobNotFinishedError, retry_source
from visionq.models.tables import JobStatus

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

# A submit's errors, the job id's (404, 409, 422), and 410 for images no longer stored.
ERRORS: dict[int | str, dict[str, Any]] = {
    **error_responses(400, 401, 402, 404, 409, 413, 422, 429, 503, 507, tiers=True),
    410: {
        "model": ErrorBody,
        "description": "The job's images are no longer stored (job_inputs_gone).",
    },
}


@router.post(
    "/{job_id}/retry",
    status_code=202,
    response_model=JobPublic,
    responses=ERRORS,
    openapi_extra={"parameters": [IDEMPOTENCY_KEY_PARAMETER]},
    summary="Retry a finished job",
)
async def retry_job(
    job_id: Annotated[str, Path(description=JOB_ID_DESCRIPTION)],
    request: Request,
    response: Response,
    resources: ResourcesDep,
) -> JobPublic:
    """Queue a new job with a finished (failed, cancelled or succeeded) job's images, task,
    prompt, labels, model, options, schema and webhook_url; its `retry_of` names the job retried.
    Answers 202 like a submit; 409 `job_not_finished` while the job is queued or running.

    A succeeded job's retry runs again rather than copying its cached result. With an
    `Idempotency-Key` header, a repeated request returns the job the first one created
    (header `Idempotent-Replayed: true`).
    """
    caller, key = await run_in_threadpool(authorize_submit, request, resources)
    # The key first: a repeated retry returns the job it made even after retention removed
    # the job retried or its images (which the stored request below needs).
    earlier = None
    if key is not None:
        earlier = await run_in_threadpool(earlier_retry, job_id, caller, resources, key)
    if earlier is not None:
        job, replayed = earlier, True
    else:
        raw, source_id = await run_in_threadpool(stored_request, job_id, caller, resources)
        job, replayed = await run_in_threadpool(
            submit, raw, caller, resources, key, retry_of=source_id
        )
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return job


def earlier_retry(
    job_id: str, caller: Caller, resources: ApiResources, key: str
) -> JobPublic | None:
    """The retry of ``job_id`` (full id or prefix) an earlier request with this
    Idempotency-Key made, if it is still stored; None otherwise (then the retry proceeds,
    and a key used for another request is refused as for a submit). Blocking."""
    wanted = job_id.strip().lower()
    with resources.sessions() as session:
        known = recall(
            session, tenant=caller.tenant, key=key, ttl_s=resources.settings.idempotency_ttl_s
        )
        if known is None:
            return None
        job = get_job(session, tenant=caller.tenant, job_id=known.job_id)
        if job is None or job.retry_of is None:
            return None
        same = job.retry_of == wanted or (
            len(wanted.replace("-", "")) >= MIN_PREFIX and job.retry_of.startswith(wanted)
        )
        return JobPublic.of(job) if same else None


def stored_request(job_id: str, caller: Caller, resources: ApiResources) -> tuple[RawJob, str]:
    """The request the finished job ``job_id`` was made from, and its full id; its images
    are read back from the blob store. Blocking: run it in the thread pool."""
    with resources.sessions() as session:
        full_id = job_id_of(session, caller.tenant, job_id)  # a unique prefix will do
        try:
            source = retry_source(session, tenant=caller.tenant, job_id=full_id)
        except JobNotFinishedError as exc:
            found = exc.job
            raise ApiError(
                "job_not_finished",
                f"Job {found.id} is {found.status}; only a finished job can be retried. "
                f"Wait for it (visionq wait {found.id}) or cancel it first.",
            ) from exc
        if source is None:
            raise job_not_found(job_id)
        hashes = [item.sha256 for item in source.inputs]  # in position order
        changes = [list(item.changes or []) for item in source.inputs]
        # The retry is admitted again like a new request: its options as the job shows them.
        options = source.options.stored()
        if source.status == JobStatus.SUCCEEDED:
            # Its result is in the cache: a retry that copied it would change nothing.
            options["cache"] = False
        raw = RawJob(
            task=source.task,
            prompt=source.prompt,
            model=source.model,
            labels=list(source.labels) if source.labels is not None else None,
            options=options,
            schema=source.response_schema,
            image_changes=changes,
            # The new job announces its end where the old one did (checked again at submit:
            # a URL refused now is dropped with a warning, never a 422 for a field the caller
            # did not send; api/submission._retry_callback).
            webhook_url=source.callback_url,
            priority=source.priority,  # a retry waits at the priority of the job it retries
        )
    try:
        raw.images = [resources.blobs.get(sha256) for sha256 in hashes]
    except BlobNotFoundError as exc:
        raise ApiError(
            "job_inputs_gone",
            f"Job {source.id}'s images are no longer stored (removed by retention); "
            "submit the images again.",
        ) from exc
    except OSError as exc:
        raise ApiError(
            "unavailable",
            f"The image store cannot be read now ({type(exc).__name__}); try again shortly.",
            headers={"Retry-After": "5"},
        ) from exc
    return raw, source.id
