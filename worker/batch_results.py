"""A Gemini batch's results, stored exactly once per job.

Lines are read by worker/batch_lines.py (matched to jobs by the id they carry, never by
position); a line naming no job of ours is skipped (its billed usage recorded). Each answer
goes through the sync lane's own code: ``answer_from_response`` (what a 200 means),
``interpret`` (the task's parser), ``keep`` (storage faults retried), then
``complete_run`` under the batch's lease token. That token is the fence: a job cancelled by
its user, or re-sent elsewhere (the watchdog moved it), is no longer under it, so its answer
is discarded and nothing is stored twice.

What a line that is not an answer becomes:

- blocked prompt or output, an unreadable answer, a non-retryable line error: the job fails
  with the sync lane's code (``gemini_<status>`` for a line error);
- a schema mismatch, or an answer cut at (or emptied by) visionq's own max_output_tokens:
  the job is released to the sync lane, whose retry, raised cap and schema retry live
  there (a cut line's job starts there at the raised cap: ``CUT_IN_BATCH``); the batch
  line's usage and cost stay on its closed attempt (and count in the
  job's cost at its end). Cut at a cap the user set (options.max_output_tokens), the job
  fails at once with the sync lane's code and message: that lane never raises it;
- a retryable line error (429, 5xx, a line with neither answer nor error) or a transient
  answer (empty, malformed): released, to a new batch while resends and the deadline allow,
  else to the sync lane;
- anything else raised while handling a line (a bug of ours: a parser on an odd answer, a
  mask store failing oddly) fails that job ``internal_error`` with its attempt, logged with
  the traceback, like the sync lane's crash guard; the batch's other lines go on. A
  database or storage fault is not the job's: the line is stored again next tick.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice

from sqlalchemy import select

from visionq.models.gemini_batch_jobs import unrecorded_attempts
from visionq.models.gemini_batches import (
    BatchRow,
    batch_token,
    job_specs,
    open_attempts,
    release_jobs,
    unfinished_jobs,
)
from visionq.models.leases import JobSpec
from visionq.models.metrics import GEMINI_BATCH_LINES, model_label
from visionq.models.outcomes import charge_late, finish_attempt, record_late_call
from visionq.models.settings import Settings
from visionq.models.tables import JOBS, AttemptOutcome, utcnow
from visionq.vision.catalogue import ServiceTier
from visionq.vision.parsing import AnswerParseError
from visionq.vision.structured import SchemaMismatchError
from visionq.worker.answers import answer_from_response, usage_from_metadata
from visionq.worker.batch_lines import LineOutcome, line_error, read_inline, read_jsonl
from visionq.worker.batch_release import resend_lane
from visionq.worker.completion import Failure, complete_run, fail_run, failure_of
from visionq.worker.context import WorkerContext
from visionq.worker.errors import GeminiCallError
from visionq.worker.failures import job_error_code
from visionq.worker.spend import Spend
from visionq.worker.storing import DEFERRED, INFRASTRUCTURE_ERRORS, interpret, keep
from visionq.worker.thinking import CUT_IN_BATCH, cap_failure_message, cap_may_be_raised

__all__ = [
    "LINE_ERROR", "LineOutcome", "ResultStore", "StoreCounts", "line_error", "read_inline",
    "read_jsonl", "store_outcomes",
]  # fmt: skip

log = logging.getLogger(__name__)

# Lines handled per transaction batch of reads (bounded memory for 1,000-line batches).
_CHUNK = 200
# The longest the lane waits out a storage fault for one job before leaving the batch to
# be stored again on the next tick (it must not hold up the lane's other batches).
_STORE_PATIENCE_S = 20.0
# Answers the sync lane handles better: its raised cap and schema retry live there.
_TO_SYNC_CODES = frozenset({"max_tokens_exhausted", "answer_truncated"})
LINE_ERROR = "BatchLineError"


@dataclass
class StoreCounts:
    """What storing a batch's lines did, per job."""

    stored: int = 0
    failed: int = 0
    released: int = 0
    discarded: int = 0
    deferred: int = 0
    skipped: int = 0
    seen: set[str] = field(default_factory=set)

    def as_dict(self) -> dict[str, int]:
        return {
            "stored": self.stored, "failed": self.failed, "released": self.released,
            "discarded": self.discarded, "deferred": self.deferred, "skipped": self.skipped,
        }  # fmt: skip


