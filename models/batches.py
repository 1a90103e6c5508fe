"""Batches (issue 19): named sets of items, each item pointing at its latest job.

Concurrency: every write transaction on a batch starts with lock_for_write, one UPDATE of
the batch row. On SQLite it is the transaction's first statement, so it takes the write
lock before anything is read; on PostgreSQL it locks the row, so adds, re-runs and cancels
of one batch run one after another and a key checked under the lock (existing_items) is
still free when inserted. The unique (batch_id, key) constraint backs this up.

Progress is computed on read from the items' jobs (progress_rows): the worker never
touches a batch, and no hot row is updated at every job end. A batch's end (closed or
cancelled, every item's job terminal) is found later by the webhook relay's scan
(models/batch_completion.py), which sets ``ended_at``; a re-run reopens it. The reads
(progress, pages of items) live in models/batchreads.py and are importable from here too;
the re-run's reads and writes in models/batch_reruns.py.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from visionq.models.batchjobs import chunks
from visionq.models.batchreads import EXPIRED, ItemRow, ProgressRow, items_page, progress_rows
from visionq.models.budgets import settle
from visionq.models.ended import ENDED_COLUMNS, EndedJob, ended_from_row
from visionq.models.jobs import decode_cursor, is_job_id
from visionq.models.tables import (
    BATCH_ITEMS,
    BATCHES,
    JOBS,
    Batch,
    BatchState,
    JobStatus,
    utcnow,
)
from visionq.models.webhook_outbox import EventType, NewEvent, record_events

MISSING = "missing"

__all__ = [
    "EXPIRED",
    "MISSING",
    "BatchNameTakenError",
    "ItemRow",
    "ProgressRow",
    "add_counts",
    "cancel_batch",
    "close_batch",
    "create_batch",
    "existing_items",
    "find_batch",
    "get_batch",
    "insert_items",
    "items_page",
    "list_batches",
    "lock_for_write",
    "progress_rows",
]


class BatchNameTakenError(Exception):
    """The tenant already has a batch of that name (``existing``)."""

    def __init__(self, existing: Batch) -> None:
        super().__init__(f"a batch named {existing.name!r} exists: {existing.id}")
        self.existing = existing


def create_batch(
    session: Session,
    *,
    tenant: str,
    name: str,
    task: str,
    model: str | None,
    prompt: str | None,
    labels: list[str] | None,
    options: dict[str, Any],
    response_schema: dict[str, Any] | None,
    defaults_hash: str,
    expected_items: int | None,
) -> Batch:
    """Add an open batch. Raises BatchNameTakenError (with the batch found) when the
    tenant has one of that name, created before or concurrently: the caller compares
    ``defaults_hash`` to answer it again or refuse."""
    now = utcnow()
    batch = Batch(
        id=str(uuid.uuid4()), tenant=tenant, name=name, state=BatchState.OPEN, task=task,
        model=model, prompt=prompt, labels=labels, options=options,
        response_schema=response_schema, defaults_hash=defaults_hash,
        expected_items=expected_items, created_at=now, updated_at=now,
    )  # fmt: skip
    try:
        # A savepoint: the unique name is the arbiter between concurrent creates.
        with session.begin_nested():
            session.add(batch)
    except IntegrityError:
        existing = find_batch(session, tenant=tenant, name=name)
        if existing is None:  # the conflict was not the name: not ours to explain
            raise
        raise BatchNameTakenError(existing) from None
    return batch


def get_batch(session: Session, *, tenant: str, batch_id: str) -> Batch | None:
    """The tenant's batch, or None (also for other tenants' batches and non-ids)."""
    if not is_job_id(batch_id):  # the same UUID form as job ids
        return None
    return session.scalar(select(Batch).where(Batch.id == batch_id, Batch.tenant == tenant))


def find_batch(session: Session, *, tenant: str, name: str) -> Batch | None:
    """The tenant's batch of that name, or None."""
    return session.scalar(select(Batch).where(Batch.tenant == tenant, Batch.name == name))


