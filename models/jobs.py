"""Job queries: every read is scoped to a tenant, every state change is conditional.

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
from datetime import datetime
from typing import Any

from sqlalchemy import Table, Update, and_, bindparam, insert, or_, select, update
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.sql.elements import ColumnElement

from models.budgets import settle
from models.tables import (
    ATTEMPTS,
    JOB_INPUTS,
    JOBS,
    AttemptOutcome,
    Job,
    JobInput,
    JobStatus,
    utcnow,
)

ACTIVE_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)


@dataclass(frozen=True)
class NewInput:
    """An image already stored in the blob store, to attach to a new job."""

    sha256: str
    mime_type: str
    width: int
    height: int
    byte_size: int


class InvalidCursorError(ValueError):
    """The pagination cursor was not produced by this API."""


def create_job(
    session: Session,
    *,
    tenant: str,
    task: str,
    model: str,
    prompt: str | None,
    labels: list[str] | None,
    options: dict[str, Any],
    inputs: Sequence[NewInput],
    response_schema: dict[str, Any] | None = None,
    estimate: dict[str, Any] | None = None,
    reserved_nusd: int = 0,
    cache_key: str | None = None,
    cached: Job | None = None,
) -> Job:
    """Add a queued job with its inputs; the caller commits both in one transaction.

    With ``cached`` (an earlier identical job), the new job is born succeeded with that
    job's result, at zero cost, and is never queued.
    """
    job = Job(
        id=str(uuid.uuid4()),
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
        status=JobStatus.QUEUED,
        created_at=utcnow(),
        attempt_count=0,
    )
    # The caller sends the message right after the commit; a failed send clears this
    # (models.leases.mark_unsent) so the sweeper sends it.
    job.enqueued_at = job.created_at
    if cached is not None:
        job.status = JobStatus.SUCCEEDED
        job.started_at = job.finished_at = job.created_at
        job.result = cached.result
        job.model_version = cached.model_version
        job.cached_from = cached.id
        job.cost_nusd = 0
    job.inputs = [
        JobInput(
            position=position,
            sha256=item.sha256,
            mime_type=item.mime_type,
            width=item.width,
            height=item.height,
            byte_size=item.byte_size,
        )
        for position, item in enumerate(inputs)
    ]
    # Core INSERTs (the API's hot path): the ORM unit of work costs more than the rows.
    # The returned object is not attached to the session; it carries what was inserted.
    connection = session.connection()
    connection.execute(_INSERT_JOB, _set_columns(job, JOBS))
    for item in job.inputs:  # usually one: an executemany costs more for a single row
        connection.execute(_INSERT_INPUT, {**_set_columns(item, JOB_INPUTS), "job_id": job.id})
    return job


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


def list_jobs(
    session: Session,
    *,
    tenant: str,
    status: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[Job], str | None]:
    """A page of the tenant's jobs, newest first, and the cursor of the next page."""
    query = select(Job).where(Job.tenant == tenant)
    if status is not None:
        query = query.where(Job.status == status)
    if cursor:
        created, job_id = decode_cursor(cursor)
        query = query.where(
            or_(Job.created_at < created, and_(Job.created_at == created, Job.id < job_id))
        )
    query = query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)
    jobs = list(session.scalars(query.options(*_with_children())))
    next_cursor = encode_cursor(jobs[limit - 1]) if len(jobs) > limit else None
    return jobs[:limit], next_cursor


def cancel_job(session: Session, *, tenant: str, job_id: str) -> bool:
    """Cancel a queued or running job; False when it had already ended (or is not found)."""
    if not is_job_id(job_id):
        return False
    ended = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.tenant == tenant, Job.status.in_(ACTIVE_STATUSES))
        .values(
            status=JobStatus.CANCELLED,
            finished_at=utcnow(),
            error_code="cancelled",
            error_message="Cancelled at the caller's request.",
        )
        .returning(Job.tenant, Job.reserved_nusd)
    ).first()
    if ended is None:
        return False
    # The reservation is released; a late answer of a running call is not charged.
    settle(session, tenant=ended.tenant, reserved_nusd=ended.reserved_nusd, cost_nusd=0)
    return True


# The worker's per-job statements are built once (see models/leases.py for why); values
# are passed at execution: an UPDATE without .values() sets the columns named in them.
_SET_TRANSPORT = update(JOB_INPUTS).where(
    JOB_INPUTS.c.job_id == bindparam("input_job_id"),
    JOB_INPUTS.c.position == bindparam("input_position"),
)
_FINISH_ATTEMPT = update(ATTEMPTS).where(ATTEMPTS.c.id == bindparam("attempt_id"))


def set_transports(session: Session, job_id: str, transports: Sequence[str]) -> None:
    """Record how each input reached Gemini (inline bytes or the File API)."""
    connection = session.connection()
    # One execute per input (usually one): an executemany costs several times more CPU.
    for position, transport in enumerate(transports):
        connection.execute(
            _SET_TRANSPORT,
            {"input_job_id": job_id, "input_position": position, "transport": transport},
        )


