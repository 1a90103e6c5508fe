"""Gather queued ``tier=batch`` jobs per model into Gemini batches, and submit them.

Creating a Gemini batch is not idempotent, so a batch is recorded before it is sent and
matched afterwards (its display name is VISIONQ_BATCH_NAME_PREFIX + our id):

1. one transaction inserts the row (``creating``, with the submitter's claim) and attaches
   the jobs (queued → running under the batch's lease token, one attempt each);
2. the requests are built (a job whose own image fails is failed, the rest go);
3. ``batches.create`` (after the JSONL upload in file mode);
4. one transaction accepts it (``creating`` → ``pending``, Gemini's name recorded).

A worker killed, or a create whose answer is lost, between 1 and 4 leaves the row
``creating``: the reconciler (worker/batch_reconcile.py) finds Gemini's batch by display
name and adopts it, or marks the row lost and releases its jobs. Never an orphan, never a
job in two live batches. A create Gemini refuses (4xx other than 408/429) fails the row
and sends its jobs to the sync lane with a ``batch_fallback`` warning. A create answered
429 (the project's running-batch cap, a quota) created nothing: the row is closed, its jobs
wait for a later batch, and the gatherer pauses creates for a while.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Collection

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from visionq.models.batch_twins import answer_from_twins
from visionq.models.gemini_batches import (
    GeminiBatchState,
    accept,
    batch_token,
    count_live,
    display_name,
    gather_models,
    gatherable,
    job_specs,
    open_attempts,
    record_batch,
    release_jobs,
    set_request_bytes,
    set_state,
)
from visionq.models.metrics import (
    JOB_QUEUED_SECONDS,
    count_cache_hits,
    count_ended,
    model_label,
)
from visionq.models.outcomes import set_transports
from visionq.models.settings import Settings
from visionq.models.tables import GEMINI_BATCHES, JOBS, utcnow
from visionq.vision.catalogue import ServiceTier
from visionq.worker.batch_api import GeminiBatches

# The gather's rules live in batch_plan.py; re-exported here for the lane and the tests.
from visionq.worker.batch_plan import GatherReport, batch_due, expected_batch_s, next_resends
from visionq.worker.batch_requests import BatchBuilder, BatchInput
from visionq.worker.completion import fail_run, failure_of
from visionq.worker.context import WorkerContext
from visionq.worker.errors import GeminiCallError
from visionq.worker.spend import Spend

__all__ = ["GatherReport", "Gatherer", "batch_due", "expected_batch_s", "next_resends"]

log = logging.getLogger(__name__)

# Status of a create that may have landed after all (not answered in time).
_TIMED_OUT = 408
# A create refused for now (the project's running-batch cap, a quota): nothing was created.
_THROTTLED = 429
# How long creates pause after a 429 that names no retry delay.
_THROTTLE_PAUSE_S = 60.0
# Time the submitter holds a batch it is creating: building (downscaling up to 1,000 jobs'
# images), the JSONL upload and the create call; past it the reconciler decides.
_BUILD_ALLOWANCE_S = 300.0


class Gatherer:
    """One gather pass: every model whose jobs are due gets batches, up to the cap."""

    def __init__(
        self,
        ctx: WorkerContext,
        batches: GeminiBatches,
        builder: BatchBuilder,
        *,
        settings: Settings,
        identity: str,
        renew: Callable[[], None] = lambda: None,
    ) -> None:
        self._ctx = ctx
        self._batches = batches
        self._builder = builder
        self._settings = settings
        self._identity = identity
        self._renew = renew
        # Creates pause until then (monotonic) after a 429.
        self._paused_until = 0.0

    def run_once(self) -> GatherReport:
        """Answer waiting repeats whose twin succeeded (cache hits), then gather and submit
        what is due; stops at VISIONQ_BATCH_MAX_RUNNING live batches. Of identical jobs of a
        tenant only the first is gathered (models/gemini_batch_jobs.py)."""
        report = GatherReport()
        settings = self._settings
        # Repeats held back while their first copy was in a Gemini batch: answered from it.
        with self._ctx.sessions.begin() as session:
            twins = answer_from_twins(session)
        report.cached = len(twins)
        count_ended(twins)
        for twin in twins:
            count_cache_hits(tenant=twin.tenant, task=twin.task, model=twin.model, source="twin")
        with self._ctx.sessions() as session:
            groups = gather_models(session)
            expected = {g.model: expected_batch_s(session, g.model, settings) for g in groups}
            live = count_live(session, self._identity)
        now = utcnow()
        if time.monotonic() < self._paused_until:
            return report
        for group in groups:
            if not batch_due(group, now=now, expected_s=expected[group.model], settings=settings):
                continue
            waiting = group.count
            while waiting > 0 and live < settings.batch_max_running:
                with self._ctx.sessions() as session:
                    ids = gatherable(session, model=group.model, limit=settings.batch_max_requests)
                if not ids:
                    break
                self._renew()
                self.submit(group.model, ids, report)
                live += 1
                waiting -= len(ids)
                if len(ids) < settings.batch_max_requests:
                    break
        return report

    def submit(self, model: str, job_ids: list[str], report: GatherReport) -> str | None:
        """Record, build, create and accept one batch of ``job_ids``; its id (None when no
        job could be attached)."""
        batch_id = str(uuid.uuid4())
        settings = self._settings
        claim_s = 2 * settings.gemini_timeout_s + _BUILD_ALLOWANCE_S
        with self._ctx.sessions.begin() as session:
            resends = next_resends(session, job_ids)
            attached = record_batch(
                session, batch_id=batch_id, identity=self._identity, model=model,
                job_ids=job_ids, input_mode="inline", resends=resends, claim_s=claim_s,
            )  # fmt: skip
        if not attached:
            return None
        with self._ctx.sessions() as session:
            specs = job_specs(session, attached)
            attempts = open_attempts(session, batch_id)
            _observe_queued(session, model, attached)
        ordered = [specs[job_id] for job_id in attached if job_id in specs]
        try:
            # Decoding and uploading 1,000 images outlasts the lane's lock: kept meanwhile.
            built = self._builder.build(ordered, renew=self._renew)
        except GeminiCallError as exc:
            # An image upload failed: nothing was sent, the jobs wait for the next batch.
            self._give_back(batch_id, attached, exc, report, lane="batch")
            return batch_id
        try:
            self._fail_unbuildable(batch_id, built, attempts, report)
            if not built.job_ids:
                self._close(batch_id, "no request could be built")
                return batch_id
            with self._ctx.sessions.begin() as session:
                set_request_bytes(session, batch_id, built.request_bytes)
                # Known only once built (record_batch wrote the row first, as inline).
                session.execute(
                    update(GEMINI_BATCHES)
                    .where(GEMINI_BATCHES.c.id == batch_id)
                    .values(input_mode=built.mode)
                )
            self._create(batch_id, model, built, report)
        finally:
            built.discard()
        return batch_id

    def _fail_unbuildable(
        self, batch_id: str, built: BatchInput, attempts: dict[str, int], report: GatherReport
    ) -> None:
        with self._ctx.sessions() as session:
            specs = job_specs(session, list(built.failed))
        for job_id, exc in built.failed.items():
            spec = specs.get(job_id)
            if spec is None or job_id not in attempts:
                continue
            fail_run(
                self._ctx, job_id=job_id, attempt_id=attempts[job_id],
                lease_token=batch_token(batch_id), warnings=spec.warnings,
                failure=failure_of(exc), spend=Spend(tenant=spec.tenant),
            )  # fmt: skip
            report.failed_jobs += 1

    def _create(self, batch_id: str, model: str, built: BatchInput, report: GatherReport) -> None:
        name = display_name(self._settings.batch_name_prefix, batch_id)
        input_file: str | None = None
        try:
            if built.mode == "file":
                assert built.path is not None
                input_file = self._batches.upload_jsonl(built.path, display_name=name)
        except GeminiCallError as exc:
            # The create was never sent: no batch can exist, the jobs wait for the next one.
            self._give_back(batch_id, built.job_ids, exc, report,
                            lane="batch" if exc.retryable else "standard")  # fmt: skip
            return
        self._renew()
        try:
            remote = self._batches.create(
                model=model, src=input_file or built.inline, display_name=name
            )
        except GeminiCallError as exc:
            status = exc.http_status
            refused = status is not None and 400 <= status < 500
            if status == _THROTTLED:
                self._throttled(batch_id, built, exc, report, input_file)
                return
            # No key: nothing was sent; the sync lane fails the jobs saying what to set.
            if exc.code == "gemini_not_configured" or (refused and status != _TIMED_OUT):
                self._refused(batch_id, built, exc, report, input_file)
                return
            # Timed out, 5xx, connection lost: it may exist. The reconciler matches it by
            # display name once the claim expires (adopt), or marks it lost.
            log.warning("Gemini batch %s: create unconfirmed (%s); left to the reconciler",
                        batch_id, exc.message)  # fmt: skip
            report.ambiguous += 1
            return
        with self._ctx.sessions.begin() as session:
            accepted = accept(session, batch_id, gemini_name=remote.name, input_file=input_file)
            if accepted:
                for job_id in built.job_ids:
                    set_transports(session, job_id, built.transports.get(job_id, []))
        if not accepted:
            # The reconciler gave up on it meanwhile (our claim expired): cancel the orphan.
            log.warning("Gemini batch %s (%s) created after it was given up; cancelling it",
                        batch_id, remote.name)  # fmt: skip
            try:
                self._batches.cancel(remote.name)
            except GeminiCallError as exc:
                log.warning("cancel of orphan %s failed (%s); the reconciler retries",
                            remote.name, exc.message)  # fmt: skip
            return
        report.batches += 1
        report.jobs += len(built.job_ids)
        log.info("Gemini batch %s created as %s: %d jobs of %s, %s mode, %d bytes",
                 batch_id, remote.name, len(built.job_ids), model, built.mode,
                 built.request_bytes)  # fmt: skip

    def _refused(
        self,
        batch_id: str,
        built: BatchInput,
        exc: GeminiCallError,
        report: GatherReport,
        input_file: str | None,
    ) -> None:
        """Gemini refused the create: the row fails, its jobs go to the sync lane."""
        reason = f"Gemini refused the batch ({exc.message}); sent at standard price instead"
        self._end_unsent(batch_id, built.job_ids, GeminiBatchState.FAILED, lane="standard",
                         reason=reason, error_class="BatchCreateRefused", report=report,
                         error=exc.message)  # fmt: skip
        log.warning("Gemini batch %s refused: %s", batch_id, exc.message)
        if input_file is not None:
            self._delete_file(input_file)

    def _throttled(
        self,
        batch_id: str,
        built: BatchInput,
        exc: GeminiCallError,
        report: GatherReport,
        input_file: str | None,
    ) -> None:
        """Gemini answered the create 429: nothing was created (the running-batch cap or a
        quota). The row closes, its jobs wait for a later batch (the watchdog still sends
        them to the sync lane near their deadline), and creates pause meanwhile."""
        pause = exc.retry_delay_s or _THROTTLE_PAUSE_S
        self._paused_until = time.monotonic() + pause
        reason = (
            f"Gemini refused the batch for now ({exc.message}); the job waits for a later "
            f"batch (creates pause {pause:g} s)"
        )
        self._end_unsent(batch_id, built.job_ids, GeminiBatchState.FAILED, lane="batch",
                         reason=reason, error_class="BatchCreateThrottled", report=report,
                         error=exc.message)  # fmt: skip
        report.errors.append(exc.message)
        log.warning("Gemini batch %s: create answered 429 (%s); creates pause %g s",
                    batch_id, exc.message, pause)  # fmt: skip
        if input_file is not None:
            self._delete_file(input_file)

    def _give_back(
        self,
        batch_id: str,
        job_ids: Collection[str],
        exc: GeminiCallError,
        report: GatherReport,
        *,
        lane: str,
    ) -> None:
        """The create was never sent (an image or JSONL upload failed): the jobs wait for
        the next batch (``lane`` batch), or go to the sync lane (``standard``: the upload
        will not succeed on a retry)."""
        if lane == "batch":
            state = GeminiBatchState.LOST
            reason = f"the batch could not be sent ({exc.message}); it waits for the next one"
        else:
            state = GeminiBatchState.FAILED
            reason = f"the batch could not be sent ({exc.message}); sent at standard price instead"
        self._end_unsent(batch_id, job_ids, state, lane=lane, reason=reason,
                         error_class="BatchNotSent", report=report, error=exc.message)  # fmt: skip
        report.errors.append(exc.message)
        log.warning("Gemini batch %s not sent: %s", batch_id, exc.message)

    def _end_unsent(
        self,
        batch_id: str,
        job_ids: Collection[str],
        state: GeminiBatchState,
        *,
        lane: str,
        reason: str,
        error_class: str,
        report: GatherReport,
        error: str,
    ) -> None:
        """A batch Gemini does not have: row ``state`` then ``closed``, its jobs released."""
        with self._ctx.sessions.begin() as session:
            set_state(session, batch_id, state, from_states=[GeminiBatchState.CREATING],
                      error=error)  # fmt: skip
            report.released += release_jobs(
                session, batch_id, job_ids, lane=lane, reason=reason, error_class=error_class
            )
            set_state(session, batch_id, GeminiBatchState.CLOSED, from_states=[state])

    def _close(self, batch_id: str, why: str) -> None:
        with self._ctx.sessions.begin() as session:
            set_state(session, batch_id, GeminiBatchState.CLOSED,
                      from_states=[GeminiBatchState.CREATING], error=why)  # fmt: skip

    def _delete_file(self, name: str) -> None:
        try:
            self._batches.delete_file(name)
        except GeminiCallError as exc:
            log.info("batch input %s not deleted (%s); Gemini removes it within 48 h",
                     name, exc.message)  # fmt: skip


def _observe_queued(session: Session, model: str, attached: list[str]) -> None:
    """Time queued of the jobs a batch took on their first start (attempt 1: a job sent
    back to wait for another batch was counted when it first joined one)."""
    now = utcnow()
    rows = session.execute(
        select(JOBS.c.created_at).where(JOBS.c.id.in_(attached), JOBS.c.attempt_count == 1)
    )
    histogram = JOB_QUEUED_SECONDS.labels(ServiceTier.BATCH.value, model_label(model))
    for (created_at,) in rows:
        histogram.observe(max((now - created_at).total_seconds(), 0.0))
