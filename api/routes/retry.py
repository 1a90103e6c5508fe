"""POST /v1/jobs/{id}/retry: a new job from a finished job's stored inputs.

A single job's stored request (images from the blob store, task, prompt, labels, model,
options, schema) goes through the submit path (api/submission.py) as a new request would:
it is admitted again (a model retired since is refused), budgets and rate limits apply, and
an Idempotency-Key makes a repeated retry return the job the first one made. A batch item's
latest job is retried as a re-run of that item (api/batch_rerun.retry_item), admitted the
same way: the new job joins the batch, so a batch re-run does not run the item again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Path, Request, Response
from fastapi.concurrency import run_in_threadpool

from visionq.api.batch_rerun import ItemReplacedError, retry_item
from visionq.api.deps import ApiResources, Caller, ResourcesDep
from visionq.api.errors import ApiError
from visionq.api.jobids import JOB_ID_DESCRIPTION, job_id_of, job_not_found
from visionq.api.openapi import IDEMPOTENCY_KEY_PARAMETER, error_responses
from visionq.api.rawjob import RawJob
from visionq.api.schemas import ErrorBody, JobPublic
from visionq.api.submission import authorize_submit, submit
from visionq.models.batch_reruns import ItemPlace, replacing_item
from visionq.models.batchjobs import batch_refs
from visionq.models.blobs import BlobNotFoundError
from visionq.models.idempotency import recall
from visionq.models.jobrefs import MIN_PREFIX
from visionq.models.jobs import get_job
from visionq.models.retries import (
    JobNotFinishedError,
    JobSupersededError,
    RetrySource,
    retry_source,
)
from visionq.models.tables import Job, JobStatus

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
T = TypeVar("T")

# A submit's errors, the job id's (404, 409, 422), and 410 for images no longer stored.
ERRORS: dict[int | str, dict[str, Any]] = {
    **error_responses(400, 401, 402, 404, 409, 413, 422, 429, 503, 507, tiers=True),
    409: {
        "model": ErrorBody,
        "description": "The job is queued or running (job_not_finished); a newer job replaced "
        "it in its batch item (job_superseded: retry that one); its batch is cancelled "
        "(batch_cancelled); or the id prefix matches several jobs (ambiguous_job_id).",
    },
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

    A batch item's latest job is retried as a re-run of that one item (as
    `POST /v1/batches/{id}/rerun` does it): the new job joins the batch (`batch_id`,
    `batch_key`), the item points at it (its `reruns` count grows) and the batch's progress
    and estimate count it, so a later batch re-run does not run the item again. Its
    priority stays the retried job's. A succeeded item's retry runs it again (no cache), and
    the batch then shows the new job's answer (or error) for that item, not the old one.
    An older job of an item, which a newer job replaced there, is a 409 `job_superseded`
    naming the item's latest job: retry that one, or re-run the batch. A cancelled batch's
    jobs are not retried (409 `batch_cancelled`).
    """
    caller, key = await run_in_threadpool(authorize_submit, request, resources)
    job, replayed = await run_in_threadpool(retried, job_id, caller, resources, key)
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return job


def retried(
    job_id: str, caller: Caller, resources: ApiResources, key: str | None
) -> tuple[JobPublic, bool]:
    """The retry of ``job_id``: its job, and whether an earlier request with the same
    Idempotency-Key made it (a replay). Blocking: run it in the thread pool."""
    # The key first: a repeated retry returns the job it made even after retention removed
    # the job retried or its images (which the stored request below needs).
    earlier = earlier_retry(job_id, caller, resources, key) if key is not None else None
    if earlier is not None:
        return earlier, True
    try:
        source = finished_job(job_id, caller, resources)
    except JobSupersededError as exc:
        # The same retry sent twice at once: the first replaced the job after this one's key
        # check above, so its key now names the job it made: answer with that.
        earlier = earlier_retry(job_id, caller, resources, key) if key is not None else None
        if earlier is None:
            raise superseded(exc.job.id, exc.item) from exc
        return earlier, True
    if source.item is not None:
        return retry_in_batch(source.job, source.item, caller, resources, key)
    raw = stored_request(source.job, resources)
    return submit(raw, caller, resources, key, retry_of=source.job.id)


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
        # A batch item's retry answers with its batch, as when it was made.
        return JobPublic.of(job, batch_refs(session, [job.id]).get(job.id)) if same else None


def finished_job(job_id: str, caller: Caller, resources: ApiResources) -> RetrySource:
    """The finished job ``job_id`` (a full id or a unique prefix) and the batch item it is
    the latest job of; 404, or 409 when it is not finished. Raises JobSupersededError when
    a newer job replaced it in its batch item (the caller's 409, unless its key made that
    job). Blocking: run it in the thread pool."""
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
    # Its images are read (or checked) after the session closed: the store may be slow.
    return source


def superseded(job_id: str, item: ItemPlace) -> ApiError:
    """The 409 for a batch job a newer job replaced in its item."""
    return ApiError(
        "job_superseded",
        f"Job {job_id} was item {item.key!r}'s job in batch {item.batch_name!r}, which now "
        f"points at job {item.job_id} ({item.job_status}); retrying the old one would run "
        f"the item twice. Retry the latest once it ended (visionq retry {item.job_id}) or "
        f"re-run the batch's failed items (visionq batch rerun {item.batch_name}; "
        f"POST /v1/batches/{item.batch_id}/rerun).",
    )


def retry_in_batch(
    source: Job, item: ItemPlace, caller: Caller, resources: ApiResources, key: str | None
) -> tuple[JobPublic, bool]:
    """Retry ``source``, the latest job of batch item ``item``, as a re-run of that item
    (api/batch_rerun.retry_item); 410 when its images are no longer stored, 409 when a
    concurrent re-run replaced it first. Blocking: run it in the thread pool."""
    _read_images(source, resources.blobs.size)  # the re-run reuses them: only check them
    # The key's request: the retry of this job (a key used for another request is a 422).
    idempotency = None
    if key is not None:
        idempotency = (key, hashlib.sha256(f"retry-in-batch:{source.id}".encode()).hexdigest())
    try:
        return retry_item(source, item.batch_id, caller, resources, idempotency)
    except ItemReplacedError as exc:
        with resources.sessions() as session:
            now = replacing_item(session, tenant=caller.tenant, job_id=source.id)
        if now is None:  # retention removed the replacing job meanwhile
            raise job_not_found(source.id) from exc
        raise superseded(source.id, now) from exc


def stored_request(source: Job, resources: ApiResources) -> RawJob:
    """The request the finished single job ``source`` was made from; its images are read
    back from the blob store. Blocking: run it in the thread pool."""
    changes = [list(item.changes or []) for item in source.inputs]  # in position order
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
    raw.images = _read_images(source, resources.blobs.get)
    return raw


def _read_images(source: Job, read: Callable[[str], T]) -> list[T]:
    """``read`` applied to each of ``source``'s images (by sha256, in position order); 410
    when one is no longer stored, 503 when the store cannot be read now."""
    try:
        return [read(item.sha256) for item in source.inputs]
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
