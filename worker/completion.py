"""How a run ends, for both lanes (the sync pipeline and the Gemini Batch lane): the job
completed or failed under its lease token, with its usage, cost (at the tier served) and
standard-price cost, its attempt closed, its inputs' transports recorded; all in one
transaction. The token is the fence: a run (or a batch) that no longer holds the job ends
nothing, and its attempt is closed ``discarded``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from visionq.models.ended import EndedJob
from visionq.models.leases import Claim
from visionq.models.metrics import ESTIMATE_RATIO, count_ended, model_label
from visionq.models.outcomes import (
    attempts_cost,
    charge_late,
    complete_job,
    earlier_calls,
    fail_job,
    finish_attempt,
    hold_more,
    hold_up_to,
    set_transports,
)
from visionq.models.tables import AttemptOutcome
from visionq.vision.catalogue import ServiceTier
from visionq.vision.costing import reservation_nusd, to_nano
from visionq.vision.errors import CodedError
from visionq.vision.tasks import TaskKind
from visionq.worker.context import WorkerContext
from visionq.worker.errors import GeminiCallError
from visionq.worker.failures import failure_message, job_error_code
from visionq.worker.spend import Spend

log = logging.getLogger(__name__)

__all__ = [
    "Failure",
    "complete_run",
    "fail_run",
    "failure_of",
    "hold_difference",
    "hold_run_tier",
    "run_warnings",
]


@dataclass(frozen=True)
class Failure:
    """Why a job (or one attempt) failed: the job's error code and message, and what the
    attempt records (the exception's class, the HTTP status Gemini answered)."""

    code: str
    message: str
    error_class: str
    http_status: int | None = None
    # The tier the attempt was to ask for, when it failed before any call set the run's
    # (hold_run_tier's refusal): the attempt records it all the same.
    requested_tier: str | None = None


def failure_of(exc: CodedError, finish_reason: str | None = None) -> Failure:
    """What a user reads on a failed job: the job error code its error's code maps to and
    its wording (worker/failures.py; ``finish_reason``: the answer's, when it was read)."""
    if isinstance(exc, GeminiCallError):
        code = job_error_code(exc)
        return Failure(code, exc.message, type(exc.__cause__ or exc).__name__, exc.http_status)
    return Failure(job_error_code(exc), failure_message(exc, finish_reason), type(exc).__name__)


def run_warnings(warnings: Sequence[dict[str, str]], spend: Spend) -> list[dict[str, str]] | None:
    """The job's whole warning list when the run added any (``spend.warnings``: a routed
    answer, a priority call served at standard, a flex fallback), else None (the stored
    ones, ``warnings``, stay as they are)."""
    if not spend.warnings:
        return None
    run = [{"code": code, "message": message} for code, message in spend.warnings.items()]
    return [*warnings, *run]


def complete_run(
    ctx: WorkerContext,
    *,
    job_id: str,
    attempt_id: int,
    lease_token: str,
    warnings: Sequence[dict[str, str]],
    result: dict[str, Any],
    spend: Spend,
    model_version: str | None,
    first_attempt: bool = False,
) -> str:
    """Store the job's result and close its attempt succeeded; ``discarded`` (nothing
    stored) when the job is no longer held under ``lease_token`` (cancelled, or taken over).

    ``warnings`` are the job's stored warnings; the run's own come from ``spend``. The
    job's usage and cost are those of all its attempts (``first_attempt``: the job has no
    other, nothing to read).
    """
    with ctx.sessions.begin() as session:
        set_transports(session, job_id, spend.transports)
        total = _totals(ctx, session, job_id, attempt_id, spend, first_attempt=first_attempt)
        stored = complete_job(
            session, job_id, result=result, usage=total.usage, model_version=model_version,
            cost_nusd=total.cost_nusd, lease_token=lease_token,
            warnings=run_warnings(warnings, spend), served_tier=spend.served_tier,
            standard_cost_nusd=total.standard_nusd, summed=True,
        )  # fmt: skip
        finish_attempt(
            session,
            attempt_id,
            outcome=AttemptOutcome.SUCCEEDED if stored else AttemptOutcome.DISCARDED,
            http_status=200,
            usage=spend.last_usage,
            cost_nusd=spend.last_call_nusd,
            requested_tier=spend.requested_tier,
            served_tier=spend.served_tier,
        )
        if not stored:  # a paid answer the job's end no longer counts: counted now
            charge_late(session, job_id, spend.last_call_nusd)
    spend.count_recorded()  # the attempt recorded its call (either outcome): committed
    if stored:  # committed: counted once, by the run that ended it
        count_ended([stored])
        observe_estimate(stored, total)
    return "succeeded" if stored else "discarded"


def fail_run(
    ctx: WorkerContext,
    *,
    job_id: str,
    attempt_id: int,
    lease_token: str,
    warnings: Sequence[dict[str, str]],
    failure: Failure,
    spend: Spend,
    first_attempt: bool = False,
) -> str:
    """End the job failed with ``failure`` and close its attempt; ``discarded`` when the
    job is no longer held under ``lease_token`` (it ended, or another holder took it)."""
    with ctx.sessions.begin() as session:
        set_transports(session, job_id, spend.transports)
        total = _totals(ctx, session, job_id, attempt_id, spend, first_attempt=first_attempt)
        ended = fail_job(
            session, job_id, code=failure.code, message=failure.message, usage=total.usage,
            cost_nusd=total.cost_nusd, lease_token=lease_token,
            warnings=run_warnings(warnings, spend), standard_cost_nusd=total.standard_nusd,
            summed=True,
        )  # fmt: skip
        finish_attempt(
            session,
            attempt_id,
            outcome=AttemptOutcome.FAILED if ended else AttemptOutcome.DISCARDED,
            error_class=failure.error_class,
            error_message=failure.message,
            http_status=failure.http_status,
            usage=spend.last_usage,
            cost_nusd=spend.last_call_nusd,
            requested_tier=spend.requested_tier or failure.requested_tier,
            served_tier=spend.served_tier,
        )
        if not ended:
            charge_late(session, job_id, spend.last_call_nusd)
    spend.count_recorded()  # the attempt recorded its call (either outcome): committed
    if ended:
        count_ended([ended])
    log.warning("job %s failed: %s %s", job_id, failure.code, failure.message)
    return "failed" if ended else "discarded"


def observe_estimate(ended: EndedJob, total: Spend) -> None:
    """How far a succeeded job's admission estimate was from what it took: actual /
    estimated input tokens, and cost / the estimate's maximum (what budgets hold). Skipped
    for a quantity without an estimate (unknown model) or without a measure."""
    estimate = ended.estimate
    if estimate is None:
        return
    model = model_label(ended.model)
    tokens = total.usage.prompt_tokens if total.usage is not None else None
    if tokens is not None and estimate.input_tokens:
        ratio = tokens / estimate.input_tokens
        ESTIMATE_RATIO.labels(ended.task, model, "input_tokens").observe(ratio)
    held = to_nano(estimate.cost_usd.max) if estimate.cost_usd is not None else 0
    if total.cost_nusd is not None and held > 0:
        ESTIMATE_RATIO.labels(ended.task, model, "cost").observe(total.cost_nusd / held)


def _totals(
    ctx: WorkerContext,
    session: Session,
    job_id: str,
    attempt_id: int,
    spend: Spend,
    *,
    first_attempt: bool,
) -> Spend:
    """The job's totals at its end: its other attempts' recorded calls plus this one's."""
    if first_attempt:
        return spend
    return spend.with_earlier(ctx, earlier_calls(session, job_id, attempt_id))


def hold_difference(ctx: WorkerContext, claim: Claim, amount_nusd: int) -> bool:
    """Hold ``amount_nusd`` more for the job against its tenant's budget (a flex job
    falling back to standard); False, nothing held, when the budget cannot take it. A job
    held nothing for (its tenant had no cap at submit) needs nothing more."""
    if amount_nusd <= 0:
        return True
    try:
        with ctx.sessions.begin() as session:
            if not hold_more(session, job_id=claim.job_id, lease_token=claim.lease_token,
                             tenant=claim.job.tenant, amount_nusd=amount_nusd):  # fmt: skip
                raise _Refused
    except _Refused:
        return False
    return True


def hold_run_tier(ctx: WorkerContext, claim: Claim, tier: ServiceTier) -> Failure | None:
    """Before a sync run's first call: a job whose budget hold was made at a cheaper tier
    than ``tier`` (a batch-lane job the watchdog, reconciler or results sent back to the
    sync lane: held at the batch price, run at standard) holds up to its estimate at
    ``tier`` first, so its spend cannot pass the hold. None when held (or nothing was
    needed); the job's failure (budget_exceeded) when the tenant's budget cannot take it.
    """
    job = claim.job
    held_at = job.estimate.tier if job.estimate is not None else tier
    if held_at is tier:
        return None
    estimate = ctx.costs.estimate(
        task=TaskKind(job.task), model=job.model, prompt=job.prompt, labels=job.labels,
        options=job.options, sizes=[(item.width, item.height) for item in job.inputs],
        tier=tier,
    )  # fmt: skip
    try:
        with ctx.sessions.begin() as session:
            # What its batch lines already cost counts in its end's settle: held too.
            target = reservation_nusd(estimate) + attempts_cost(session, claim.job_id)
            if not hold_up_to(session, job_id=claim.job_id, lease_token=claim.lease_token,
                              tenant=job.tenant, target_nusd=target):  # fmt: skip
                raise _Refused
    except _Refused:
        message = (
            f"This job was sent back from a Gemini batch to the sync lane ({tier} price) to "
            f"hold its deadline, and the price difference over its {held_at} hold would pass "
            "the tenant's budget. Raise the budget (visionq budgets set), or submit it again "
            "with tier batch and a later deadline."
        )
        return Failure("budget_exceeded", message, "BudgetExceeded", requested_tier=tier.value)
    return None


class _Refused(Exception):
    """The budget refused the hold: the transaction is rolled back."""
