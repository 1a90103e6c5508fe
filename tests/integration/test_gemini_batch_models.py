"""The batch lane's database layer (models/gemini_batches.py, models/tiers.py, the lane
rules of models/leases.py and models/batches.cancel_batch) on SQLite and PostgreSQL.

Every test works with its own model name: the database is shared by the whole module.
"""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from visionq.models.batches import cancel_batch, create_batch, insert_items, lock_for_write
from visionq.models.gemini_batches import (
    GeminiBatchState,
    accept,
    batch_id_of,
    batch_token,
    close_stray_attempts,
    count_live,
    display_name,
    gather_models,
    gatherable,
    get_row,
    job_specs,
    live_batches,
    observe,
    open_attempts,
    record_batch,
    release_jobs,
    request_cancel,
    set_state,
    state_of,
    unfinished_jobs,
)
from visionq.models.jobs import NewInput, cancel_job, create_job
from visionq.models.leases import claim_job, jobs_to_send
from visionq.models.outcomes import complete_job
from visionq.models.tables import ATTEMPTS, GEMINI_BATCHES, JOBS, utcnow
from visionq.models.tiers import percentile, read_turnarounds, record_turnarounds
from visionq.vision.tasks import JobOptions

pytestmark = pytest.mark.integration


def due_ids(session: Session) -> list[str]:
    """The ids of the jobs the sweeper would send."""
    return [job.id for job in jobs_to_send(session, requeue_after_s=900, limit=10_000)]


def _jobs(
    sessions: sessionmaker[Session], model: str, count: int, *, lane: str = "batch", **values: Any
) -> list[str]:
    """``count`` queued jobs of ``model`` in ``lane``, one second apart, deadline in 1 h."""
    ids = []
    now = utcnow()
    with sessions.begin() as session:
        for n in range(count):
            job = create_job(
                session, tenant="t", task="caption", model=model, prompt=None, labels=None,
                options=JobOptions(), inputs=[NewInput("ab" * 32, "image/png", 10, 20, 30)],
            )  # fmt: skip
            ids.append(job.id)
            session.flush()
            session.execute(
                update(JOBS)
                .where(JOBS.c.id == job.id)
                .values(
                    **{
                        "lane": lane, "tier": lane, "created_at": now + timedelta(seconds=n),
                        "deadline_at": now + timedelta(hours=1, seconds=n), "enqueued_at": now,
                    }
                    | values
                )
            )  # fmt: skip
    return ids


def _record(
    sessions: sessionmaker[Session], identity: str, model: str, job_ids: list[str]
) -> tuple[str, list[str]]:
    batch_id = str(uuid.uuid4())
    with sessions.begin() as session:
        attached = record_batch(
            session, batch_id=batch_id, identity=identity, model=model, job_ids=job_ids,
            input_mode="inline", resends=0, claim_s=60,
        )  # fmt: skip
    return batch_id, attached


def _age(sessions: sessionmaker[Session], batch_id: str, *, hours: float) -> None:
    """Move the batch's last progress ``hours`` into the past."""
    with sessions.begin() as session:
        session.execute(
            update(GEMINI_BATCHES)
            .where(GEMINI_BATCHES.c.id == batch_id)
            .values(progress_at=utcnow() - timedelta(hours=hours))
        )


def _complete(session: Session, job_id: str, token: str) -> bool:
    return complete_job(
        session, job_id, result={"caption": "x"}, usage=None, model_version=None,
        lease_token=token,
    ) is not None  # fmt: skip


def _job(session: Session, job_id: str) -> Any:
    return session.execute(select(JOBS).where(JOBS.c.id == job_id)).one()


def _attempts(session: Session, job_id: str) -> list[Any]:
    query = select(ATTEMPTS).where(ATTEMPTS.c.job_id == job_id).order_by(ATTEMPTS.c.number)
    return list(session.execute(query).all())


def test_names_and_tokens() -> None:
    batch_id = str(uuid.uuid4())
    assert batch_token(batch_id).startswith("gb") and len(batch_token(batch_id)) == 32
    assert batch_token(batch_id) == batch_token(batch_id)
    name = display_name("visionq-", batch_id)
    assert batch_id_of("visionq-", name) == batch_id
    assert batch_id_of("other-", name) is None
    assert batch_id_of("visionq-", "visionq-not-a-uuid") is None
    assert batch_id_of("visionq-", None) is None
    assert state_of("BATCH_STATE_RUNNING") == state_of("JOB_STATE_RUNNING") == "running"
    assert state_of("BATCH_STATE_UNSPECIFIED") is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.9) == 4.0


