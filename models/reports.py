"""Spending over finished jobs, grouped for `visionq cost report`."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from visionq.models.tables import Job

GROUPINGS = ("model", "tenant", "task", "day")


@dataclass
class SpendRow:
    key: str
    jobs: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    output_tokens: int = 0
    cost_nusd: int = 0


def finished_jobs(session: Session, *, since: datetime | None) -> list[Job]:
    query = select(Job).where(Job.finished_at.is_not(None)).order_by(Job.finished_at)
    if since is not None:
        query = query.where(Job.finished_at >= since)
    return list(session.scalars(query))


def spend_by(jobs: list[Job], by: str) -> list[SpendRow]:
    """Totals per model, tenant, task or day (UTC) of finished jobs."""
    if by not in GROUPINGS:
        raise ValueError(f"group by one of {', '.join(GROUPINGS)}")
    rows: dict[str, SpendRow] = defaultdict(lambda: SpendRow(key=""))
    for job in jobs:
        assert job.finished_at is not None
        key = job.finished_at.strftime("%Y-%m-%d") if by == "day" else str(getattr(job, by))
        row = rows[key]
        row.key = key
        row.jobs += 1
        row.cached += 1 if job.cached_from else 0
        row.prompt_tokens += job.prompt_tokens or 0
        row.output_tokens += (job.candidates_tokens or 0) + (job.thoughts_tokens or 0)
        row.cost_nusd += job.cost_nusd or 0
    return sorted(rows.values(), key=lambda row: row.key)
