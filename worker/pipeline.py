"""One job, start to end: claim, build the request, call Gemini, parse, store."""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from google.genai import types

from visionq.models.blobs import BlobNotFoundError
from visionq.models.leases import Claim, JobSpec, claim_job, earlier_attempt, open_attempt
from visionq.models.metrics import JOB_QUEUED_SECONDS, RETRIES, model_label
from visionq.models.outcomes import finish_attempt
from visionq.models.tables import AttemptOutcome, utcnow
from visionq.vision.catalogue import ServiceTier
from visionq.vision.formats import ImageRejectedError
from visionq.vision.generation import output_cap
from visionq.vision.parsing import AnswerParseError
from visionq.vision.structured import SchemaMismatchError
from visionq.vision.tasks import TaskKind
from visionq.worker.completion import (
    Failure,
    complete_run,
    fail_run,
    failure_of,
    hold_difference,
    hold_run_tier,
)
from visionq.worker.context import WorkerContext
from visionq.worker.failures import job_error_code
from visionq.worker.gemini import GeminiAnswer, GeminiCallError
from visionq.worker.gemini_call import call_gemini
from visionq.worker.ratelimit import RateLimitTimeout
from visionq.worker.retry import decide
from visionq.worker.spend import Spend, standard_surcharge_nusd
from visionq.worker.storing import DEFERRED, INFRASTRUCTURE_ERRORS, ParsedAnswer, interpret, keep
from visionq.worker.thinking import (
    CUT_IN_BATCH,
    DEFAULT_OUTPUT_LIMIT,
    answer_allowance,
    cap_failure_message,
    cap_may_be_raised,
    raised_cap,
)
from visionq.worker.tiering import (
    after_flex_error,
    downgraded_message,
    fallback_message,
    flex_timeout,
    is_shed,
    lane_tier,
    served_as,
)
from visionq.worker.watchdog import Watchdog

log = logging.getLogger(__name__)


def run_job(ctx: WorkerContext, job_id: str, watchdog: Watchdog | None = None) -> str:
    """Run a job once; returns what happened (for logs): skipped, succeeded, failed, discarded,
    or deferred (a storage fault: left running for redelivery, worker/storing.py).

    With ``watchdog``, a run still going past the job's deadline is ended
    (worker/watchdog.py): JobDeadlineExceeded is raised here.
    """
    settings = ctx.settings
    with ctx.sessions.begin() as session:
        claim = claim_job(
            session, job_id, lease_s=settings.lease_s, max_deliveries=settings.max_deliveries
        )
    if claim is None:
        log.info("job %s is not claimable (ended, held by a live worker, or given up)", job_id)
        return "skipped"
    deadline = _deadline(ctx, claim.job)
    guard = (
        watchdog.watching(claim.job_id, claim.lease_token, deadline)
        if watchdog is not None
        else contextlib.nullcontext()
    )
    with ctx.leases.held(claim.lease_token), guard:
        return _execute(ctx, claim)


def _execute(ctx: WorkerContext, claim: Claim) -> str:
    job = claim.job
    if claim.attempt_number == 1 and job.created_at is not None:  # its first start
        queued = (job.started_at - job.created_at).total_seconds()
        JOB_QUEUED_SECONDS.labels(job.lane, model_label(job.model)).observe(max(queued, 0.0))
    run = _Run(ctx=ctx, job=job, claim=claim, deadline=_deadline(ctx, job),
               spend=Spend(tenant=job.tenant))  # fmt: skip
    run.tier = lane_tier(claim.job.lane)
    refused = hold_run_tier(ctx, claim, run.tier)
    if refused is not None:
        return run._fail(refused)
    if claim.attempt_number > 1:
        run.carry_batch_cut()
    while True:
        outcome = run.step()
        if outcome is not None:
            return outcome


def _deadline(ctx: WorkerContext, job: JobSpec) -> float:
    """The job's deadline on this process's monotonic clock (from its first start)."""
    left = ctx.settings.job_deadline_s - (utcnow() - job.started_at).total_seconds()
    return time.monotonic() + left


