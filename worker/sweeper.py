"""The sweeper: sends the jobs that would otherwise wait forever.

- queued jobs whose message never reached Redis (the send after the commit failed) or
  whose message is older than VISIONQ_REQUEUE_AFTER_S (it may have been lost with Redis);
- running jobs whose lease lapsed: their worker died (SIGKILL, OOM, machine lost);
- with VISIONQ_BATCH_LANE_ENABLED=false: jobs still waiting in lane batch (not in a Gemini
  batch) go to the standard lane (``batch_fallback`` warning saying the lane is off); jobs
  already in Gemini batches are followed by the lane until those batches end (it stops
  gathering, worker/batch_lane.py);
- with fair share (models/fairqueue.py): a job sent again is pushed to its tenant's waiting
  set (a job still waiting there keeps its place, gets no new token and is not counted as
  sent; a job's send time is its pop, so "older than VISIONQ_REQUEUE_AFTER_S" means popped
  and not claimed since, or lost with Redis), and when fewer ``run_next`` tokens wait in
  Redis than jobs wait in the sets (a token lost after its push) it sends the missing
  tokens; with fair share off, jobs left in the sets are sent as FIFO messages, a page per
  sweep;
- and it deletes idempotency keys past their retention, and temporary blob files
  (``*.tmp``) older than VISIONQ_BLOB_TMP_GRACE_S that a killed process left behind.

Every worker process runs one in a thread; a Redis lock lets one of them work per interval.
Sending twice is harmless: a job is claimed by one worker only (models/leases.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import redis
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from visionq.models.blobs import BlobStore
from visionq.models.gemini_batches import release_waiting
from visionq.models.idempotency import forget_expired
from visionq.models.leases import DueJob, jobs_to_send, mark_sent
from visionq.models.settings import Settings
from visionq.models.tables import utcnow

log = logging.getLogger(__name__)
LOCK_KEY = "visionq:sweeper"
# Jobs read per page, and pages at most per sweep (5,000 jobs every sweep interval).
PAGE = 500
PAGES_PER_SWEEP = 10
LANE_OFF_REASON = (
    "the Gemini Batch lane is off (VISIONQ_BATCH_LANE_ENABLED=false on the workers), so no "
    "batch would take this job; sent at standard. Turn the lane on to be served at the "
    "batch price."
)
# Later than any deadline: with the lane off, every waiting job goes.
_ANY_DEADLINE = timedelta(days=365 * 100)


@dataclass(frozen=True)
class SweepReport:
    sent: int
    unsendable: int
    keys_forgotten: int
    temporaries_removed: int = 0
    batch_lane_off: int = 0
    # Fair share: tokens sent for jobs waiting without one (or, fair share off, jobs sent
    # from the sets as FIFO messages), and due jobs found still waiting in their sets.
    tokens_topped_up: int = 0
    still_waiting: int = 0


@dataclass
class _Page:
    """One page's jobs: due, handled (sent, still waiting, or bad), sent, still waiting."""

    due: int
    handled: int = 0
    sent: int = 0
    waiting: int = 0


