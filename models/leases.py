"""Delivery of jobs to workers: claims under a lease, renewals, and what the sweeper finds.

Celery gives at-least-once delivery; these conditional updates make the effect exactly-once.
A worker claims a job with a fresh ``lease_token`` and renews the lease while it works. Only
the token's holder may open attempts or end the job (see ``models.outcomes.complete_job``), so
a worker that was presumed dead and replaced cannot store a second result. A job whose lease
lapsed may be claimed again by whoever gets its next message, up to ``max_deliveries`` times.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, func, insert, or_, select, update
from sqlalchemy.orm import Session

from visionq.models.metrics import count_ended_on_commit
from visionq.models.outcomes import fail_job
from visionq.models.tables import (
    ATTEMPTS,
    JOB_INPUTS,
    JOBS,
    Attempt,
    AttemptOutcome,
    Job,
    JobStatus,
    utcnow,
)
from visionq.vision.estimate import StoredEstimate
from visionq.vision.tasks import JobOptions


@dataclass(frozen=True)
class InputSpec:
    """One input image of a claimed job, as the worker needs it."""

    position: int
    sha256: str
    mime_type: str
    width: int
    height: int


@dataclass(frozen=True)
class JobSpec:
    """What a worker needs to run a job, read in the claim's own statements."""

    id: str
    tenant: str
    task: str
    model: str
    prompt: str | None
    labels: list[str] | None
    options: JobOptions
    response_schema: dict[str, Any] | None
    estimate: StoredEstimate | None
    started_at: datetime
    inputs: tuple[InputSpec, ...]
    # Warnings given at submit (a deprecated model); the worker may add its own.
    warnings: tuple[dict[str, str], ...] = ()
    # The tier the job runs at (its lane: standard, flex, priority or batch) and its
    # deadline (flex falls back to standard in time to hold it).
    lane: str = "standard"
    deadline_at: datetime | None = None
    # When it was submitted (the time-queued metric at its first start); None when unread.
    created_at: datetime | None = None


@dataclass(frozen=True)
class Claim:
    """A job the worker now runs under ``lease_token``, and its current attempt."""

    job_id: str
    lease_token: str
    attempt_id: int
    attempt_number: int
    delivery: int
    job: JobSpec


# The worker's per-job statements are built once: building a statement and its cache key
# costs more CPU than SQLite takes to run it (see tests/unit/test_hot_path.py). Plain Table
# columns keep them off the ORM's bulk-update path.
_NOW = bindparam("now", type_=JOBS.c.started_at.type)
_JOB_COLUMNS = (
    JOBS.c.tenant, JOBS.c.task, JOBS.c.model, JOBS.c.prompt, JOBS.c.labels, JOBS.c.options,
    JOBS.c.response_schema, JOBS.c.estimate, JOBS.c.started_at, JOBS.c.warnings,
    JOBS.c.lane, JOBS.c.deadline_at, JOBS.c.created_at,
)  # fmt: skip
_CLAIM = (
    update(JOBS)
    .where(
        JOBS.c.id == bindparam("job_id"),
        # The batch lane's jobs are never run by a Celery message (one may arrive anyway:
        # the job is in, or waits for, a Gemini batch that holds it).
        JOBS.c.lane != "batch",
        or_(
            JOBS.c.status == JobStatus.QUEUED,
            and_(
                JOBS.c.status == JobStatus.RUNNING,
                or_(JOBS.c.lease_expires_at.is_(None), JOBS.c.lease_expires_at < _NOW),
            ),
        ),
    )
    .values(
        status=JobStatus.RUNNING,
        attempt_count=JOBS.c.attempt_count + 1,
        deliveries=JOBS.c.deliveries + 1,
        lease_token=bindparam("token"),
        lease_expires_at=bindparam("expires", type_=JOBS.c.lease_expires_at.type),
        started_at=func.coalesce(JOBS.c.started_at, _NOW),
    )
    .returning(JOBS.c.attempt_count, JOBS.c.deliveries, *_JOB_COLUMNS)
)
_INPUTS = (
    select(
        JOB_INPUTS.c.position,
        JOB_INPUTS.c.sha256,
        JOB_INPUTS.c.mime_type,
        JOB_INPUTS.c.width,
        JOB_INPUTS.c.height,
    )
    .where(JOB_INPUTS.c.job_id == bindparam("job_id"))
    .order_by(JOB_INPUTS.c.position)
)
# Executed with job_id, number, started_at and outcome.
_INSERT_ATTEMPT = insert(ATTEMPTS).returning(ATTEMPTS.c.id)


