"""worker/batch_results.py: a batch's lines read (inline and JSONL), matched by job id, and
stored exactly once under the batch's token at the batch price; errors failed or released."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from google.genai import types
from sqlalchemy import select, update

from tests.unit.batchlane import MODEL
from tests.unit.test_pipeline_answers import ScriptedGemini, _text
from tests.unit.workercontext import worker_context
from visionq.models.budgets import reserve, set_budget
from visionq.models.gemini_batches import (
    BatchRow,
    batch_token,
    get_row,
    record_batch,
    unfinished_jobs,
)
from visionq.models.jobs import NewInput, cancel_job, create_job
from visionq.models.leases import claim_job
from visionq.models.outcomes import fail_job
from visionq.models.tables import ATTEMPTS, BUDGETS, JOBS
from visionq.vision.catalogue import ServiceTier
from visionq.vision.costing import reservation_nusd, to_nano
from visionq.vision.estimate import StoredEstimate
from visionq.vision.generation import output_cap
from visionq.vision.tasks import JobOptions, TaskKind
from visionq.worker.answers import usage_from_metadata
from visionq.worker.batch_results import (
    LineOutcome,
    line_error,
    read_inline,
    read_jsonl,
    store_outcomes,
)
from visionq.worker.completion import Failure, fail_run, hold_run_tier
from visionq.worker.context import WorkerContext
from visionq.worker.pipeline import run_job
from visionq.worker.spend import Spend
from visionq.worker.thinking import CUT_IN_BATCH, truncated_message

USAGE = {"promptTokenCount": 1000, "candidatesTokenCount": 100, "totalTokenCount": 1100}


def _response(text: str, finish: str = "STOP") -> dict[str, Any]:
    return {
        "candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
                        "finishReason": finish}],
        "usageMetadata": USAGE,
        "modelVersion": MODEL,
    }  # fmt: skip


def test_read_inline_matches_by_metadata_and_skips_strangers() -> None:
    items = [
        types.InlinedResponse(
            response=types.GenerateContentResponse.model_validate(_response("a")),
            metadata={"job_id": "j2"},
        ),
        types.InlinedResponse(metadata={"other": "x"}),
        types.InlinedResponse(
            error=types.JobError(code=429, message="slow down"), metadata={"job_id": "j1"}
        ),
        types.InlinedResponse(metadata={"job_id": "j3"}),
    ]
    lines = list(read_inline(items))
    assert [line.job_id for line in lines] == ["j2", "j1", "j3"]
    assert lines[0].response is not None and lines[0].error is None
    assert lines[1].error == {"code": 429, "message": "slow down"}
    # Neither response nor error: a retryable line error, never a silent success.
    assert lines[2].response is None and lines[2].error is not None
    assert line_error(lines[2].error).retryable


def test_read_jsonl_streams_lines_and_skips_bad_ones(tmp_path: Path) -> None:
    path = tmp_path / "out.tmp"
    path.write_text(
        "\n".join([
            json.dumps({"key": "b", "response": _response("bee")}),
            "{not json",
            json.dumps({"key": "a", "error": {"code": 500, "message": "x", "status": "INTERNAL"}}),
            "",
            json.dumps({"response": _response("no key")}),
        ])
    )  # fmt: skip
    lines = list(read_jsonl(path))
    assert [line.job_id for line in lines] == ["b", "a"]
    assert lines[0].response is not None and lines[0].response.text == "bee"
    assert lines[1].error == {"code": 500, "message": "x", "status": "INTERNAL"}


@pytest.mark.parametrize(
    ("error", "code", "retryable"),
    [
        ({"code": 500, "message": "m", "status": "INTERNAL"}, "gemini_internal", True),
        ({"code": 429, "message": "m"}, "gemini_resource_exhausted", True),
        ({"code": 13, "message": "m"}, "gemini_internal", True),  # a gRPC code
        ({"code": 400, "message": "bad", "status": "INVALID_ARGUMENT"},
         "gemini_invalid_argument", False),
        ({"code": 3, "message": "bad"}, "gemini_invalid_argument", False),
    ],
)  # fmt: skip
def test_line_errors_map_like_sync_errors(
    error: dict[str, Any], code: str, retryable: bool
) -> None:
    mapped = line_error(error)
    assert mapped.retryable is retryable
    if code != "gemini_resource_exhausted":
        assert mapped.code == code


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[WorkerContext]:
    context = worker_context(tmp_path)
    yield context
    context.close()


def _batch(
    ctx: WorkerContext, count: int, task: str = "caption", options: JobOptions | None = None
) -> tuple[BatchRow, list[str]]:
    sha = ctx.blobs.put(b"\x89PNG fake image bytes")
    ids = []
    with ctx.sessions.begin() as session:
        for _ in range(count):
            job = create_job(
                session, tenant="t", task=task, model=MODEL, prompt=None,
                labels=["cat", "dog"] if task == "classify" else None,
                options=options or JobOptions(),
                inputs=[NewInput(sha, "image/png", 64, 48, 30)], tier="batch", lane="batch",
                deadline_s=86400,
            )  # fmt: skip
            session.flush()
            ids.append(job.id)
    batch_id = str(uuid.uuid4())
    with ctx.sessions.begin() as session:
        attached = record_batch(
            session, batch_id=batch_id, identity="test", model=MODEL, job_ids=ids,
            input_mode="inline", resends=0, claim_s=60,
        )  # fmt: skip
        assert attached == ids
        row = get_row(session, batch_id)
    assert row is not None
    return row, ids


def _line(job_id: str, text: str) -> LineOutcome:
    return LineOutcome(job_id, types.GenerateContentResponse.model_validate(_response(text)), None)


def _jobs(ctx: WorkerContext, ids: list[str]) -> dict[str, Any]:
    with ctx.sessions() as session:
        rows = session.execute(select(JOBS).where(JOBS.c.id.in_(ids))).all()
    return {row.id: row for row in rows}


def _attempts(ctx: WorkerContext, job_id: str) -> list[Any]:
    with ctx.sessions() as session:
        query = select(ATTEMPTS).where(ATTEMPTS.c.job_id == job_id).order_by(ATTEMPTS.c.id)
        return list(session.execute(query).all())


def test_answers_are_stored_once_at_the_batch_price(ctx: WorkerContext) -> None:
    row, ids = _batch(ctx, 3)
    lines = [_line(ids[2], "A dog."), _line(ids[0], "A cat."), _line(ids[1], "A mat.")]
    counts = store_outcomes(ctx, row, lines, ctx.settings)
    assert counts["stored"] == 3 and counts["skipped"] == 0
    jobs = _jobs(ctx, ids)
    batch_cost = ctx.costs.call_cost(MODEL, USAGE, tier=ServiceTier.BATCH)
    standard_cost = ctx.costs.call_cost(MODEL, USAGE)
    assert batch_cost is not None and standard_cost is not None
    assert batch_cost * 2 == standard_cost
    for job_id, text in zip(ids, ("A cat.", "A mat.", "A dog."), strict=True):
        job = jobs[job_id]
        assert job.status == "succeeded" and job.result["text"] == text
        assert job.served_tier == "batch"
        assert job.cost_nusd == to_nano(batch_cost)
        assert job.standard_cost_nusd == to_nano(standard_cost)
        [attempt] = _attempts(ctx, job_id)
        assert attempt.outcome == "succeeded" and attempt.gemini_batch_id == row.id
        assert attempt.requested_tier == "batch" and attempt.served_tier == "batch"
        assert attempt.cost_nusd == to_nano(batch_cost)
    # The same lines again (a resumed collection): nothing is stored twice.
    again = store_outcomes(ctx, row, lines, ctx.settings)
    assert again["stored"] == 0 and again["skipped"] == 3
    assert _jobs(ctx, ids)[ids[0]].cost_nusd == to_nano(batch_cost)


def test_cancelled_job_answer_is_discarded(ctx: WorkerContext) -> None:
    row, ids = _batch(ctx, 2)
    with ctx.sessions.begin() as session:
        assert cancel_job(session, tenant="t", job_id=ids[0])
    counts = store_outcomes(ctx, row, [_line(ids[0], "x"), _line(ids[1], "y")], ctx.settings)
    assert counts["stored"] == 1 and counts["skipped"] == 1
    jobs = _jobs(ctx, ids)
    assert jobs[ids[0]].status == "cancelled" and jobs[ids[0]].result is None
    [attempt] = _attempts(ctx, ids[0])
    assert attempt.outcome == "discarded"


def test_a_job_taken_from_the_batch_is_not_stored(ctx: WorkerContext) -> None:
    """The watchdog re-sent the job (its token moved): the batch's late answer is dropped."""
    row, ids = _batch(ctx, 1)
    with ctx.sessions.begin() as session:
        session.execute(update(JOBS).where(JOBS.c.id == ids[0]).values(lease_token="other"))
    counts = store_outcomes(ctx, row, [_line(ids[0], "late")], ctx.settings)
    assert counts["stored"] == 0 and counts["skipped"] == 1
    assert _jobs(ctx, ids)[ids[0]].result is None


