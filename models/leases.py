"""Delivery of jobs to workers: claims under a lease, renewals, and what the sweeper finds.

Celery gives at-least-once delivery; these conditional updates make the effect exactly-once.
A worker claims a job with a fresh ``lease_token`` and renews the lease while it works. Only
the token's holder may open attempts or end the job (see ``models.jobs.complete_job``), so
a worker that was presumed dead and replaced cannot store a second result. A job whose lease
lapsed may be claimed again by whoever gets its next message, up to ``max_deliveries`` times.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from models.jobs import fail_job
from models.tables import ATTEMPTS, JOBS, Attempt, AttemptOutcome, Job, JobStatus, utcnow


@dataclass(frozen=True)
class Claim:
    """A job the worker now runs under ``lease_token``, and its current attempt."""

    job_id: str
    lease_token: str
    attempt_id: int
    attempt_number: int
    delivery: int


def claim_job(
    session: Session, job_id: str, *, lease_s: float, max_deliveries: int
) -> Claim | None:
    """Take a queued job, or a running one whose lease lapsed, and open an attempt.

    None when the job may not run here: it ended, another worker holds a live lease, or it
    was delivered ``max_deliveries`` times already (then it ends failed: a job that kills
    its worker every time must not loop forever).
    """
    now = utcnow()
    token = uuid.uuid4().hex
    claimed = session.execute(
        update(JOBS)
        .where(Job.id == job_id, _claimable(now))
        .values(
            status=JobStatus.RUNNING,
            attempt_count=Job.attempt_count + 1,
            deliveries=Job.deliveries + 1,
            lease_token=token,
            lease_expires_at=now + timedelta(seconds=lease_s),
            started_at=func.coalesce(Job.started_at, now),
        )
        .returning(Job.attempt_count, Job.deliveries)
    ).first()
    if claimed is None:
        return None
    if claimed.deliveries > 1:  # only a redelivery can find attempts of a dead worker
        _close_lost_attempts(session, job_id, now)
    if claimed.deliveries > max_deliveries:
        fail_job(
            session,
            job_id,
            code="worker_lost",
            message=f"The worker running this job stopped {claimed.deliveries - 1} times "
            f"before finishing it (limit VISIONQ_MAX_DELIVERIES={max_deliveries}); it is "
            "not tried again. If the input is unusual (huge or odd image), check it.",
        )
        return None
    attempt_id = _insert_attempt(session, job_id, claimed.attempt_count, now)
    return Claim(
        job_id=job_id,
        lease_token=token,
        attempt_id=attempt_id,
        attempt_number=claimed.attempt_count,
        delivery=claimed.deliveries,
    )


def _insert_attempt(session: Session, job_id: str, number: int, now: datetime) -> int:
    # Core INSERT ... RETURNING: the ORM unit of work would cost more than the statement.
    inserted = session.execute(
        insert(ATTEMPTS)
        .values(job_id=job_id, number=number, started_at=now, outcome=AttemptOutcome.RUNNING)
        .returning(ATTEMPTS.c.id)
    )
    return int(inserted.scalar_one())


def _claimable(now: datetime) -> ColumnElement[bool]:
    lapsed = (Job.status == JobStatus.RUNNING) & (
        Job.lease_expires_at.is_(None) | (Job.lease_expires_at < now)
    )
    return or_(Job.status == JobStatus.QUEUED, lapsed)


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
        update(Job)
        .where(
            Job.id == claim.job_id,
            Job.status == JobStatus.RUNNING,
            Job.lease_token == claim.lease_token,
        )
        .values(attempt_count=Job.attempt_count + 1)
        .returning(Job.attempt_count)
    )
    if number is None:
        return None
    attempt = Attempt(job_id=claim.job_id, number=number, started_at=utcnow())
    session.add(attempt)
    session.flush()
    return Claim(
        job_id=claim.job_id,
        lease_token=claim.lease_token,
        attempt_id=attempt.id,
        attempt_number=number,
        delivery=claim.delivery,
    )


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


def jobs_to_send(session: Session, *, requeue_after_s: float, limit: int = 500) -> list[str]:
    """Jobs that need a (new) message: queued without one, or whose message is older than
    ``requeue_after_s`` (lost with Redis), or running under a lease that lapsed since the
    last message (their worker died)."""
    now = utcnow()
    stale = now - timedelta(seconds=requeue_after_s)
    unsent = Job.enqueued_at.is_(None) | (Job.enqueued_at < stale)
    queued = (Job.status == JobStatus.QUEUED) & unsent
    lapsed = (
        (Job.status == JobStatus.RUNNING)
        & (Job.lease_expires_at < now)
        & (unsent | (Job.enqueued_at < Job.lease_expires_at))
    )
    query = select(Job.id).where(or_(queued, lapsed)).order_by(Job.created_at).limit(limit)
    return list(session.scalars(query))


def mark_sent(session: Session, job_ids: Collection[str]) -> None:
    """Record that a message was sent for these jobs now."""
    if job_ids:
        session.execute(update(Job).where(Job.id.in_(list(job_ids))).values(enqueued_at=utcnow()))


def count_active(session: Session, tenant: str) -> int:
    """The tenant's queued and running jobs (for the per-tenant cap)."""
    query = (
        select(func.count())
        .select_from(Job)
        .where(Job.tenant == tenant, Job.status.in_((JobStatus.QUEUED, JobStatus.RUNNING)))
    )
    return int(session.scalar(query) or 0)
