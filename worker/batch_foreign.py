"""Gemini batches recorded under another identity: nothing of ours is left waiting on them.

A row's identity is the Gemini project that owns the batch, as this process sees it (a hash
of endpoint and key, worker/gemini.gemini_identity). After a key rotation, an endpoint
change, or a ``visionq dev`` restart (a new emulator port and key) the rows of the former
identity are no longer this lane's: the poller, the watchdog and the reconciler follow only
their own. Left alone, their jobs would sit ``running`` with no lease, no run and no end.

- A batch this key still lists (the same project, the key rotated) is taken over by the
  reconciler (worker/batch_reconcile.py) and followed as ours.
- Any other is judged here every tick, by what needs no call to Gemini: jobs within
  VISIONQ_BATCH_SYNC_RESERVE_S of their deadline go to the standard lane at once; once the
  row made no progress for VISIONQ_BATCH_STALL_S (no lane of its identity polls it any more,
  or it stalled) it is marked ``lost``, the reason naming the identity change, and all its
  unfinished jobs are re-sent (a new batch, or the sync lane near the deadline). Its batch
  cannot be cancelled from here (another project); a late answer is discarded by the token
  fence. While a worker of the former identity still runs its lane (a rolling key change),
  that lane keeps following the batch and the rules here only do what its watchdog would.
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
    live_batches,
    unfinished_jobs,
)
from visionq.models.settings import Settings
from visionq.models.tables import utcnow
from visionq.worker.batch_release import STANDARD, add_counts, give_up, release_held, resent

__all__ = ["ForeignAction", "ForeignBatches", "judge_foreign"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ForeignAction:
    """What the lane does with one row of another identity, and why."""

    kind: Literal["wait", "lose", "release_near_deadline"]
    reason: str
    job_ids: tuple[str, ...] = ()


def _identity_change(row: BatchRow, identity: str) -> str:
    name = row.gemini_name or f"batch {row.id}"
    return (
        f"{name} was recorded under another Gemini key or endpoint (identity "
        f"{row.identity[:8]}…, this worker's {identity[:8]}…) and this key cannot reach it"
    )


def judge_foreign(
    row: BatchRow,
    unfinished: Mapping[str, datetime | None],
    *,
    identity: str,
    now: datetime,
    settings: Settings,
) -> ForeignAction:
    """The decision for one row of another identity and the jobs it still holds (pure)."""
    change = _identity_change(row, identity)
    idle = (now - max(row.progress_at, row.created_at)).total_seconds()
    if idle >= settings.batch_stall_s:
        return ForeignAction(
            "lose",
            f"{change}; no progress for {idle:.0f} s (VISIONQ_BATCH_STALL_S = "
            f"{settings.batch_stall_s:g}): lost, sent again",
            tuple(sorted(unfinished)),
        )
    reserve = timedelta(seconds=settings.batch_sync_reserve_s)
    near = tuple(
        sorted(job for job, deadline in unfinished.items() if deadline and deadline - now < reserve)
    )
    if near:
        return ForeignAction(
            "release_near_deadline",
            f"{change}; deadline within {settings.batch_sync_reserve_s:g} s: sent at standard "
            "to hold it",
            near,
        )
    return ForeignAction("wait", change)


class ForeignBatches:
    """Acts on :func:`judge_foreign` for every row of another identity (one lane step)."""

    def __init__(self, sessions: sessionmaker[Session], settings: Settings, identity: str) -> None:
        self._sessions = sessions
        self._settings = settings
        self._identity = identity
        self._warned: set[str] = set()

    def run_once(self) -> dict[str, int]:
        """Judge and act once; counts ``foreign_lost`` and jobs re-sent per lane."""
        counts: dict[str, int] = {}
        now = utcnow()
        with self._sessions() as session:
            rows = [
                (row, unfinished_jobs(session, row.id))
                for row in live_batches(session, self._identity, others=True)
            ]
        for row, unfinished in rows:
            action = judge_foreign(
                row, unfinished, identity=self._identity, now=now, settings=self._settings
            )
            if row.id not in self._warned:
                self._warned.add(row.id)
                log.warning("%s: its %d unfinished jobs are released by their deadline or "
                            "after VISIONQ_BATCH_STALL_S", action.reason.split(";")[0],
                            len(unfinished))  # fmt: skip
            if action.kind == "lose":
                self._lose(row, action, now, counts)
            elif action.kind == "release_near_deadline":
                with self._sessions.begin() as session:
                    released = release_held(
                        session, row, now=now, reason=action.reason,
                        error_class="BatchDeadline", settings=self._settings,
                        only=action.job_ids, lane=STANDARD,
                    )  # fmt: skip
                add_counts(counts, resent(released))
        return {key: value for key, value in counts.items() if value}

    def _lose(
        self, row: BatchRow, action: ForeignAction, now: datetime, counts: dict[str, int]
    ) -> None:
        with self._sessions.begin() as session:
            released = give_up(
                session, row, GeminiBatchState.LOST, now=now, reason=action.reason,
                error_class="BatchLost", settings=self._settings,
            )  # fmt: skip
        if released is None:
            return
        log.warning("%s: %d jobs re-sent", action.reason, sum(released.values()))
        add_counts(counts, {"foreign_lost": 1, **resent(released)})