def test_line_errors_fail_or_release(ctx: WorkerContext) -> None:
    row, ids = _batch(ctx, 4)
    blocked = _response("")
    blocked["candidates"][0]["finishReason"] = "SAFETY"
    cut = _response("half an ans", finish="MAX_TOKENS")
    lines = [
        LineOutcome(ids[0], None, {"code": 400, "message": "bad image",
                                   "status": "INVALID_ARGUMENT"}),
        LineOutcome(ids[1], None, {"code": 500, "message": "oops", "status": "INTERNAL"}),
        LineOutcome(ids[2], types.GenerateContentResponse.model_validate(blocked), None),
        LineOutcome(ids[3], types.GenerateContentResponse.model_validate(cut), None),
    ]  # fmt: skip
    counts = store_outcomes(ctx, row, lines, ctx.settings)
    assert counts["failed"] == 2 and counts["released"] == 2
    jobs = _jobs(ctx, ids)
    assert jobs[ids[0]].status == "failed" and jobs[ids[0]].error_code == "gemini_invalid_argument"
    assert jobs[ids[2]].status == "failed" and jobs[ids[2]].error_code == "blocked_output"
    # Retryable: back in a queue (the prior 24 h does not fit a 24 h deadline: the sync lane).
    for job_id in (ids[1], ids[3]):
        job = jobs[job_id]
        assert job.status == "queued" and job.gemini_batch_id is None and job.lane == "standard"
        assert any(w["code"] == "batch_fallback" for w in job.warnings)
    [retry] = _attempts(ctx, ids[1])
    assert retry.outcome == "failed" and retry.error_class == "BatchLineError"
    # The cut answer was paid: its usage and batch cost stay on the closed attempt.
    [paid] = _attempts(ctx, ids[3])
    assert paid.outcome == "failed" and paid.usage is not None and paid.cost_nusd
    with ctx.sessions() as session:
        assert unfinished_jobs(session, row.id) == {}