class Sweeper:
    """One sweep at a time across all workers; see the module docstring."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        send: Callable[[DueJob], bool | None],
        redis_client: redis.Redis,
        settings: Settings,
        blobs: BlobStore | None = None,
        top_up: Callable[[int], int] | None = None,
    ) -> None:
        self._sessions = sessions
        self._send = send
        # Fair share: sends up to n run_next tokens when fewer wait than jobs (lost tokens);
        # with fair share off, sends up to n jobs left in the sets (worker/tasks.py).
        self._top_up = top_up
        self._redis = redis_client
        self._settings = settings
        self._blobs = blobs
        # The blob directory is walked at most this often (it may hold millions of files).
        self._temporaries_every_s = min(60.0, settings.blob_tmp_grace_s)
        self._temporaries_due = 0.0

    def sweep_once(self) -> SweepReport | None:
        """Sweep now unless another worker did within the interval; None when skipped."""
        lock_ms = max(int(self._settings.sweep_interval_s * 900), 100)
        if not self._redis.set(LOCK_KEY, "1", nx=True, px=lock_ms):
            return None
        moved = self.release_batch_lane() if not self._settings.batch_lane_enabled else 0
        sent = unsendable = waiting = 0
        # Page after page while whole pages go out: a batch's jobs left unsent by a long
        # broker outage (tens of thousands) drain in a few sweeps, not one page per sweep.
        for _ in range(PAGES_PER_SWEEP):
            page = self._send_page()
            sent += page.sent
            waiting += page.waiting
            unsendable = page.due - page.handled
            if unsendable or page.due < PAGE:
                break
        tokens = self._top_up_tokens()
        if tokens:
            log.info("sweeper sent %d run_next token(s) for jobs waiting without one", tokens)
        with self._sessions.begin() as session:
            forgotten = forget_expired(session, ttl_s=self._settings.idempotency_ttl_s)
        if sent:
            log.info("sweeper sent %d job(s) again", sent)
        if waiting:
            log.debug("sweeper: %d due job(s) still waiting in their fair-share sets", waiting)
        return SweepReport(
            sent=sent, unsendable=unsendable, keys_forgotten=forgotten,
            temporaries_removed=self.remove_temporaries(), batch_lane_off=moved,
            tokens_topped_up=tokens, still_waiting=waiting,
        )  # fmt: skip

    def _top_up_tokens(self) -> int:
        """Fair share's missing tokens (at most a page); a failure waits for the next sweep."""
        if self._top_up is None:
            return 0
        try:
            return self._top_up(PAGE)
        except Exception as exc:  # kombu and redis raise transport-specific types
            log.warning("sweeper could not top up run_next tokens (or drain the fair-share "
                        "sets): %s", exc)  # fmt: skip
            return 0

    def release_batch_lane(self) -> int:
        """The batch lane is off: jobs waiting for a Gemini batch go to the standard lane
        (sent by this sweep's pages); how many."""
        moved = 0
        for _ in range(PAGES_PER_SWEEP):
            with self._sessions.begin() as session:
                page = release_waiting(session, deadline_before=utcnow() + _ANY_DEADLINE,
                                       reason=LANE_OFF_REASON, limit=PAGE)  # fmt: skip
            moved += len(page)
            if len(page) < PAGE:
                break
        if moved:
            log.warning("sweeper: %d job(s) waiting for a Gemini batch sent to the standard "
                        "lane: VISIONQ_BATCH_LANE_ENABLED is false", moved)  # fmt: skip
        return moved

    def _send_page(self) -> _Page:
        """Send one page of due jobs and record them sent. Stops at the first failed send
        (the broker is down: the rest wait for the next sweep); a job that cannot be sent
        (ValueError: a bad row, say a priority outside 0..9) is logged and passed over, so
        it does not hold back the jobs after it."""
        with self._sessions() as session:
            due = jobs_to_send(session, requeue_after_s=self._settings.requeue_after_s, limit=PAGE)
        page = _Page(due=len(due))
        handled: list[str] = []
        for job in due:
            try:
                changed = self._send(job)
            except ValueError as exc:
                # Recorded sent: tried again after VISIONQ_REQUEUE_AFTER_S, not every page.
                log.error("sweeper cannot send job %s: %s; fix the job's row", job.id, exc)
                handled.append(job.id)
                continue
            except Exception as exc:  # kombu raises transport-specific types
                log.warning("sweeper could not send job %s: %s", job.id, exc)
                break
            handled.append(job.id)
            if changed is False:  # still waiting in its fair-share set: nothing sent
                page.waiting += 1
            else:
                page.sent += 1
        with self._sessions.begin() as session:
            mark_sent(session, handled)
        page.handled = len(handled)
        return page

    def remove_temporaries(self) -> int:
        """Delete stale ``*.tmp`` blob files (each write removes its own on failure; these
        are a killed process's), at most every minute; returns how many."""
        if self._blobs is None or time.monotonic() < self._temporaries_due:
            return 0
        self._temporaries_due = time.monotonic() + self._temporaries_every_s
        removed = self._blobs.remove_stale_temporaries(self._settings.blob_tmp_grace_s)
        if removed:
            log.info("sweeper removed %d stale temporary blob file(s)", removed)
        return removed

    def run(self, stop: threading.Event) -> None:
        """Sweep every VISIONQ_SWEEP_INTERVAL_S until ``stop`` is set; outages are logged."""
        while not stop.wait(self._settings.sweep_interval_s):
            try:
                self.sweep_once()
            except (SQLAlchemyError, redis.RedisError) as exc:
                log.warning("sweep skipped: %s", exc)
            except Exception:
                log.exception("sweep failed")
