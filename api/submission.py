"""Submitting a job: abuse limits, idempotency, storing the job and sending its message."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re

import redis
from fastapi import Request
from sqlalchemy.exc import IntegrityError

from api.admission import apply_economy, budget_refusal
from api.deps import ApiResources, Caller
from api.errors import ApiError
from api.intake import AdmittedJob, RawJob
from api.queue import QueueUnavailableError
from api.schemas import JobPublic
from models.budgets import has_caps, reserve
from models.idempotency import recall, remember
from models.jobs import NewInput, create_job, find_cached, get_job
from models.leases import count_active, mark_unsent
from vision.costing import reservation_nusd
from vision.tasks import cache_key

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
            400,
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 255 printable ASCII characters without spaces "
            "(a UUID is a good choice).",
        )
    return value


def fingerprint(raw: RawJob) -> str:
    """sha256 of everything the request asks: the same key must come with the same body."""
    digest = hashlib.sha256()
    fields = {
        "task": raw.task,
        "prompt": raw.prompt,
        "model": raw.model,
        "labels": raw.labels,
        "options": raw.options,
        "schema": raw.schema,
        "images": [hashlib.sha256(data).hexdigest() for data in raw.images],
        "urls": raw.image_urls,
    }
    digest.update(json.dumps(fields, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def check_submit_limits(caller: Caller, resources: ApiResources) -> None:
    """429 when the key submits too fast or the tenant has too many unfinished jobs."""
    settings = resources.settings
    if resources.throttle is not None:
        try:
            wait = resources.throttle.check(caller.key_id)
        except redis.RedisError as exc:
            # Fail open: Redis being down must not stop intake (jobs are kept in the
            # database and the sweeper sends them once Redis is back).
            log.warning("submit rate limit unavailable (%s); not applied", exc)
            wait = 0.0
        if wait > 0:
            raise ApiError(
                429,
                "rate_limited",
                f"This API key submits faster than {settings.submit_rate_per_s:g} jobs/s "
                f"(burst {settings.submit_burst}); retry after the Retry-After delay.",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
    with resources.sessions() as session:
        active = count_active(session, caller.tenant)
    if active >= settings.max_active_jobs_per_tenant:
        raise ApiError(
            429,
            "too_many_active_jobs",
            f"{active} of your jobs are queued or running; the limit is "
            f"{settings.max_active_jobs_per_tenant}. Wait for some to finish.",
            headers={"Retry-After": "10"},
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
                422,
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
) -> tuple[JobPublic, bool]:
    """Store the job (budget held, idempotency key bound) in one transaction, then send its
    message. Returns the job and whether it is a replay of a concurrent identical request."""
    admitted, estimate = apply_economy(admitted, resources)
    inputs = [
        NewInput(
            sha256=resources.blobs.put(image.data),
            mime_type=image.mime_type,
            width=image.width,
            height=image.height,
            byte_size=len(image.data),
        )
        for image in admitted.images
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
        if admitted.options.get("cache", True):
            cached = find_cached(session, tenant=caller.tenant, cache_key=key)
        # Only a tenant with a cap has jobs reserved for: the others' submits do not all
        # update (and queue on) one budget row.
        capped = cached is None and has_caps(session, caller.tenant)
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
                )  # fmt: skip
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
    if cached is None:
        _send(resources, job.id)
    return public, False


def _send(resources: ApiResources, job_id: str) -> None:
    """Send the job's message; if Redis refuses, the job stays queued for the sweeper."""
    try:
        resources.queue.enqueue(job_id)
    except QueueUnavailableError as exc:
        log.error("could not enqueue job %s (%s); the sweeper will send it", job_id, exc)
        with resources.sessions.begin() as session:
            mark_unsent(session, job_id)
