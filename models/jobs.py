"""Jobs: creation, reads scoped to a tenant, cancellation (how a run ends: models/outcomes.py).

Conditional updates (``UPDATE ... WHERE status = ...``) are what make redelivered Celery
messages harmless: only one caller can move a job out of a given state.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Table, and_, insert, or_, select, update
from sqlalchemy.orm import Session, selectinload

from visionq.models.budgets import settle
from visionq.models.ended import ENDED_COLUMNS, EndedJob, ended_from_row
from visionq.models.tables import (
    BATCH_ITEMS,
    JOB_INPUTS,
    JOBS,
    Job,
    JobInput,
    JobStatus,
    utcnow,
)
from visionq.models.webhook_outbox import EventType, NewEvent, record_event
from visionq.vision.estimate import StoredEstimate
from visionq.vision.tasks import JobOptions

ACTIVE_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)


@dataclass(frozen=True)
class NewInput:
    """An image already stored in the blob store, to attach to a new job."""

    sha256: str
    mime_type: str
    width: int
    height: int
    byte_size: int
    # What submit did to the uploaded image (vision.prepare.PreparedImage.changes).
    changes: tuple[str, ...] = ()


class InvalidCursorError(ValueError):
    """The pagination cursor was not produced by this API."""


class CachedResult(Protocol):
    """What a job born from the cache copies: an earlier job's (a Job, or a lighter row)."""

    @property
    def id(self) -> str: ...

    @property
    def result(self) -> dict[str, Any] | None: ...

    @property
    def model_version(self) -> str | None: ...


def create_job(
    session: Session,
    *,
    tenant: str,
    task: str,
    model: str,
    prompt: str | None,
    labels: list[str] | None,
    options: JobOptions,
    inputs: Sequence[NewInput],
    response_schema: dict[str, Any] | None = None,
    estimate: StoredEstimate | None = None,
    reserved_nusd: int = 0,
    cache_key: str | None = None,
    cached: CachedResult | None = None,
    warnings: list[dict[str, str]] | None = None,
    retry_of: str | None = None,
    tier: str = "standard",
    lane: str = "standard",
    deadline_s: float | None = None,
    callback_url: str | None = None,
    priority: int = 5,
) -> Job:
    """Add a queued job with its inputs; the caller commits both in one transaction.

    With ``cached`` (an earlier identical job), the new job is born succeeded with that
    job's result, at zero cost, and is never queued (its job.succeeded event is written
    here). ``tier`` is the tier asked for (maybe ``auto``), ``lane`` the one it resolved
    to, ``deadline_s`` seconds to its deadline; ``callback_url`` receives its end event.
    """
    job = build_job(
        job_id=str(uuid.uuid4()), tenant=tenant, task=task, model=model, prompt=prompt,
        labels=labels, options=options, inputs=inputs, response_schema=response_schema,
        estimate=estimate, reserved_nusd=reserved_nusd, cache_key=cache_key, cached=cached,
        warnings=warnings, retry_of=retry_of, tier=tier, lane=lane, deadline_s=deadline_s,
        callback_url=callback_url, priority=priority,
    )  # fmt: skip
    # Core INSERTs (the API's hot path): the ORM unit of work costs more than the rows.
    # The returned object is not attached to the session; it carries what was inserted.
    connection = session.connection()
    connection.execute(_INSERT_JOB, job_values(job))
    for item in job.inputs:  # usually one: an executemany costs more for a single row
        connection.execute(_INSERT_INPUT, input_values(item, job.id))
    if cached is not None:
        record_event(session, born_ended_event(job))
    return job


def born_ended_event(job: Job) -> NewEvent:
    """The job.succeeded event of a job born succeeded from the cache (decision D4: every
    job that ends sends one event, a cache hit too)."""
    return NewEvent(job.tenant, EventType.JOB_SUCCEEDED, job.id, job.callback_url)


