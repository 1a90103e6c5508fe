"""The reconciler and the watchdog of the batch lane against a fake Gemini Batch API, on
SQLite and PostgreSQL: adopt, orphans, lost, stalled, near deadline, user cancel.

Every test works in its own Gemini identity and model: the database is shared."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from visionq.models.gemini_batches import (
    accept,
    display_name,
    get_row,
    record_batch,
    unfinished_jobs,
)
from visionq.models.jobs import NewInput, cancel_job, create_job
from visionq.models.settings import Settings
from visionq.models.tables import ATTEMPTS, GEMINI_BATCHES, JOBS, utcnow
from visionq.vision.tasks import JobOptions
from visionq.worker.batch_api import RemoteBatch
from visionq.worker.batch_reconcile import Reconciler
from visionq.worker.batch_watchdog import BatchWatchdog
from visionq.worker.errors import GeminiCallError

pytestmark = pytest.mark.integration
PREFIX = "visionq-"


class FakeBatches:
    """Gemini's batch list in memory; records cancels and deletes."""

    def __init__(self) -> None:
        self.remotes: dict[str, RemoteBatch] = {}
        self.cancelled: list[str] = []
        self.deleted: list[str] = []
        self.down = False

    def add(self, batch_id: str, *, state: str = "BATCH_STATE_RUNNING", age_s: float = 0) -> str:
        name = f"batches/{uuid.uuid4().hex[:16]}"
        created = utcnow() - timedelta(seconds=age_s)
        self.remotes[name] = RemoteBatch(
            name=name, display_name=display_name(PREFIX, batch_id), state=state,
            create_time=created, update_time=created,
        )  # fmt: skip
        return name

    def get(self, name: str) -> RemoteBatch:
        self._check()
        if name not in self.remotes:
            raise GeminiCallError("gemini_not_found", f"{name} not found", http_status=404)
        return self.remotes[name]

    def list_all(self) -> Iterator[RemoteBatch]:
        self._check()
        yield from list(self.remotes.values())

    def cancel(self, name: str) -> None:
        self._check()
        self.cancelled.append(name)

    def delete(self, name: str) -> None:
        self._check()
        self.deleted.append(name)
        self.remotes.pop(name, None)

    def _check(self) -> None:
        if self.down:
            raise GeminiCallError("gemini_unreachable", "connection refused", retryable=True)


@pytest.fixture
def fake() -> FakeBatches:
    return FakeBatches()


def _settings(**changes: Any) -> Settings:
    return Settings(gemini_api_key=None, batch_name_prefix=PREFIX, **changes)


def _jobs(
    sessions: sessionmaker[Session], model: str, count: int, *, deadline_s: float = 3 * 86400
) -> list[str]:
    ids = []
    now = utcnow()
    with sessions.begin() as session:
        for _ in range(count):
            job = create_job(
                session, tenant="t", task="caption", model=model, prompt=None, labels=None,
                options=JobOptions(), inputs=[NewInput("ab" * 32, "image/png", 10, 20, 30)],
            )  # fmt: skip
            session.flush()
            session.execute(
                update(JOBS)
                .where(JOBS.c.id == job.id)
                .values(
                    lane="batch",
                    tier="batch",
                    enqueued_at=now,
                    deadline_at=now + timedelta(seconds=deadline_s),
                )
            )
            ids.append(job.id)
    return ids


def _batch(
    sessions: sessionmaker[Session],
    identity: str,
    model: str,
    jobs: list[str],
    *,
    name: str | None = None,
    claim_s: float = 60,
) -> str:
    """A recorded batch of ``jobs``; accepted under ``name`` when given."""
    batch_id = str(uuid.uuid4())
    with sessions.begin() as session:
        record_batch(session, batch_id=batch_id, identity=identity, model=model, job_ids=jobs,
                     input_mode="inline", resends=0, claim_s=claim_s)  # fmt: skip
        if name is not None:
            assert accept(session, batch_id, gemini_name=name, input_file=None)
    return batch_id


def _set_row(sessions: sessionmaker[Session], batch_id: str, **values: Any) -> None:
    with sessions.begin() as session:
        session.execute(
            update(GEMINI_BATCHES).where(GEMINI_BATCHES.c.id == batch_id).values(**values)
        )


def _state(sessions: sessionmaker[Session], batch_id: str) -> str | None:
    with sessions() as session:
        row = get_row(session, batch_id)
    return None if row is None else row.state


