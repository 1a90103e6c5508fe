"""A job that just ended, as the statement that ended it returned it: what the webhook
outbox (models/webhook_outbox.py) and the metrics (models/metrics.count_ended) need, read
from one RETURNING list so no end costs an extra query."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.sql.elements import ColumnElement

from visionq.models.tables import JOBS
from visionq.vision.estimate import StoredEstimate


@dataclass(frozen=True)
class EndedJob:
    """A job moved to a terminal state by this transaction (never by another one)."""

    id: str
    tenant: str
    task: str
    model: str
    tier: str
    lane: str
    served_tier: str | None
    status: str
    created_at: datetime
    finished_at: datetime
    cost_nusd: int | None
    reserved_nusd: int
    estimate: StoredEstimate | None
    callback_url: str | None


# The RETURNING list of every statement that ends jobs (one declaration: ended_from_row
# reads these names).
ENDED_COLUMNS: tuple[ColumnElement[Any], ...] = (
    JOBS.c.id,
    JOBS.c.tenant,
    JOBS.c.task,
    JOBS.c.model,
    JOBS.c.tier,
    JOBS.c.lane,
    JOBS.c.served_tier,
    JOBS.c.created_at,
    JOBS.c.finished_at,
    JOBS.c.cost_nusd,
    JOBS.c.reserved_nusd,
    JOBS.c.estimate,
    JOBS.c.callback_url,
)


def ended_from_row(row: Row[Any], status: str) -> EndedJob:
    """The EndedJob of a row returned with ENDED_COLUMNS by a statement that set ``status``."""
    return EndedJob(
        id=row.id,
        tenant=row.tenant,
        task=row.task,
        model=row.model,
        tier=row.tier,
        lane=row.lane,
        served_tier=row.served_tier,
        status=status,
        created_at=row.created_at,
        finished_at=row.finished_at,
        cost_nusd=row.cost_nusd,
        reserved_nusd=int(row.reserved_nusd or 0),
        estimate=row.estimate,
        callback_url=row.callback_url,
    )