def claim_job(
    session: Session, job_id: str, *, lease_s: float, max_deliveries: int
) -> Claim | None:
    """Take a queued job, or a running one whose lease lapsed, and open an attempt.

    None when the job may not run here: it ended, another worker holds a live lease, or it
    was delivered ``max_deliveries`` times already (then it ends failed: a job that kills
    its worker every time must not loop forever). Three statements in the common case.
    """
    now = utcnow()
    token = uuid.uuid4().hex
    connection = session.connection()
    claimed = connection.execute(
        _CLAIM,
        {
            "job_id": job_id,
            "now": now,
            "token": token,
            "expires": now + timedelta(seconds=lease_s),
        },
    ).first()
    if claimed is None:
        return None
    if claimed.deliveries > 1:  # only a redelivery can find attempts of a dead worker
        _close_lost_attempts(session, job_id, now)
    if claimed.deliveries > max_deliveries:
        ended = fail_job(
            session,
            job_id,
            code="worker_lost",
            message=f"The worker running this job stopped {claimed.deliveries - 1} times "
            f"before finishing it (limit VISIONQ_MAX_DELIVERIES={max_deliveries}); it is "
            "not tried again. If the input is unusual (huge or odd image), check it.",
        )
        # Counted once the caller's transaction commits, like every other end.
        count_ended_on_commit(session, [ended] if ended else [])
        return None
    inputs = tuple(InputSpec(*row) for row in connection.execute(_INPUTS, {"job_id": job_id}))
    job = JobSpec(
        id=job_id, tenant=claimed.tenant, task=claimed.task, model=claimed.model,
        prompt=claimed.prompt, labels=claimed.labels, options=claimed.options,
        response_schema=claimed.response_schema, estimate=claimed.estimate,
        started_at=claimed.started_at, inputs=inputs, warnings=tuple(claimed.warnings or ()),
        lane=claimed.lane, deadline_at=claimed.deadline_at, created_at=claimed.created_at,
    )  # fmt: skip
    return Claim(
        job_id=job_id,
        lease_token=token,
        attempt_id=_insert_attempt(session, job_id, claimed.attempt_count, now),
        attempt_number=claimed.attempt_count,
        delivery=claimed.deliveries,
        job=job,
    )


def _insert_attempt(session: Session, job_id: str, number: int, now: datetime) -> int:
    params = {"job_id": job_id, "number": number, "started_at": now,
              "outcome": AttemptOutcome.RUNNING}  # fmt: skip
    return int(session.connection().execute(_INSERT_ATTEMPT, params).scalar_one())


def _close_lost_attempts(session: Session, job_id: str, now: datetime) -> None:
    """Attempts left open by a worker that died end as ``lost``, so the job's history says so."""
    session.execute(
        update(Attempt)
        .where(Attempt.job_id == job_id, Attempt.outcome == AttemptOutcome.RUNNING)
        .values(
            outcome=AttemptOutcome.LOST,
            finished_at=now,
            error_class="WorkerLost",
            error_message="The worker stopped during this attempt (lease expired); "
            "the job was delivered again.",
        )
    )


def open_attempt(session: Session, claim: Claim) -> Claim | None:
    """The next attempt of a job this worker still holds (a retry); None if it lost it."""
    number = session.scalar(
        update(JOBS)
        .where(
            JOBS.c.id == claim.job_id,
            JOBS.c.status == JobStatus.RUNNING,
            JOBS.c.lease_token == claim.lease_token,
        )
        .values(attempt_count=JOBS.c.attempt_count + 1)
        .returning(JOBS.c.attempt_count)
    )
    if number is None:
        return None
    attempt_id = _insert_attempt(session, claim.job_id, number, utcnow())
    return replace(claim, attempt_id=attempt_id, attempt_number=number)