def _jobs_of(sessions: sessionmaker[Session], ids: list[str]) -> dict[str, Any]:
    with sessions() as session:
        rows = session.execute(select(JOBS).where(JOBS.c.id.in_(ids))).all()
    return {row.id: row for row in rows}


def _attempt_classes(sessions: sessionmaker[Session], ids: list[str]) -> set[tuple[str, str]]:
    with sessions() as session:
        rows = session.execute(
            select(ATTEMPTS.c.outcome, ATTEMPTS.c.error_class).where(ATTEMPTS.c.job_id.in_(ids))
        ).all()
    return {(row.outcome, row.error_class) for row in rows}


def test_a_created_batch_whose_answer_was_lost_is_adopted_not_sent_twice(
    sessions: sessionmaker[Session], identity: str, model: str, fake: FakeBatches
) -> None:
    jobs = _jobs(sessions, model, 3)
    # The submitter is still within its claim (killed, or its create answer lost).
    batch_id = _batch(sessions, identity, model, jobs, claim_s=600)
    name = fake.add(batch_id)
    counts = Reconciler(sessions, fake, _settings(), identity).run_once()
    assert counts["adopted"] == 1 and counts["lost"] == 0
    with sessions() as session:
        row = get_row(session, batch_id)
        assert row is not None and (row.state, row.gemini_name) == ("pending", name)
        assert set(unfinished_jobs(session, batch_id)) == set(jobs)
    assert fake.cancelled == [] and fake.deleted == []
    # Again: nothing more to do but refresh it.
    again = Reconciler(sessions, fake, _settings(), identity).run_once()
    assert (again["adopted"], again["refreshed"]) == (0, 1)


def test_a_create_that_never_landed_is_lost_after_claim_and_grace(
    sessions: sessionmaker[Session], identity: str, model: str, fake: FakeBatches
) -> None:
    far, near = _jobs(sessions, model, 1), _jobs(sessions, model, 1, deadline_s=3600)
    batch_id = _batch(sessions, identity, model, far + near, claim_s=600)
    reconciler = Reconciler(sessions, fake, _settings(batch_create_grace_s=120), identity)
    assert reconciler.run_once()["lost"] == 0  # still claimed by its submitter
    _set_row(sessions, batch_id, claim_expires_at=utcnow() - timedelta(seconds=60))
    assert reconciler.run_once()["lost"] == 0  # within the grace
    _set_row(sessions, batch_id, claim_expires_at=utcnow() - timedelta(seconds=121))
    counts = reconciler.run_once()
    assert counts["lost"] == 1 and counts["resent_batch"] == 1 and counts["resent_standard"] == 1
    assert _state(sessions, batch_id) == "closed"
    jobs = _jobs_of(sessions, far + near)
    # Three days left: a new batch; one hour left (< 24 h prior x 1.5): the sync lane.
    assert (jobs[far[0]].status, jobs[far[0]].lane) == ("queued", "batch")
    assert (jobs[near[0]].status, jobs[near[0]].lane) == ("queued", "standard")
    assert jobs[near[0]].enqueued_at is None  # the sweeper sends it
    assert _attempt_classes(sessions, far + near) == {("lost", "BatchLost")}
    # The create lands after all: an orphan, cancelled (never a second live batch).
    name = fake.add(batch_id)
    assert reconciler.run_once()["orphans_cancelled"] == 1
    assert fake.cancelled == [name]


def test_orphans_are_cancelled_while_live_and_deleted_once_ended(
    sessions: sessionmaker[Session],
    identity: str,
    model: str,
    fake: FakeBatches,
    caplog: pytest.LogCaptureFixture,
) -> None:
    live_id, ended_id = (_batch(sessions, identity, model, _jobs(sessions, model, 1)) for _ in "ab")
    for batch_id in (live_id, ended_id):
        _set_row(sessions, batch_id, state="closed")
    live = fake.add(live_id)  # rows of ours, closed: orphans
    ended = fake.add(ended_id, state="BATCH_STATE_SUCCEEDED")
    # Our prefix, no row at all: maybe another deployment's (dev or staging run with
    # production's key): never cancelled nor deleted, logged once.
    unknown = fake.add(str(uuid.uuid4()))
    unknown_ended = fake.add(str(uuid.uuid4()), state="BATCH_STATE_SUCCEEDED")
    fake.remotes["batches/foreign"] = RemoteBatch(
        name="batches/foreign", display_name="someone-else", state="BATCH_STATE_RUNNING"
    )
    reconciler = Reconciler(sessions, fake, _settings(), identity)
    with caplog.at_level(logging.WARNING, logger="visionq.worker.batch_reconcile"):
        counts = reconciler.run_once()
        assert (counts["orphans_cancelled"], counts["orphans_deleted"]) == (1, 1)
        assert counts["unknown"] == 2
        assert fake.cancelled == [live] and fake.deleted == [ended]  # never another's batch
        assert reconciler.run_once()["unknown"] == 2
    assert unknown not in fake.cancelled and unknown_ended not in fake.deleted
    warned = [r.getMessage() for r in caplog.records if "no batch row of ours" in r.getMessage()]
    assert len(warned) == 2  # once per batch, not per reconcile
    assert any(unknown in line for line in warned)
    assert any(unknown_ended in line for line in warned)
    assert all("VISIONQ_BATCH_NAME_PREFIX" in line for line in warned)