@dataclass
class _Run:
    """One delivery of a job: attempts until an answer, a final failure or a lost lease."""

    ctx: WorkerContext
    job: JobSpec
    claim: Claim
    deadline: float
    spend: Spend = field(default_factory=Spend)
    schema_retried: bool = False
    # Attempts in a row refused by a 429 naming a per-day quota, and when the first of them
    # was refused (monotonic seconds; worker/retry.py).
    daily_refusals: int = 0
    daily_since: float | None = None
    # max_output_tokens raised after thoughts used the whole cap (worker/thinking.py).
    raised_cap: int | None = None
    first_cap: int | None = None
    finish_reason: str | None = None
    # The tier the next call asks for (the job's lane; standard after a flex fallback), and
    # the flex calls shed so far (free: they do not count against VISIONQ_MAX_ATTEMPTS).
    tier: ServiceTier = ServiceTier.STANDARD
    sheds: int = 0

    def step(self) -> str | None:  # noqa: PLR0911 - one return per way an attempt ends
        """One attempt; the outcome when the job is done with, None to attempt again."""
        ctx, job = self.ctx, self.job
        try:
            timeout = self._flex_timeout()
            if self.tier is ServiceTier.FLEX and timeout is None:
                ended = self._to_standard("too little time was left before the deadline")
                if ended is not None:
                    return ended
            self.spend.requested_tier = self.tier.value
            answer = call_gemini(
                ctx, job, pace=self._pace, spend=self.spend, cap=self.raised_cap,
                tier=self.tier, timeout_s=timeout,
            )  # fmt: skip
            served = served_as(answer.served_tier, self.tier)
            self.spend.add(ctx, job.model, answer.usage, answer.model_version, tier=served)
            self.spend.served_tier = served.value
            if self.tier is ServiceTier.PRIORITY and served is not ServiceTier.PRIORITY:
                self.spend.warnings["priority_downgraded"] = downgraded_message(served)
            self.finish_reason = answer.finish_reason
            parsed = interpret(job, answer.text)
            return self._keep(parsed, answer)
        except SchemaMismatchError as exc:
            # A structured answer that fails its schema is asked for once more, then fails.
            if self.schema_retried:
                return self._fail(failure_of(exc))
            self.schema_retried = True
            usage = answer.usage.raw if answer.usage else None
            failure = Failure(job_error_code(exc), str(exc), "SchemaMismatchError", 200)
            return self._again(failure, 0.0, usage)
        except GeminiCallError as exc:
            self.spend.add(ctx, job.model, exc.usage, exc.model_version, tier=self.tier)
            if self.tier is ServiceTier.FLEX:
                return self._after_flex_error(exc)
            return self._after_call_error(exc)
        except (BlobNotFoundError, AnswerParseError, RateLimitTimeout) as exc:
            return self._fail(failure_of(exc, self.finish_reason))
        except Exception as exc:
            return self._crashed(exc)

    def _crashed(self, exc: Exception) -> str:
        if isinstance(exc, INFRASTRUCTURE_ERRORS):
            # The database, blob store or Redis failed (before a call, or while recording a
            # retry or a failure): not the job's fault, so not failed, never internal_error.
            # It stays running; its lease lapses and the sweeper delivers it again.
            log.warning("job %s: %s: %s; left for redelivery", self.job.id,
                        type(exc).__name__, exc)  # fmt: skip
            return DEFERRED
        if isinstance(exc, ImageRejectedError):
            # A downscale over the decode memory bound (vision/memory.py), before any call.
            failure = Failure(job_error_code(exc), exc.message, "ImageRejectedError")
            return self._fail(failure)
        # A bug of ours: logged with its traceback, and the job and its attempt end failed
        # with the cause instead of staying "running" forever.
        log.exception("job %s crashed", self.job.id)
        failure = Failure("internal_error", f"{type(exc).__name__}: {exc}", type(exc).__name__)
        return self._fail(failure)

    def _keep(self, parsed: ParsedAnswer, answer: GeminiAnswer) -> str:
        """Store a paid answer (masks, then the job), through storage faults (worker/storing.py)."""
        ctx = self.ctx

        def store() -> str:
            parsed.store_masks(ctx.blobs)
            return complete_run(
                ctx, job_id=self.claim.job_id, attempt_id=self.claim.attempt_id,
                lease_token=self.claim.lease_token, warnings=self.job.warnings,
                result=parsed.result, spend=self.spend, model_version=answer.model_version,
                first_attempt=self.claim.attempt_number == 1,
            )  # fmt: skip

        return keep(store, job_id=self.job.id, deadline=self.deadline,
                    base_s=ctx.retry.base_s, max_delay_s=ctx.retry.max_delay_s)  # fmt: skip

    @property
    def _attempt(self) -> int:
        """The attempt's number for VISIONQ_MAX_ATTEMPTS: flex sheds are not counted."""
        return self.claim.attempt_number - self.sheds

    def _flex_timeout(self) -> float | None:
        """The next flex call's timeout (worker/tiering.py); None on another tier."""
        if self.tier is not ServiceTier.FLEX:
            return None
        return flex_timeout(utcnow(), self._flex_deadline(), self.ctx.settings)

    def _flex_deadline(self) -> datetime:
        """The job's deadline, or the end of its run (VISIONQ_JOB_DEADLINE_S from its first
        start) when that comes first: flex must leave time for standard before either."""
        bound = self.job.started_at + timedelta(seconds=self.ctx.settings.job_deadline_s)
        return min(self.job.deadline_at or bound, bound)

    def _after_flex_error(self, exc: GeminiCallError) -> str | None:
        """A flex call shed or timed out: asked again at flex while the deadline allows,
        else answered at standard (worker/tiering.py)."""
        if is_shed(exc):
            self.sheds += 1
        step = after_flex_error(exc, now=utcnow(), deadline_at=self._flex_deadline(),
                                sheds=self.sheds, settings=self.ctx.settings)  # fmt: skip
        if step.kind == "default":
            return self._after_call_error(exc)
        usage = exc.usage.raw if exc.usage else None
        error_class = "FlexTimeout" if exc.code == "gemini_timeout" else "FlexShed"
        if step.kind == "retry_flex":
            message = f"{exc.message} ({step.reason}; asked again at flex in {step.delay_s:.1f} s)"
            failure = Failure(job_error_code(exc), message, error_class, exc.http_status)
            return self._again(failure, step.delay_s, usage)
        message = f"{exc.message} ({step.reason}; falling back to standard to hold the deadline)"
        failure = Failure(job_error_code(exc), message, error_class, exc.http_status)
        ended = self._to_standard(step.reason, attempt=failure)
        return ended if ended is not None else self._again(failure, 0.0, usage)

    def _to_standard(self, reason: str, attempt: Failure | None = None) -> str | None:
        """Leave flex for standard: hold the price difference against the tenant's budget
        first (the job's hold was at the flex price); a refusal fails the job
        budget_exceeded (``attempt``: what the current attempt ends with then)."""
        ctx, job, claim = self.ctx, self.job, self.claim
        extra = standard_surcharge_nusd(ctx, job)
        if not hold_difference(ctx, claim, extra):
            message = (
                f"Falling back to standard ({reason}) would pass the tenant's budget: the "
                "standard price costs more than the flex hold. Raise the budget "
                "(visionq budgets set), or submit with a later deadline."
            )
            error_class = attempt.error_class if attempt else "BudgetExceeded"
            status = attempt.http_status if attempt else None
            return self._fail(Failure("budget_exceeded", message, error_class, status))
        self.tier = ServiceTier.STANDARD
        self.spend.warnings["flex_fallback"] = fallback_message(reason)
        return None

    def _pace(self) -> None:
        """Wait for the shared rate limiter (requests, estimated input tokens and estimated
        dollars: the estimate's maximum, 0 when the cost is unknown).

        Called right before the SDK call, after the request is built: the time between
        admission and the request reaching Gemini must stay well under the limiter's margin.
        """
        if self.ctx.limiter is None:
            return
        estimate = self.job.estimate
        tokens = (estimate.input_tokens if estimate else None) or 0
        cost = estimate.cost_usd if estimate else None
        usd = cost.max if cost else Decimal(0)
        self.ctx.limiter.acquire(self.job.model, tokens, usd=usd, deadline=self.deadline)

    def _after_call_error(self, exc: GeminiCallError) -> str | None:
        if exc.code in ("max_tokens_exhausted", "answer_truncated"):
            return self._after_max_tokens(exc)
        remaining = self.deadline - time.monotonic()
        now = time.monotonic()
        self.daily_refusals = self.daily_refusals + 1 if exc.daily_quota else 0
        self.daily_since = (self.daily_since or now) if exc.daily_quota else None
        decision = decide(self.ctx.retry, exc, attempt=self._attempt,
                          remaining_s=remaining, daily_refusals=self.daily_refusals,
                          daily_refused_for_s=now - (self.daily_since or now))  # fmt: skip
        failure = failure_of(exc)
        if not decision.retry:
            if decision.reason:
                failure = replace(failure, message=f"{failure.message} ({decision.reason})")
            if decision.code:
                failure = replace(failure, code=decision.code)
            return self._fail(failure)
        assert decision.delay_s is not None
        log.info("job %s attempt %d: %s; retrying in %.2f s", self.job.id,
                 self.claim.attempt_number, exc.code, decision.delay_s)  # fmt: skip
        usage = exc.usage.raw if exc.usage else None
        return self._again(failure, decision.delay_s, usage)

    def _after_max_tokens(self, exc: GeminiCallError) -> str | None:
        """Thoughts used the whole output cap, or the answer was cut at it: ask once more
        with it raised (only visionq's own per-task cap, never the job's
        options.max_output_tokens), else fail (a cut answer is never kept)."""
        sent = self.spend.output_cap
        thoughts = exc.usage.thoughts_tokens if exc.usage else None
        usage = exc.usage.raw if exc.usage else None
        options = self.job.options
        if cap_may_be_raised(options, raised=self.raised_cap is not None):
            raised = self._raised(sent, thoughts)
            room = self._attempt < self.ctx.retry.max_attempts
            if raised is not None and room and time.monotonic() < self.deadline:
                self.first_cap, self.raised_cap = sent, raised
                was = sent if sent is not None else "the model's default"
                message = (
                    f"{exc.message} Asking once more with max_output_tokens {raised} (was {was})."
                )
                failure = Failure(job_error_code(exc), message, "GeminiCallError", exc.http_status)
                return self._again(failure, 0.0, usage)
        message = cap_failure_message(exc.code, cap=sent, thoughts=thoughts,
                                      first_cap=self.first_cap)  # fmt: skip
        failure = Failure(job_error_code(exc), message, "GeminiCallError", exc.http_status)
        return self._fail(failure)

    def _raised(self, sent: int | None, thoughts: int | None) -> int | None:
        """The cap to ask again with after ``sent`` was used up (worker/thinking.py)."""
        allowance = answer_allowance(TaskKind(self.job.task), self.job.options)
        entry = self.ctx.costs.catalogue.entry(self.job.model)
        limit = (entry.output_token_limit if entry else None) or DEFAULT_OUTPUT_LIMIT
        return raised_cap(cap=sent, thoughts=thoughts, allowance=allowance, limit=limit)

    def carry_batch_cut(self) -> None:
        """A batch line of this job was cut at visionq's own cap (its attempt closed
        CUT_IN_BATCH): that was the normal cap's call, so this run starts at the raised cap."""
        with self.ctx.sessions() as session:
            earlier = earlier_attempt(session, self.job.id, self.claim.attempt_id)
        if earlier is None or earlier.error_class != CUT_IN_BATCH:
            return
        if not cap_may_be_raised(self.job.options, raised=False):
            return
        entry = self.ctx.costs.catalogue.entry(self.job.model)
        sent = output_cap(TaskKind(self.job.task), self.job.options, entry)
        metadata = types.GenerateContentResponseUsageMetadata.model_validate(earlier.usage or {})
        raised = self._raised(sent, metadata.thoughts_token_count)
        if raised is not None:
            self.first_cap, self.raised_cap = sent, raised

    def _fail(self, failure: Failure) -> str:
        claim = self.claim
        return fail_run(self.ctx, job_id=claim.job_id, attempt_id=claim.attempt_id,
                        lease_token=claim.lease_token, warnings=self.job.warnings,
                        failure=failure, spend=self.spend,
                        first_attempt=claim.attempt_number == 1)  # fmt: skip

    def _again(self, failure: Failure, delay_s: float, usage: dict[str, Any] | None) -> str | None:
        """Close the failed attempt, wait ``delay_s`` and open the next one."""
        tier = self.spend.requested_tier or self.tier.value
        RETRIES.labels(model_label(self.job.model), tier, failure.code).inc()
        with self.ctx.sessions.begin() as session:
            finish_attempt(
                session, self.claim.attempt_id, outcome=AttemptOutcome.FAILED,
                error_class=failure.error_class, error_message=failure.message,
                http_status=failure.http_status, usage=usage,
                cost_nusd=self.spend.last_call_nusd, retry_delay_s=delay_s or None,
                requested_tier=self.spend.requested_tier, served_tier=self.spend.served_tier,
            )  # fmt: skip
        self.spend.count_recorded()  # the failed attempt's call is recorded: committed
        time.sleep(delay_s)
        with self.ctx.sessions.begin() as session:
            claim = open_attempt(session, self.claim)
        if claim is None:  # cancelled, or the lease was lost to another worker meanwhile
            return "discarded"
        self.claim = claim
        self.spend.next_attempt()
        return None