def test_unparsable_answer_fails_with_the_sync_code(ctx: WorkerContext) -> None:
    row, ids = _batch(ctx, 1, task="classify")
    counts = store_outcomes(ctx, row, [_line(ids[0], "a giraffe, maybe")], ctx.settings)
    job = _jobs(ctx, ids)[ids[0]]
    assert counts["failed"] == 1 and job.status == "failed"
    assert job.error_code and job.cost_nusd
    assert batch_token(row.id)  # the fence held the job until then


def _spent(ctx: WorkerContext, tenant: str = "t") -> int:
    with ctx.sessions() as session:
        return int(session.scalar(select(BUDGETS.c.spent_day_nusd).where(
            BUDGETS.c.tenant == tenant)) or 0)  # fmt: skip


def _cut_line(job_id: str) -> LineOutcome:
    cut = _response("half an ans", finish="MAX_TOKENS")
    return LineOutcome(job_id, types.GenerateContentResponse.model_validate(cut), None)


def test_a_released_jobs_cost_counts_its_batch_line(ctx: WorkerContext) -> None:
    """Bug 1: a batch line cut at visionq's own cap is released to the sync lane; the job's
    cost (and usage, standard cost, the tenant's spend) at its end is the sum of both."""
    row, [job_id] = _batch(ctx, 1)
    assert store_outcomes(ctx, row, [_cut_line(job_id)], ctx.settings)["released"] == 1
    with ctx.sessions.begin() as session:
        claim = claim_job(session, job_id, lease_s=60, max_deliveries=5)
    assert claim is not None
    spend = Spend()
    call = usage_from_metadata(types.GenerateContentResponseUsageMetadata.model_validate(USAGE))
    spend.add(ctx, MODEL, call, tier=ServiceTier.STANDARD)
    failure = Failure("max_tokens_exhausted", "cut again", "GeminiCallError", 200)
    assert fail_run(ctx, job_id=job_id, attempt_id=claim.attempt_id,
                    lease_token=claim.lease_token, warnings=(), failure=failure,
                    spend=spend) == "failed"  # fmt: skip
    batch = to_nano(ctx.costs.call_cost(MODEL, USAGE, tier=ServiceTier.BATCH) or Decimal(0))
    standard = to_nano(ctx.costs.call_cost(MODEL, USAGE) or Decimal(0))
    job = _jobs(ctx, [job_id])[job_id]
    attempts = _attempts(ctx, job_id)
    assert [a.cost_nusd for a in attempts] == [batch, standard]
    assert job.cost_nusd == batch + standard == sum(a.cost_nusd for a in attempts)
    assert job.standard_cost_nusd == 2 * standard
    assert job.prompt_tokens == 2 * USAGE["promptTokenCount"]
    assert _spent(ctx) == batch + standard


def test_a_job_given_up_is_charged_its_attempts(ctx: WorkerContext) -> None:
    """Bug 1, every end: a job ended with no cost of its own (given up after lost workers,
    stopped past its deadline) costs what its attempts recorded."""
    row, [job_id] = _batch(ctx, 1)
    store_outcomes(ctx, row, [_cut_line(job_id)], ctx.settings)
    with ctx.sessions.begin() as session:
        assert fail_job(session, job_id, code="worker_lost", message="gone")
    batch = to_nano(ctx.costs.call_cost(MODEL, USAGE, tier=ServiceTier.BATCH) or Decimal(0))
    assert _jobs(ctx, [job_id])[job_id].cost_nusd == batch
    assert _spent(ctx) == batch


