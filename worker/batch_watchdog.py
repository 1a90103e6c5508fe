"""The batch lane's watchdog: no Gemini batch, and no job waiting for one, is left waiting.

Each tick :func:`judge` (pure) looks at every live batch and the jobs it still holds:

- ``creating`` (the create's answer was lost, or its lane died) → ``adopt_or_lose``: found
  at Gemini by display name → adopted; not found once the submitter's claim and
  VISIONQ_BATCH_CREATE_GRACE_S passed → ``lost``, its jobs re-sent (worker/batch_reconcile.py);
- live, and a cancel was asked or every job of it ended (cancelled by users) → ``cancel``
  at Gemini (the poller then sees CANCELLED and closes it);
- ``pending``/``running`` with lines still pending and no progress (batchStats,
  updateTime) for VISIONQ_BATCH_STALL_S → ``stalled``: cancelled at Gemini, the row marked;
  when Gemini confirms (CANCELLED), the poller stores the lines it answered (paid for) and
  re-sends only the rest (``BatchStalled``). Still not confirmed at twice
  VISIONQ_BATCH_STALL_S → ``stalled_unconfirmed``: its jobs re-sent, the row closed;
- ``pending``/``running`` holding a job within VISIONQ_BATCH_SYNC_RESERVE_S of its deadline
  → ``release_near_deadline``: those jobs go to the sync lane now.

Batches Gemini ended (succeeded, failed, expired, cancelled) are the poller's
(worker/batch_follow.py); one the poller could not collect (a fault, a bug: it runs first
each tick) still has its jobs within VISIONQ_BATCH_SYNC_RESERVE_S of their deadline sent to
the sync lane (``release_near_deadline``), so none waits past its deadline on it. Jobs
still waiting for a batch (VISIONQ_BATCH_MAX_RUNNING reached) within
VISIONQ_BATCH_SYNC_RESERVE_S of their deadline go to the sync lane too. A job
released from a batch goes to a new batch while its deadline allows (:func:`resend_lane`),
else to the sync lane; its attempt is closed with the reason (``BatchStalled``,
``BatchDeadline``, ``BatchLost``). A released job's late line is not stored (the batch's
token no longer holds it), but what Gemini billed for it is recorded on its closed attempt
and counted in its job's cost (worker/batch_results.py).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy.orm import Session, sessionmaker

from visionq.models.gemini_batches import (
    BatchRow,
    GeminiBatchState,
    close_stray_attempts,
    live_batches,
    release_waiting,
    request_cancel,
    set_state,
    unfinished_jobs,
)
from visionq.models.settings import Settings
from visionq.models.tables import utcnow
from visionq.worker.batch_reconcile import BatchApi, Reconciler
from visionq.worker.batch_release import (
    ENDED,
    FOLLOWED,
    STALL_MARK,
    STANDARD,
    add_counts,
    give_up,
    release_held,
    resend_lane,
    resent,
)
from visionq.worker.errors import GeminiCallError

__all__ = ["BatchWatchdog", "WatchAction", "judge", "resend_lane"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WatchAction:
    """What the watchdog does with one batch, and why (written into closed attempts)."""

    kind: Literal[
        "ok", "stalled", "stalled_unconfirmed", "release_near_deadline", "adopt_or_lose", "cancel"
    ]
    reason: str
    job_ids: tuple[str, ...] = ()


def judge(  # noqa: PLR0911 - one return per rule of the table above
    row: BatchRow,
    unfinished: Mapping[str, datetime | None],
    *,
    now: datetime,
    settings: Settings,
) -> WatchAction:
    """The watchdog's decision for one batch row and the jobs it still holds (pure)."""
    name = row.gemini_name or row.id
    if row.state == GeminiBatchState.CREATING:
        # The lane gathers after the watchdog: a row still creating is a create whose answer
        # was lost or whose lane died. Adopting it when Gemini lists it is always safe
        # (accept is idempotent); it is lost only past its claim and the grace.
        held = row.claim_expires_at is not None and now < row.claim_expires_at
        state = "its submitter's claim still runs" if held else "its submitter's claim expired"
        return WatchAction(
            "adopt_or_lose", f"the create of batch {row.id} is unconfirmed ({state})"
        )
    if row.state in ENDED:
        # The poller collects an ended batch before the watchdog runs: one still here did
        # not get collected (a fault, a bug). Its jobs must still end by their deadlines.
        near = _near(unfinished, now, settings)
        if near:
            return WatchAction(
                "release_near_deadline",
                f"deadline within {settings.batch_sync_reserve_s:g} s and Gemini batch "
                f"{name} ended {row.state} but its results are not stored yet; sent at "
                "standard to hold it",
                near,
            )
        return WatchAction("ok", f"state {row.state}: the poller's")
    if row.state not in FOLLOWED:
        return WatchAction("ok", f"state {row.state}: the poller's")
    idle = (now - row.progress_at).total_seconds()
    if row.cancel_requested:
        if unfinished and idle >= 2 * settings.batch_stall_s:
            return WatchAction(
                "stalled_unconfirmed",
                f"Gemini batch {name} made no progress for {idle:.0f} s and did not confirm "
                f"its cancel (twice VISIONQ_BATCH_STALL_S = {settings.batch_stall_s:g}); "
                "sent again",
                tuple(sorted(unfinished)),
            )
        return WatchAction("cancel", f"cancel of Gemini batch {name} requested")
    if not unfinished:
        return WatchAction("cancel", f"every job of Gemini batch {name} ended (cancelled)")
    if idle >= settings.batch_stall_s and _lines_pending(row.stats):
        return WatchAction(
            "stalled",
            f"Gemini batch {name} made no progress for {idle:.0f} s with lines still "
            f"pending (VISIONQ_BATCH_STALL_S = {settings.batch_stall_s:g}); cancelled, its "
            "answered lines kept, the rest sent again",
            tuple(sorted(unfinished)),
        )
    near = _near(unfinished, now, settings)
    if near:
        return WatchAction(
            "release_near_deadline",
            f"deadline within {settings.batch_sync_reserve_s:g} s and Gemini batch {name} has "
            "not answered; sent at standard to hold it",
            near,
        )
    return WatchAction("ok", "progressing")


