"""One Gemini call of a sync run: build the job's request and send it at a tier (a file URI
Gemini refuses is uploaded again once)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from visionq.models.leases import JobSpec
from visionq.vision.catalogue import ServiceTier
from visionq.worker.context import WorkerContext
from visionq.worker.gemini import GeminiAnswer, GeminiCallError
from visionq.worker.requests import GeminiRequest, build_request, decode_limits
from visionq.worker.spend import Spend

log = logging.getLogger(__name__)
# Statuses with which Gemini refuses a file URI it no longer has (expired or deleted).
_FILE_REFUSED_STATUSES = {400, 403, 404}


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
        pace()
        return ctx.gemini.generate(
            model=request.model, contents=request.parts, config=request.config, tier=tier,
            timeout_s=timeout_s,
        )  # fmt: skip
    except GeminiCallError as exc:
        refused = exc.http_status in _FILE_REFUSED_STATUSES and "file" in exc.message.lower()
        if not (request.file_uris and refused):
            raise
        log.info("job %s: Gemini refused file URIs (%s); uploading again", job.id, exc.message)
        ctx.uploads.forget(request.file_uris)
    request = _request(ctx, job, spend, cap)
    pace()
    return ctx.gemini.generate(model=request.model, contents=request.parts,
                               config=request.config, tier=tier, timeout_s=timeout_s)  # fmt: skip


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