def build_job(
    *,
    job_id: str,
    tenant: str,
    task: str,
    model: str,
    prompt: str | None,
    labels: list[str] | None,
    options: JobOptions,
    inputs: Sequence[NewInput],
    response_schema: dict[str, Any] | None,
    estimate: StoredEstimate | None,
    reserved_nusd: int,
    cache_key: str | None,
    cached: CachedResult | None,
    warnings: list[dict[str, str]] | None,
    retry_of: str | None,
    tier: str = "standard",
    lane: str = "standard",
    deadline_s: float | None = None,
    callback_url: str | None = None,
    priority: int = 5,
) -> Job:
    """A new job and its inputs as unsaved ORM objects: what create_job inserts, and what
    models.batchjobs.insert_jobs inserts many at a time (the same values either way)."""
    created_at = utcnow()
    job = Job(
        id=job_id,
        tenant=tenant,
        task=task,
        model=model,
        prompt=prompt,
        labels=labels,
        options=options,
        response_schema=response_schema,
        estimate=estimate,
        reserved_nusd=reserved_nusd,
        cache_key=cache_key,
        warnings=warnings or None,
        retry_of=retry_of,
        status=JobStatus.QUEUED,
        created_at=created_at,
        attempt_count=0,
        tier=tier,
        lane=lane,
        deadline_at=created_at + timedelta(seconds=deadline_s) if deadline_s else None,
        callback_url=callback_url,
        priority=priority,
    )
    # The caller sends the message right after the commit; a failed send clears this
    # (models.leases.mark_unsent) so the sweeper sends it. A batch-lane job gets no message
    # (the batch lane gathers it); the time stays set so the sweeper leaves it alone.
    job.enqueued_at = job.created_at
    if cached is not None:
        for column, value in cache_hit_values(cached, at=job.created_at).items():
            setattr(job, column, value)
    job.inputs = [
        JobInput(
            position=position,
            sha256=item.sha256,
            mime_type=item.mime_type,
            width=item.width,
            height=item.height,
            byte_size=item.byte_size,
            changes=list(item.changes) or None,
        )
        for position, item in enumerate(inputs)
    ]
    return job


def cache_hit_values(cached: CachedResult, *, at: datetime) -> dict[str, Any]:
    """The columns of a job answered from the cache at ``at``: succeeded with the earlier
    job's result (by reference: ``cached_from``), free, no attempt. What a submit's cache
    hit is born with, and what the batch lane sets on a waiting job whose twin succeeded
    (models/batch_twins.py)."""
    return {
        "status": JobStatus.SUCCEEDED,
        "started_at": at,
        "finished_at": at,
        "result": cached.result,
        "model_version": cached.model_version,
        "cached_from": cached.id,
        "cost_nusd": 0,
    }


def job_values(job: Job) -> dict[str, Any]:
    """The INSERT values of a job built by build_job (the columns it set)."""
    return _set_columns(job, JOBS)


def input_values(item: JobInput, job_id: str) -> dict[str, Any]:
    """The INSERT values of one of its inputs."""
    return {**_set_columns(item, JOB_INPUTS), "job_id": job_id}


# Built once (the statement and its cache key cost more than SQLite takes to run it); the
# columns are the keys of the values given at execution.
_INSERT_JOB = insert(JOBS)
_INSERT_INPUT = insert(JOB_INPUTS)


def _set_columns(row: object, table: Table) -> dict[str, Any]:
    """The column values given to a new ORM object (the others get their defaults)."""
    given = vars(row)
    return {column.key: given[column.key] for column in table.columns if column.key in given}


def find_cached(session: Session, *, tenant: str, cache_key: str) -> Job | None:
    """The tenant's newest succeeded job asking exactly this (see vision.tasks.cache_key)."""
    query = (
        select(Job)
        .where(Job.tenant == tenant, Job.cache_key == cache_key, Job.status == JobStatus.SUCCEEDED)
        .order_by(Job.finished_at.desc())
        .limit(1)
    )
    return session.scalar(query)


def _with_children() -> tuple[Any, Any]:
    return selectinload(Job.inputs), selectinload(Job.attempts)


def get_job(session: Session, *, tenant: str, job_id: str) -> Job | None:
    """The tenant's job with inputs and attempts, or None (also for other tenants' jobs)."""
    if not is_job_id(job_id):
        return None
    query = select(Job).where(Job.id == job_id, Job.tenant == tenant).options(*_with_children())
    return session.scalar(query)