def _near(
    unfinished: Mapping[str, datetime | None], now: datetime, settings: Settings
) -> tuple[str, ...]:
    """The jobs within VISIONQ_BATCH_SYNC_RESERVE_S of their deadline."""
    reserve = timedelta(seconds=settings.batch_sync_reserve_s)
    return tuple(
        sorted(job for job, deadline in unfinished.items() if deadline and deadline - now < reserve)
    )


def _lines_pending(stats: Mapping[str, int]) -> bool:
    """Whether the batch still has lines to answer (batchStats; unknown counts as yes): a
    batch that answered every line is writing its output, not stalled."""
    pending = stats.get("pendingRequestCount")
    if pending is not None:
        return pending > 0
    total = stats.get("requestCount")
    if total is None:
        return True
    return stats.get("successfulRequestCount", 0) + stats.get("failedRequestCount", 0) < total


class BatchWatchdog:
    """Acts on :func:`judge`'s decisions for this Gemini project's batches."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        batches: BatchApi,
        settings: Settings,
        identity: str,
    ) -> None:
        self._sessions = sessions
        self._batches = batches
        self._settings = settings
        self._identity = identity
        self._reconciler = Reconciler(sessions, batches, settings, identity)

    def run_once(self) -> dict[str, int]:
        """Judge every live batch and act; counts by action and jobs re-sent per lane."""
        counts: dict[str, int] = {}
        now = utcnow()
        with self._sessions() as session:
            rows = [
                (row, unfinished_jobs(session, row.id))
                for row in live_batches(session, self._identity)
            ]
        overdue = []
        for row, unfinished in rows:
            action = judge(row, unfinished, now=now, settings=self._settings)
            if action.kind == "ok":
                continue
            add_counts(counts, {action.kind: 1})
            if action.kind == "adopt_or_lose":
                overdue.append(row)
            elif action.kind == "cancel":
                self._cancel(row, action, counts)
            elif action.kind == "stalled":
                self._stall_cancel(row, action, counts)
            elif action.kind == "stalled_unconfirmed":
                self._stalled(row, action, now, counts)
            else:
                self._near_deadline(row, action, now, counts)
        if overdue:
            add_counts(counts, self._reconciler.match_creating(overdue))
        add_counts(counts, {"waiting_to_standard": self._waiting_to_standard(now)})
        return {key: value for key, value in counts.items() if value}

    def _cancel(self, row: BatchRow, action: WatchAction, counts: dict[str, int]) -> None:
        with self._sessions.begin() as session:
            close_stray_attempts(session, row.id, reason=action.reason)
        if row.gemini_name is None:
            return
        try:
            self._batches.cancel(row.gemini_name)
        except GeminiCallError as exc:  # asked again next tick; a 404 is the poller's
            log.warning("Gemini batch %s not cancelled (%s); asked again next tick",
                        row.gemini_name, exc.message)  # fmt: skip
            add_counts(counts, {"cancel_errors": 1})
            return
        log.info("Gemini batch %s cancelled: %s", row.gemini_name, action.reason)

    def _stall_cancel(self, row: BatchRow, action: WatchAction, counts: dict[str, int]) -> None:
        """Cancel a stalled batch at Gemini, its jobs still held: the lines it answered were
        paid for, and are stored from its CANCELLED output (worker/batch_follow.py)."""
        with self._sessions.begin() as session:
            if not request_cancel(session, row.id):
                return
            set_state(session, row.id, row.state, from_states=[row.state],
                      error=f"{STALL_MARK}{action.reason}")  # fmt: skip
        log.warning("%s", action.reason)
        self._cancel(row, action, counts)

    def _stalled(
        self, row: BatchRow, action: WatchAction, now: datetime, counts: dict[str, int]
    ) -> None:
        with self._sessions.begin() as session:
            released = give_up(
                session, row, GeminiBatchState.STALLED, now=now, reason=action.reason,
                error_class="BatchStalled", settings=self._settings,
            )  # fmt: skip
        if released is None:
            return
        add_counts(counts, resent(released))
        log.warning("%s: %d jobs re-sent", action.reason, sum(released.values()))
        if row.gemini_name is not None:
            try:
                self._batches.cancel(row.gemini_name)
            except GeminiCallError as exc:  # the reconciler cancels it as an orphan
                log.warning("stalled Gemini batch %s not cancelled (%s); the reconciler "
                            "cancels it later", row.gemini_name, exc.message)  # fmt: skip

    def _near_deadline(
        self, row: BatchRow, action: WatchAction, now: datetime, counts: dict[str, int]
    ) -> None:
        with self._sessions.begin() as session:
            released = release_held(
                session, row, now=now, reason=action.reason, error_class="BatchDeadline",
                settings=self._settings, only=action.job_ids, lane=STANDARD,
            )  # fmt: skip
        add_counts(counts, resent(released))

    def _waiting_to_standard(self, now: datetime) -> int:
        """Jobs still waiting for a batch near their deadline go to the sync lane."""
        reserve = self._settings.batch_sync_reserve_s
        # One message for every reason a job can still be waiting: a free batch slot
        # (VISIONQ_BATCH_MAX_RUNNING), an identical job's answer (the cache), the lane.
        reason = (
            f"still waiting for a Gemini batch {reserve:g} s before its deadline (for a free "
            "batch slot under VISIONQ_BATCH_MAX_RUNNING, for an identical job's answer, or "
            "because the lane was down); sent at standard to hold the deadline"
        )
        with self._sessions.begin() as session:
            moved = release_waiting(
                session, deadline_before=now + timedelta(seconds=reserve), reason=reason
            )
        return len(moved)
