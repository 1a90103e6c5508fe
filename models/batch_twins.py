"""Identical jobs in the batch lane: a job waiting for a Gemini batch whose twin (same
tenant, same cache key) has succeeded since it was admitted ends as a cache hit.

The cache is read at admission (models/jobs.find_cached, models/batchjobs.find_cached_many),
but a repeat submitted while its first copy still waits hours in a Gemini batch finds
nothing there. The gather holds such repeats back (gemini_batch_jobs._twin_ahead: only the
first of identical jobs goes in a batch); once it succeeds, the lane's next gather answers
the others from it here, exactly as admission would have: the same result by reference
(``cached_from``), cost 0, no attempt, the budget hold released.
"""

from __future__ import annotations

from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import Session

from visionq.models.batchjobs import find_cached_many
from visionq.models.budgets import settle
from visionq.models.ended import ENDED_COLUMNS, EndedJob, ended_from_row
from visionq.models.gemini_batch_jobs import uses_cache, waiting_for_batch
from visionq.models.jobs import cache_hit_values
from visionq.models.tables import ATTEMPTS, JOBS, JobStatus, utcnow
from visionq.models.webhook_outbox import EventType, NewEvent, record_events


def answer_from_twins(session: Session, *, limit: int = 500) -> list[EndedJob]:
    """End as cache hits the jobs waiting for a Gemini batch (that allow the cache) whose
    tenant has a succeeded job with the same cache key; returns them, oldest first.

    Each is one conditional UPDATE (still waiting) with the admission's cache-hit values
    (models/jobs.cache_hit_values) and its budget settled in the same transaction, which
    also writes their job.succeeded events (decision D4: cache hits send one too). A job
    that was in a Gemini batch before (released, waiting again) keeps what its attempts
    paid as its cost: a job's cost is its attempts' sum.
    """
    twin = JOBS.alias("twin")
    answered = exists().where(
        twin.c.tenant == JOBS.c.tenant,
        twin.c.cache_key == JOBS.c.cache_key,
        twin.c.status == JobStatus.SUCCEEDED,
    )
    rows = session.execute(
        select(JOBS.c.id, JOBS.c.tenant, JOBS.c.cache_key)
        .where(waiting_for_batch(), uses_cache(), answered)
        .order_by(JOBS.c.created_at, JOBS.c.id)
        .limit(limit)
    ).all()
    keys: dict[str, set[str]] = {}
    for row in rows:
        keys.setdefault(row.tenant, set()).add(row.cache_key)
    found = {
        (tenant, key): answer
        for tenant, wanted in keys.items()
        for key, answer in find_cached_many(session, tenant=tenant, cache_keys=wanted).items()
    }
    paid = (
        select(func.coalesce(func.sum(ATTEMPTS.c.cost_nusd), 0))
        .where(ATTEMPTS.c.job_id == JOBS.c.id)
        .scalar_subquery()
    )
    ended: list[EndedJob] = []
    for row in rows:
        answer = found.get((row.tenant, row.cache_key))
        if answer is None:
            continue
        values = {**cache_hit_values(answer, at=utcnow()), "cost_nusd": paid}
        done = session.execute(
            update(JOBS)
            .where(JOBS.c.id == row.id, waiting_for_batch())
            .values(**values)
            .returning(*ENDED_COLUMNS)
        ).first()
        if done is None:
            continue
        job = ended_from_row(done, JobStatus.SUCCEEDED)
        settle(session, tenant=job.tenant, reserved_nusd=job.reserved_nusd,
               cost_nusd=job.cost_nusd or 0)  # fmt: skip
        ended.append(job)
    record_events(
        session,
        [NewEvent(job.tenant, EventType.JOB_SUCCEEDED, job.id, job.callback_url) for job in ended],
    )
    return ended
