"""A batch re-run's database side (issue 19): which items to run again, and pointing each
at its new job. The API's re-run (api/batch_rerun.py) calls both under lock_for_write."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from visionq.models.tables import BATCH_ITEMS, JOBS, utcnow
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
) -> list[RerunSource]:
    """Up to ``limit`` items after ``after_id`` (in order) whose latest job ended in one of
    ``statuses`` (and, if given, with one of ``error_codes``). Call under lock_for_write:
    a concurrent re-run then sees the jobs this one adds, and picks none of them twice."""
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
