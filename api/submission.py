"""Submitting a job: abuse limits, idempotency, storing the job and sending its message."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re

import redis
from fastapi import Request
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from visionq.api.budget_gate import apply_economy, budget_refusal, unbounded_refusal
from visionq.api.deps import ApiResources, Caller, authenticate_caller
from visionq.api.errors import ApiError
from visionq.api.job_checks import AdmittedJob, admit
from visionq.api.queue import QueueUnavailableError
from visionq.api.rawjob import RawJob
from visionq.api.schemas import JobPublic
from visionq.api.webhook_check import checked_url
from visionq.models.budgets import has_caps, reserve
from visionq.models.fairqueue import QueuedJob
from visionq.models.idempotency import recall, remember
from visionq.models.jobs import NewInput, create_job, find_cached, get_job
from visionq.models.leases import count_active, mark_unsent
from visionq.models.metrics import count_new_job
from visionq.models.settings import Settings
from visionq.models.webhook_endpoints import callbacks_endpoint
from visionq.vision.catalogue import ServiceTier
from visionq.vision.costing import reservation_nusd
from visionq.vision.tasks import cache_key

log = logging.getLogger(__name__)
# Printable ASCII without spaces, as Stripe and the IETF draft use; long enough for UUIDs
# with prefixes, short enough to index.
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


def idempotency_key(request: Request) -> str | None:
    """The request's Idempotency-Key header, validated; None when absent."""
    value = request.headers.get("idempotency-key")
    if value is None:
        return None
    if not _IDEMPOTENCY_KEY.match(value):
        raise ApiError(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 255 printable ASCII characters without spaces "
            "(a UUID is a good choice).",
        )
    return value


