"""One job, start to end: claim, build the request, call Gemini, parse, store."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from google.genai import types

from models.blobs import BlobNotFoundError, BlobStore
from models.jobs import Claim, Usage, claim_job, complete_job, fail_job, finish_attempt, load_job
from models.tables import AttemptOutcome, Job
from vision.parsing import AnswerParseError
from vision.tasks import (
    ImageSize,
    JobOptions,
    TaskKind,
    build_prompt,
    generation_config,
    parse_answer,
)
from worker.context import WorkerContext
from worker.gemini import GeminiCallError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GeminiRequest:
    model: str
    parts: list[types.Part]
    config: dict[str, object]


def build_request(job: Job, blobs: BlobStore) -> GeminiRequest:
    """The parts and config for a job: images inline, then the text (Gemini's advice)."""
    task = TaskKind(job.task)
    options = JobOptions.model_validate(job.options or {})
    parts = [
        types.Part.from_bytes(data=blobs.get(item.sha256), mime_type=item.mime_type)
        for item in job.inputs
    ]
    text = build_prompt(task, prompt=job.prompt, labels=job.labels, options=options)
    parts.append(types.Part.from_text(text=text))
    return GeminiRequest(
        model=job.model, parts=parts, config=generation_config(task, job.model, options)
    )


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
    try:
        request = build_request(job, ctx.blobs)
        answer = ctx.gemini.generate(
            model=request.model, contents=request.parts, config=request.config
        )
    except BlobNotFoundError as exc:
        return _fail(
            ctx, claim, "input_missing", f"Input image {exc} is missing from the blob store."
        )
    except GeminiCallError as exc:
        return _fail(
            ctx,
            claim,
            exc.code,
            exc.message,
            error_class=type(exc.__cause__ or exc).__name__,
            http_status=exc.http_status,
            usage=exc.usage,
        )
    sizes = [ImageSize(width=item.width, height=item.height) for item in job.inputs]
    try:
        result = parse_answer(TaskKind(job.task), answer.text, images=sizes, labels=job.labels)
    except AnswerParseError as exc:
        return _fail(
            ctx,
            claim,
            "unparseable_answer",
            f"Gemini's answer could not be read: {exc}",
            error_class="AnswerParseError",
            usage=answer.usage,
        )
    with ctx.sessions.begin() as session:
        stored = complete_job(
            session, job_id, result=result, usage=answer.usage, model_version=answer.model_version
        )
        finish_attempt(
            session,
            claim.attempt_id,
            outcome=AttemptOutcome.SUCCEEDED if stored else AttemptOutcome.DISCARDED,
            http_status=200,
            usage=answer.usage.raw if answer.usage else None,
        )
    return "succeeded" if stored else "discarded"


def _fail(
    ctx: WorkerContext,
    claim: Claim,
    code: str,
    message: str,
    *,
    error_class: str | None = None,
    http_status: int | None = None,
    usage: Usage | None = None,
) -> str:
    with ctx.sessions.begin() as session:
        ended = fail_job(session, claim.job_id, code=code, message=message, usage=usage)
        finish_attempt(
            session,
            claim.attempt_id,
            outcome=AttemptOutcome.FAILED if ended else AttemptOutcome.DISCARDED,
            error_class=error_class or code,
            error_message=message,
            http_status=http_status,
            usage=usage.raw if usage else None,
        )
    log.info("job %s failed: %s %s", claim.job_id, code, message)
    return "failed" if ended else "discarded"