class ResultStore:
    """Stores one batch's lines (see the module docstring); ``expected_batch_s`` is how
    long a new batch is expected to take (where a released job goes)."""

    def __init__(
        self,
        ctx: WorkerContext,
        row: BatchRow,
        settings: Settings,
        expected_batch_s: float,
        renew: Callable[[], None] | None = None,
    ) -> None:
        self._ctx = ctx
        self._row = row
        self._settings = settings
        self._expected_batch_s = expected_batch_s
        self.counts = StoreCounts()
        # Called between chunks: the lane keeps its lock through a long collection.
        self._renew = renew or (lambda: None)
        self._token = batch_token(row.id)
        self._deadlines: dict[str, datetime | None] = {}
        self._attempts: dict[str, int] = {}
        self._unrecorded: dict[str, tuple[int, bool]] = {}

    def store(self, lines: Iterable[LineOutcome]) -> StoreCounts:
        """Store every line whose job is still this batch's; the counts of what happened."""
        with self._ctx.sessions.begin() as session:
            # The jobs still under this batch's token, with their open attempts.
            self._deadlines = unfinished_jobs(session, self._row.id)
            self._attempts = open_attempts(session, self._row.id)
            self._unrecorded = unrecorded_attempts(session, self._row.id)
        iterator = iter(lines)
        while chunk := list(islice(iterator, _CHUNK)):
            self._renew()
            self._chunk(chunk)
        return self.counts

    def _chunk(self, chunk: list[LineOutcome]) -> None:
        ours = {line.job_id for line in chunk if line.job_id in self._deadlines}
        with self._ctx.sessions.begin() as session:
            specs = job_specs(session, ours) if ours else {}
        for line in chunk:
            self.counts.seen.add(line.job_id)
            spec, attempt = specs.get(line.job_id), self._attempts.get(line.job_id)
            if spec is None or attempt is None:
                # Not ours (any more): stored already, cancelled, re-sent, or unknown.
                log.info("batch %s: line for job %s, no longer in this batch; skipped",
                         self._row.id, line.job_id)  # fmt: skip
                self.counts.skipped += 1
                self._discard(line)
                continue
            self._guarded(spec, attempt, line)

    def _guarded(self, spec: JobSpec, attempt_id: int, line: LineOutcome) -> None:
        """One line, its job ended whatever goes wrong: a bug of ours fails it
        ``internal_error`` (never a lane wedged on one line, its jobs running forever)."""
        try:
            self._line(spec, attempt_id, line)
        except INFRASTRUCTURE_ERRORS as exc:
            # Not the job's fault: left under the batch, stored again next tick.
            log.warning("batch %s: job %s: %s: %s; stored again next poll", self._row.id,
                        spec.id, type(exc).__name__, exc)  # fmt: skip
            self.counts.deferred += 1
        except Exception as exc:
            log.exception("batch %s: job %s crashed while its line was stored",
                          self._row.id, spec.id)  # fmt: skip
            failure = Failure("internal_error", f"{type(exc).__name__}: {exc}", type(exc).__name__)
            self._fail(spec, attempt_id, failure, self._paid(spec.model, spec.tenant, line))

    def _paid(self, model: str, tenant: str, line: LineOutcome) -> Spend:
        """The line's billed usage at the batch price (a crashed or discarded line was paid
        for all the same), for ``tenant``; counted in the metrics once it is recorded (the
        crashed line's own Spend never is: its attempt was not written)."""
        spend = Spend(tenant=tenant)
        metadata = line.response.usage_metadata if line.response is not None else None
        usage = usage_from_metadata(metadata)
        if usage is not None:
            spend.add(self._ctx, model, usage, tier=ServiceTier.BATCH)
        return spend

    def _discard(self, line: LineOutcome) -> None:
        """A line for a job this batch no longer holds (cancelled, released near its
        deadline, re-sent after a stall): its answer is dropped, what it cost recorded on
        the job's attempt in this batch (closed ``discarded`` if still open) and counted in
        the job's cost and its tenant's spend: Gemini billed it."""
        found = self._unrecorded.pop(line.job_id, None)
        self._attempts.pop(line.job_id, None)
        if found is None:
            return  # not ours, or its call is recorded already (output read again)
        attempt_id, still_open = found
        with self._ctx.sessions() as session:
            tenant = session.scalar(select(JOBS.c.tenant).where(JOBS.c.id == line.job_id))
        spend = self._paid(self._row.model, tenant or "", line)
        with self._ctx.sessions.begin() as session:
            recorded = True
            if still_open:
                finish_attempt(
                    session, attempt_id, outcome=AttemptOutcome.DISCARDED,
                    error_message="the job ended (cancelled) while in the Gemini batch; its "
                    "answer was dropped", usage=spend.last_usage,
                    cost_nusd=spend.last_call_nusd, served_tier=spend.served_tier,
                )  # fmt: skip
            else:
                recorded = record_late_call(session, attempt_id, usage=spend.last_usage,
                                            cost_nusd=spend.last_call_nusd,
                                            served_tier=spend.served_tier)  # fmt: skip
            charge_late(session, line.job_id, spend.last_call_nusd)
        if recorded:  # committed, and not recorded before (an output read again)
            spend.count_recorded()

    def _line(self, spec: JobSpec, attempt_id: int, line: LineOutcome) -> None:
        spend = Spend(tenant=spec.tenant)
        if line.response is None:
            assert line.error is not None
            self._after_error(spec, attempt_id, line_error(line.error), spend)
            return
        try:
            answer = answer_from_response(line.response)
        except GeminiCallError as exc:
            spend.add(self._ctx, spec.model, exc.usage, exc.model_version, tier=ServiceTier.BATCH)
            self._after_error(spec, attempt_id, exc, spend)
            return
        spend.add(self._ctx, spec.model, answer.usage, answer.model_version,
                  tier=ServiceTier.BATCH)  # fmt: skip
        try:
            parsed = interpret(spec, answer.text)
        except SchemaMismatchError as exc:
            self._release(spec, attempt_id, spend, lane="standard", reason=str(exc),
                          error_class="SchemaMismatchError")  # fmt: skip
            return
        except AnswerParseError as exc:
            self._fail(spec, attempt_id, failure_of(exc, answer.finish_reason), spend)
            return

        def store() -> str:
            parsed.store_masks(self._ctx.blobs)
            return complete_run(
                self._ctx, job_id=spec.id, attempt_id=attempt_id, lease_token=self._token,
                warnings=spec.warnings, result=parsed.result, spend=spend,
                model_version=answer.model_version,
            )  # fmt: skip

        outcome = keep(store, job_id=spec.id, deadline=time.monotonic() + _STORE_PATIENCE_S,
                       base_s=self._ctx.retry.base_s,
                       max_delay_s=self._ctx.retry.max_delay_s)  # fmt: skip
        if outcome == DEFERRED:
            self.counts.deferred += 1
        elif outcome == "succeeded":
            self.counts.stored += 1
        else:
            self.counts.discarded += 1

    def _after_error(
        self, spec: JobSpec, attempt_id: int, exc: GeminiCallError, spend: Spend
    ) -> None:
        if exc.code in _TO_SYNC_CODES and not cap_may_be_raised(spec.options, raised=False):
            # The user's own cap: the sync lane would pay for the same cut again.
            thoughts = exc.usage.thoughts_tokens if exc.usage else None
            message = cap_failure_message(exc.code, cap=spec.options.max_output_tokens,
                                          thoughts=thoughts, first_cap=None)  # fmt: skip
            failure = Failure(job_error_code(exc), message, "GeminiCallError", exc.http_status)
            self._fail(spec, attempt_id, failure, spend)
        elif exc.code in _TO_SYNC_CODES:
            # The sync run starts at the raised cap (worker/thinking.py CUT_IN_BATCH).
            self._release(spec, attempt_id, spend, lane="standard", reason=exc.message,
                          error_class=CUT_IN_BATCH)  # fmt: skip
        elif exc.retryable:
            lane = resend_lane(
                self._deadlines.get(spec.id), utcnow(), resends=self._row.resends,
                expected_batch_s=self._expected_batch_s, settings=self._settings,
            )  # fmt: skip
            self._release(spec, attempt_id, spend, lane=lane, reason=exc.message,
                          error_class=LINE_ERROR)  # fmt: skip
        else:
            self._fail(spec, attempt_id, failure_of(exc), spend)

    def _fail(self, spec: JobSpec, attempt_id: int, failure: Failure, spend: Spend) -> None:
        outcome = fail_run(
            self._ctx, job_id=spec.id, attempt_id=attempt_id, lease_token=self._token,
            warnings=spec.warnings, failure=failure, spend=spend,
        )  # fmt: skip
        if outcome == "failed":
            self.counts.failed += 1
        else:
            self.counts.discarded += 1

    def _release(
        self, spec: JobSpec, attempt_id: int, spend: Spend, *, lane: str, reason: str,
        error_class: str,
    ) -> None:  # fmt: skip
        """Hand the job back (to a new batch or the sync lane), its paid line's usage and
        cost kept on the attempt the release closes."""
        with self._ctx.sessions.begin() as session:
            released = release_jobs(session, self._row.id, [spec.id], lane=lane,
                                    reason=reason, error_class=error_class)  # fmt: skip
            if released and spend.last_usage is not None:
                finish_attempt(
                    session, attempt_id, outcome=AttemptOutcome.FAILED,
                    error_class=error_class, error_message=reason, http_status=200,
                    usage=spend.last_usage, cost_nusd=spend.last_call_nusd,
                    served_tier=spend.served_tier,
                )  # fmt: skip
        if released:
            spend.count_recorded()  # the closed attempt holds the line's call: committed
            self.counts.released += 1
        else:
            self.counts.discarded += 1


def store_outcomes(
    ctx: WorkerContext,
    row: BatchRow,
    lines: Iterable[LineOutcome],
    settings: Settings,
    *,
    expected_batch_s: float | None = None,
    renew: Callable[[], None] | None = None,
) -> dict[str, int]:
    """Store a batch's lines (see the module docstring): counts of stored, failed, released,
    discarded, deferred (a storage fault: stored again next tick) and skipped lines.

    ``expected_batch_s``: how long a new batch is expected to take (the prior by default),
    which decides whether a released job goes to a new batch or to the sync lane;
    ``renew`` is called between chunks of lines (the lane's lock).
    """
    expected = (
        expected_batch_s
        if expected_batch_s is not None
        else settings.tier_prior_s[ServiceTier.BATCH]
    )
    counts = ResultStore(ctx, row, settings, expected, renew).store(lines)
    model = model_label(row.model)
    stored = (("succeeded", counts.stored), ("failed", counts.failed),
              ("released", counts.released), ("discarded", counts.discarded))  # fmt: skip
    for outcome, n in stored:
        if n:
            GEMINI_BATCH_LINES.labels(model, outcome).inc(n)
    return counts.as_dict()