def test_a_double_create_keeps_the_first_and_cancels_the_second(
    sessions: sessionmaker[Session], identity: str, model: str, fake: FakeBatches
) -> None:
    jobs = _jobs(sessions, model, 2)
    batch_id = _batch(sessions, identity, model, jobs, claim_s=600)
    first = fake.add(batch_id, age_s=10)
    second = fake.add(batch_id)
    counts = Reconciler(sessions, fake, _settings(), identity).run_once()
    assert (counts["adopted"], counts["orphans_cancelled"]) == (1, 1)
    with sessions() as session:
        row = get_row(session, batch_id)
    assert row is not None and row.gemini_name == first and fake.cancelled == [second]


def test_a_batch_gone_at_gemini_is_lost_and_its_jobs_resent(
    sessions: sessionmaker[Session], identity: str, model: str, fake: FakeBatches
) -> None:
    jobs = _jobs(sessions, model, 2)
    batch_id = _batch(sessions, identity, model, jobs, name="batches/vanished")
    counts = Reconciler(sessions, fake, _settings(), identity).run_once()
    assert counts["lost"] == 1 and _state(sessions, batch_id) == "closed"
    assert {job.status for job in _jobs_of(sessions, jobs).values()} == {"queued"}


def test_gemini_down_decides_nothing(
    sessions: sessionmaker[Session], identity: str, model: str, fake: FakeBatches
) -> None:
    jobs = _jobs(sessions, model, 1)
    batch_id = _batch(sessions, identity, model, jobs, claim_s=0)
    _set_row(sessions, batch_id, claim_expires_at=utcnow() - timedelta(days=1))
    fake.down = True
    with pytest.raises(GeminiCallError):
        Reconciler(sessions, fake, _settings(), identity).run_once()
    with pytest.raises(GeminiCallError):
        BatchWatchdog(sessions, fake, _settings(), identity).run_once()
    assert _state(sessions, batch_id) == "creating"


def test_adopt_mode_takes_a_lost_batch_back_when_its_jobs_still_wait(
    sessions: sessionmaker[Session], identity: str, model: str, fake: FakeBatches
) -> None:
    jobs = _jobs(sessions, model, 2)
    batch_id = _batch(sessions, identity, model, jobs, claim_s=0)
    _set_row(sessions, batch_id, claim_expires_at=utcnow() - timedelta(days=1))
    settings = _settings(batch_orphans="adopt", batch_create_grace_s=0)
    assert Reconciler(sessions, fake, settings, identity).run_once()["lost"] == 1
    name = fake.add(batch_id)  # it landed after all; its jobs wait for a batch
    counts = Reconciler(sessions, fake, settings, identity).run_once()
    assert counts["readopted"] == 1 and fake.cancelled == []
    with sessions() as session:
        row = get_row(session, batch_id)
        assert row is not None and (row.state, row.gemini_name) == ("pending", name)
        assert set(unfinished_jobs(session, batch_id)) == set(jobs)


def test_watchdog_resends_a_stalled_batch_and_cancels_it(
    sessions: sessionmaker[Session], identity: str, model: str, fake: FakeBatches
) -> None:
    jobs = _jobs(sessions, model, 3)
    name = fake.add(str(uuid.uuid4()))
    batch_id = _batch(sessions, identity, model, jobs, name=name)
    watchdog = BatchWatchdog(sessions, fake, _settings(batch_stall_s=600), identity)
    assert watchdog.run_once() == {}
    _set_row(sessions, batch_id, progress_at=utcnow() - timedelta(seconds=601))
    # Cancelled at Gemini, its jobs still held: the lines it answered are stored from its
    # CANCELLED output (the poller's); the rest are re-sent then.
    assert watchdog.run_once() == {"stalled": 1}
    assert fake.cancelled == [name] and _state(sessions, batch_id) == "pending"
    assert {job.gemini_batch_id for job in _jobs_of(sessions, jobs).values()} == {batch_id}
    # Gemini never confirms the cancel: at twice the stall time its jobs are re-sent.
    _set_row(sessions, batch_id, progress_at=utcnow() - timedelta(seconds=1201))
    counts = watchdog.run_once()
    assert counts == {"stalled_unconfirmed": 1, "resent_batch": 3}
    assert _state(sessions, batch_id) == "closed"
    assert _attempt_classes(sessions, jobs) == {("failed", "BatchStalled")}
    assert {job.gemini_batch_id for job in _jobs_of(sessions, jobs).values()} == {None}