def renew_leases(session: Session, tokens: Collection[str], *, lease_s: float) -> int:
    """Extend the leases of the running jobs held under ``tokens``; returns how many."""
    if not tokens:
        return 0
    result = session.execute(
        update(Job)
        .where(Job.lease_token.in_(list(tokens)), Job.status == JobStatus.RUNNING)
        .values(lease_expires_at=utcnow() + timedelta(seconds=lease_s))
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def mark_unsent(session: Session, job_id: str) -> None:
    """The job's message did not reach the broker: the sweeper will send it."""
    session.execute(
        update(Job).where(Job.id == job_id, Job.status == JobStatus.QUEUED).values(enqueued_at=None)
    )


@dataclass(frozen=True)
class DueJob:
    """A job the sweeper sends again: its id, and its tenant and priority for fair share."""

    id: str
    tenant: str
    priority: int


def jobs_to_send(session: Session, *, requeue_after_s: float, limit: int = 500) -> list[DueJob]:
    """Jobs that need a (new) message: queued without one, or whose message is older than
    ``requeue_after_s`` (lost with Redis), or running under a lease that lapsed since the
    last message (their worker died). Never a job of the batch lane (``lane='batch'``)."""
    now = utcnow()
    stale = now - timedelta(seconds=requeue_after_s)
    unsent = Job.enqueued_at.is_(None) | (Job.enqueued_at < stale)
    queued = (Job.status == JobStatus.QUEUED) & unsent
    lapsed = (
        (Job.status == JobStatus.RUNNING)
        & (Job.lease_expires_at < now)
        & (unsent | (Job.enqueued_at < Job.lease_expires_at))
    )
    # Jobs of the batch lane get no message: the lane gathers them into Gemini batches.
    query = (
        select(Job.id, Job.tenant, Job.priority)
        .where(or_(queued, lapsed), Job.lane != "batch")
        .order_by(Job.created_at)
        .limit(limit)
    )
    return [DueJob(*row) for row in session.execute(query)]


def mark_popped(session: Session, job_id: str) -> None:
    """Fair share popped this queued job: its message is sent now (worker/tasks.py)."""
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.QUEUED)
        .values(enqueued_at=utcnow())
    )


def mark_sent(session: Session, job_ids: Collection[str]) -> None:
    """Record that a message was sent for these jobs now."""
    if job_ids:
        session.execute(update(Job).where(Job.id.in_(list(job_ids))).values(enqueued_at=utcnow()))


def count_active(session: Session, tenant: str) -> int:
    """The tenant's queued and running jobs (for the per-tenant cap)."""
    return int(session.connection().execute(_COUNT_ACTIVE, {"tenant": tenant}).scalar_one())


# Every submit counts (ix_jobs_tenant_status); an OR rather than a constant IN list, which
# would be expanded at each execution.
_COUNT_ACTIVE = (
    select(func.count())
    .select_from(JOBS)
    .where(
        JOBS.c.tenant == bindparam("tenant"),
        or_(JOBS.c.status == JobStatus.QUEUED, JOBS.c.status == JobStatus.RUNNING),
    )
)


@dataclass(frozen=True)
class EarlierAttempt:
    """How a job's attempt before the current one ended (its error class and usage)."""

    error_class: str | None
    usage: dict[str, Any] | None


def earlier_attempt(session: Session, job_id: str, before_id: int) -> EarlierAttempt | None:
    """The job's last attempt before attempt ``before_id``; None for its first."""
    row = session.execute(
        select(ATTEMPTS.c.error_class, ATTEMPTS.c.usage)
        .where(ATTEMPTS.c.job_id == job_id, ATTEMPTS.c.id < before_id)
        .order_by(ATTEMPTS.c.id.desc())
        .limit(1)
    ).first()
    return None if row is None else EarlierAttempt(row.error_class, row.usage)
