"""A batch re-run's database side (issue 19): which items to run again, and pointing each
at its new job. The API's re-run (api/batch_rerun.py) calls both under lock_for_write; a
retry of an item's job (POST /v1/jobs/{id}/retry) is a re-run of that one item, and finds
its item (or the item whose newer job replaced it) here."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from visionq.models.tables import BATCH_ITEMS, BATCHES, JOBS, utcnow
from visionq.vision.estimate import StoredEstimate


@dataclass(frozen=True)
class RerunSource:
    """An item to re-run and its latest job (whose stored inputs the new job reuses)."""

    item_id: int
    key: str
    job_id: str
    cost_nusd: int
    total_tokens: int
    # Its estimate, taken out of the batch's estimate counters when a new job replaces it.
    estimate: StoredEstimate | None = None


def rerun_sources(
    session: Session,
    batch_id: str,
    *,
    statuses: Collection[str],
    error_codes: Collection[str] | None,
    after_id: int,
    limit: int,
    job_id: str | None = None,
) -> list[RerunSource]:
    """Up to ``limit`` items after ``after_id`` (in order) whose latest job ended in one of
    ``statuses`` (and, if given, with one of ``error_codes``; ``job_id``: only the item
    whose latest job that is). Call under lock_for_write: a concurrent re-run then sees the
    jobs this one adds, and picks none of them twice."""
    j = JOBS.c
    bi = BATCH_ITEMS.c
    query = (
        select(bi.id, bi.key, j.id.label("job_id"), j.cost_nusd, j.total_tokens, j.estimate)
        .select_from(BATCH_ITEMS.join(JOBS, j.id == bi.job_id))
        .where(bi.batch_id == batch_id, bi.id > after_id, j.status.in_(list(statuses)))
        .order_by(bi.id)
        .limit(limit)
    )
    if error_codes is not None:
        query = query.where(j.error_code.in_(list(error_codes)))
    if job_id is not None:
        query = query.where(bi.job_id == job_id)
    return [
        RerunSource(
            row.id,
            row.key,
            row.job_id,
            int(row.cost_nusd or 0),
            int(row.total_tokens or 0),
            row.estimate,
        )
        for row in session.execute(query)
    ]


_REPOINT = (
    update(BATCH_ITEMS)
    .where(BATCH_ITEMS.c.id == bindparam("item_id"))
    .values(
        job_id=bindparam("new_job_id"),
        reruns=BATCH_ITEMS.c.reruns + 1,
        updated_at=bindparam("now", type_=BATCH_ITEMS.c.updated_at.type),
    )
)


def repoint_items(session: Session, moves: Sequence[tuple[int, str]]) -> None:
    """Point each item (id) at its new job and count the re-run (one executemany)."""
    if not moves:
        return
    now = utcnow()
    session.connection().execute(
        _REPOINT, [{"item_id": item, "new_job_id": job, "now": now} for item, job in moves]
    )


@dataclass(frozen=True)
class ItemPlace:
    """A batch item, its batch's name, and the job it points at now with that job's status."""

    batch_id: str
    batch_name: str
    key: str
    job_id: str
    job_status: str


def _places(session: Session, job_ids: Collection[str]) -> list[ItemPlace]:
    """The items whose latest job is one of ``job_ids`` (through ix_batch_items_job_id)."""
    bi = BATCH_ITEMS.c
    query = (
        select(bi.batch_id, BATCHES.c.name, bi.key, bi.job_id, JOBS.c.status)
        .select_from(
            BATCH_ITEMS.join(BATCHES, BATCHES.c.id == bi.batch_id).join(
                JOBS, JOBS.c.id == bi.job_id
            )
        )
        .where(bi.job_id.in_(list(job_ids)))
        .order_by(bi.id)
    )
    return [ItemPlace(*row) for row in session.execute(query)]


def item_of_job(session: Session, job_id: str) -> ItemPlace | None:
    """The batch item whose latest job is ``job_id``; None for a single job, or a job a
    newer one replaced in its item (see :func:`replacing_item`)."""
    found = _places(session, [job_id])
    return found[0] if found else None


# retry_of links walked looking for a job's replacement: one per re-run of its item.
MAX_HOPS = 100


def replacing_item(session: Session, *, tenant: str, job_id: str) -> ItemPlace | None:
    """The batch item ``job_id`` was the latest job of until a
    newer job replaced it (a batch re-run, or a retry of the item's job): the item whose
    latest job descends from it through ``retry_of``. None when no item's does (a single
    job, or a retry of one). Each step is one read through ix_jobs_tenant_retry_of (no
    created_at bound: SQLite would pick ix_jobs_tenant_created and scan the tenant's jobs)."""
    j = JOBS.c
    seen = {job_id}
    frontier = [job_id]
    for _ in range(MAX_HOPS):
        query = select(j.id).where(j.tenant == tenant, j.retry_of.in_(frontier))
        children = [found for found in session.scalars(query) if found not in seen]
        if not children:
            return None
        places = _places(session, children)
        if places:
            return places[0]
        seen.update(children)
        frontier = children
    return None