def encode_cursor(job: Job) -> str:
    raw = json.dumps([job.created_at.isoformat(), job.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, job_id = json.loads(raw)
        moment = datetime.fromisoformat(created)
    except (binascii.Error, ValueError, TypeError, RecursionError) as exc:
        # RecursionError: json.loads of a cursor nested thousands of levels deep.
        raise InvalidCursorError(cursor) from exc
    if moment.tzinfo is None or not is_job_id(job_id):
        raise InvalidCursorError(cursor)
    return moment, job_id


def is_job_id(value: object) -> bool:
    """True for the UUID strings we use as job ids (anything else cannot be a job)."""
    if not isinstance(value, str) or len(value) != 36:
        return False
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


@dataclass(frozen=True)
class JobFilter:
    """What GET /v1/jobs narrows a list to (None: any). ``batch_id`` keeps the jobs that are
    an item's latest job in that batch (as JobPublic.batch_id); ``created_after`` is
    inclusive, ``created_before`` exclusive (both aware datetimes)."""

    status: str | None = None
    task: str | None = None
    model: str | None = None
    tier: str | None = None
    batch_id: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


def _filtered(query: Any, where: JobFilter) -> Any:
    """``query`` on jobs narrowed by ``where``: the one definition of the list's filters."""
    for column, value in (
        (Job.status, where.status),
        (Job.task, where.task),
        (Job.model, where.model),
        (Job.tier, where.tier),
    ):
        if value is not None:
            query = query.where(column == value)
    if where.batch_id is not None:
        # An item's job_id is its latest job (a re-run replaces it), as batch_refs reads it.
        items = select(BATCH_ITEMS.c.job_id).where(BATCH_ITEMS.c.batch_id == where.batch_id)
        query = query.where(Job.id.in_(items))
    if where.created_after is not None:
        query = query.where(Job.created_at >= where.created_after)
    if where.created_before is not None:
        query = query.where(Job.created_at < where.created_before)
    return query


def job_ids_passing(
    session: Session, *, tenant: str, job_ids: Sequence[str], where: JobFilter
) -> set[str]:
    """Which of ``job_ids`` (full ids) name a job of ``tenant`` that passes ``where``: the
    list's filters for a page read by id (GET /v1/jobs?ids=), in the same SQL."""
    if not job_ids:
        return set()
    query = select(Job.id).where(Job.tenant == tenant, Job.id.in_(list(job_ids)))
    return set(session.scalars(_filtered(query, where)))


def list_jobs(
    session: Session,
    *,
    tenant: str,
    limit: int = 50,
    cursor: str | None = None,
    where: JobFilter | None = None,
) -> tuple[list[Job], str | None]:
    """A page of the tenant's jobs, newest first, and the cursor of the next page; ``where``
    narrows the list (the keyset cursor on (created_at, id) holds under any filter)."""
    query = _filtered(select(Job).where(Job.tenant == tenant), where or JobFilter())
    if cursor:
        created, job_id = decode_cursor(cursor)
        query = query.where(
            or_(Job.created_at < created, and_(Job.created_at == created, Job.id < job_id))
        )
    query = query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)
    jobs = list(session.scalars(query.options(*_with_children())))
    next_cursor = encode_cursor(jobs[limit - 1]) if len(jobs) > limit else None
    return jobs[:limit], next_cursor


def cancel_job(session: Session, *, tenant: str, job_id: str) -> EndedJob | None:
    """Cancel a queued or running job (its job.cancelled event written with it): the job
    as it ended; None when it had already ended (or is not found)."""
    if not is_job_id(job_id):
        return None
    row = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.tenant == tenant, Job.status.in_(ACTIVE_STATUSES))
        .values(
            status=JobStatus.CANCELLED,
            finished_at=utcnow(),
            error_code="cancelled",
            error_message="Cancelled at the caller's request.",
        )
        .returning(*ENDED_COLUMNS)
    ).first()
    if row is None:
        return None
    ended = ended_from_row(row, JobStatus.CANCELLED)
    # The reservation is released; a late answer of a running call, if Gemini bills it, is
    # charged when it arrives (models/outcomes.charge_late).
    settle(session, tenant=ended.tenant, reserved_nusd=ended.reserved_nusd, cost_nusd=0)
    record_event(session, NewEvent(tenant, EventType.JOB_CANCELLED, job_id, ended.callback_url))
    return ended