def _encode_cursor(batch: Batch) -> str:
    # The jobs' cursor format (decoded by models.jobs.decode_cursor): created_at and id.
    raw = json.dumps([batch.created_at.isoformat(), batch.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def list_batches(
    session: Session,
    *,
    tenant: str,
    limit: int,
    cursor: str | None,
    name: str | None = None,
    state: str | None = None,
) -> tuple[list[Batch], str | None]:
    """A page of the tenant's batches, newest first, and the cursor of the next page.
    Raises models.jobs.InvalidCursorError for a cursor this API did not make."""
    query = select(Batch).where(Batch.tenant == tenant)
    if name is not None:
        query = query.where(Batch.name == name)
    if state is not None:
        query = query.where(Batch.state == state)
    if cursor:
        created, batch_id = decode_cursor(cursor)
        query = query.where(
            or_(Batch.created_at < created, and_(Batch.created_at == created, Batch.id < batch_id))
        )
    query = query.order_by(Batch.created_at.desc(), Batch.id.desc()).limit(limit + 1)
    batches = list(session.scalars(query))
    next_cursor = _encode_cursor(batches[limit - 1]) if len(batches) > limit else None
    return batches[:limit], next_cursor


def lock_for_write(
    session: Session,
    *,
    tenant: str,
    batch_id: str,
    allow: Collection[str],
    reopen: bool = False,
) -> str | None:
    """Start a write transaction on the batch (see the module docstring): None when it is
    locked and in one of the ``allow`` states; else the state found ("missing": no such
    batch of the tenant), and the caller writes nothing. ``reopen`` (an add or a re-run:
    new jobs to wait for) clears ``ended_at``, so its next completion sends a new
    batch.completed event."""
    if not is_job_id(batch_id):
        return MISSING
    values: dict[str, Any] = {"updated_at": utcnow()}
    if reopen:
        values["ended_at"] = None
    locked = session.execute(
        update(BATCHES)
        .where(
            BATCHES.c.id == batch_id,
            BATCHES.c.tenant == tenant,
            BATCHES.c.state.in_(list(allow)),
        )
        .values(**values)
    )
    if locked.rowcount:  # type: ignore[attr-defined]
        return None
    found = session.scalar(
        select(BATCHES.c.state).where(BATCHES.c.id == batch_id, BATCHES.c.tenant == tenant)
    )
    return found if found is not None else MISSING


def existing_items(session: Session, batch_id: str, keys: Collection[str]) -> dict[str, str | None]:
    """The keys among ``keys`` the batch has, with their latest job id (None: expired)."""
    found: dict[str, str | None] = {}
    for chunk in chunks(set(keys)):
        query = select(BATCH_ITEMS.c.key, BATCH_ITEMS.c.job_id).where(
            BATCH_ITEMS.c.batch_id == batch_id, BATCH_ITEMS.c.key.in_(chunk)
        )
        found.update((row.key, row.job_id) for row in session.execute(query))
    return found


def insert_items(session: Session, batch_id: str, pairs: Sequence[tuple[str, str]]) -> None:
    """Add items (key, job id), in this order (their ids follow it). A key the batch has
    raises IntegrityError: call under lock_for_write after existing_items."""
    now = utcnow()
    rows = [
        {"batch_id": batch_id, "key": key, "job_id": job_id, "reruns": 0,
         "created_at": now, "updated_at": now}
        for key, job_id in pairs
    ]  # fmt: skip
    for chunk in chunks(rows):
        session.connection().execute(insert(BATCH_ITEMS), chunk)


def add_counts(
    session: Session,
    batch_id: str,
    *,
    items: int = 0,
    est_min_nusd: int = 0,
    est_max_nusd: int = 0,
    est_tokens: int = 0,
    received: int = 0,
    referenced: int = 0,
    prior_cost_nusd: int = 0,
    prior_tokens: int = 0,
) -> None:
    """Add to the batch's counters (one UPDATE; the values are increments). Called when
    jobs are added or re-run: it reopens the batch (``ended_at`` NULL) for the webhook
    relay's completion scan, so the next completion sends a new batch.completed."""
    c = BATCHES.c
    session.execute(
        update(BATCHES)
        .where(c.id == batch_id)
        .values(
            ended_at=None,
            item_count=c.item_count + items,
            estimate_min_nusd=c.estimate_min_nusd + est_min_nusd,
            estimate_max_nusd=c.estimate_max_nusd + est_max_nusd,
            estimate_input_tokens=c.estimate_input_tokens + est_tokens,
            images_received=c.images_received + received,
            images_referenced=c.images_referenced + referenced,
            prior_cost_nusd=c.prior_cost_nusd + prior_cost_nusd,
            prior_tokens=c.prior_tokens + prior_tokens,
            updated_at=utcnow(),
        )
    )


def set_expected_items(session: Session, batch_id: str, expected_items: int) -> None:
    """Record how many items the creator now expects (a resumed run counts its files
    again: the estimate extrapolates to the new count)."""
    session.execute(
        update(BATCHES)
        .where(BATCHES.c.id == batch_id)
        .values(expected_items=expected_items, updated_at=utcnow())
    )


def close_batch(session: Session, *, tenant: str, batch_id: str) -> str | None:
    """Close an open batch (no more items; its jobs run on and may be re-run). None when
    it is closed now or was already; else the state found ("cancelled", "missing")."""
    found = lock_for_write(session, tenant=tenant, batch_id=batch_id, allow=(BatchState.OPEN,))
    if found == BatchState.CLOSED:
        return None
    if found is not None:
        return found
    now = utcnow()
    session.execute(
        update(BATCHES)
        .where(BATCHES.c.id == batch_id)
        .values(state=BatchState.CLOSED, closed_at=now, updated_at=now)
    )
    return None


def cancel_batch(session: Session, *, tenant: str, batch_id: str) -> list[EndedJob]:
    """Cancel the batch (idempotent) and its items' queued jobs, releasing their budget
    reservations in one settlement and writing their job.cancelled events; returns the
    jobs it cancelled (none, also for no such batch). Running jobs finish: their calls are
    paid. A worker claims only queued jobs, so a job cancelled here never runs. Jobs
    waiting in a Gemini batch (running under the batch's token, nothing billed until Gemini
    answers them) are cancelled too: their late answers are discarded, and a batch left
    with no job is cancelled at Gemini."""
    if not is_job_id(batch_id):
        return []
    now = utcnow()
    # The first write: the batch row (its lock serializes this with adds and re-runs).
    changed = session.execute(
        update(BATCHES)
        .where(BATCHES.c.id == batch_id, BATCHES.c.tenant == tenant)
        .values(
            state=BatchState.CANCELLED,
            cancelled_at=func.coalesce(BATCHES.c.cancelled_at, now),
            updated_at=now,
        )
    )
    if not changed.rowcount:  # type: ignore[attr-defined]
        return []
    items = select(BATCH_ITEMS.c.job_id).where(
        BATCH_ITEMS.c.batch_id == batch_id, BATCH_ITEMS.c.job_id.is_not(None)
    )
    ended = session.execute(
        update(JOBS)
        .where(
            or_(
                JOBS.c.status == JobStatus.QUEUED,
                (JOBS.c.status == JobStatus.RUNNING) & JOBS.c.gemini_batch_id.is_not(None),
            ),
            JOBS.c.id.in_(items),
        )
        .values(
            status=JobStatus.CANCELLED,
            finished_at=now,
            error_code="cancelled",
            error_message="The batch was cancelled.",
        )
        .returning(*ENDED_COLUMNS)
    ).all()
    cancelled = [ended_from_row(row, JobStatus.CANCELLED) for row in ended]
    reserved = sum(job.reserved_nusd for job in cancelled)
    if reserved:
        settle(session, tenant=tenant, reserved_nusd=reserved, cost_nusd=0)
    record_events(
        session,
        [NewEvent(tenant, EventType.JOB_CANCELLED, job.id, job.callback_url) for job in cancelled],
    )
    return cancelled