def test_record_attaches_waiting_jobs_under_the_batch_token(
    sessions: sessionmaker[Session], model: str, identity: str
) -> None:
    ids = _jobs(sessions, model, 4)
    standard = _jobs(sessions, model, 1, lane="standard")
    with sessions.begin() as session:
        assert cancel_job(session, tenant="t", job_id=ids[3])
        [waiting] = [g for g in gather_models(session) if g.model == model]
        assert waiting.count == 3 and waiting.nearest_deadline is not None
        assert gatherable(session, model=model, limit=2) == ids[:2]  # oldest first
    batch_id, attached = _record(sessions, identity, model, [*ids, *standard])
    assert attached == ids[:3]
    with sessions() as session:
        row = get_row(session, batch_id)
        assert row is not None and row.state == "creating" and row.job_count == 3
        assert row.claim_expires_at is not None and row.claim_expires_at > utcnow()
        job = _job(session, ids[0])
        assert (job.status, job.gemini_batch_id) == ("running", batch_id)
        assert job.lease_token == batch_token(batch_id) and job.lease_expires_at is None
        assert job.started_at is None  # a sync run later gets its full deadline
        [attempt] = _attempts(session, ids[0])
        assert (attempt.requested_tier, attempt.gemini_batch_id) == ("batch", batch_id)
        assert attempt.outcome == "running"
        assert set(unfinished_jobs(session, batch_id)) == set(ids[:3])
        assert set(open_attempts(session, batch_id)) == set(ids[:3])
        assert _job(session, standard[0]).status == "queued"
        assert count_live(session, identity) == 1
        assert [b.id for b in live_batches(session, identity)] == [batch_id]
        specs = job_specs(session, ids[:2])
        assert specs[ids[0]].model == model and len(specs[ids[0]].inputs) == 1
        assert specs[ids[0]].started_at is not None
        assert not [g for g in gather_models(session) if g.model == model]
    # Nothing left to attach: no row is kept.
    empty_id, none = _record(sessions, identity, model, ids)
    assert none == []
    with sessions() as session:
        assert get_row(session, empty_id) is None


def test_accept_observe_and_set_state(
    sessions: sessionmaker[Session], model: str, identity: str
) -> None:
    ids = _jobs(sessions, model, 2)
    batch_id, _ = _record(sessions, identity, model, ids)
    name = f"batches/{uuid.uuid4().hex[:12]}"
    with sessions.begin() as session:
        assert accept(session, batch_id, gemini_name=name, input_file=None)
        # The submitter's answer after the reconciler adopted it: the same batch, fine.
        assert accept(session, batch_id, gemini_name=name, input_file="files/in")
        assert not accept(session, batch_id, gemini_name="batches/other", input_file=None)
        first = get_row(session, batch_id)
    assert first is not None and first.state == "pending" and first.gemini_name == name
    assert first.claim_expires_at is None and first.input_file == "files/in"
    _age(sessions, batch_id, hours=2)
    stamp = utcnow()
    stats = {"requestCount": 2, "pendingRequestCount": 2}
    with sessions.begin() as session:
        seen = observe(session, batch_id, gemini_state="BATCH_STATE_RUNNING", update_time=stamp,
                       stats=stats, output_file=None)  # fmt: skip
    assert seen.state == "running" and seen.stats == stats
    assert seen.progress_at > utcnow() - timedelta(minutes=1)
    _age(sessions, batch_id, hours=1)
    with sessions.begin() as session:  # the same again: no progress
        same = observe(session, batch_id, gemini_state="BATCH_STATE_RUNNING", update_time=stamp,
                       stats=stats, output_file=None)  # fmt: skip
    assert same.progress_at < utcnow() - timedelta(minutes=30)
    with sessions.begin() as session:
        done = observe(session, batch_id, gemini_state="JOB_STATE_SUCCEEDED",
                       update_time=stamp + timedelta(seconds=5),
                       stats={"requestCount": 2, "successfulRequestCount": 2},
                       output_file="files/batch-abc")  # fmt: skip
        assert done.state == "succeeded" and done.output_file == "files/batch-abc"
        assert not set_state(session, batch_id, GeminiBatchState.CLOSED, from_states=["running"])
        assert set_state(session, batch_id, GeminiBatchState.CLOSED, from_states=["succeeded"])
        assert not request_cancel(session, batch_id)
    with sessions() as session:
        assert count_live(session, identity) == 0 and live_batches(session, identity) == []


def test_release_is_fenced_and_a_late_answer_is_discarded(
    sessions: sessionmaker[Session], model: str, identity: str
) -> None:
    ids = _jobs(sessions, model, 3)
    batch_id, _ = _record(sessions, identity, model, ids)
    token = batch_token(batch_id)
    with sessions.begin() as session:
        again = release_jobs(session, batch_id, [ids[0]], lane="batch", reason="stalled",
                             error_class="BatchStalled")  # fmt: skip
        assert again == 1
        fallback = release_jobs(
            session, batch_id, [ids[1]], lane="standard", reason="not enough time left",
            error_class="BatchExpired",
        )  # fmt: skip
        assert fallback == 1
        # Released already: a second release (another tick, another lane) does nothing.
        assert release_jobs(session, batch_id, ids[:2], lane="standard", reason="x",
                            error_class="BatchLost") == 0  # fmt: skip
    with sessions() as session:
        back = _job(session, ids[0])
        assert (back.status, back.lane, back.gemini_batch_id, back.lease_token) == (
            "queued", "batch", None, None,
        )  # fmt: skip
        assert back.enqueued_at is not None  # the batch lane's jobs get no message
        sync = _job(session, ids[1])
        assert (sync.status, sync.lane, sync.enqueued_at) == ("queued", "standard", None)
        assert [w["code"] for w in sync.warnings] == ["batch_fallback"]
        [attempt] = _attempts(session, ids[1])
        assert (attempt.outcome, attempt.error_class) == ("failed", "BatchExpired")
        assert attempt.error_message == "not enough time left"
        assert ids[1] in due_ids(session)
        assert ids[0] not in due_ids(session)
        assert ids[0] in gatherable(session, model=model, limit=10)
        assert set(unfinished_jobs(session, batch_id)) == {ids[2]}
    with sessions.begin() as session:  # the old batch's late answer finds another owner
        assert not _complete(session, ids[1], token)
        assert _complete(session, ids[2], token)
    with sessions() as session:
        assert _job(session, ids[1]).result is None
        assert _job(session, ids[2]).status == "succeeded"


