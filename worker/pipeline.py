"""One job, start to end: claim, build the request, call Gemini, parse, store."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from models.blobs import BlobNotFoundError
from models.jobs import (
    Claim,
    Usage,
    claim_job,
    complete_job,
    fail_job,
    finish_attempt,
    load_job,
    open_attempt,
    set_transports,
)
from models.tables import AttemptOutcome, Job
from vision.costing import to_nano
from vision.masks import parse_segments
from vision.parsing import AnswerParseError
from vision.structured import SchemaMismatchError
from vision.tasks import ImageSize, TaskKind, parse_answer
from worker.context import WorkerContext
from worker.gemini import GeminiAnswer, GeminiCallError
from worker.requests import build_request

log = logging.getLogger(__name__)
# Statuses with which Gemini refuses a file URI it no longer has (expired or deleted).
_FILE_REFUSED_STATUSES = {400, 403, 404}


def run_job(ctx: WorkerContext, job_id: str) -> str:
    """Run a job once; returns what happened (for logs): skipped, succeeded, failed, discarded."""
    with ctx.sessions.begin() as session:
        claim = claim_job(session, job_id)
    if claim is None:
        log.info("job %s is not queued or running; nothing to do", job_id)
        return "skipped"
    with ctx.sessions() as session:
        job = load_job(session, job_id)
    if job is None:  # deleted between the claim and now
        return "skipped"
    return _execute(ctx, job, claim)


@dataclass(frozen=True)
class _Failure:
    code: str
    message: str
    error_class: str
    http_status: int | None = None


def _failure(exc: Exception) -> _Failure:
    """What a user reads on a failed job, for each way a run can fail."""
    if isinstance(exc, BlobNotFoundError):
        return _Failure(
            "input_missing",
            f"Input image {exc} is missing from the blob store.",
            "BlobNotFoundError",
        )
    if isinstance(exc, GeminiCallError):
        return _Failure(exc.code, exc.message, type(exc.__cause__ or exc).__name__, exc.http_status)
    if isinstance(exc, SchemaMismatchError):
        return _Failure(
            "schema_validation_failed",
            f"Gemini's answer failed the schema twice: {exc}",
            "SchemaMismatchError",
        )
    return _Failure(
        "unparseable_answer", f"Gemini's answer could not be read: {exc}", type(exc).__name__
    )


@dataclass
class _Spend:
    """Tokens and money of every Gemini call a job made (each attempt records its own)."""

    usage: Usage | None = None
    cost_nusd: int | None = None
    last_call_nusd: int | None = None

    def add(self, ctx: WorkerContext, model: str, call: Usage | None) -> None:
        self.last_call_nusd = None
        if call is None:
            return
        self.usage = call.plus(self.usage)
        cost = ctx.costs.call_cost(model, call.raw)
        if cost is not None:
            self.last_call_nusd = to_nano(cost)
            self.cost_nusd = (self.cost_nusd or 0) + self.last_call_nusd


def _execute(ctx: WorkerContext, job: Job, claim: Claim) -> str:
    spend = _Spend()
    # A structured answer that fails its schema is asked for once more, then fails.
    for round_number in (1, 2):
        try:
            answer = call_gemini(ctx, job)
            spend.add(ctx, job.model, answer.usage)
            return _complete(ctx, claim, interpret(ctx, job, answer.text), spend, answer)
        except SchemaMismatchError as exc:
            if round_number == 2:
                return _fail(ctx, claim, _failure(exc), spend)
            retry = _retry_after_invalid_answer(ctx, claim, str(exc), answer, spend)
            if retry is None:  # cancelled meanwhile
                return "discarded"
            claim = retry
        except (BlobNotFoundError, GeminiCallError, AnswerParseError) as exc:
            if isinstance(exc, GeminiCallError):
                spend.add(ctx, job.model, exc.usage)
            return _fail(ctx, claim, _failure(exc), spend)
        except Exception as exc:
            # A bug of ours: logged with its traceback, and the job and its attempt end
            # failed with the cause instead of staying "running" forever.
            log.exception("job %s crashed", job.id)
            failure = _Failure("internal_error", f"{type(exc).__name__}: {exc}", type(exc).__name__)
            return _fail(ctx, claim, failure, spend)
    raise AssertionError("unreachable: the second round always returns")


def call_gemini(ctx: WorkerContext, job: Job) -> GeminiAnswer:
    """Build the request and call Gemini; a file URI Gemini refuses is uploaded again once."""
    request = build_request(
        job, blobs=ctx.blobs, uploads=ctx.uploads, inline_limit=ctx.settings.inline_limit_bytes
    )
    with ctx.sessions.begin() as session:
        set_transports(session, job.id, request.transports)
    try:
        return ctx.gemini.generate(
            model=request.model, contents=request.parts, config=request.config
        )
    except GeminiCallError as exc:
        refused = exc.http_status in _FILE_REFUSED_STATUSES and "file" in exc.message.lower()
        if not (request.file_uris and refused):
            raise
        log.info("job %s: Gemini refused file URIs (%s); uploading again", job.id, exc.message)
        ctx.uploads.forget(request.file_uris)
    request = build_request(
        job, blobs=ctx.blobs, uploads=ctx.uploads, inline_limit=ctx.settings.inline_limit_bytes
    )
    return ctx.gemini.generate(model=request.model, contents=request.parts, config=request.config)


def interpret(ctx: WorkerContext, job: Job, text: str) -> dict[str, Any]:
    """The job's result from the answer text; segmentation masks go to the blob store."""
    task = TaskKind(job.task)
    sizes = [ImageSize(width=item.width, height=item.height) for item in job.inputs]
    if task is not TaskKind.SEGMENT:
        return parse_answer(task, text, images=sizes, labels=job.labels, schema=job.response_schema)
    segments, skipped = parse_segments(text, sizes[0].width, sizes[0].height)
    objects = [
        {
            "label": segment.label,
            "box_2d": segment.box_2d,
            "box": list(segment.box),
            "area": segment.area,
            "mask_sha256": ctx.blobs.put(segment.mask_png),
            "mask_url": f"/v1/jobs/{job.id}/masks/{index}.png",
        }
        for index, segment in enumerate(segments)
    ]
    image = {"width": sizes[0].width, "height": sizes[0].height}
    return {"objects": objects, "skipped": skipped, "image": image}


