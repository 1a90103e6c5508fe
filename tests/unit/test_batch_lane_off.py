"""VISIONQ_BATCH_LANE_ENABLED=false (review nit 12): jobs waiting for a Gemini batch are
sent to the standard lane by the sweeper (which runs regardless), and the Gemini batches
already sent are followed by the lane until they end (it gathers nothing new)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import cast
from unittest.mock import MagicMock

import pytest

from tests.unit.batchfake import FakeBatches
from tests.unit.lanesteps import jobs_by_id, lane_context, waiting_jobs
from visionq.worker.batch_api import GeminiBatches
from visionq.worker.batch_lane import BatchLane
from visionq.worker.context import WorkerContext
from visionq.worker.sweeper import Sweeper


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[WorkerContext]:
    context = lane_context(tmp_path, min_requests=3, max_requests=3)
    yield context
    context.close()


def test_lane_off_sends_waiting_jobs_to_standard_and_follows_sent_batches(
    ctx: WorkerContext, tmp_path: Path
) -> None:
    fake = FakeBatches(tmp_path)
    lane = BatchLane(ctx, MagicMock(), cast(GeminiBatches, fake), ctx.settings)
    in_batch = waiting_jobs(ctx, 3)
    lane.tick()  # on: gathered into one Gemini batch
    assert list(fake.remotes) == ["batches/b1"]
    waiting = waiting_jobs(ctx, 3)

    ctx.settings.batch_lane_enabled = False
    lane.tick()  # off: nothing new gathered
    assert list(fake.remotes) == ["batches/b1"]
    send = MagicMock()
    redis_client = MagicMock()
    redis_client.set.return_value = True  # the sweep lock is ours
    sweeper = Sweeper(sessions=ctx.sessions, send=send, redis_client=redis_client,
                      settings=ctx.settings)  # fmt: skip
    report = sweeper.sweep_once()
    assert report is not None and report.batch_lane_off == 3
    assert sorted(call.args[0].id for call in send.call_args_list) == sorted(waiting)
    jobs = jobs_by_id(ctx, waiting + in_batch)
    for job_id in waiting:
        job = jobs[job_id]
        assert (job.status, job.lane) == ("queued", "standard")
        [warning] = [w for w in job.warnings if w["code"] == "batch_fallback"]
        assert "VISIONQ_BATCH_LANE_ENABLED=false" in warning["message"]
    for job_id in in_batch:  # still in their Gemini batch
        assert (jobs[job_id].status, jobs[job_id].lane) == ("running", "batch")

    # The lane, off, still follows the batch it sent until it ends: its jobs are stored.
    fake.finish("batches/b1", "BATCH_STATE_SUCCEEDED", {job_id: "A" for job_id in in_batch})
    lane.tick()
    jobs = jobs_by_id(ctx, in_batch)
    assert {(j.status, j.served_tier) for j in jobs.values()} == {("succeeded", "batch")}