def finish_attempt(
    session: Session,
    attempt_id: int,
    *,
    outcome: AttemptOutcome,
    error_class: str | None = None,
    error_message: str | None = None,
    http_status: int | None = None,
    usage: dict[str, Any] | None = None,
    cost_nusd: int | None = None,
    retry_delay_s: float | None = None,
) -> None:
    """Close an attempt with its outcome (what its Gemini call cost, and how long the
    worker waits before the next attempt)."""
    session.connection().execute(
        _FINISH_ATTEMPT,
        {
            "attempt_id": attempt_id,
            "finished_at": utcnow(),
            "outcome": outcome,
            "error_class": error_class,
            "error_message": error_message,
            "http_status": http_status,
            "usage": usage,
            "cost_nusd": cost_nusd,
            "retry_delay_s": retry_delay_s,
        },
    )


@dataclass(frozen=True)
class Usage:
    """Token counts from Gemini's usage_metadata, plus the whole metadata as sent."""

    prompt_tokens: int | None
    candidates_tokens: int | None
    thoughts_tokens: int | None
    cached_tokens: int | None
    total_tokens: int | None
    raw: dict[str, Any]

    def plus(self, other: Usage | None) -> Usage:
        """Both calls' tokens together (a job may call Gemini more than once); raw is ours."""
        if other is None:
            return self

        def add(a: int | None, b: int | None) -> int | None:
            return None if a is None and b is None else (a or 0) + (b or 0)

        return Usage(
            prompt_tokens=add(self.prompt_tokens, other.prompt_tokens),
            candidates_tokens=add(self.candidates_tokens, other.candidates_tokens),
            thoughts_tokens=add(self.thoughts_tokens, other.thoughts_tokens),
            cached_tokens=add(self.cached_tokens, other.cached_tokens),
            total_tokens=add(self.total_tokens, other.total_tokens),
            raw=other.raw,
        )

    def columns(self) -> dict[str, Any]:
        """The Job column values for this usage."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "candidates_tokens": self.candidates_tokens,
            "thoughts_tokens": self.thoughts_tokens,
            "cached_tokens": self.cached_tokens,
            "total_tokens": self.total_tokens,
            "usage": self.raw,
        }


def complete_job(
    session: Session,
    job_id: str,
    *,
    result: dict[str, Any],
    usage: Usage | None,
    model_version: str | None,
    cost_nusd: int | None = None,
    lease_token: str | None = None,
) -> bool:
    """Store the result of a running job; False if it is no longer running (cancelled) or,
    with ``lease_token``, no longer held under that lease (another worker took it over).

    The budget reservation is settled to the actual cost in the same transaction.
    """
    values: dict[str, Any] = {
        "status": JobStatus.SUCCEEDED,
        "finished_at": utcnow(),
        "result": result,
        "model_version": model_version,
    }
    if usage is not None:
        values.update(usage.columns())
    return _end(session, job_id, (JobStatus.RUNNING,), values, cost_nusd, lease_token)


def fail_job(
    session: Session,
    job_id: str,
    *,
    code: str,
    message: str,
    usage: Usage | None = None,
    cost_nusd: int | None = None,
    lease_token: str | None = None,
) -> bool:
    """End an active job as failed; False if it had already ended (or, with
    ``lease_token``, is no longer held under that lease)."""
    values: dict[str, Any] = {
        "status": JobStatus.FAILED,
        "finished_at": utcnow(),
        "error_code": code,
        "error_message": message,
    }
    if usage is not None:
        values.update(usage.columns())
    return _end(session, job_id, ACTIVE_STATUSES, values, cost_nusd, lease_token)


def _any_status(statuses: Sequence[str]) -> ColumnElement[bool]:
    # OR of equalities rather than IN: a constant IN list is expanded at every execution.
    return or_(*(JOBS.c.status == status for status in statuses))


def _end_statement(from_statuses: Sequence[str], *, fenced: bool) -> Update:
    fence = [JOBS.c.lease_token == bindparam("fence_token")] if fenced else []
    return (
        update(JOBS)
        .where(JOBS.c.id == bindparam("end_job_id"), _any_status(from_statuses), *fence)
        .returning(JOBS.c.tenant, JOBS.c.reserved_nusd)
    )


# Keyed by (statuses the job may end from, fenced by a lease token).
_END_FROM: tuple[tuple[JobStatus, ...], ...] = ((JobStatus.RUNNING,), ACTIVE_STATUSES)
_END: dict[tuple[tuple[JobStatus, ...], bool], Update] = {
    (statuses, fenced): _end_statement(statuses, fenced=fenced)
    for statuses in _END_FROM
    for fenced in (False, True)
}


def _end(  # noqa: PLR0917 - private, called twice with all of them
    session: Session,
    job_id: str,
    from_statuses: tuple[JobStatus, ...],
    values: dict[str, Any],
    cost_nusd: int | None,
    lease_token: str | None,
) -> bool:
    """Move a job to a terminal state once, settling its budget reservation with it."""
    params = {**values, "end_job_id": job_id, "cost_nusd": cost_nusd, "lease_expires_at": None}
    if lease_token is not None:
        params["fence_token"] = lease_token
    statement = _END[(from_statuses, lease_token is not None)]
    ended = session.connection().execute(statement, params).first()
    if ended is None:
        return False
    settle(
        session, tenant=ended.tenant, reserved_nusd=ended.reserved_nusd, cost_nusd=cost_nusd or 0
    )
    return True
