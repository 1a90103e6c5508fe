"""Reading a batch: progress counts and pages of items, each with its latest job.

Both join batch_items to jobs by primary key along ix_batch_items_batch_id_id; an item
whose job retention deleted (job_id NULL) reads as "expired".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from visionq.models.tables import BATCH_ITEMS, JOBS
from visionq.vision.estimate import StoredEstimate

# What an item whose job retention deleted reads as (its job_id is NULL).
EXPIRED = "expired"


@dataclass(frozen=True)
class ProgressRow:
    """The batch's items whose latest job has one status ("expired": job deleted)."""

    status: str
    count: int
    prompt: int
    candidates: int
    thoughts: int
    total: int
    cost_nusd: int
    recent: int  # of them, finished at or after ``since``
    first_created: datetime | None  # the oldest of their jobs' creation
    # The ETA's measured rate counts only jobs a worker ran (claimed at least once, so not
    # answered from the result cache at intake, nor cancelled while queued): of them, how
    # many finished at or after ``since``, and when the first of them started.
    ran_recent: int = 0
    first_started: datetime | None = None


def progress_rows(session: Session, batch_id: str, *, since: datetime) -> list[ProgressRow]:
    """One row per status of the items' latest jobs: counts, tokens, cost, how many finished
    since ``since``, and of the jobs a worker ran, how many finished since ``since`` and the
    first one's start (the ETA's measured rate). One GROUP BY over the batch's items."""
    j = JOBS.c
    # A cache hit is stored succeeded with attempt_count 0; a job cancelled while queued
    # never had an attempt either: neither took a worker's time.
    ran = and_(j.attempt_count > 0, j.cached_from.is_(None))
    query = (
        select(
            j.status,
            func.count(),
            func.sum(j.prompt_tokens),
            func.sum(j.candidates_tokens),
            func.sum(j.thoughts_tokens),
            func.sum(j.total_tokens),
            func.sum(j.cost_nusd),
            func.sum(case((j.finished_at >= since, 1), else_=0)),
            func.min(j.created_at),
            func.sum(case((and_(ran, j.finished_at >= since), 1), else_=0)),
            func.min(case((ran, j.started_at), else_=None)),
        )
        .select_from(BATCH_ITEMS.outerjoin(JOBS, j.id == BATCH_ITEMS.c.job_id))
        .where(BATCH_ITEMS.c.batch_id == batch_id)
        .group_by(j.status)
    )
    # SUM of a bigint is a Decimal on PostgreSQL, and NULL over no values: int(... or 0).
    return [
        ProgressRow(
            status=status or EXPIRED, count=int(count), prompt=int(prompt or 0),
            candidates=int(candidates or 0), thoughts=int(thoughts or 0), total=int(total or 0),
            cost_nusd=int(cost or 0), recent=int(recent or 0), first_created=first,
            ran_recent=int(ran_recent or 0), first_started=started,
        )
        for (status, count, prompt, candidates, thoughts, total, cost, recent, first, ran_recent,
             started) in session.execute(query)
    ]  # fmt: skip


@dataclass(frozen=True)
class ItemRow:
    """One item and its latest job (job fields None once retention deleted the job)."""

    id: int
    key: str
    reruns: int
    job_id: str | None
    status: str  # the job's, or "expired"
    task: str | None
    model: str | None
    result: dict[str, Any] | None
    error_code: str | None
    error_message: str | None
    prompt_tokens: int | None
    candidates_tokens: int | None
    thoughts_tokens: int | None
    total_tokens: int | None
    cost_nusd: int | None
    estimate: StoredEstimate | None
    created_at: datetime  # the job's (a re-run's is later than the item's); expired: the item's
    finished_at: datetime | None


def items_page(
    session: Session, batch_id: str, *, after_id: int, limit: int, status: str | None = None
) -> list[ItemRow]:
    """Up to ``limit`` items after item id ``after_id``, in the order they were added,
    with their latest job; ``status`` keeps one status ("expired" included). Walk a whole
    batch by passing the last row's id: each page is its own short read."""
    j = JOBS.c
    bi = BATCH_ITEMS.c
    query = (
        select(
            bi.id,
            bi.key,
            bi.reruns,
            bi.job_id,
            j.status,
            j.task,
            j.model,
            j.result,
            j.error_code,
            j.error_message,
            j.prompt_tokens,
            j.candidates_tokens,
            j.thoughts_tokens,
            j.total_tokens,
            j.cost_nusd,
            j.estimate,
            func.coalesce(j.created_at, bi.created_at).label("created_at"),
            j.finished_at,
        )
        .select_from(BATCH_ITEMS.outerjoin(JOBS, j.id == bi.job_id))
        .where(bi.batch_id == batch_id, bi.id > after_id)
        .order_by(bi.id)
        .limit(limit)
    )
    if status == EXPIRED:
        query = query.where(j.id.is_(None))
    elif status is not None:
        query = query.where(j.status == status)
    rows = []
    for row in session.execute(query):
        values = row._asdict()
        values["status"] = values["status"] or EXPIRED
        rows.append(ItemRow(**values))
    return rows