def fingerprint(raw: RawJob, retry_of: str | None = None) -> str:
    """sha256 of everything the request asks: the same key must come with the same body.

    A retry's fingerprint names the job it retries (a submit's stays as it was, so keys
    stored before retries existed still match).
    """
    digest = hashlib.sha256()
    fields: dict[str, object] = {
        "task": raw.task,
        "prompt": raw.prompt,
        "model": raw.model,
        "labels": raw.labels,
        "options": raw.options,
        "schema": raw.schema,
        "images": [hashlib.sha256(data).hexdigest() for data in raw.images],
        "urls": raw.image_urls,
    }
    if retry_of is not None:
        fields["retry_of"] = retry_of
    if raw.webhook_url is not None:  # only when given: keys stored before it still match
        fields["webhook_url"] = raw.webhook_url
    if raw.priority is not None:  # the same
        fields["priority"] = raw.priority
    digest.update(json.dumps(fields, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def authorize_submit(request: Request, resources: ApiResources) -> tuple[Caller, str | None]:
    """What a submit checks before its body is read, in this order: the API key (401), the
    Idempotency-Key header (400), the submit rate (429) and the unfinished jobs (429).
    Returns the caller and the Idempotency-Key.

    Blocking (database, Redis): run it in the thread pool. One round trip and one session
    for all of it (each costs more CPU than these queries); the session is closed before
    the rate limiter's Redis call, which may wait for its timeout.
    """
    with resources.sessions() as session:
        caller = authenticate_caller(request, session)
        key = idempotency_key(request)
        active = count_active(session, caller.tenant)
    _check_rate(caller, resources)
    limit = resources.settings.max_active_jobs_per_tenant
    if active >= limit:
        raise ApiError(
            "too_many_active_jobs",
            f"{active} of your jobs are queued or running; the limit is {limit}. "
            "Wait for some to finish.",
            headers={"Retry-After": "10"},
        )
    return caller, key


def authorize_batch(request: Request, resources: ApiResources) -> Caller:
    """What adding items to a batch checks before its body is read: the API key (401) and
    the submit rate (429; one token per call: a call is one request, whatever it holds).
    The unfinished jobs are counted with the items (api/batch_intake.py).

    Blocking (database, Redis): run it in the thread pool.
    """
    with resources.sessions() as session:
        caller = authenticate_caller(request, session)
    _check_rate(caller, resources)
    return caller


def submit(
    raw: RawJob,
    caller: Caller,
    resources: ApiResources,
    key: str | None,
    *,
    retry_of: str | None = None,
) -> tuple[JobPublic, bool]:
    """Validate, store and enqueue the job the request asks for (or, for a repeated
    Idempotency-Key, find the job it created). Returns the job and whether it is a replay.
    ``retry_of``: the finished job whose stored inputs ``raw`` holds (api/routes/retry.py).

    Blocking and CPU-bound (image checks, hashing, database, Redis): run it in the thread
    pool, in one round trip.
    """
    idempotency = (key, fingerprint(raw, retry_of)) if key is not None else None
    if idempotency is not None:
        earlier = replay(caller, resources, *idempotency)
        if earlier is not None:
            return earlier, True
        # else a new job (or the key's earlier job is gone)
    admitted = admit(raw, resources.settings, resources.costs.catalogue)
    callback_url = None
    if raw.webhook_url is not None and retry_of is not None:
        callback_url = _retry_callback(raw.webhook_url, resources.settings, admitted.warnings)
    elif raw.webhook_url is not None:
        callback_url = checked_url(raw.webhook_url, resources.settings, field="webhook_url")
    return store_and_enqueue(
        admitted, caller, resources, idempotency, retry_of=retry_of,
        prior_changes=raw.image_changes, callback_url=callback_url,
        priority=resources.settings.default_priority if raw.priority is None else raw.priority,
    )  # fmt: skip


def _retry_callback(url: str, settings: Settings, warnings: list[dict[str, str]]) -> str | None:
    """A retry's webhook_url: the retried job's, which the caller did not send and cannot
    change, so a refusal never fails the retry. A host that does not resolve now keeps it
    (DNS may be down for a moment; every delivery checks again); a URL the rules refuse now
    is dropped, and the new job's warning says so and how to get a callback."""
    try:
        return checked_url(url, settings, field="webhook_url")
    except ApiError as exc:
        if exc.code == "url_unresolvable":
            return url.strip()
        warnings.append({
            "code": "webhook_url_dropped",
            "message": f"The retried job's {exc.message}; this retry has no webhook_url. "
            "To be called back, submit the job again with a webhook_url that is allowed.",
        })  # fmt: skip
        return None


def _check_rate(caller: Caller, resources: ApiResources) -> None:
    """429 when the key submits faster than its rate limit allows."""
    if resources.throttle is None:
        return
    try:
        wait = resources.throttle.check(caller.key_id)
    except redis.RedisError as exc:
        # Fail open: Redis being down must not stop intake (jobs are kept in the
        # database and the sweeper sends them once Redis is back).
        log.warning("submit rate limit unavailable (%s); not applied", exc)
        return
    if wait > 0:
        settings = resources.settings
        raise ApiError(
            "rate_limited",
            f"This API key submits faster than {settings.submit_rate_per_s:g} jobs/s "
            f"(burst {settings.submit_burst}); retry after the Retry-After delay.",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )


def replay(
    caller: Caller, resources: ApiResources, key: str, request_hash: str
) -> JobPublic | None:
    """The job an earlier request with this Idempotency-Key created; 422 if its body differed."""
    with resources.sessions() as session:
        known = recall(
            session, tenant=caller.tenant, key=key, ttl_s=resources.settings.idempotency_ttl_s
        )
        if known is None:
            return None
        if known.request_hash != request_hash:
            raise ApiError(
                "idempotency_key_reused",
                "This Idempotency-Key was used for a different request; use a new key for a "
                "new job.",
            )
        job = get_job(session, tenant=caller.tenant, job_id=known.job_id)
        return JobPublic.of(job) if job is not None else None


def store_and_enqueue(
    admitted: AdmittedJob,
    caller: Caller,
    resources: ApiResources,
    idempotency: tuple[str, str] | None = None,
    *,
    retry_of: str | None = None,
    prior_changes: list[list[str]] | None = None,
    callback_url: str | None = None,
    priority: int = 5,
) -> tuple[JobPublic, bool]:
    """Store the job (budget held, idempotency key bound) in one transaction, then send its
    message. Returns the job and whether it is a replay of a concurrent identical request.
    ``prior_changes``: per image, what was done to it before (a retry's stored inputs).
    ``callback_url`` (checked): where the job's end event is also sent; the tenant's
    callbacks endpoint, which signs it, is made in the same transaction if it has none.

    The images are stored first and the row last: a full store (507) or a locked database
    (503, api/errors.py) leaves no row, and the blob store leaves no partial file.
    """
    admitted, estimate = apply_economy(admitted, resources)
    prior = prior_changes or []
    inputs = [
        NewInput(
            sha256=resources.blobs.put(image.data),
            mime_type=image.mime_type,
            width=image.width,
            height=image.height,
            byte_size=len(image.data),
            changes=(*(prior[index] if index < len(prior) else ()), *image.changes),
        )
        for index, image in enumerate(admitted.images)
    ]
    key = cache_key(
        image_sha256s=[item.sha256 for item in inputs], task=admitted.task,
        prompt=admitted.prompt, labels=admitted.labels, schema=admitted.schema,
        model=admitted.model, options=admitted.options,
    )  # fmt: skip
    # Reads before the write transaction: on SQLite a transaction that reads first and
    # writes later fails at once ("database is locked") if another writer got in between.
    with resources.sessions() as session:
        cached = None
        if admitted.options.cache:
            cached = find_cached(session, tenant=caller.tenant, cache_key=key)
        # Only a tenant with a cap has jobs reserved for: the others' submits do not all
        # update (and queue on) one budget row.
        capped = cached is None and has_caps(session, caller.tenant)
    if capped and estimate.cost_usd is None:
        raise unbounded_refusal(admitted.model, estimate)
    needed = reservation_nusd(estimate) if capped else 0
    try:
        with resources.sessions.begin() as session:
            # First write of the transaction: the budget check and hold are one atomic UPDATE.
            held = reserve(session, tenant=caller.tenant, amount_nusd=needed) if capped else True
            if held:
                job = create_job(
                    session, tenant=caller.tenant, task=admitted.task, model=admitted.model,
                    prompt=admitted.prompt, labels=admitted.labels, options=admitted.options,
                    inputs=inputs, response_schema=admitted.schema, estimate=estimate,
                    reserved_nusd=needed, cache_key=key, cached=cached,
                    warnings=admitted.warnings, retry_of=retry_of, tier=admitted.tier.value,
                    lane=estimate.tier.value, deadline_s=admitted.deadline_s,
                    callback_url=callback_url, priority=priority,
                )  # fmt: skip
                if callback_url is not None:
                    callbacks_endpoint(session, caller.tenant)
                if idempotency is not None:
                    remember(
                        session, tenant=caller.tenant, key=idempotency[0],
                        request_hash=idempotency[1], job_id=job.id,
                        ttl_s=resources.settings.idempotency_ttl_s,
                    )  # fmt: skip
                public = JobPublic.of(job)
    except IntegrityError:
        # Only the idempotency key can collide: a concurrent request with it won the race.
        if idempotency is None:
            raise
        earlier = replay(caller, resources, *idempotency)
        if earlier is None:
            raise
        return earlier, True
    if not held:
        with resources.sessions() as session:
            raise budget_refusal(session, caller.tenant, needed)
    count_new_job(
        tenant=caller.tenant, task=admitted.task, model=admitted.model,
        tier=admitted.tier.value, cache_hit=cached is not None, source="submit",
    )  # fmt: skip
    # A batch-lane job gets no message: the worker's batch lane gathers it from the table.
    if cached is None and estimate.tier is not ServiceTier.BATCH:
        _send(resources, QueuedJob(job.id, caller.tenant, priority))
    return public, False


def _send(resources: ApiResources, queued: QueuedJob) -> None:
    """Send the job's message; if Redis refuses, the job stays queued for the sweeper."""
    job_id = queued.job_id
    try:
        resources.queue.enqueue(queued)
    except QueueUnavailableError as exc:
        log.error("could not enqueue job %s (%s); the sweeper will send it", job_id, exc)
        try:
            with resources.sessions.begin() as session:
                mark_unsent(session, job_id)
        except SQLAlchemyError as db_exc:
            # The job is stored: answering 503 now would make the client submit it twice.
            # Unmarked, it is still sent by the sweeper once its message looks stale
            # (VISIONQ_REQUEUE_AFTER_S).
            log.error("could not mark job %s unsent (%s); sent after the requeue delay",
                      job_id, db_exc)  # fmt: skip