def test_claim_and_sweeper_leave_batch_lane_jobs_alone(
    sessions: sessionmaker[Session], model: str, identity: str
) -> None:
    waiting, held = _jobs(sessions, model, 2, enqueued_at=None)
    _record(sessions, identity, model, [held])
    with sessions.begin() as session:
        assert claim_job(session, waiting, lease_s=60, max_deliveries=3) is None
        assert claim_job(session, held, lease_s=60, max_deliveries=3) is None
        unsent = due_ids(session)
    assert waiting not in unsent and held not in unsent
    with sessions() as session:
        assert _job(session, waiting).status == "queued"
        assert _job(session, held).lease_token is not None


def test_concurrent_records_put_each_job_in_one_batch(
    sessions: sessionmaker[Session], model: str, identity: str
) -> None:
    ids = _jobs(sessions, model, 40)
    start = threading.Barrier(2)
    results: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    def record(order: list[str]) -> None:
        try:
            start.wait()
            batch_id, attached = _record(sessions, identity, model, order)
            results[batch_id] = attached
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=record, args=(ids,)),
        threading.Thread(target=record, args=(list(reversed(ids)),)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    attached = [job for jobs in results.values() for job in jobs]
    assert sorted(attached) == sorted(ids)  # every job once, in one batch only
    with sessions() as session:
        for job_id in ids:
            job = _job(session, job_id)
            assert job.gemini_batch_id in results and job_id in results[job.gemini_batch_id]
            assert len(_attempts(session, job_id)) == 1


def test_user_cancels_reach_jobs_in_a_gemini_batch(
    sessions: sessionmaker[Session], model: str, identity: str
) -> None:
    ids = _jobs(sessions, model, 3)
    batch_id, _ = _record(sessions, identity, model, ids[:2])
    with sessions.begin() as session:
        user_batch = create_batch(
            session, tenant="t", name=f"b-{uuid.uuid4().hex[:8]}", task="caption", model=None,
            prompt=None, labels=None, options={}, response_schema=None,
            defaults_hash="h" * 64, expected_items=None,
        ).id  # fmt: skip
    with sessions.begin() as session:
        assert lock_for_write(session, tenant="t", batch_id=user_batch, allow={"open"}) is None
        insert_items(session, user_batch, [(f"k{n}", job) for n, job in enumerate(ids)])
    with sessions.begin() as session:
        assert len(cancel_batch(session, tenant="t", batch_id=user_batch)) == 3
    with sessions() as session:
        assert [_job(session, job).status for job in ids] == ["cancelled"] * 3
        assert unfinished_jobs(session, batch_id) == {}
    with sessions.begin() as session:  # their late answers are never stored
        assert not _complete(session, ids[0], batch_token(batch_id))
        assert close_stray_attempts(session, batch_id, reason="cancelled by the user") == 2
        assert request_cancel(session, batch_id)
    with sessions() as session:
        assert _job(session, ids[0]).result is None
        assert {a.outcome for job in ids[:2] for a in _attempts(session, job)} == {"discarded"}
        row = get_row(session, batch_id)
        assert row is not None and row.cancel_requested


def test_turnarounds_are_measured_per_model_and_served_tier(
    sessions: sessionmaker[Session], model: str
) -> None:
    ids = _jobs(sessions, model, 10, lane="flex")
    now = utcnow()
    with sessions.begin() as session:
        for n, job_id in enumerate(ids):
            session.execute(
                update(JOBS)
                .where(JOBS.c.id == job_id)
                .values(
                    status="succeeded", served_tier="flex" if n < 8 else "standard",
                    created_at=now - timedelta(seconds=100 * (n + 1)), finished_at=now,
                )
            )  # fmt: skip
    for _ in range(2):  # measured twice: the rows are updated, not duplicated
        with sessions.begin() as session:
            measured = [t for t in record_turnarounds(session, window_s=3600) if t.model == model]
    assert {(t.tier, t.samples) for t in measured} == {("flex", 8), ("standard", 2)}
    with sessions() as session:
        table = read_turnarounds(session)
    flex = table[(model, "flex")]
    assert (flex.p50_s, flex.p90_s) == pytest.approx((400.0, 800.0), abs=2)
    assert table[(model, "standard")].p90_s == pytest.approx(1000.0, abs=2)
