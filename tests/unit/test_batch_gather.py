"""The batch lane's gather+submit step (worker/batch_gather.py) on SQLite, against a fake API."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, cast

from tests.unit.batchfake import FakeBatches
from tests.unit.batchlane import MODEL
from tests.unit.lanesteps import IDENTITY, _rows, ctx, fake, lane_steps, waiting_jobs
from visionq.models.gemini_batches import Gatherable, batch_token, live_batches
from visionq.models.tables import ATTEMPTS, GEMINI_BATCHES, JOBS, utcnow
from visionq.worker.batch_api import GeminiBatches
from visionq.worker.batch_gather import Gatherer, batch_due
from visionq.worker.batch_requests import BatchBuilder, BatchPolicy
from visionq.worker.context import WorkerContext
from visionq.worker.errors import GeminiCallError
from visionq.worker.files import UploadCache

__all__ = ["ctx", "fake"]  # the fixtures


def test_batch_is_recorded_before_the_create_is_sent(
    ctx: WorkerContext, fake: FakeBatches, tmp_path: Path
) -> None:
    ids = waiting_jobs(ctx, 3)
    seen: list[Any] = []

    def in_flight(display_name: str) -> None:
        [row] = _rows(ctx, GEMINI_BATCHES)
        assert display_name == f"visionq-{row.id}"
        jobs = _rows(ctx, JOBS, id=ids)
        seen.append((row.state, {(j.status, j.gemini_batch_id, j.lease_token) for j in jobs}))

    fake.on_create = in_flight
    gatherer, _ = lane_steps(ctx, fake, tmp_path)
    report = gatherer.run_once()
    [row] = _rows(ctx, GEMINI_BATCHES)
    assert seen == [("creating", {("running", row.id, batch_token(row.id))})]
    assert report.batches == 1 and report.jobs == 3
    assert row.state == "pending" and row.gemini_name == "batches/b1"
    assert row.input_mode == "inline" and row.request_bytes > 0
    sent = fake.sources["batches/b1"]
    assert isinstance(sent, list)
    assert [(r.metadata or {}).get("job_id") for r in sent] == ids


def test_unconfirmed_create_is_left_to_the_reconciler(
    ctx: WorkerContext, fake: FakeBatches, tmp_path: Path
) -> None:
    ids = waiting_jobs(ctx, 3)
    fake.create_error = GeminiCallError("gemini_timeout", "no answer", retryable=True)
    gatherer, _ = lane_steps(ctx, fake, tmp_path)
    assert gatherer.run_once().ambiguous == 1
    [row] = _rows(ctx, GEMINI_BATCHES)
    # Still creating and holding its jobs: it may exist at Gemini (adopt or lose later).
    assert row.state == "creating" and row.claim_expires_at is not None
    assert {j.status for j in _rows(ctx, JOBS, id=ids)} == {"running"}
    assert gatherer.run_once().batches == 0  # the jobs are not sent twice


def test_refused_create_sends_the_jobs_to_the_sync_lane(
    ctx: WorkerContext, fake: FakeBatches, tmp_path: Path
) -> None:
    ids = waiting_jobs(ctx, 3)
    fake.create_error = GeminiCallError(
        "gemini_invalid_argument", "Gemini answered 400: bad batch", http_status=400
    )
    gatherer, _ = lane_steps(ctx, fake, tmp_path)
    assert gatherer.run_once().released == 3
    [row] = _rows(ctx, GEMINI_BATCHES)
    assert row.state == "closed" and "bad batch" in row.error
    for job in _rows(ctx, JOBS, id=ids):
        assert (job.status, job.lane, job.enqueued_at, job.gemini_batch_id) == (
            "queued", "standard", None, None,
        )  # fmt: skip
        assert [w["code"] for w in job.warnings] == ["batch_fallback"]
    attempts = _rows(ctx, ATTEMPTS, job_id=ids)
    assert {(a.outcome, a.error_class) for a in attempts} == {("failed", "BatchCreateRefused")}


def test_gather_waits_for_enough_jobs_and_respects_the_running_cap(
    ctx: WorkerContext, fake: FakeBatches, tmp_path: Path
) -> None:
    gatherer, _ = lane_steps(ctx, fake, tmp_path)
    waiting_jobs(ctx, 2)
    assert gatherer.run_once().batches == 0  # 2 < VISIONQ_BATCH_MIN_REQUESTS, not old
    waiting_jobs(ctx, 7)
    ctx.settings.batch_max_running = 2
    report = gatherer.run_once()
    assert report.batches == 2 and report.jobs == 6  # 3 per batch, then the cap
    with ctx.sessions() as session:
        assert len(live_batches(session, IDENTITY)) == 2


def test_batch_due_rules(ctx: WorkerContext) -> None:
    now = utcnow()
    settings = ctx.settings
    few = Gatherable(MODEL, 1, now, None)
    assert not batch_due(few, now=now, expected_s=60, settings=settings)
    assert batch_due(Gatherable(MODEL, 3, now, None), now=now, expected_s=60, settings=settings)
    old = Gatherable(MODEL, 1, now - timedelta(hours=2), None)
    assert batch_due(old, now=now, expected_s=60, settings=settings)
    # 60 s expected x 1.5 + the 3600 s gather wait no longer fit before the deadline.
    urgent = Gatherable(MODEL, 1, now, now + timedelta(seconds=3000))
    assert batch_due(urgent, now=now, expected_s=60, settings=settings)


def test_the_lane_lock_is_renewed_while_a_batch_is_built(
    ctx: WorkerContext, fake: FakeBatches, tmp_path: Path
) -> None:
    """Building a batch (1,000 decodes and uploads) outlasts a short lock: the gatherer
    passes its renew to the builder, called per request (unthrottled here)."""
    ids = waiting_jobs(ctx, 3)
    builder = BatchBuilder(
        blobs=ctx.blobs, uploads=cast(UploadCache, None), catalogue=ctx.costs.catalogue,
        policy=BatchPolicy.from_settings(ctx.settings), folder=tmp_path, renew_every_s=0.0,
    )  # fmt: skip
    renewals: list[str] = []
    fake.on_create = lambda _name: renewals.append("create")
    gatherer = Gatherer(
        ctx, cast(GeminiBatches, fake), builder, settings=ctx.settings, identity=IDENTITY,
        renew=lambda: renewals.append("renew"),
    )  # fmt: skip
    assert gatherer.run_once().jobs == 3
    # One before the submit, one per request built, one before the create is sent.
    assert renewals == ["renew"] * (1 + len(ids) + 1) + ["create"]