def _retry_after_invalid_answer(
    ctx: WorkerContext, claim: Claim, reason: str, answer: GeminiAnswer, spend: _Spend
) -> Claim | None:
    with ctx.sessions.begin() as session:
        finish_attempt(
            session, claim.attempt_id, outcome=AttemptOutcome.FAILED,
            error_class="SchemaMismatchError", error_message=reason, http_status=200,
            usage=answer.usage.raw if answer.usage else None, cost_nusd=spend.last_call_nusd,
        )  # fmt: skip
        return open_attempt(session, claim.job_id)


def _complete(
    ctx: WorkerContext, claim: Claim, result: dict[str, Any], spend: _Spend, answer: GeminiAnswer
) -> str:
    with ctx.sessions.begin() as session:
        stored = complete_job(
            session, claim.job_id, result=result, usage=spend.usage,
            model_version=answer.model_version, cost_nusd=spend.cost_nusd,
        )  # fmt: skip
        finish_attempt(
            session,
            claim.attempt_id,
            outcome=AttemptOutcome.SUCCEEDED if stored else AttemptOutcome.DISCARDED,
            http_status=200,
            usage=answer.usage.raw if answer.usage else None,
            cost_nusd=spend.last_call_nusd,
        )
    return "succeeded" if stored else "discarded"


def _fail(ctx: WorkerContext, claim: Claim, failure: _Failure, spend: _Spend) -> str:
    with ctx.sessions.begin() as session:
        ended = fail_job(
            session, claim.job_id, code=failure.code, message=failure.message,
            usage=spend.usage, cost_nusd=spend.cost_nusd,
        )  # fmt: skip
        finish_attempt(
            session,
            claim.attempt_id,
            outcome=AttemptOutcome.FAILED if ended else AttemptOutcome.DISCARDED,
            error_class=failure.error_class,
            error_message=failure.message,
            http_status=failure.http_status,
            usage=spend.usage.raw if spend.usage else None,
            cost_nusd=spend.last_call_nusd,
        )
    log.info("job %s failed: %s %s", claim.job_id, failure.code, failure.message)
    return "failed" if ended else "discarded"
