"""The batch lane's follow step (worker/batch_follow.py) on SQLite, against a fake Batch API."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import select, update

from tests.unit.batchfake import USAGE, FakeBatches
from tests.unit.batchlane import MODEL
from tests.unit.lanesteps import IDENTITY, _rows, ctx, fake, lane_steps, waiting_jobs
from visionq.models.jobs import cancel_job
from visionq.models.outcomes import fail_job
from visionq.models.tables import ATTEMPTS, BUDGETS, GEMINI_BATCHES, JOB_INPUTS, JOBS, utcnow
from visionq.vision.catalogue import ServiceTier
from visionq.vision.costing import to_nano
from visionq.worker import storing
from visionq.worker.batch_reconcile import BatchApi
from visionq.worker.batch_watchdog import BatchWatchdog
from visionq.worker.context import WorkerContext
from visionq.worker.errors import GeminiCallError

__all__ = ["ctx", "fake"]  # the fixtures


@pytest.mark.parametrize("mode", ["inline", "file"])
def test_succeeded_batch_is_stored_closed_and_deleted(
    ctx: WorkerContext, fake: FakeBatches, tmp_path: Path, mode: str
) -> None:
    if mode == "file":
        ctx.settings.batch_inline_max_bytes = 64 * 1024
        ctx.settings.batch_file_image_min_bytes = 1 << 30
    ids = waiting_jobs(ctx, 3)
    if mode == "file":  # one request over the cap: the batch goes as a file
        sha = ctx.blobs.put(b"\x89PNG" + bytes(range(256)) * 400)
        with ctx.sessions.begin() as session:
            session.execute(update(JOB_INPUTS).where(JOB_INPUTS.c.job_id == ids[0])
                            .values(sha256=sha))  # fmt: skip
    gatherer, follower = lane_steps(ctx, fake, tmp_path)
    gatherer.run_once()
    [row] = _rows(ctx, GEMINI_BATCHES)
    assert row.input_mode == mode
    if mode == "file":
        assert [line["key"] for line in fake.input_lines("batches/b1")] == ids
    follower.run_once()  # still pending: nothing stored
    assert {j.status for j in _rows(ctx, JOBS, id=ids)} == {"running"}
    # Gemini answers two of the three; the third one's line is missing.
    fake.finish("batches/b1", "BATCH_STATE_SUCCEEDED", {ids[1]: "B", ids[0]: "A"})
    report = follower.run_once()
    assert report.collected == 1 and report.counts["stored"] == 2
    jobs = {j.id: j for j in _rows(ctx, JOBS, id=ids)}
    assert jobs[ids[0]].result == {"text": "A"} and jobs[ids[1]].result == {"text": "B"}
    assert jobs[ids[0]].served_tier == "batch"
    missing = jobs[ids[2]]
    assert (missing.status, missing.lane, missing.gemini_batch_id) == ("queued", "batch", None)
    [attempt] = _rows(ctx, ATTEMPTS, job_id=ids[2])
    assert attempt.error_class == "BatchLineMissing"
    [row] = _rows(ctx, GEMINI_BATCHES)
    assert row.state == "closed"
    assert fake.deleted == ["batches/b1"]
    assert fake.deleted_files == ([row.input_file] if mode == "file" else [])
    assert not list(tmp_path.glob("batch-*.tmp"))  # input and output files removed


@pytest.mark.parametrize(
    ("state", "error_class"),
    [("BATCH_STATE_EXPIRED", "BatchExpired"), ("BATCH_STATE_FAILED", "BatchFailed")],
)
def test_an_ended_batch_releases_its_jobs(
    ctx: WorkerContext, fake: FakeBatches, tmp_path: Path, state: str, error_class: str
) -> None:
    ids = waiting_jobs(ctx, 3)
    gatherer, follower = lane_steps(ctx, fake, tmp_path)
    gatherer.run_once()
    fake.finish("batches/b1", state, {})
    follower.run_once()
    for job in _rows(ctx, JOBS, id=ids):
        assert (job.status, job.lane) == ("queued", "batch")  # a day left: a new batch
    assert {a.error_class for a in _rows(ctx, ATTEMPTS, job_id=ids)} == {error_class}
    [row] = _rows(ctx, GEMINI_BATCHES)
    assert row.state == "closed"
    # The next gather sends them again, one generation later.
    gatherer.run_once()
    rows = sorted(_rows(ctx, GEMINI_BATCHES), key=lambda r: r.created_at)
    assert [r.resends for r in rows] == [0, 1]


def test_a_batch_gemini_no_longer_has_is_lost(
    ctx: WorkerContext, fake: FakeBatches, tmp_path: Path
) -> None:
    ids = waiting_jobs(ctx, 3, deadline_s=600)
    gatherer, follower = lane_steps(ctx, fake, tmp_path)
    gatherer.run_once()
    fake.remotes.clear()  # the emulator restarted: 404, and not listed
    assert follower.run_once().lost == 1
    for job in _rows(ctx, JOBS, id=ids):
        # 600 s left hold a batch expected in 60 s (x 1.5): sent in a new batch.
        assert (job.status, job.lane, job.gemini_batch_id) == ("queued", "batch", None)
    assert {(a.outcome, a.error_class) for a in _rows(ctx, ATTEMPTS, job_id=ids)} == {
        ("lost", "BatchLost")
    }
    [row] = _rows(ctx, GEMINI_BATCHES)
    assert row.state == "closed"


def test_a_succeeded_batch_whose_output_is_gone_releases_its_jobs(
    ctx: WorkerContext, fake: FakeBatches, tmp_path: Path
) -> None:
    """The output answers 404 (Gemini lost it): the jobs are re-sent, not held forever."""
    ids = waiting_jobs(ctx, 3)
    gatherer, follower = lane_steps(ctx, fake, tmp_path)
    gatherer.run_once()
    fake.finish("batches/b1", "BATCH_STATE_SUCCEEDED", {})
    gone = GeminiCallError("gemini_not_found", "no such output", http_status=404)

    def inlined(name: str) -> list[Any]:
        raise gone

    fake.inlined = inlined  # type: ignore[method-assign]
    follower.run_once()
    assert {(j.status, j.gemini_batch_id) for j in _rows(ctx, JOBS, id=ids)} == {("queued", None)}
    [row] = _rows(ctx, GEMINI_BATCHES)
    assert row.state == "closed"


def _watchdog(ctx: WorkerContext, fake: FakeBatches) -> BatchWatchdog:
    return BatchWatchdog(ctx.sessions, cast(BatchApi, fake), ctx.settings, IDENTITY)


def _line_cost(ctx: WorkerContext) -> int:
    return to_nano(ctx.costs.call_cost(MODEL, USAGE, tier=ServiceTier.BATCH) or Decimal(0))


def _spent(ctx: WorkerContext) -> int:
    with ctx.sessions() as session:
        spent = session.scalar(select(BUDGETS.c.spent_day_nusd).where(BUDGETS.c.tenant == "t"))
    return int(spent or 0)


def test_an_all_cancelled_batchs_answered_lines_are_recorded(
    ctx: WorkerContext, fake: FakeBatches, tmp_path: Path
) -> None:
    """Bug 3: every job of the batch cancelled; Gemini answered one line before the cancel.
    The output is read: that line's usage and cost are on its discarded attempt, in its
    job's cost and the tenant's spend; nothing is stored."""
    ids = waiting_jobs(ctx, 3)
    gatherer, follower = lane_steps(ctx, fake, tmp_path)
    gatherer.run_once()
    with ctx.sessions.begin() as session:
        for job_id in ids:
            assert cancel_job(session, tenant="t", job_id=job_id)
    assert _watchdog(ctx, fake).run_once()["cancel"] == 1
    assert fake.cancelled == ["batches/b1"]
    fake.finish("batches/b1", "BATCH_STATE_CANCELLED", {ids[0]: "A"})
    follower.run_once()
    jobs = {j.id: j for j in _rows(ctx, JOBS, id=ids)}
    assert {j.status for j in jobs.values()} == {"cancelled"}
    assert {j.result for j in jobs.values()} == {None}
    [paid] = _rows(ctx, ATTEMPTS, job_id=ids[0])
    assert paid.outcome == "discarded" and paid.usage and paid.cost_nusd == _line_cost(ctx)
    assert jobs[ids[0]].cost_nusd == _line_cost(ctx) and _spent(ctx) == _line_cost(ctx)
    assert {a.cost_nusd for a in _rows(ctx, ATTEMPTS, job_id=ids[1:])} == {None}
    [row] = _rows(ctx, GEMINI_BATCHES)
    assert row.state == "closed"
    follower.run_once()  # closed: nothing recorded twice
    assert _spent(ctx) == _line_cost(ctx)


def test_a_stalled_batch_keeps_the_lines_it_answered(
    ctx: WorkerContext, fake: FakeBatches, tmp_path: Path
) -> None:
    """Bug 6: a stalled batch is cancelled, not given up: its CANCELLED output's answered
    lines are stored (paid once), only the rest re-sent (BatchStalled)."""
    ids = waiting_jobs(ctx, 3)
    gatherer, follower = lane_steps(ctx, fake, tmp_path)
    gatherer.run_once()
    with ctx.sessions.begin() as session:
        session.execute(update(GEMINI_BATCHES).values(
            progress_at=utcnow() - timedelta(seconds=ctx.settings.batch_stall_s + 1)))  # fmt: skip
    assert _watchdog(ctx, fake).run_once() == {"stalled": 1}
    assert fake.cancelled == ["batches/b1"]
    assert {j.gemini_batch_id for j in _rows(ctx, JOBS, id=ids)} != {None}
    fake.finish("batches/b1", "BATCH_STATE_CANCELLED", {ids[0]: "A", ids[1]: "B"})
    report = follower.run_once()
    assert report.counts["stored"] == 2 and report.counts["released"] == 1
    jobs = {j.id: j for j in _rows(ctx, JOBS, id=ids)}
    assert jobs[ids[0]].result == {"text": "A"} and jobs[ids[1]].result == {"text": "B"}
    assert (jobs[ids[2]].status, jobs[ids[2]].gemini_batch_id) == ("queued", None)
    [resent] = _rows(ctx, ATTEMPTS, job_id=ids[2])
    assert resent.error_class == "BatchStalled"


def test_a_late_line_of_a_job_released_near_its_deadline_is_recorded(
    ctx: WorkerContext, fake: FakeBatches, tmp_path: Path
) -> None:
    """Bug 6: a job released to standard near its deadline is answered by the batch anyway:
    the line is not stored but its cost is recorded on the closed attempt (the job's end
    sums it; an ended job is charged at once)."""
    ids = waiting_jobs(ctx, 3, deadline_s=ctx.settings.batch_sync_reserve_s - 10)
    gatherer, follower = lane_steps(ctx, fake, tmp_path)
    gatherer.run_once()
    counts = _watchdog(ctx, fake).run_once()
    assert counts["release_near_deadline"] == 1 and counts["resent_standard"] == 3
    with ctx.sessions.begin() as session:  # one of them already ended at standard
        assert fail_job(session, ids[1], code="x", message="ended at standard", cost_nusd=7)
    fake.finish("batches/b1", "BATCH_STATE_CANCELLED", {ids[0]: "A", ids[1]: "B"})
    follower.run_once()
    jobs = {j.id: j for j in _rows(ctx, JOBS, id=ids)}
    assert jobs[ids[0]].result is None and jobs[ids[0]].status == "queued"
    for job_id in ids[:2]:
        [late] = _rows(ctx, ATTEMPTS, job_id=job_id)
        assert late.error_class == "BatchDeadline" and late.cost_nusd == _line_cost(ctx)
    assert jobs[ids[1]].cost_nusd == 7 + _line_cost(ctx)
    assert _spent(ctx) == 7 + _line_cost(ctx)


def test_a_line_that_crashes_fails_its_job_and_the_others_are_stored(
    ctx: WorkerContext, fake: FakeBatches, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bug 7: an unexpected exception while storing one line (a parser bug on an odd
    answer) fails that job internal_error with its attempt; the other lines are stored and
    the batch is closed (never retried forever)."""
    ids = waiting_jobs(ctx, 3)
    gatherer, follower = lane_steps(ctx, fake, tmp_path)
    gatherer.run_once()
    real = storing.interpret

    def interpret(spec: Any, text: str) -> Any:
        if text == "odd":
            raise ValueError("a parser bug")
        return real(spec, text)

    monkeypatch.setattr("visionq.worker.batch_results.interpret", interpret)
    fake.finish("batches/b1", "BATCH_STATE_SUCCEEDED", {ids[0]: "A", ids[1]: "odd", ids[2]: "C"})
    report = follower.run_once()
    assert report.collected == 1 and report.counts["stored"] == 2
    assert report.counts["failed"] == 1
    jobs = {j.id: j for j in _rows(ctx, JOBS, id=ids)}
    crashed = jobs[ids[1]]
    assert (crashed.status, crashed.error_code) == ("failed", "internal_error")
    assert "ValueError: a parser bug" in crashed.error_message
    [attempt] = _rows(ctx, ATTEMPTS, job_id=ids[1])
    assert (attempt.outcome, attempt.error_class) == ("failed", "ValueError")
    assert attempt.cost_nusd == _line_cost(ctx)  # the line was paid for all the same
    assert {jobs[ids[0]].status, jobs[ids[2]].status} == {"succeeded"}
    [row] = _rows(ctx, GEMINI_BATCHES)
    assert row.state == "closed"


