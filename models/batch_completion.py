"""When a user batch ends: closed or cancelled, and every item's job terminal. Nothing is
written at job ends for this (no hot row, see models/batches.py): the webhook relay scans
for such batches every few seconds, sets ``ended_at`` and writes the batch.completed event
in one transaction. A re-run reopens the batch (models/batches.lock_for_write(reopen=
True)), so its next completion sends a new event.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, exists, select, update
from sqlalchemy.orm import Session

from visionq.models.jobs import ACTIVE_STATUSES
from visionq.models.tables import BATCH_ITEMS, BATCHES, JOBS, BatchState
from visionq.models.webhook_outbox import EventType, NewEvent, record_event

_ENDABLE = (BatchState.CLOSED.value, BatchState.CANCELLED.value)


def _active_item() -> ColumnElement[bool]:
    """An item of the batch whose job is still queued or running."""
    return exists().where(
        BATCH_ITEMS.c.batch_id == BATCHES.c.id,
        JOBS.c.id == BATCH_ITEMS.c.job_id,
        JOBS.c.status.in_([status.value for status in ACTIVE_STATUSES]),
    )


def complete_ended_batches(session: Session, *, now: datetime, limit: int = 100) -> list[str]:
    """End the closed or cancelled batches not ended yet whose items' jobs are all
    terminal: ``ended_at = now`` and their batch.completed event, in the caller's
    transaction. Returns their ids. Safe when several relays run it at once: the
    conditional UPDATE lets one of them end a batch."""
    candidates = session.execute(
        select(BATCHES.c.id, BATCHES.c.tenant, BATCHES.c.callback_url)
        .where(BATCHES.c.ended_at.is_(None), BATCHES.c.state.in_(_ENDABLE), ~_active_item())
        .order_by(BATCHES.c.updated_at)
        .limit(limit)
    ).all()
    ended: list[str] = []
    for batch in candidates:
        marked = session.execute(
            update(BATCHES)
            .where(
                BATCHES.c.id == batch.id,
                BATCHES.c.ended_at.is_(None),
                BATCHES.c.state.in_(_ENDABLE),
            )
            .values(ended_at=now)
        )
        if not marked.rowcount:  # type: ignore[attr-defined]
            continue  # ended by another relay meanwhile
        # Checked again now that the row is ours: on PostgreSQL a re-run that held it
        # (and added jobs) committed before our UPDATE went through, and this statement
        # sees its jobs; the scan above may not have.
        still_active = session.scalar(
            select(BATCHES.c.id).where(BATCHES.c.id == batch.id, _active_item())
        )
        if still_active is not None:
            session.execute(update(BATCHES).where(BATCHES.c.id == batch.id).values(ended_at=None))
            continue
        record_event(
            session,
            NewEvent(batch.tenant, EventType.BATCH_COMPLETED, batch.id, batch.callback_url),
        )
        ended.append(batch.id)
    return ended
