"""Gemini batches recorded under another identity (a rotated key, another endpoint, a
``visionq dev`` restart with a new emulator): never a job left running on them. SQLite and
PostgreSQL, against the fake Batch API of test_batch_reconcile. The database is shared:
every other test's rows are of another identity too, so the counts are checked as lower
bounds and the rows and jobs of each test by id."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest
import redis
from sqlalchemy.orm import Session, sessionmaker

from tests.integration.conftest import redis_db
from tests.integration.test_batch_reconcile import (
    FakeBatches,
    _attempt_classes,
    _batch,
    _jobs,
    _jobs_of,
    _set_row,
    _settings,
    _state,
)
from visionq.models.gemini_batches import accept, get_row, record_batch, unfinished_jobs
from visionq.models.settings import Settings
from visionq.models.tables import utcnow
from visionq.worker.batch_api import GeminiBatches
from visionq.worker.batch_follow import Follower
from visionq.worker.batch_foreign import ForeignBatches
from visionq.worker.batch_gather import Gatherer
from visionq.worker.batch_lane import BatchLane
from visionq.worker.batch_reconcile import Reconciler
from visionq.worker.context import WorkerContext

pytestmark = pytest.mark.integration


@pytest.fixture
def fake() -> FakeBatches:
    return FakeBatches()


def test_rows_of_another_identity_are_released_by_deadline_then_lost(
    sessions: sessionmaker[Session], model: str, fake: FakeBatches
) -> None:
    """The batches of a former key this key cannot see: jobs near their deadline go to
    standard at once, and after VISIONQ_BATCH_STALL_S without progress the row is lost
    (the reason names the identity change) and every other job is re-sent."""
    former, current = uuid.uuid4().hex, uuid.uuid4().hex
    near, far = _jobs(sessions, model, 2, deadline_s=300), _jobs(sessions, model, 3)
    running = _batch(sessions, former, model, near + far, name="batches/former-project")
    creating_jobs = _jobs(sessions, model, 2)
    creating = _batch(sessions, former, model, creating_jobs, claim_s=60)
    settings = _settings(batch_stall_s=600)
    foreign = ForeignBatches(sessions, settings, current)

    assert foreign.run_once().get("resent_standard", 0) >= 2
    jobs = _jobs_of(sessions, near + far)
    for job_id in near:
        assert (jobs[job_id].status, jobs[job_id].lane) == ("queued", "standard")
        assert [w["code"] for w in jobs[job_id].warnings] == ["batch_fallback"]
    assert {jobs[job_id].gemini_batch_id for job_id in far} == {running}
    assert _attempt_classes(sessions, near) == {("failed", "BatchDeadline")}

    # No lane of the former identity moves them: lost past the stall time, all re-sent.
    old = utcnow() - timedelta(seconds=601)
    for batch_id in (running, creating):
        _set_row(sessions, batch_id, progress_at=old, created_at=old)
    counts = foreign.run_once()
    assert counts["foreign_lost"] >= 2
    assert counts.get("resent_batch", 0) + counts.get("resent_standard", 0) >= 5
    assert (_state(sessions, running), _state(sessions, creating)) == ("closed", "closed")
    jobs = _jobs_of(sessions, far + creating_jobs)
    assert {(job.status, job.gemini_batch_id) for job in jobs.values()} == {("queued", None)}
    assert _attempt_classes(sessions, far + creating_jobs) == {("lost", "BatchLost")}
    with sessions() as session:
        row = get_row(session, running)
    assert row is not None and row.error is not None
    assert "recorded under another Gemini key or endpoint" in row.error
    assert former[:8] in row.error and current[:8] in row.error
    # Its batch is another project's: nothing is cancelled through this key.
    assert fake.cancelled == []


def test_a_listed_batch_of_another_identity_is_taken_over_not_cancelled(
    sessions: sessionmaker[Session], model: str, fake: FakeBatches
) -> None:
    """The key rotated in the same project: this key lists the batch, so the reconciler
    takes the row over (followed as ours) instead of cancelling it as an orphan, and the
    foreign step no longer sees it."""
    former, current = uuid.uuid4().hex, uuid.uuid4().hex
    jobs = _jobs(sessions, model, 3)
    batch_id = str(uuid.uuid4())
    name = fake.add(batch_id)
    with sessions.begin() as session:
        record_batch(session, batch_id=batch_id, identity=former, model=model, job_ids=jobs,
                     input_mode="inline", resends=0, claim_s=60)  # fmt: skip
        assert accept(session, batch_id, gemini_name=name, input_file=None)
    counts = Reconciler(sessions, fake, _settings(), current).run_once()
    assert (counts["taken_over"], counts["refreshed"], counts["orphans_cancelled"]) == (1, 1, 0)
    assert fake.cancelled == []
    with sessions() as session:
        row = get_row(session, batch_id)
        assert set(unfinished_jobs(session, batch_id)) == set(jobs)
    assert row is not None and (row.identity, row.state) == (current, "running")
    # Now ours: the step for other identities leaves it (and its jobs) alone.
    _set_row(sessions, batch_id, progress_at=utcnow() - timedelta(seconds=601))
    ForeignBatches(sessions, _settings(batch_stall_s=600), current).run_once()
    assert _state(sessions, batch_id) == "running"
    assert {job.gemini_batch_id for job in _jobs_of(sessions, jobs).values()} == {batch_id}


def test_the_lane_tick_runs_the_step_for_other_identities(
    sessions: sessionmaker[Session], model: str, redis_url: str, tmp_path: Path
) -> None:
    """Wired into the lane's tick (the other steps stubbed: this test is about the step)."""
    settings = Settings(gemini_api_key=None, batch_name_prefix="visionq-", data_dir=tmp_path,
                        batch_stall_s=600)  # fmt: skip
    jobs = _jobs(sessions, model, 2)
    batch_id = _batch(sessions, uuid.uuid4().hex, model, jobs, name="batches/elsewhere")
    old = utcnow() - timedelta(seconds=601)
    _set_row(sessions, batch_id, progress_at=old, created_at=old)
    ctx = SimpleNamespace(
        sessions=sessions, gemini=None, blobs=None, costs=SimpleNamespace(catalogue=None)
    )
    lane = BatchLane(cast(WorkerContext, ctx), redis.Redis.from_url(redis_db(redis_url)),
                     cast(GeminiBatches, FakeBatches()), settings)  # fmt: skip
    idle = SimpleNamespace(run_once=lambda: SimpleNamespace(as_dict=dict))
    lane.follower = cast(Follower, idle)
    lane.gatherer = cast(Gatherer, idle)
    report = lane.tick()
    assert report.get("foreign_lost", 0) >= 1, report
    assert _state(sessions, batch_id) == "closed"
