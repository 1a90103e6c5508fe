"""One Gemini call of a sync run: build the job's request and send it at a tier (a file URI
Gemini refuses is uploaded again once)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from visionq.models.leases import JobSpec
from visionq.models.outcomes import Usage
from visionq.vision.catalogue import ServiceTier
from visionq.worker.context import WorkerContext
from visionq.worker.gemini import GeminiAnswer, GeminiCallError
from visionq.worker.quota_learn import learnable, quota_violation
from visionq.worker.ratelimit import Admission, GeminiRateLimiter
from visionq.worker.requests import GeminiRequest, build_request, decode_limits
from visionq.worker.spend import Spend

log = logging.getLogger(__name__)
# Statuses with which Gemini refuses a file URI it no longer has (expired or deleted).
_FILE_REFUSED_STATUSES = {400, 403, 404}
# Errors raised before any request left: the admission is taken back.
_NEVER_SENT = frozenset({"gemini_not_configured"})
# Times an admission that left its log before the send is taken back and asked again.
_REACQUIRES = 3
_TIERS = frozenset(tier.value for tier in ServiceTier)


def call_gemini(
    ctx: WorkerContext,
    job: JobSpec,
    *,
    pace: Callable[[], None],
    spend: Spend,
    cap: int | None = None,
    tier: ServiceTier = ServiceTier.STANDARD,
    timeout_s: float | None = None,
) -> GeminiAnswer:
    """Build the request and call Gemini at ``tier``; a file URI Gemini refuses is uploaded
    again once.

    ``pace`` waits for the rate limiter; it runs right before each call. ``cap`` replaces
    the request's max_output_tokens (raised after thoughts used it all). ``timeout_s``: the
    call's own timeout (a flex call's).
    """
    request = _request(ctx, job, spend, cap)
    try:
        return _send(ctx, request, pace=pace, tier=tier, timeout_s=timeout_s)
    except GeminiCallError as exc:
        refused = exc.http_status in _FILE_REFUSED_STATUSES and "file" in exc.message.lower()
        if not (request.file_uris and refused):
            raise
        log.info("job %s: Gemini refused file URIs (%s); uploading again", job.id, exc.message)
        ctx.uploads.forget(request.file_uris)
    request = _request(ctx, job, spend, cap)
    return _send(ctx, request, pace=pace, tier=tier, timeout_s=timeout_s)


def _send(
    ctx: WorkerContext,
    request: GeminiRequest,
    *,
    pace: Callable[[], None],
    tier: ServiceTier,
    timeout_s: float | None,
) -> GeminiAnswer:
    """Pace, send, and tell the limiter how it went: the admission is settled to the
    answer's actual input tokens and cost, a 429 teaches it (worker/quota_learn.py), a
    call that was never sent is taken back."""
    admission = _admitted(ctx.limiter, pace)
    limiter = ctx.limiter
    try:
        answer = ctx.gemini.generate(
            model=request.model, contents=request.parts, config=request.config, tier=tier,
            timeout_s=timeout_s,
        )  # fmt: skip
    except GeminiCallError as exc:
        if limiter is not None:
            try:
                _after_error(ctx, limiter, admission, request.model, exc)
            except Exception as bookkeeping:  # the call's own error goes on
                _not_settled(bookkeeping)
        raise
    if limiter is not None and admission is not None:
        try:
            _settle(ctx, limiter, admission, request.model, answer.usage, served=answer.served_tier)
        except Exception as bookkeeping:  # a paid answer is never dropped
            _not_settled(bookkeeping)
    return answer


def _not_settled(exc: Exception) -> None:
    """The limiter's bookkeeping after a call failed (Redis down, a cost the book lacks):
    the reservation simply stays as admitted. Gemini has answered (and charged), so its
    answer or its own error goes on unchanged."""
    log.warning("rate limiter not settled after the Gemini call (the reservation stays): %r", exc)


def _admitted(limiter: GeminiRateLimiter | None, pace: Callable[[], None]) -> Admission | None:
    """Run ``pace`` and take its admission. One older than a tenth of the margin by now (the
    thread was held up after it) is restamped to now: the margin must cover the way to
    Gemini, not our own delays. Restamping keeps the slot (taking it back and asking again
    left the freed slot unused and waited for the next one). Only an admission that already
    left its log is taken back and asked again, a few times at most."""
    pace()
    if limiter is None:
        return None
    admission = limiter.take_admission()
    for _ in range(_REACQUIRES):
        if admission is None or limiter.margin_s <= 0 or admission.age() <= limiter.margin_s / 10:
            break
        age = admission.age()
        if limiter.restamp(admission):
            log.debug("rate limiter admission %.3f s old before the send; restamped", age)
            break
        log.info("rate limiter admission %.3f s old before the send; asking again", age)
        limiter.release(admission)
        pace()
        admission = limiter.take_admission()
    return admission


def _after_error(
    ctx: WorkerContext,
    limiter: GeminiRateLimiter,
    admission: Admission | None,
    model: str,
    exc: GeminiCallError,
) -> None:
    if admission is not None and exc.code in _NEVER_SENT:
        limiter.release(admission)
        return
    if learnable(exc):
        kind, value = quota_violation(exc)
        limiter.learn_429(model, quota_metric=kind, quota_value=value)
    if admission is not None and exc.usage is not None:
        _settle(ctx, limiter, admission, model, exc.usage, served=None)
    # Otherwise the reservation stays: Gemini may have counted the request.


def _settle(
    ctx: WorkerContext,
    limiter: GeminiRateLimiter,
    admission: Admission,
    model: str,
    usage: Usage | None,
    *,
    served: str | None,
) -> None:
    """The admission's reserved amounts become the call's actual ones (when known)."""
    if usage is None:
        return
    tier = ServiceTier(served) if served in _TIERS else ServiceTier.STANDARD
    cost = ctx.costs.call_cost(model, usage.raw, tier=tier)
    limiter.settle(admission, tokens=usage.prompt_tokens, usd=cost)


def _request(ctx: WorkerContext, job: JobSpec, spend: Spend, cap: int | None) -> GeminiRequest:
    request = build_request(
        job,
        blobs=ctx.blobs,
        uploads=ctx.uploads,
        inline_limit=ctx.settings.inline_limit_bytes,
        catalogue=ctx.costs.catalogue,
        limits=decode_limits(ctx.settings),
    )
    if cap is not None:
        request.config["max_output_tokens"] = cap
    spend.transports = request.transports
    spend.output_cap = request.config.get("max_output_tokens")
    return request
