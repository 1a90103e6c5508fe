"""The Gemini Batch lane: one loop per worker main process, one working across the fleet.

Every VISIONQ_BATCH_POLL_S the lane that holds the Redis lock ``visionq:batch-lane`` runs
one tick, each step on its own (an outage of one is logged and skips it, not the others):

1. reconcile (at start, then every VISIONQ_BATCH_RECONCILE_S): Gemini's batches against
   ours (worker/batch_reconcile.py): adopt, cancel orphans, mark lost;
2. poll: follow live batches, store the results of ended ones (worker/batch_follow.py);
3. watchdog: stalled, expired, near-deadline and cancelled batches (worker/batch_watchdog.py),
   then batches recorded under another Gemini key or endpoint (worker/batch_foreign.py);
4. gather and submit: waiting ``tier=batch`` jobs into new batches (worker/batch_gather.py);
5. record turnarounds: the measured p50/p90 per model and tier that ``auto`` reads
   (models/tiers.py).

With VISIONQ_BATCH_LANE_ENABLED=false the lane still runs steps 2, 3 and 5: the Gemini
batches already submitted are followed until they end and their jobs stored or re-sent
(to standard: nothing is gathered), never left running; the sweeper sends jobs still
waiting for a batch to the standard lane (worker/sweeper.py).

The lock is held by one lane at a time and kept by it while it lives (renewed each step): a
second worker's lane takes over within the lock's lifetime after the first one dies.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable

import redis
from sqlalchemy.exc import SQLAlchemyError

from visionq.models.settings import Settings
from visionq.models.tiers import record_turnarounds
from visionq.worker.batch_api import GeminiBatches
from visionq.worker.batch_follow import Follower
from visionq.worker.batch_foreign import ForeignBatches
from visionq.worker.batch_gather import Gatherer
from visionq.worker.batch_reconcile import Reconciler
from visionq.worker.batch_requests import BatchBuilder, BatchPolicy, scratch_dir
from visionq.worker.batch_watchdog import BatchWatchdog
from visionq.worker.context import WorkerContext
from visionq.worker.errors import GeminiCallError
from visionq.worker.files import FilePolicy, UploadCache
from visionq.worker.gemini import gemini_identity
from visionq.worker.requests import decode_limits

log = logging.getLogger(__name__)
LOCK_KEY = "visionq:batch-lane"
# The least time the lock outlives its last renewal: a dead lane's successor waits this.
_MIN_LOCK_S = 5.0
# Turnarounds are measured at most this often (one query over the window per tick).
_MIN_TURNAROUND_EVERY_S = 5.0
# Extends the lock only when this lane still holds it (compare and extend, atomically).
_EXTEND = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""


class LaneLock:
    """The fleet-wide lock: taken with SET NX PX, kept by its holder (compare and extend)."""

    def __init__(self, client: redis.Redis, *, ttl_s: float, key: str = LOCK_KEY) -> None:
        self._client = client
        self._key = key
        self._ttl_ms = int(ttl_s * 1000)
        self._me = uuid.uuid4().hex
        self._extend = client.register_script(_EXTEND)

    def acquire(self) -> bool:
        """True when this lane holds the lock now (newly taken, or kept)."""
        if self._client.set(self._key, self._me, nx=True, px=self._ttl_ms):
            return True
        return self.renew()

    def renew(self) -> bool:
        """Extend the lock if this lane still holds it."""
        return bool(self._extend(keys=[self._key], args=[self._me, self._ttl_ms]))

    def release(self) -> None:
        """Give the lock up (at shutdown: another lane takes over at once)."""
        if self.renew():
            self._client.delete(self._key)


class BatchLane:
    """One lane (see the module docstring); ``tick`` runs once, ``run`` loops."""

    def __init__(
        self,
        ctx: WorkerContext,
        redis_client: redis.Redis,
        batches: GeminiBatches,
        settings: Settings,
    ) -> None:
        self._ctx = ctx
        self._settings = settings
        identity = gemini_identity(settings)
        self._lock = LaneLock(redis_client, ttl_s=max(3 * settings.batch_poll_s, _MIN_LOCK_S))
        folder = scratch_dir(settings)
        uploads = UploadCache(
            sessions=ctx.sessions, gemini=ctx.gemini, blobs=ctx.blobs, identity=identity,
            policy=FilePolicy.from_settings(settings),
        )  # fmt: skip
        builder = BatchBuilder(
            blobs=ctx.blobs, uploads=uploads, catalogue=ctx.costs.catalogue,
            policy=BatchPolicy.from_settings(settings), folder=folder,
            limits=decode_limits(settings),
        )  # fmt: skip
        renew = self._renew
        self.reconciler = Reconciler(ctx.sessions, batches, settings, identity)
        self.follower = Follower(ctx, batches, settings=settings, identity=identity,
                                 folder=folder, renew=renew)  # fmt: skip
        self.watchdog = BatchWatchdog(ctx.sessions, batches, settings, identity)
        self.foreign = ForeignBatches(ctx.sessions, settings, identity)
        self.gatherer = Gatherer(ctx, batches, builder, settings=settings, identity=identity,
                                 renew=renew)  # fmt: skip
        self._reconcile_due = 0.0
        self._turnarounds_due = 0.0

    def _renew(self) -> None:
        try:
            if not self._lock.renew():
                log.warning("batch lane: lost its lock mid-tick (another lane may run)")
        except redis.RedisError as exc:
            log.warning("batch lane: lock not renewed: %s", exc)

    def tick(self) -> dict[str, int]:
        """One tick when this lane holds the lock; counts of what each step did
        (``skipped`` when another lane holds it)."""
        try:
            if not self._lock.acquire():
                return {"skipped": 1}
        except redis.RedisError as exc:
            log.warning("batch lane tick skipped: Redis: %s", exc)
            return {"skipped": 1}
        report: dict[str, int] = {}
        now = time.monotonic()
        # Off (VISIONQ_BATCH_LANE_ENABLED=false): batches already sent are still followed
        # until they end, nothing new is gathered (the sweeper sends waiting jobs to
        # standard) and Gemini's list is not read for orphans.
        on = self._settings.batch_lane_enabled
        due = on and now >= self._reconcile_due
        if due and self._step("reconcile", self.reconciler.run_once, report):
            self._reconcile_due = now + self._settings.batch_reconcile_s
        self._step("poll", lambda: self.follower.run_once().as_dict(), report)
        self._step("watchdog", self.watchdog.run_once, report)
        self._step("foreign", self.foreign.run_once, report)
        if on:
            self._step("gather", lambda: self.gatherer.run_once().as_dict(), report)
        if now >= self._turnarounds_due:
            self._turnarounds_due = now + max(self._settings.batch_poll_s,
                                              _MIN_TURNAROUND_EVERY_S)  # fmt: skip
            self._step("turnarounds", self._turnarounds, report)
        if any(report.get(key) for key in _NOTEWORTHY):
            log.info("batch lane: %s", {k: v for k, v in report.items() if v})
        return report

    def _turnarounds(self) -> dict[str, int]:
        with self._ctx.sessions.begin() as session:
            found = record_turnarounds(session, window_s=self._settings.tier_window_s)
        return {"turnarounds": len(found)}

    def _step(self, name: str, step: Callable[[], dict[str, int]], report: dict[str, int]) -> bool:
        """Run one step; False (logged) when it failed."""
        self._renew()
        try:
            counts = step()
        except (SQLAlchemyError, redis.RedisError, GeminiCallError, OSError) as exc:
            log.warning("batch lane %s skipped: %s", name, exc)
            report[f"{name}_errors"] = report.get(f"{name}_errors", 0) + 1
            return False
        except Exception:
            log.exception("batch lane %s failed", name)
            report[f"{name}_errors"] = report.get(f"{name}_errors", 0) + 1
            return False
        for key, value in counts.items():
            report[key] = report.get(key, 0) + int(value)
        return True

    def run(self, stop: threading.Event) -> None:
        """Tick every VISIONQ_BATCH_POLL_S until ``stop`` is set (the first tick at once)."""
        while not stop.is_set():
            self.tick()
            stop.wait(self._settings.batch_poll_s)
        try:
            self._lock.release()
        except redis.RedisError as exc:
            log.info("batch lane lock not released (%s); it expires on its own", exc)


# Counts worth a log line (a quiet tick logs nothing).
_NOTEWORTHY = (
    "batches_created", "collected", "stored", "failed", "released", "lost", "adopted",
    "orphans_cancelled", "jobs_released", "stalled", "creates_unconfirmed", "foreign_lost",
    "taken_over",
)  # fmt: skip