def test_a_batch_that_cannot_be_collected_blocks_no_other_and_its_jobs_meet_their_deadline(
    ctx: WorkerContext, fake: FakeBatches, tmp_path: Path
) -> None:
    """Bug 7: collecting one batch raises something unexpected: later batches are still
    collected, and the stuck batch's jobs go to standard before their deadline (the
    watchdog's deadline rule covers rows Gemini ended that the poller could not close)."""
    ids = waiting_jobs(ctx, 6)
    gatherer, follower = lane_steps(ctx, fake, tmp_path)
    gatherer.run_once()
    gatherer.run_once()
    assert sorted(fake.remotes) == ["batches/b1", "batches/b2"]
    fake.finish("batches/b1", "BATCH_STATE_SUCCEEDED", {job_id: "A" for job_id in ids})
    fake.finish("batches/b2", "BATCH_STATE_SUCCEEDED", {job_id: "B" for job_id in ids})
    real = fake.inlined

    def inlined(name: str) -> list[Any]:
        if name == "batches/b1":
            raise RuntimeError("a bug of ours")
        return real(name)

    fake.inlined = inlined  # type: ignore[method-assign]
    report = follower.run_once()
    assert report.errors == 1 and report.collected == 1 and report.counts["stored"] == 3
    rows = {r.gemini_name: r for r in _rows(ctx, GEMINI_BATCHES)}
    assert rows["batches/b1"].state == "succeeded" and rows["batches/b2"].state == "closed"
    stuck = [j.id for j in _rows(ctx, JOBS, id=ids) if j.gemini_batch_id == rows["batches/b1"].id]
    assert len(stuck) == 3  # b1's jobs still held
    # Far from their deadline: left for the poller to try again.
    assert "release_near_deadline" not in _watchdog(ctx, fake).run_once()
    with ctx.sessions.begin() as session:
        session.execute(update(JOBS).where(JOBS.c.id.in_(stuck))
                        .values(deadline_at=utcnow() + timedelta(seconds=30)))  # fmt: skip
    counts = _watchdog(ctx, fake).run_once()
    assert counts["release_near_deadline"] == 1 and counts["resent_standard"] == 3
    for job in _rows(ctx, JOBS, id=stuck):
        assert (job.status, job.lane, job.gemini_batch_id) == ("queued", "standard", None)
    assert {a.error_class for a in _rows(ctx, ATTEMPTS, job_id=stuck)} == {"BatchDeadline"}
