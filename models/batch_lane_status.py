"""What the Gemini Batch lane holds, read for people: the lane as a whole (/readyz's
``batch_lane`` detail) and the Gemini batches a user batch's items wait in (GET
/v1/batches/{id}). Each is one small aggregate query; nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from visionq.models.gemini_batches import LIVE_STATES, GeminiBatchState
from visionq.models.tables import BATCH_ITEMS, GEMINI_BATCHES, JOBS, JobStatus

__all__ = ["GeminiWait", "LaneStatus", "UserBatchWait", "lane_status", "user_batch_wait"]

# Gemini's terminal states: the batch ended at Gemini, its results not all stored yet.
_ENDED = (
    GeminiBatchState.SUCCEEDED,
    GeminiBatchState.FAILED,
    GeminiBatchState.CANCELLED,
    GeminiBatchState.EXPIRED,
)
_UNFINISHED = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)
# At most this many Gemini batches are listed for one user batch (oldest first).
MAX_LISTED = 20


@dataclass(frozen=True)
class LaneStatus:
    """The batch lane's rows not closed: ``live`` (creating, pending or running at Gemini),
    of them ``creating``; ``ended`` (ended at Gemini, results being stored); ``stalled``
    and ``lost`` (jobs being re-sent); of the live ones, how many made no progress for
    VISIONQ_BATCH_STALL_S (``past_stall``: the watchdog's next tick acts on them), and how
    long ago the oldest one last progressed (None: no live batch)."""

    live: int = 0
    creating: int = 0
    ended: int = 0
    stalled: int = 0
    lost: int = 0
    past_stall: int = 0
    oldest_progress_s: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """For /readyz's details."""
        return {
            "live": self.live,
            "creating": self.creating,
            "ended": self.ended,
            "stalled": self.stalled,
            "lost": self.lost,
            "past_stall": self.past_stall,
            "oldest_progress_s": (
                None if self.oldest_progress_s is None else round(self.oldest_progress_s)
            ),
        }


def lane_status(session: Session, *, now: datetime, stall_s: float) -> LaneStatus:
    """The lane's rows not closed, by state (one GROUP BY over gemini_batches)."""
    g = GEMINI_BATCHES.c
    cutoff = now - timedelta(seconds=stall_s)
    query = (
        select(
            g.state,
            func.count(),
            func.min(g.progress_at),
            func.sum(case((g.progress_at < cutoff, 1), else_=0)),
        )
        .where(g.state != GeminiBatchState.CLOSED.value)
        .group_by(g.state)
    )
    counts: dict[str, int] = {}
    late = 0
    oldest: datetime | None = None
    for state, count, progress_at, past in session.execute(query):
        counts[state] = int(count)
        if state in LIVE_STATES:
            late += int(past or 0)
            if progress_at is not None and (oldest is None or progress_at < oldest):
                oldest = progress_at
    return LaneStatus(
        live=sum(counts.get(state.value, 0) for state in LIVE_STATES),
        creating=counts.get(GeminiBatchState.CREATING.value, 0),
        ended=sum(counts.get(state.value, 0) for state in _ENDED),
        stalled=counts.get(GeminiBatchState.STALLED.value, 0),
        lost=counts.get(GeminiBatchState.LOST.value, 0),
        past_stall=late,
        oldest_progress_s=None if oldest is None else max((now - oldest).total_seconds(), 0.0),
    )


@dataclass(frozen=True)
class GeminiWait:
    """One Gemini batch some of a user batch's unfinished items wait in."""

    id: str
    state: str
    gemini_state: str | None
    items: int  # this user batch's items in it
    requests: int  # all its requests (other batches' jobs too)
    answered: int | None  # lines Gemini answered (succeeded + failed), when it said
    progress_at: datetime


@dataclass(frozen=True)
class UserBatchWait:
    """A user batch's unfinished items in the batch lane: waiting to be gathered into a
    Gemini batch, and per Gemini batch (oldest first, at most MAX_LISTED)."""

    gathering: int
    batches: list[GeminiWait]

    @property
    def in_batches(self) -> int:
        return sum(batch.items for batch in self.batches)


def _answered(stats: dict[str, Any] | None) -> int | None:
    if not stats:
        return None
    done = [stats.get(key) for key in ("successfulRequestCount", "failedRequestCount")]
    if all(value is None for value in done):
        return None
    return sum(int(value or 0) for value in done)


def user_batch_wait(session: Session, batch_id: str) -> UserBatchWait | None:
    """Where the unfinished items of user batch ``batch_id`` wait in the batch lane (None:
    none does). One query: the items' latest jobs counted per Gemini batch (NULL: not
    gathered yet), joined to gemini_batches."""
    j = JOBS.c
    waiting = (
        select(j.gemini_batch_id.label("gemini_batch_id"), func.count().label("item_count"))
        .select_from(BATCH_ITEMS.join(JOBS, j.id == BATCH_ITEMS.c.job_id))
        .where(
            BATCH_ITEMS.c.batch_id == batch_id,
            j.status.in_(_UNFINISHED),
            j.lane == "batch",  # a job released to the sync lane leaves its Gemini batch
        )
        .group_by(j.gemini_batch_id)
        .subquery()
    )
    g = GEMINI_BATCHES.c
    query = (
        select(
            waiting.c.item_count, g.id, g.state, g.gemini_state, g.job_count, g.stats, g.progress_at
        )
        .select_from(waiting.outerjoin(GEMINI_BATCHES, g.id == waiting.c.gemini_batch_id))
        .order_by(g.created_at.is_(None).desc(), g.created_at)
    )
    gathering = 0
    batches: list[GeminiWait] = []
    for items, row_id, state, gemini_state, requests, stats, progress_at in session.execute(query):
        if row_id is None:
            gathering += int(items)
        elif len(batches) < MAX_LISTED:
            batches.append(
                GeminiWait(
                    id=row_id,
                    state=state,
                    gemini_state=gemini_state,
                    items=int(items),
                    requests=int(requests),
                    answered=_answered(stats),
                    progress_at=progress_at,
                )
            )
    if not gathering and not batches:
        return None
    return UserBatchWait(gathering=gathering, batches=batches)