def test_watchdog_sends_jobs_near_their_deadline_to_standard(
    sessions: sessionmaker[Session], identity: str, model: str, fake: FakeBatches
) -> None:
    near, far = _jobs(sessions, model, 1, deadline_s=300), _jobs(sessions, model, 1)
    batch_id = _batch(sessions, identity, model, near + far, name=fake.add(str(uuid.uuid4())))
    waiting = _jobs(sessions, model, 1, deadline_s=200)  # never gathered (cap reached)
    counts = BatchWatchdog(sessions, fake, _settings(), identity).run_once()
    assert counts == {"release_near_deadline": 1, "resent_standard": 1, "waiting_to_standard": 1}
    jobs = _jobs_of(sessions, near + far + waiting)
    assert (jobs[near[0]].lane, jobs[near[0]].status) == ("standard", "queued")
    assert [w["code"] for w in jobs[near[0]].warnings] == ["batch_fallback"]
    assert jobs[far[0]].gemini_batch_id == batch_id
    assert (jobs[waiting[0]].lane, jobs[waiting[0]].enqueued_at) == ("standard", None)
    assert [w["code"] for w in jobs[waiting[0]].warnings] == ["batch_fallback"]


def test_watchdog_cancels_a_batch_whose_jobs_were_all_cancelled(
    sessions: sessionmaker[Session], identity: str, model: str, fake: FakeBatches
) -> None:
    jobs = _jobs(sessions, model, 2)
    name = fake.add(str(uuid.uuid4()))
    batch_id = _batch(sessions, identity, model, jobs, name=name)
    with sessions.begin() as session:
        assert cancel_job(session, tenant="t", job_id=jobs[0])
    watchdog = BatchWatchdog(sessions, fake, _settings(), identity)
    assert watchdog.run_once() == {}  # one job still wants its answer
    with sessions.begin() as session:
        assert cancel_job(session, tenant="t", job_id=jobs[1])
    assert watchdog.run_once() == {"cancel": 1}
    assert fake.cancelled == [name]
    assert _attempt_classes(sessions, jobs) == {("discarded", "BatchJobEnded")}
    assert _state(sessions, batch_id) == "pending"  # closed by the poller on CANCELLED


def test_watchdog_adopts_or_loses_unconfirmed_creates(
    sessions: sessionmaker[Session], identity: str, model: str, fake: FakeBatches
) -> None:
    found, missing = _jobs(sessions, model, 1), _jobs(sessions, model, 1)
    adopted = _batch(sessions, identity, model, found, claim_s=0)
    lost = _batch(sessions, identity, model, missing, claim_s=0)
    fake.add(adopted)
    past: datetime = utcnow() - timedelta(seconds=200)
    _set_row(sessions, lost, claim_expires_at=past)
    counts = BatchWatchdog(sessions, fake, _settings(batch_create_grace_s=120), identity).run_once()
    assert counts["adopt_or_lose"] == 2 and counts["adopted"] == 1 and counts["lost"] == 1
    assert _state(sessions, adopted) == "pending" and _state(sessions, lost) == "closed"


def test_watchdog_adopts_a_listed_create_at_once_and_the_submitter_agrees(
    sessions: sessionmaker[Session], identity: str, model: str, fake: FakeBatches
) -> None:
    jobs = _jobs(sessions, model, 2)
    batch_id = _batch(sessions, identity, model, jobs, claim_s=600)  # claim still held
    watchdog = BatchWatchdog(sessions, fake, _settings(), identity)
    assert watchdog.run_once() == {"adopt_or_lose": 1}  # not listed yet: wait, not lost
    name = fake.add(batch_id)
    assert watchdog.run_once() == {"adopt_or_lose": 1, "adopted": 1}
    with sessions.begin() as session:  # the create's answer arrives late: same batch
        assert accept(session, batch_id, gemini_name=name, input_file=None)
    assert _state(sessions, batch_id) == "pending" and fake.cancelled == []
