"""A job's cost is the sum of its attempts' costs on the sync lane too: a run redelivered
after its worker died counts the calls its earlier run recorded (worker/completion.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from google.genai import types
from sqlalchemy import select, update

from tests.unit.batchlane import MODEL
from tests.unit.workercontext import worker_context
from visionq.models.jobs import NewInput, create_job
from visionq.models.leases import claim_job
from visionq.models.outcomes import finish_attempt
from visionq.models.tables import ATTEMPTS, BUDGETS, JOBS, AttemptOutcome, utcnow
from visionq.vision.costing import to_nano
from visionq.vision.tasks import JobOptions
from visionq.worker.answers import usage_from_metadata
from visionq.worker.completion import complete_run
from visionq.worker.context import WorkerContext
from visionq.worker.spend import Spend

USAGE = {"promptTokenCount": 1000, "candidatesTokenCount": 100, "totalTokenCount": 1100}


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[WorkerContext]:
    context = worker_context(tmp_path)
    yield context
    context.close()


def _call(ctx: WorkerContext) -> Spend:
    spend = Spend()
    usage = usage_from_metadata(types.GenerateContentResponseUsageMetadata.model_validate(USAGE))
    spend.add(ctx, MODEL, usage)
    return spend


def test_a_redelivered_run_counts_its_earlier_runs_calls(ctx: WorkerContext) -> None:
    sha = ctx.blobs.put(b"\x89PNG fake image bytes")
    with ctx.sessions.begin() as session:
        job = create_job(
            session, tenant="t", task="caption", model=MODEL, prompt=None, labels=None,
            options=JobOptions(), inputs=[NewInput(sha, "image/png", 64, 48, 30)],
        )  # fmt: skip
        session.flush()
        job_id = job.id
        first = claim_job(session, job_id, lease_s=60, max_deliveries=5)
    assert first is not None
    # The first run's call was paid and recorded (a retry's attempt), then its worker died.
    paid = _call(ctx)
    with ctx.sessions.begin() as session:
        finish_attempt(session, first.attempt_id, outcome=AttemptOutcome.FAILED,
                       usage=paid.last_usage, cost_nusd=paid.last_call_nusd)  # fmt: skip
        session.execute(update(JOBS).where(JOBS.c.id == job_id)
                        .values(lease_expires_at=utcnow() - timedelta(seconds=1)))  # fmt: skip
    with ctx.sessions.begin() as session:
        second = claim_job(session, job_id, lease_s=60, max_deliveries=5)
    assert second is not None and second.attempt_number == 2
    spend = _call(ctx)
    assert complete_run(ctx, job_id=job_id, attempt_id=second.attempt_id,
                        lease_token=second.lease_token, warnings=(), result={"text": "x"},
                        spend=spend, model_version=MODEL) == "succeeded"  # fmt: skip
    call = to_nano(ctx.costs.call_cost(MODEL, USAGE) or Decimal(0))
    with ctx.sessions() as session:
        row = session.execute(select(JOBS).where(JOBS.c.id == job_id)).one()
        costs = session.scalars(select(ATTEMPTS.c.cost_nusd).where(ATTEMPTS.c.job_id == job_id))
        spent = session.scalar(select(BUDGETS.c.spent_day_nusd).where(BUDGETS.c.tenant == "t"))
        assert list(costs) == [call, call]
    assert row.cost_nusd == 2 * call == row.standard_cost_nusd
    assert row.total_tokens == 2 * USAGE["totalTokenCount"]
    assert spent == 2 * call
