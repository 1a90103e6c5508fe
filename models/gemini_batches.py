"""Gemini batches of the batch lane (table ``gemini_batches``) and the jobs they hold.

A Gemini batch owns its jobs under one lease token, ``batch_token(id)``: attaching a job sets
``jobs.gemini_batch_id`` and ``lease_token`` in one conditional UPDATE, so a job is in at most
one live batch, and only the holder of that token may end it (``models.outcomes`` fences on
it) or release it. A late answer of a batch whose jobs were re-sent finds another token and
is discarded, never stored twice. The row is written before the create is sent (``creating``)
and matched with Gemini's batch afterwards by its display name (prefix + id).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

# The jobs side lives in gemini_batch_jobs.py; the lane imports all of it from here.
from visionq.models.gemini_batch_jobs import (
    Gatherable,
    attach_jobs,
    batch_token,
    close_stray_attempts,
    former_jobs,
    gather_models,
    gatherable,
    job_specs,
    open_attempts,
    release_jobs,
    release_waiting,
    unfinished_jobs,
)
from visionq.models.tables import GEMINI_BATCHES, utcnow

__all__ = [
    "LIVE_STATES",
    "BatchRow",
    "Gatherable",
    "GeminiBatchState",
    "accept",
    "batch_id_of",
    "batch_token",
    "close_stray_attempts",
    "count_live",
    "display_name",
    "former_jobs",
    "gather_models",
    "gatherable",
    "get_row",
    "job_specs",
    "live_batches",
    "observe",
    "open_attempts",
    "readopt",
    "record_batch",
    "release_jobs",
    "release_waiting",
    "request_cancel",
    "set_request_bytes",
    "set_state",
    "state_of",
    "take_over",
    "unfinished_jobs",
]


class GeminiBatchState(enum.StrEnum):
    """Our view of a Gemini batch (see the plan's state machine in README)."""

    CREATING = "creating"  # row and jobs recorded; the create is not known to have landed
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # Gemini's terminal states: results not yet all stored
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    LOST = "lost"  # Gemini has no such batch (the create never landed, or it vanished)
    STALLED = "stalled"  # the watchdog gave up on it: jobs re-sent, Gemini cancel asked
    CLOSED = "closed"  # every job stored, failed or re-sent: terminal for us


LIVE_STATES = (GeminiBatchState.CREATING, GeminiBatchState.PENDING, GeminiBatchState.RUNNING)
# Gemini's batch states (BATCH_STATE_*, or JOB_STATE_* as the SDK renames them) -> ours.
_GEMINI_STATES = {
    "PENDING": GeminiBatchState.PENDING,
    "QUEUED": GeminiBatchState.PENDING,
    "RUNNING": GeminiBatchState.RUNNING,
    "SUCCEEDED": GeminiBatchState.SUCCEEDED,
    "FAILED": GeminiBatchState.FAILED,
    "CANCELLED": GeminiBatchState.CANCELLED,
    "EXPIRED": GeminiBatchState.EXPIRED,
}


def state_of(gemini_state: str | None) -> GeminiBatchState | None:
    """Our state for Gemini's (``BATCH_STATE_RUNNING`` or ``JOB_STATE_RUNNING``); None when
    unknown (unspecified, or a state Gemini added since)."""
    if not gemini_state:
        return None
    return _GEMINI_STATES.get(gemini_state.rsplit("_STATE_", 1)[-1].upper())


def display_name(prefix: str, batch_id: str) -> str:
    """The display name the batch is created with: how it is found again after a crash."""
    return f"{prefix}{batch_id}"


def batch_id_of(prefix: str, name: str | None) -> str | None:
    """Our batch id in a Gemini batch's display name; None when the name is not ours."""
    if not name or not name.startswith(prefix):
        return None
    rest = name[len(prefix) :]
    try:
        return str(uuid.UUID(rest)) if len(rest) == 36 else None
    except ValueError:
        return None


@dataclass(frozen=True)
class BatchRow:
    """One ``gemini_batches`` row as the lane reads it."""

    id: str
    identity: str
    model: str
    state: str
    gemini_name: str | None
    input_mode: str
    input_file: str | None
    output_file: str | None
    job_count: int
    resends: int
    stats: dict[str, int]
    gemini_state: str | None
    progress_at: datetime
    claim_expires_at: datetime | None
    cancel_requested: bool
    created_at: datetime
    error: str | None = None
    gemini_update_time: datetime | None = None


_ROW_COLUMNS = (
    GEMINI_BATCHES.c.id, GEMINI_BATCHES.c.identity, GEMINI_BATCHES.c.model,
    GEMINI_BATCHES.c.state, GEMINI_BATCHES.c.gemini_name, GEMINI_BATCHES.c.input_mode,
    GEMINI_BATCHES.c.input_file, GEMINI_BATCHES.c.output_file, GEMINI_BATCHES.c.job_count,
    GEMINI_BATCHES.c.resends, GEMINI_BATCHES.c.stats, GEMINI_BATCHES.c.gemini_state,
    GEMINI_BATCHES.c.progress_at, GEMINI_BATCHES.c.claim_expires_at,
    GEMINI_BATCHES.c.cancel_requested, GEMINI_BATCHES.c.created_at, GEMINI_BATCHES.c.error,
    GEMINI_BATCHES.c.gemini_update_time,
)  # fmt: skip


def _row(row: Any) -> BatchRow:
    values = row._asdict()
    values["stats"] = {str(k): int(v) for k, v in (values["stats"] or {}).items()}
    values["cancel_requested"] = bool(values["cancel_requested"])
    return BatchRow(**values)


def count_live(session: Session, identity: str) -> int:
    """Batches of this Gemini project that may be running at Gemini (the running cap)."""
    query = select(func.count()).where(
        GEMINI_BATCHES.c.identity == identity, GEMINI_BATCHES.c.state.in_(list(LIVE_STATES))
    )
    return int(session.scalar(query) or 0)


def record_batch(
    session: Session,
    *,
    batch_id: str,
    identity: str,
    model: str,
    job_ids: Sequence[str],
    input_mode: str,
    resends: int,
    claim_s: float,
) -> list[str]:
    """Record a batch before its create is sent: the row (``creating``, claimed for
    ``claim_s``), the jobs still waiting attached under its token, one attempt each.

    Returns the ids attached, in the order given (a job cancelled or taken by another batch
    meanwhile is left out). Nothing attached: no row is kept. The row is the first write,
    so concurrent calls queue on the database and each job lands in one batch only.
    """
    now = utcnow()
    session.execute(
        insert(GEMINI_BATCHES).values(
            id=batch_id, identity=identity, model=model, state=GeminiBatchState.CREATING,
            input_mode=input_mode, job_count=len(job_ids), request_bytes=0, resends=resends,
            progress_at=now, claim=uuid.uuid4().hex,
            claim_expires_at=now + timedelta(seconds=claim_s), created_at=now,
        )
    )  # fmt: skip
    attached = attach_jobs(session, batch_id, model=model, job_ids=job_ids, now=now)
    if not attached:
        session.execute(delete(GEMINI_BATCHES).where(GEMINI_BATCHES.c.id == batch_id))
    elif len(attached) != len(job_ids):
        session.execute(
            update(GEMINI_BATCHES)
            .where(GEMINI_BATCHES.c.id == batch_id)
            .values(job_count=len(attached))
        )
    return attached


def accept(session: Session, batch_id: str, *, gemini_name: str, input_file: str | None) -> bool:
    """Gemini has the batch (its create answered, or the reconciler found it by name):
    ``creating`` -> ``pending`` with its name. Idempotent: True too when the row already
    holds that name (the reconciler adopted it first; the submitter's answer arrives
    after). False when the row left ``creating`` otherwise (given up as lost)."""
    now = utcnow()
    changed = session.execute(
        update(GEMINI_BATCHES)
        .where(
            GEMINI_BATCHES.c.id == batch_id,
            GEMINI_BATCHES.c.state == GeminiBatchState.CREATING,
        )
        .values(
            state=GeminiBatchState.PENDING,
            gemini_name=gemini_name,
            input_file=func.coalesce(input_file, GEMINI_BATCHES.c.input_file),
            claim=None,
            claim_expires_at=None,
            submitted_at=func.coalesce(GEMINI_BATCHES.c.submitted_at, now),
            accepted_at=now,
            progress_at=now,
        )
    )
    if changed.rowcount:  # type: ignore[attr-defined]
        return True
    same = session.execute(
        update(GEMINI_BATCHES)
        .where(GEMINI_BATCHES.c.id == batch_id, GEMINI_BATCHES.c.gemini_name == gemini_name)
        .values(input_file=func.coalesce(GEMINI_BATCHES.c.input_file, input_file))
    )
    return bool(same.rowcount)  # type: ignore[attr-defined]


def set_request_bytes(session: Session, batch_id: str, request_bytes: int) -> None:
    """Record the size of the create body (inline) or JSONL file, once built."""
    session.execute(
        update(GEMINI_BATCHES)
        .where(GEMINI_BATCHES.c.id == batch_id)
        .values(request_bytes=request_bytes, submitted_at=utcnow())
    )


def observe(
    session: Session,
    batch_id: str,
    *,
    gemini_state: str,
    update_time: datetime | None,
    stats: Mapping[str, int],
    output_file: str | None,
) -> BatchRow:
    """Store what Gemini says of the batch. ``progress_at`` moves only when its stats or
    updateTime changed (the watchdog's clock); a ``pending``/``running`` row follows
    Gemini's state (a terminal one is the poller's cue to store results)."""
    current = get_row(session, batch_id)
    if current is None:
        raise LookupError(f"no Gemini batch row {batch_id}")
    now = utcnow()
    clean = {str(k): int(v) for k, v in stats.items()}
    values: dict[str, Any] = {"gemini_state": gemini_state, "stats": clean}
    if update_time is not None:
        values["gemini_update_time"] = update_time
    if clean != current.stats or (
        update_time is not None and update_time != current.gemini_update_time
    ):
        values["progress_at"] = now
    if output_file:
        values["output_file"] = output_file
    ours = state_of(gemini_state)
    followed = (GeminiBatchState.PENDING, GeminiBatchState.RUNNING)
    if ours is not None and current.state in followed and ours != current.state:
        values["state"] = ours
        if ours not in followed:
            values["ended_at"] = now
    session.execute(update(GEMINI_BATCHES).where(GEMINI_BATCHES.c.id == batch_id).values(**values))
    row = get_row(session, batch_id)
    assert row is not None  # read in the same transaction
    return row


def set_state(
    session: Session,
    batch_id: str,
    state: str,
    *,
    from_states: Collection[str],
    error: str | None = None,
) -> bool:
    """Move the row to ``state`` if it is in one of ``from_states``; False otherwise."""
    now = utcnow()
    values: dict[str, Any] = {"state": state, "claim": None, "claim_expires_at": None}
    if state == GeminiBatchState.CLOSED:
        values["closed_at"] = now
    if state not in LIVE_STATES:
        values["ended_at"] = func.coalesce(GEMINI_BATCHES.c.ended_at, now)
    if error is not None:
        values["error"] = error
    changed = session.execute(
        update(GEMINI_BATCHES)
        .where(GEMINI_BATCHES.c.id == batch_id, GEMINI_BATCHES.c.state.in_(list(from_states)))
        .values(**values)
    )
    return bool(changed.rowcount)  # type: ignore[attr-defined]


def request_cancel(session: Session, batch_id: str) -> bool:
    """Ask the lane to cancel the batch at Gemini (next tick); False if it is not live."""
    changed = session.execute(
        update(GEMINI_BATCHES)
        .where(GEMINI_BATCHES.c.id == batch_id, GEMINI_BATCHES.c.state.in_(list(LIVE_STATES)))
        .values(cancel_requested=True)
    )
    return bool(changed.rowcount)  # type: ignore[attr-defined]


def live_batches(session: Session, identity: str, *, others: bool = False) -> list[BatchRow]:
    """Every batch of this Gemini project that is not ``closed``, oldest first: the live
    ones and those whose results or jobs still need handling (filter on ``state``).
    ``others``: those of every other identity instead (recorded under another key or
    endpoint; worker/batch_foreign.py)."""
    mine = GEMINI_BATCHES.c.identity == identity
    query = (
        select(*_ROW_COLUMNS)
        .where(~mine if others else mine, GEMINI_BATCHES.c.state != GeminiBatchState.CLOSED)
        .order_by(GEMINI_BATCHES.c.created_at, GEMINI_BATCHES.c.id)
    )
    return [_row(row) for row in session.execute(query)]


def take_over(session: Session, batch_id: str, *, identity: str) -> bool:
    """Move a batch recorded under another identity to ``identity`` (its Gemini batch is
    listed with this key: the same project, the key rotated); False if it is closed."""
    changed = session.execute(
        update(GEMINI_BATCHES)
        .where(
            GEMINI_BATCHES.c.id == batch_id,
            GEMINI_BATCHES.c.identity != identity,
            GEMINI_BATCHES.c.state != GeminiBatchState.CLOSED,
        )
        .values(identity=identity)
    )
    return bool(changed.rowcount)  # type: ignore[attr-defined]


def get_row(session: Session, batch_id: str) -> BatchRow | None:
    """The batch row, or None."""
    found = session.execute(select(*_ROW_COLUMNS).where(GEMINI_BATCHES.c.id == batch_id)).first()
    return None if found is None else _row(found)


def readopt(session: Session, batch_id: str, *, gemini_name: str) -> list[str]:
    """Take back a batch we declared lost before its create was confirmed, now that Gemini
    shows it (VISIONQ_BATCH_ORPHANS=adopt): its former jobs still waiting for a batch are
    attached again; returns them. None left: the row stays closed (the caller cancels the
    batch as an orphan). Jobs sent elsewhere meanwhile are not taken back: their lines are
    discarded by the token fence."""
    now = utcnow()
    reopened = session.execute(
        update(GEMINI_BATCHES)
        .where(
            GEMINI_BATCHES.c.id == batch_id,
            GEMINI_BATCHES.c.state.in_([GeminiBatchState.LOST, GeminiBatchState.CLOSED]),
            GEMINI_BATCHES.c.gemini_name.is_(None),
        )
        .values(
            state=GeminiBatchState.PENDING,
            gemini_name=gemini_name,
            accepted_at=now,
            progress_at=now,
            closed_at=None,
            ended_at=None,
            error=None,
        )
        .returning(GEMINI_BATCHES.c.model)
    ).first()
    if reopened is None:
        return []
    attached = attach_jobs(
        session, batch_id, model=reopened.model, job_ids=former_jobs(session, batch_id), now=now
    )
    values: dict[str, Any] = {"job_count": len(attached)}
    if not attached:
        values |= {"state": GeminiBatchState.CLOSED, "closed_at": now, "ended_at": now}
    session.execute(update(GEMINI_BATCHES).where(GEMINI_BATCHES.c.id == batch_id).values(**values))
    return attached
