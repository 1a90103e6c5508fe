"""Identical jobs in the batch lane (review gap 2): of a tenant's waiting jobs with one cache
key only the first is gathered into a Gemini batch; the others wait and end as cache hits
once it succeeds (models/batch_twins.py), exactly as an admission cache hit; the next one
is gathered if it failed; a waiting twin near its deadline goes to the sync lane. Also the
gather's unsent-batch paths (review nits 1 and 2). SQLite, fake Batch API."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import select

from tests.unit.batchfake import FakeBatches
from tests.unit.batchlane import MODEL
from tests.unit.lanesteps import IDENTITY, fake_batches, jobs_by_id, lane_context, lane_steps
from visionq.models.budgets import reserve, set_budget
from visionq.models.jobs import NewInput, create_job
from visionq.models.outcomes import fail_job
from visionq.models.tables import ATTEMPTS, BUDGETS, GEMINI_BATCHES, JOBS
from visionq.vision.tasks import JobOptions
from visionq.worker.batch_reconcile import BatchApi
from visionq.worker.batch_watchdog import BatchWatchdog
from visionq.worker.context import WorkerContext
from visionq.worker.errors import GeminiCallError


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[WorkerContext]:
    context = lane_context(tmp_path, min_requests=1, max_requests=20)
    yield context
    context.close()


@pytest.fixture
def fake(tmp_path: Path) -> FakeBatches:
    return fake_batches(tmp_path)


def _job(
    ctx: WorkerContext,
    key: str,
    *,
    tenant: str = "t",
    cache: bool = True,
    deadline_s: float = 86400,
    reserved: int = 0,
) -> str:
    """A waiting tier=batch job asking ``key`` (its cache key), holding ``reserved``."""
    with ctx.sessions.begin() as session:
        if reserved:
            assert reserve(session, tenant=tenant, amount_nusd=reserved)
        sha = ctx.blobs.put(f"\x89PNG {key} {uuid.uuid4()}".encode())
        job = create_job(
            session, tenant=tenant, task="caption", model=MODEL, prompt=None, labels=None,
            options=JobOptions(cache=cache), inputs=[NewInput(sha, "image/png", 64, 48, 30)],
            tier="batch", lane="batch", deadline_s=deadline_s, cache_key=key,
            reserved_nusd=reserved,
        )  # fmt: skip
        return job.id


def _sent(fake: FakeBatches) -> list[str]:
    """The job ids of every request sent in a Gemini batch, in order."""
    return [
        (request.metadata or {})["job_id"]
        for source in fake.sources.values()
        for request in cast(list[Any], source)
    ]


def _attempts(ctx: WorkerContext, job_id: str) -> list[Any]:
    with ctx.sessions() as session:
        return list(session.execute(select(ATTEMPTS).where(ATTEMPTS.c.job_id == job_id)))


def test_only_the_first_twin_is_sent_the_others_become_cache_hits(
    ctx: WorkerContext, fake: FakeBatches, tmp_path: Path
) -> None:
    with ctx.sessions.begin() as session:
        set_budget(session, tenant="t", daily_nusd=10**12, monthly_nusd=None)
    first = _job(ctx, "k1", reserved=500)
    twins = [_job(ctx, "k1", reserved=500) for _ in range(2)]
    other = _job(ctx, "k2")
    no_cache = _job(ctx, "k1", cache=False)  # asks to run: sent
    other_tenant = _job(ctx, "k1", tenant="u")  # tenants are kept apart: sent
    gatherer, follower = lane_steps(ctx, fake, tmp_path)
    report = gatherer.run_once()
    assert report.jobs == 4 and report.cached == 0
    assert _sent(fake) == [first, other, no_cache, other_tenant]
    jobs = jobs_by_id(ctx, twins)
    assert {(j.status, j.gemini_batch_id) for j in jobs.values()} == {("queued", None)}
    assert gatherer.run_once().batches == 0  # still waiting for the first copy's answer

    fake.finish("batches/b1", "BATCH_STATE_SUCCEEDED",
                {first: "A", other: "B", no_cache: "C", other_tenant: "D"})  # fmt: skip
    follower.run_once()
    report = gatherer.run_once()
    assert report.cached == 2 and report.batches == 0
    sources = jobs_by_id(ctx, [first, no_cache])
    for job in jobs_by_id(ctx, twins).values():
        # As an admission cache hit: the newest identical answer by reference, free, no
        # attempt (the run-anyway twin answered too; either is the same question).
        source = sources[job.cached_from]
        assert (job.status, job.result) == ("succeeded", source.result)
        assert job.model_version == source.model_version
        assert job.cost_nusd == 0 and job.attempt_count == 0 and job.usage is None
        assert job.served_tier is None and job.finished_at is not None
        assert _attempts(ctx, job.id) == []
    with ctx.sessions() as session:
        budget = session.execute(select(BUDGETS).where(BUDGETS.c.tenant == "t")).one()
    # The twins' holds are released; only the lines sent for tenant t are spent.
    paid = jobs_by_id(ctx, [first, other, no_cache])
    assert budget.reserved_nusd == 0
    assert budget.spent_day_nusd == sum(job.cost_nusd for job in paid.values())
    assert gatherer.run_once().cached == 0  # nothing answered twice


def test_a_twin_answered_since_admission_is_a_cache_hit_without_a_batch(
    ctx: WorkerContext, fake: FakeBatches, tmp_path: Path
) -> None:
    first = _job(ctx, "k1")
    with ctx.sessions.begin() as session:  # served by the sync lane meanwhile, say
        session.execute(
            JOBS.update().where(JOBS.c.id == first)
            .values(status="succeeded", result={"text": "S"}, cost_nusd=9, lane="standard")
        )  # fmt: skip
    repeat = _job(ctx, "k1")
    gatherer, _ = lane_steps(ctx, fake, tmp_path)
    assert gatherer.run_once().cached == 1
    assert fake.sources == {}
    job = jobs_by_id(ctx, [repeat])[repeat]
    assert (job.status, job.cached_from, job.cost_nusd) == ("succeeded", first, 0)


def test_the_next_twin_is_sent_when_the_first_fails(
    ctx: WorkerContext, fake: FakeBatches, tmp_path: Path
) -> None:
    first, second, third = (_job(ctx, "k1") for _ in range(3))
    gatherer, follower = lane_steps(ctx, fake, tmp_path)
    gatherer.run_once()
    assert _sent(fake) == [first]
    # The batch expires: the first is back waiting (older), still the one sent next.
    fake.finish("batches/b1", "BATCH_STATE_EXPIRED", {})
    follower.run_once()
    gatherer.run_once()
    assert _sent(fake) == [first, first]
    with ctx.sessions.begin() as session:  # it fails for good
        assert fail_job(session, first, code="blocked_output", message="no")
    gatherer.run_once()
    assert _sent(fake) == [first, first, second]
    fake.finish("batches/b3", "BATCH_STATE_SUCCEEDED", {second: "B"})
    follower.run_once()
    assert gatherer.run_once().cached == 1
    job = jobs_by_id(ctx, [third])[third]
    assert (job.status, job.cached_from) == ("succeeded", second)


def test_a_waiting_twin_near_its_deadline_goes_to_the_sync_lane(
    ctx: WorkerContext, fake: FakeBatches, tmp_path: Path
) -> None:
    first = _job(ctx, "k1")
    twin = _job(ctx, "k1", deadline_s=ctx.settings.batch_sync_reserve_s - 10)
    gatherer, _ = lane_steps(ctx, fake, tmp_path)
    gatherer.run_once()
    assert _sent(fake) == [first]
    watchdog = BatchWatchdog(ctx.sessions, cast(BatchApi, fake), ctx.settings, IDENTITY)
    assert watchdog.run_once()["waiting_to_standard"] == 1
    job = jobs_by_id(ctx, [twin])[twin]
    assert (job.status, job.lane) == ("queued", "standard")


def test_a_create_answered_429_closes_the_row_and_the_jobs_wait_in_lane_batch(
    ctx: WorkerContext, fake: FakeBatches, tmp_path: Path
) -> None:
    """Nit 2: a 429 created nothing at Google: not left `creating` for the reconciler."""
    ids = [_job(ctx, f"k{n}") for n in range(3)]
    fake.create_error = GeminiCallError(
        "gemini_resource_exhausted", "Gemini answered 429: too many batches", http_status=429
    )
    gatherer, _ = lane_steps(ctx, fake, tmp_path)
    report = gatherer.run_once()
    assert report.released == 3 and report.ambiguous == 0
    with ctx.sessions() as session:
        [row] = session.execute(select(GEMINI_BATCHES)).all()
    assert row.state == "closed" and "too many batches" in row.error
    for job in jobs_by_id(ctx, ids).values():
        assert (job.status, job.lane, job.gemini_batch_id) == ("queued", "batch", None)
        assert not job.warnings  # no batch_fallback: it stays in the batch lane
    [attempt] = _attempts(ctx, ids[0])
    assert attempt.error_class == "BatchCreateThrottled"
    assert "later batch" in attempt.error_message
    fake.create_error = None
    assert gatherer.run_once().batches == 0  # creates pause after a 429
    gatherer._paused_until = 0.0  # the pause is over
    assert gatherer.run_once().batches == 1
    with ctx.sessions() as session:
        resends = session.scalars(select(GEMINI_BATCHES.c.resends)).all()
    assert sorted(resends) == [0, 0]  # the refused batch was no generation


@pytest.mark.parametrize(("retryable", "lane"), [(True, "batch"), (False, "standard")])
def test_a_failed_upload_says_where_the_jobs_go(
    ctx: WorkerContext, fake: FakeBatches, tmp_path: Path, retryable: bool, lane: str
) -> None:
    """Nit 1: an unsent batch's jobs sent to the sync lane are told so."""
    ctx.settings.batch_inline_max_bytes = 1  # every batch goes as a JSONL file
    ids = [_job(ctx, f"k{n}") for n in range(2)]

    def refuse(path: Path, *, display_name: str) -> str:
        raise GeminiCallError("file_processing_failed", "upload refused", retryable=retryable)

    fake.upload_jsonl = refuse  # type: ignore[method-assign]
    gatherer, _ = lane_steps(ctx, fake, tmp_path)
    assert gatherer.run_once().released == 2
    for job in jobs_by_id(ctx, ids).values():
        assert (job.status, job.lane) == ("queued", lane)
    [attempt] = _attempts(ctx, ids[0])
    expected = "waits for the next one" if lane == "batch" else "sent at standard price"
    assert expected in attempt.error_message
