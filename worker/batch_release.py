"""Where a job taken back from a Gemini batch goes, and taking a whole batch's jobs back.

Shared by the watchdog (worker/batch_watchdog.py) and the reconciler
(worker/batch_reconcile.py); the poller and the results use :func:`resend_lane` too. The
lane's state groups (FOLLOWED, ENDED) and report helper live here, once.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime

from sqlalchemy.orm import Session

from visionq.models.gemini_batches import (
    BatchRow,
    GeminiBatchState,
    close_stray_attempts,
    release_jobs,
    set_state,
    unfinished_jobs,
)
from visionq.models.settings import Settings
from visionq.worker.batch_gather import expected_batch_s

BATCH = "batch"
STANDARD = "standard"
# Starts the row's error of a batch the watchdog cancelled for a stall: when Gemini confirms
# the cancel, the poller stores its answered lines and re-sends the rest as ``BatchStalled``.
STALL_MARK = "stalled: "
# The rows the poller asks Gemini about.
FOLLOWED = (GeminiBatchState.PENDING, GeminiBatchState.RUNNING)
# Gemini's terminal states, as our rows name them: results to store, jobs to release.
ENDED = (
    GeminiBatchState.SUCCEEDED,
    GeminiBatchState.FAILED,
    GeminiBatchState.EXPIRED,
    GeminiBatchState.CANCELLED,
)
NOT_FOUND = 404


def add_counts(counts: dict[str, int], more: Mapping[str, int]) -> None:
    """Sum ``more`` into ``counts`` (the lane steps' reports)."""
    for key, value in more.items():
        counts[key] = counts.get(key, 0) + value


def resent(released: Mapping[str, int]) -> dict[str, int]:
    """A release's jobs per lane as the lane steps report them (``resent_batch``, ...)."""
    return {f"resent_{lane}": n for lane, n in released.items()}


def resend_lane(
    deadline_at: datetime | None,
    now: datetime,
    *,
    resends: int,
    expected_batch_s: float,
    settings: Settings,
) -> str:
    """``batch`` (a new Gemini batch) while the deadline leaves a batch's expected time
    (p90 or prior, times VISIONQ_TIER_SAFETY) and the job went out in fewer than
    VISIONQ_BATCH_MAX_RESENDS re-sends; else ``standard`` (the sync lane, in time)."""
    if resends >= settings.batch_max_resends:
        return STANDARD
    if deadline_at is None:
        return BATCH
    left = (deadline_at - now).total_seconds()
    return BATCH if left >= expected_batch_s * settings.tier_safety else STANDARD


def release_held(
    session: Session,
    row: BatchRow,
    *,
    now: datetime,
    reason: str,
    error_class: str,
    settings: Settings,
    only: Collection[str] | None = None,
    lane: str | None = None,
) -> dict[str, int]:
    """Release the jobs ``row`` still holds (or ``only`` those), each to ``lane`` or to
    :func:`resend_lane`'s choice; returns how many went to each lane."""
    held = unfinished_jobs(session, row.id)
    if only is not None:
        held = {job_id: held[job_id] for job_id in only if job_id in held}
    expected = expected_batch_s(session, row.model, settings) if lane is None else 0.0
    lanes: dict[str, list[str]] = {}
    for job_id, deadline in sorted(held.items()):
        target = lane or resend_lane(
            deadline, now, resends=row.resends, expected_batch_s=expected, settings=settings
        )
        lanes.setdefault(target, []).append(job_id)
    counts = {BATCH: 0, STANDARD: 0}
    for target, ids in lanes.items():
        counts[target] = counts.get(target, 0) + release_jobs(
            session, row.id, ids, lane=target, reason=reason, error_class=error_class
        )
    return counts


def give_up(
    session: Session,
    row: BatchRow,
    state: GeminiBatchState,
    *,
    now: datetime,
    reason: str,
    error_class: str,
    settings: Settings,
) -> dict[str, int] | None:
    """Mark a live batch ``state`` (lost or stalled), release every job it holds and close
    it, in the caller's transaction; None when the row had already left its state (another
    lane or the poller got there first)."""
    if not set_state(session, row.id, state, from_states=[row.state], error=reason):
        return None
    counts = release_held(
        session, row, now=now, reason=reason, error_class=error_class, settings=settings
    )
    close_stray_attempts(session, row.id, reason="the job ended while in the Gemini batch")
    set_state(session, row.id, GeminiBatchState.CLOSED, from_states=[state])
    return counts
