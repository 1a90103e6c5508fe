"""The jobs side of the batch lane: jobs waiting for a Gemini batch, attached to one under
its lease token, released from it, and read for building and storing.

Re-exported by :mod:`visionq.models.gemini_batches` (the lane imports from there).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, and_, exists, func, insert, or_, select, true, type_coerce, update
from sqlalchemy.orm import Session

from visionq.models.leases import InputSpec, JobSpec
from visionq.models.tables import ATTEMPTS, JOB_INPUTS, JOBS, AttemptOutcome, JobStatus, utcnow

_TOKEN_PREFIX = "gb"  # noqa: S105 - marks a batch's lease token, not a secret


def batch_token(batch_id: str) -> str:
    """The lease token under which the batch ``batch_id`` holds its jobs (32 characters)."""
    return _TOKEN_PREFIX + uuid.UUID(batch_id).hex[:30]


@dataclass(frozen=True)
class Gatherable:
    """Jobs of one model waiting for a Gemini batch."""

    model: str
    count: int
    oldest: datetime
    nearest_deadline: datetime | None


def waiting_for_batch() -> Any:
    """The condition on JOBS of a job waiting for a Gemini batch (queued in lane batch)."""
    return (
        (JOBS.c.lane == "batch")
        & (JOBS.c.status == JobStatus.QUEUED)
        & JOBS.c.gemini_batch_id.is_(None)
    )


_waiting = waiting_for_batch


def uses_cache() -> Any:
    """The condition on JOBS of a job that may be answered from the cache: it has a cache
    key and its options allow it (``cache`` is stored only when false: JobOptions.stored)."""
    allowed = type_coerce(JOBS.c.options, JSON)["cache"].as_boolean()
    return JOBS.c.cache_key.is_not(None) & or_(allowed.is_(None), allowed == true())


def _twin_ahead() -> Any:
    """A waiting job that uses the cache and has an identical job of its tenant (same cache
    key) ahead of it: running (in a Gemini batch or the sync lane), queued for the sync
    lane, or waiting too but older. It waits: the twin's answer is its cache hit
    (models/batch_twins.py), and if the twin fails or is cancelled it is gathered next.
    The watchdog still sends it to the sync lane near its deadline (release_waiting)."""
    twin = JOBS.alias("twin")
    ahead = or_(
        twin.c.status == JobStatus.RUNNING,
        twin.c.lane != "batch",
        twin.c.created_at < JOBS.c.created_at,
        and_(twin.c.created_at == JOBS.c.created_at, twin.c.id < JOBS.c.id),
    )
    return uses_cache() & exists().where(
        twin.c.tenant == JOBS.c.tenant,
        twin.c.cache_key == JOBS.c.cache_key,
        twin.c.id != JOBS.c.id,
        twin.c.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]),
        ahead,
    )


def _gatherable() -> Any:
    return _waiting() & ~_twin_ahead()


def gather_models(session: Session) -> list[Gatherable]:
    """Per model: how many jobs wait for a Gemini batch, the oldest, the nearest deadline
    (jobs waiting for an identical job's answer left out)."""
    query = (
        select(
            JOBS.c.model, func.count(), func.min(JOBS.c.created_at), func.min(JOBS.c.deadline_at)
        )
        .where(_gatherable())
        .group_by(JOBS.c.model)
        .order_by(JOBS.c.model)
    )
    return [Gatherable(*row) for row in session.execute(query)]


def gatherable(session: Session, *, model: str, limit: int) -> list[str]:
    """Up to ``limit`` ids of jobs of ``model`` waiting for a Gemini batch, oldest first;
    of identical jobs of a tenant only the first (see _twin_ahead)."""
    query = (
        select(JOBS.c.id)
        .where(_gatherable(), JOBS.c.model == model)
        .order_by(JOBS.c.created_at, JOBS.c.id)
        .limit(limit)
    )
    return list(session.scalars(query))


def _held(batch_id: str) -> Any:
    return (
        (JOBS.c.gemini_batch_id == batch_id)
        & (JOBS.c.lease_token == batch_token(batch_id))
        & (JOBS.c.status == JobStatus.RUNNING)
    )


def unfinished_jobs(session: Session, batch_id: str) -> dict[str, datetime | None]:
    """The jobs the batch still holds (running under its token) and their deadlines."""
    query = select(JOBS.c.id, JOBS.c.deadline_at).where(_held(batch_id))
    return {row.id: row.deadline_at for row in session.execute(query)}


def open_attempts(session: Session, batch_id: str) -> dict[str, int]:
    """Job id -> id of its attempt still open in this batch."""
    query = select(ATTEMPTS.c.job_id, ATTEMPTS.c.id).where(
        ATTEMPTS.c.gemini_batch_id == batch_id, ATTEMPTS.c.outcome == AttemptOutcome.RUNNING
    )
    return {row.job_id: row.id for row in session.execute(query)}


def unrecorded_attempts(session: Session, batch_id: str) -> dict[str, tuple[int, bool]]:
    """Job id -> (its attempt in this batch, still open) for the attempts with no paid call
    recorded yet: where a line answered for a job the batch no longer holds (cancelled,
    released near its deadline, re-sent after a stall) is recorded. An attempt that has
    its call is left out, so reading a batch's output again records nothing twice."""
    query = select(ATTEMPTS.c.job_id, ATTEMPTS.c.id, ATTEMPTS.c.outcome).where(
        ATTEMPTS.c.gemini_batch_id == batch_id,
        ATTEMPTS.c.usage.is_(None),
        ATTEMPTS.c.cost_nusd.is_(None),
    )
    return {
        row.job_id: (row.id, row.outcome == AttemptOutcome.RUNNING)
        for row in session.execute(query)
    }


def release_jobs(
    session: Session,
    batch_id: str,
    job_ids: Collection[str],
    *,
    lane: str,
    reason: str,
    error_class: str,
) -> int:
    """Take jobs back from the batch (fenced by its token): queued again in ``lane``
    (``batch``: gathered into a new batch; ``standard``: the sweeper sends them to the sync
    lane, with a ``batch_fallback`` warning), their open attempts closed with ``reason``.
    Returns how many were released (jobs ended or re-sent meanwhile are left alone)."""
    if not job_ids:
        return 0
    released = session.execute(
        update(JOBS)
        .where(JOBS.c.id.in_(list(job_ids)), _held(batch_id))
        .values(
            status=JobStatus.QUEUED,
            lane=lane,
            gemini_batch_id=None,
            lease_token=None,
            lease_expires_at=None,
            enqueued_at=None if lane != "batch" else JOBS.c.created_at,
        )
        .returning(JOBS.c.id, JOBS.c.warnings)
    ).all()
    if not released:
        return 0
    ids = [row.id for row in released]
    lost = error_class == "BatchLost"
    session.execute(
        update(ATTEMPTS)
        .where(
            ATTEMPTS.c.job_id.in_(ids),
            ATTEMPTS.c.gemini_batch_id == batch_id,
            ATTEMPTS.c.outcome == AttemptOutcome.RUNNING,
        )
        .values(
            outcome=AttemptOutcome.LOST if lost else AttemptOutcome.FAILED,
            finished_at=utcnow(),
            error_class=error_class,
            error_message=reason,
        )
    )
    if lane != "batch":
        _warn_fallback(session, released, reason)
    return len(released)


def job_specs(session: Session, job_ids: Collection[str]) -> dict[str, JobSpec]:
    """What the lane needs to build and store each job (the columns a claim reads).
    ``started_at`` is the job's start, or its creation when no sync run started it."""
    if not job_ids:
        return {}
    ids = list(job_ids)
    rows = session.execute(
        select(
            JOBS.c.id, JOBS.c.tenant, JOBS.c.task, JOBS.c.model, JOBS.c.prompt, JOBS.c.labels,
            JOBS.c.options, JOBS.c.response_schema, JOBS.c.estimate,
            func.coalesce(JOBS.c.started_at, JOBS.c.created_at).label("started"),
            JOBS.c.warnings, JOBS.c.lane, JOBS.c.deadline_at,
        ).where(JOBS.c.id.in_(ids))
    ).all()  # fmt: skip
    inputs: dict[str, list[InputSpec]] = {}
    for image in session.execute(
        select(
            JOB_INPUTS.c.job_id, JOB_INPUTS.c.position, JOB_INPUTS.c.sha256,
            JOB_INPUTS.c.mime_type, JOB_INPUTS.c.width, JOB_INPUTS.c.height,
        )
        .where(JOB_INPUTS.c.job_id.in_(ids))
        .order_by(JOB_INPUTS.c.job_id, JOB_INPUTS.c.position)
    ):  # fmt: skip
        inputs.setdefault(image.job_id, []).append(InputSpec(*image[1:]))
    return {
        row.id: JobSpec(
            id=row.id, tenant=row.tenant, task=row.task, model=row.model, prompt=row.prompt,
            labels=row.labels, options=row.options, response_schema=row.response_schema,
            estimate=row.estimate, started_at=row.started, inputs=tuple(inputs.get(row.id, ())),
            warnings=tuple(row.warnings or ()), lane=row.lane, deadline_at=row.deadline_at,
        )
        for row in rows
    }  # fmt: skip


def attach_jobs(
    session: Session, batch_id: str, *, model: str, job_ids: Sequence[str], now: datetime
) -> list[str]:
    """Attach the jobs of ``job_ids`` still waiting for a batch to ``batch_id`` (running
    under its token) and open one ``batch`` attempt each; returns the ids attached, in the
    order given. One conditional UPDATE: a job taken meanwhile is left out."""
    taken = session.execute(
        update(JOBS)
        .where(JOBS.c.id.in_(list(job_ids)), _waiting(), JOBS.c.model == model)
        .values(
            status=JobStatus.RUNNING,
            gemini_batch_id=batch_id,
            lease_token=batch_token(batch_id),
            lease_expires_at=None,
            attempt_count=JOBS.c.attempt_count + 1,
        )
        .returning(JOBS.c.id, JOBS.c.attempt_count)
    ).all()
    if not taken:
        return []
    session.execute(
        insert(ATTEMPTS),
        [
            {"job_id": row.id, "number": row.attempt_count, "started_at": now,
             "outcome": AttemptOutcome.RUNNING, "requested_tier": "batch",
             "gemini_batch_id": batch_id}
            for row in taken
        ],
    )  # fmt: skip
    attached = {row.id for row in taken}
    return [job_id for job_id in job_ids if job_id in attached]


def close_stray_attempts(session: Session, batch_id: str, *, reason: str) -> int:
    """Close the batch's attempts still open for jobs it no longer holds (cancelled by a
    user, ended by another path) as ``discarded``: nothing of theirs will be stored."""
    held = select(JOBS.c.id).where(_held(batch_id))
    closed = session.execute(
        update(ATTEMPTS)
        .where(
            ATTEMPTS.c.gemini_batch_id == batch_id,
            ATTEMPTS.c.outcome == AttemptOutcome.RUNNING,
            ATTEMPTS.c.job_id.not_in(held),
        )
        .values(
            outcome=AttemptOutcome.DISCARDED,
            finished_at=utcnow(),
            error_class="BatchJobEnded",
            error_message=reason,
        )
    )
    return int(closed.rowcount)  # type: ignore[attr-defined]


def release_waiting(
    session: Session, *, deadline_before: datetime, reason: str, limit: int = 500
) -> list[str]:
    """Send jobs still waiting for a Gemini batch whose deadline comes before
    ``deadline_before`` to the sync lane (standard, ``batch_fallback`` warning): no batch
    answered them in time (no free batch slot, an identical job still running, the lane down)."""
    due = list(
        session.scalars(
            select(JOBS.c.id)
            .where(_waiting(), JOBS.c.deadline_at < deadline_before)
            .order_by(JOBS.c.deadline_at)
            .limit(limit)
        )
    )
    if not due:
        return []
    moved = session.execute(
        update(JOBS)
        .where(JOBS.c.id.in_(due), _waiting())
        .values(lane="standard", enqueued_at=None)
        .returning(JOBS.c.id, JOBS.c.warnings)
    ).all()
    _warn_fallback(session, moved, reason)
    return [row.id for row in moved]


def _warn_fallback(session: Session, rows: Sequence[Any], reason: str) -> None:
    """Add the ``batch_fallback`` warning (once) to jobs sent to the sync lane."""
    for row in rows:
        warnings = list(row.warnings or [])
        if not any(w.get("code") == "batch_fallback" for w in warnings):
            warnings.append({"code": "batch_fallback", "message": reason})
            session.execute(update(JOBS).where(JOBS.c.id == row.id).values(warnings=warnings))


def former_jobs(session: Session, batch_id: str) -> list[str]:
    """Jobs that were ever sent in this batch (each opened an attempt in it)."""
    query = select(ATTEMPTS.c.job_id).where(ATTEMPTS.c.gemini_batch_id == batch_id).distinct()
    return sorted(session.scalars(query))