def test_a_line_cut_at_the_users_cap_fails_at_once(ctx: WorkerContext) -> None:
    """Bug 2: the sync lane never raises a cap the user set, so the job fails at once with
    its code and message instead of paying a standard call for the same cut."""
    row, [job_id] = _batch(ctx, 1, options=JobOptions(max_output_tokens=3))
    counts = store_outcomes(ctx, row, [_cut_line(job_id)], ctx.settings)
    assert counts["failed"] == 1 and counts["released"] == 0
    job = _jobs(ctx, [job_id])[job_id]
    assert job.status == "failed" and job.error_code == "answer_truncated"
    assert job.error_message == truncated_message(cap=3, first_cap=None)
    [attempt] = _attempts(ctx, job_id)
    batch = to_nano(ctx.costs.call_cost(MODEL, USAGE, tier=ServiceTier.BATCH) or Decimal(0))
    assert attempt.cost_nusd == job.cost_nusd == batch


def test_a_released_job_holds_its_paid_batch_line_before_the_sync_run(
    ctx: WorkerContext,
) -> None:
    """Bug 1, the budget: a job released to the sync lane after a paid batch line holds its
    standard estimate plus that line (its end charges both): a budget with room for the
    standard estimate alone refuses it (budget_exceeded) instead of being passed."""
    sizes = [(64, 48)]
    at = {
        tier: ctx.costs.estimate(task=TaskKind.CAPTION, model=MODEL, prompt=None, labels=None,
                                 options=JobOptions(), sizes=sizes, tier=tier)
        for tier in (ServiceTier.BATCH, ServiceTier.STANDARD)
    }  # fmt: skip
    held = reservation_nusd(at[ServiceTier.BATCH])
    standard = reservation_nusd(at[ServiceTier.STANDARD])
    line = to_nano(ctx.costs.call_cost(MODEL, USAGE, tier=ServiceTier.BATCH) or Decimal(0))
    sha = ctx.blobs.put(b"\x89PNG fake image bytes")
    with ctx.sessions.begin() as session:
        set_budget(session, tenant="t", daily_nusd=standard + line // 2, monthly_nusd=None)
        assert reserve(session, tenant="t", amount_nusd=held)
        job = create_job(
            session, tenant="t", task="caption", model=MODEL, prompt=None, labels=None,
            options=JobOptions(), inputs=[NewInput(sha, "image/png", 64, 48, 30)],
            tier="batch", lane="batch", deadline_s=86400,
            estimate=StoredEstimate.of(at[ServiceTier.BATCH]), reserved_nusd=held,
        )  # fmt: skip
        session.flush()
        job_id = job.id
        batch_id = str(uuid.uuid4())
        record_batch(session, batch_id=batch_id, identity="test", model=MODEL, job_ids=[job_id],
                     input_mode="inline", resends=0, claim_s=60)  # fmt: skip
        row = get_row(session, batch_id)
    assert row is not None
    assert store_outcomes(ctx, row, [_cut_line(job_id)], ctx.settings)["released"] == 1
    with ctx.sessions.begin() as session:
        claim = claim_job(session, job_id, lease_s=60, max_deliveries=5)
    assert claim is not None
    refused = hold_run_tier(ctx, claim, ServiceTier.STANDARD)
    assert refused is not None and refused.code == "budget_exceeded"


def test_a_line_cut_at_visionqs_own_cap_starts_the_sync_run_at_the_raised_cap(
    ctx: WorkerContext,
) -> None:
    """Bug 2: the batch line was the normal cap's call; the sync run does not pay for the
    same cap again (batch + standard + standard-raised) but starts at the raised one."""
    row, [job_id] = _batch(ctx, 1)
    assert store_outcomes(ctx, row, [_cut_line(job_id)], ctx.settings)["released"] == 1
    [cut] = _attempts(ctx, job_id)
    assert cut.error_class == CUT_IN_BATCH
    gemini = ScriptedGemini([_text("A whole caption.", model=MODEL)])
    ctx.gemini = gemini
    assert run_job(ctx, job_id) == "succeeded"
    spec = ctx.costs.catalogue.entry(MODEL)
    normal = output_cap(TaskKind.CAPTION, JobOptions(), spec)
    assert normal is not None
    [config] = gemini.configs
    assert config["max_output_tokens"] == 2 * normal  # raised once, as the sync lane would
    job = _jobs(ctx, [job_id])[job_id]
    assert job.status == "succeeded"
    assert [a.outcome for a in _attempts(ctx, job_id)] == ["failed", "succeeded"]
