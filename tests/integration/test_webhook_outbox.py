"""The webhook outbox (models/webhook_outbox.py) on SQLite and PostgreSQL: every way a job
ends writes exactly one event in the ending transaction when someone listens, and none
when nobody does; a rollback leaves none; budget.threshold and batch.completed once each.

Every test works with a tenant of its own: the database is shared by the whole module.
"""

from __future__ import annotations

import uuid
from functools import partial
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from tests.integration.webhook_rows import make_endpoint, run_together, tenant
from tests.job_rows import job_row
from visionq.models.batch_completion import complete_ended_batches
from visionq.models.batch_reruns import repoint_items
from visionq.models.batch_twins import answer_from_twins
from visionq.models.batches import (
    add_counts,
    cancel_batch,
    close_batch,
    create_batch,
    insert_items,
    lock_for_write,
)
from visionq.models.batchjobs import CachedAnswer, insert_jobs
from visionq.models.budgets import set_budget, settle
from visionq.models.jobs import NewInput, cancel_job, create_job
from visionq.models.outcomes import complete_job, fail_job
from visionq.models.tables import BATCH_ITEMS, BATCHES, JOBS, WEBHOOK_EVENTS, utcnow
from visionq.models.webhook_outbox import (
    EventType,
    NewEvent,
    mask_of,
    new_event_id,
    record_event,
    tenant_listens,
)
from visionq.vision.tasks import JobOptions

pytestmark = pytest.mark.integration
__all__ = ["tenant"]  # the fixture

ALL_JOB_EVENTS = ("job.succeeded", "job.failed", "job.cancelled")
INPUT = NewInput("ab" * 32, "image/png", 10, 20, 30)


def _job(sessions: sessionmaker[Session], tenant: str, **kwargs: Any) -> str:
    with sessions.begin() as session:
        return create_job(
            session, tenant=tenant, task="caption", model="gemini-2.5-flash", prompt=None,
            labels=None, options=JobOptions(), inputs=[INPUT], **kwargs,
        ).id  # fmt: skip


def _running(sessions: sessionmaker[Session], job_id: str) -> None:
    with sessions.begin() as session:
        session.execute(update(JOBS).where(JOBS.c.id == job_id).values(status="running"))


def _events(sessions: sessionmaker[Session], tenant: str) -> list[tuple[str, str]]:
    """(type, subject id) of the tenant's events, in the order they happened."""
    with sessions() as session:
        rows = session.execute(
            select(WEBHOOK_EVENTS.c.type, WEBHOOK_EVENTS.c.subject_id)
            .where(WEBHOOK_EVENTS.c.tenant == tenant)
            .order_by(WEBHOOK_EVENTS.c.occurred_at, WEBHOOK_EVENTS.c.id)
        )
        return [(row.type, row.subject_id) for row in rows]


def test_event_types_are_bits_and_ids_are_standard_webhooks_ids() -> None:
    assert [kind.bit for kind in EventType] == [1, 2, 4, 8, 16]
    assert mask_of(["job.failed", "budget.threshold"]) == 18
    with pytest.raises(ValueError, match=r"unknown event type 'job\.done'"):
        mask_of(["job.done"])
    ids = {new_event_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i) == 30 and i.startswith("msg_") and "." not in i for i in ids)


def test_each_job_end_writes_one_event_when_listened_to(
    sessions: sessionmaker[Session], tenant: str
) -> None:
    make_endpoint(sessions, tenant, events=ALL_JOB_EVENTS)
    done, failed, cancelled = (_job(sessions, tenant) for _ in range(3))
    _running(sessions, done)
    with sessions.begin() as session:
        ended = complete_job(session, done, result={"text": "a"}, usage=None, model_version="m")
        assert ended is not None and (ended.id, ended.status, ended.tenant) == (
            done, "succeeded", tenant,
        )  # fmt: skip
        assert fail_job(session, failed, code="x", message="y") is not None
        cancelled_job = cancel_job(session, tenant=tenant, job_id=cancelled)
        assert cancelled_job is not None and cancelled_job.status == "cancelled"
    with sessions.begin() as session:  # ended already: no second end, no second event
        assert complete_job(session, done, result={}, usage=None, model_version=None) is None
        assert fail_job(session, failed, code="x", message="y") is None
        assert cancel_job(session, tenant=tenant, job_id=cancelled) is None
    assert _events(sessions, tenant) == [
        ("job.succeeded", done), ("job.failed", failed), ("job.cancelled", cancelled),
    ]  # fmt: skip


def test_nothing_is_written_when_nobody_listens(
    sessions: sessionmaker[Session], tenant: str
) -> None:
    make_endpoint(sessions, tenant, events=("job.failed",))  # listens, but not to successes
    other = f"{tenant}-quiet"  # no endpoint at all
    with sessions() as session:
        assert tenant_listens(session, tenant, EventType.JOB_FAILED.bit)
        assert not tenant_listens(session, tenant, EventType.JOB_SUCCEEDED.bit)
        assert not tenant_listens(session, other, EventType.JOB_FAILED.bit)
    done, quiet = _job(sessions, tenant), _job(sessions, other)
    _running(sessions, done)
    with sessions.begin() as session:
        assert complete_job(session, done, result={}, usage=None, model_version=None)
        assert fail_job(session, quiet, code="x", message="y")
        assert record_event(session, NewEvent(other, EventType.JOB_FAILED, quiet)) is None
    assert _events(sessions, tenant) == []
    assert _events(sessions, other) == []


def test_a_callback_url_gets_its_event_without_any_endpoint(
    sessions: sessionmaker[Session], tenant: str
) -> None:
    job_id = _job(sessions, tenant, callback_url="https://example.com/cb")
    with sessions.begin() as session:
        ended = fail_job(session, job_id, code="x", message="y")
        assert ended is not None and ended.callback_url == "https://example.com/cb"
    assert _events(sessions, tenant) == [("job.failed", job_id)]
    with sessions() as session:
        url = session.scalar(
            select(WEBHOOK_EVENTS.c.callback_url).where(WEBHOOK_EVENTS.c.tenant == tenant)
        )
    assert url == "https://example.com/cb"


def test_a_rolled_back_end_leaves_no_event(sessions: sessionmaker[Session], tenant: str) -> None:
    make_endpoint(sessions, tenant, events=ALL_JOB_EVENTS)
    job_id = _job(sessions, tenant)
    session = sessions()
    try:
        assert cancel_job(session, tenant=tenant, job_id=job_id) is not None
        session.rollback()
    finally:
        session.close()
    assert _events(sessions, tenant) == []
    with sessions.begin() as session:
        assert cancel_job(session, tenant=tenant, job_id=job_id) is not None
    assert _events(sessions, tenant) == [("job.cancelled", job_id)]


def test_two_racing_ends_write_one_event(sessions: sessionmaker[Session], tenant: str) -> None:
    make_endpoint(sessions, tenant, events=ALL_JOB_EVENTS)
    jobs = [_job(sessions, tenant) for _ in range(5)]
    results: list[object] = []

    def fail(job_id: str) -> None:
        with sessions.begin() as session:
            results.append(fail_job(session, job_id, code="x", message="y"))

    def cancel(job_id: str) -> None:
        with sessions.begin() as session:
            results.append(cancel_job(session, tenant=tenant, job_id=job_id))

    for job_id in jobs:
        run_together(partial(fail, job_id), partial(cancel, job_id))
    assert sum(result is not None for result in results) == len(jobs)
    events = _events(sessions, tenant)
    assert sorted(subject for _, subject in events) == sorted(jobs)


def test_cache_hits_write_job_succeeded(sessions: sessionmaker[Session], tenant: str) -> None:
    make_endpoint(sessions, tenant, events=("job.succeeded",))
    answer = CachedAnswer(id=str(uuid.uuid4()), result={"text": "a"}, model_version="m")
    single = _job(sessions, tenant, cached=answer)
    queued = _job(sessions, tenant)  # not a cache hit: no event
    rows = [job_row(tenant, cached=cached) for cached in (answer, None, answer)]
    with sessions.begin() as session:
        insert_jobs(session, rows)
    subjects = sorted(subject for kind, subject in _events(sessions, tenant))
    assert subjects == sorted([single, rows[0].id, rows[2].id])
    assert queued not in subjects
    assert {kind for kind, _ in _events(sessions, tenant)} == {"job.succeeded"}


def _batch_with_jobs(
    sessions: sessionmaker[Session], tenant: str, count: int, **row: Any
) -> tuple[str, list[str]]:
    with sessions.begin() as session:
        batch_id = create_batch(
            session, tenant=tenant, name="b", task="caption", model=None, prompt=None,
            labels=None, options={}, response_schema=None, defaults_hash="h" * 64,
            expected_items=None,
        ).id  # fmt: skip
    rows = [job_row(tenant, **row) for _ in range(count)]
    with sessions.begin() as session:
        assert lock_for_write(session, tenant=tenant, batch_id=batch_id, allow={"open"}) is None
        insert_jobs(session, rows)
        insert_items(session, batch_id, [(f"k{n}", r.id) for n, r in enumerate(rows)])
    return batch_id, [r.id for r in rows]


def test_cancel_batch_writes_one_event_per_cancelled_job(
    sessions: sessionmaker[Session], tenant: str
) -> None:
    make_endpoint(sessions, tenant, events=("job.cancelled",))
    batch_id, jobs = _batch_with_jobs(sessions, tenant, 4, callback_url="https://example.com/b")
    _running(sessions, jobs[0])  # a sync-lane job running: it finishes, not cancelled
    with sessions.begin() as session:
        cancelled = cancel_batch(session, tenant=tenant, batch_id=batch_id)
    assert sorted(job.id for job in cancelled) == sorted(jobs[1:])
    assert {job.callback_url for job in cancelled} == {"https://example.com/b"}
    with sessions.begin() as session:
        assert cancel_batch(session, tenant=tenant, batch_id=batch_id) == []
    assert sorted(_events(sessions, tenant)) == sorted(("job.cancelled", j) for j in jobs[1:])


def test_twins_answered_in_the_batch_lane_write_job_succeeded(
    sessions: sessionmaker[Session], tenant: str
) -> None:
    make_endpoint(sessions, tenant, events=("job.succeeded",))
    key = uuid.uuid4().hex * 2
    first, repeat = (
        _job(sessions, tenant, cache_key=key, tier="batch", lane="batch", deadline_s=7200)
        for _ in range(2)
    )
    with sessions.begin() as session:
        session.execute(
            update(JOBS).where(JOBS.c.id == first)
            .values(status="succeeded", result={"text": "A"}, finished_at=utcnow())
        )  # fmt: skip
    with sessions.begin() as session:
        answered = [job for job in answer_from_twins(session) if job.tenant == tenant]
    assert [(job.id, job.status, job.lane) for job in answered] == [(repeat, "succeeded", "batch")]
    assert _events(sessions, tenant) == [("job.succeeded", repeat)]


def test_budget_threshold_once_per_level_and_period(
    sessions: sessionmaker[Session], tenant: str
) -> None:
    make_endpoint(sessions, tenant, events=("budget.threshold",))
    with sessions.begin() as session:
        set_budget(session, tenant=tenant, daily_nusd=1000, monthly_nusd=None)
    spend = [300, 400, 50, 100, 200, 500]  # 30 %, 70 %, 75 %, 85 % (0.8), 105 % (1.0), more
    for cost in spend:
        with sessions.begin() as session:
            settle(session, tenant=tenant, reserved_nusd=0, cost_nusd=cost)
    with sessions() as session:
        payloads = list(
            session.scalars(
                select(WEBHOOK_EVENTS.c.payload)
                .where(WEBHOOK_EVENTS.c.tenant == tenant)
                .order_by(WEBHOOK_EVENTS.c.occurred_at)
            )
        )
    day = utcnow().strftime("%Y-%m-%d")
    assert [p["data"]["ratio"] for p in payloads] == [0.8, 1.0]
    assert payloads[0]["type"] == "budget.threshold"
    assert payloads[0]["data"] | {"spent_usd": None} == {
        "object": "budget", "tenant": tenant, "period": "day", "period_key": day,
        "ratio": 0.8, "spent_usd": None, "cap_usd": "0.000001",
    }  # fmt: skip
    assert {subject for _, subject in _events(sessions, tenant)} == {f"day:{day}"}


def test_two_settles_crossing_together_write_one_event(
    sessions: sessionmaker[Session], tenant: str
) -> None:
    make_endpoint(sessions, tenant, events=("budget.threshold",))
    with sessions.begin() as session:
        set_budget(session, tenant=tenant, daily_nusd=None, monthly_nusd=1000, alert_ratios=[0.5])

    def spend() -> None:
        with sessions.begin() as session:
            settle(session, tenant=tenant, reserved_nusd=0, cost_nusd=600)

    run_together(spend, spend)
    assert [kind for kind, _ in _events(sessions, tenant)] == ["budget.threshold"]


def test_batch_completed_once_and_again_after_a_rerun(
    sessions: sessionmaker[Session], tenant: str
) -> None:
    make_endpoint(sessions, tenant, events=("batch.completed",))
    batch_id, jobs = _batch_with_jobs(sessions, tenant, 2)
    now = utcnow()

    def scan() -> list[str]:
        with sessions.begin() as session:
            return [
                b for b in complete_ended_batches(session, now=now, limit=1000) if b == batch_id
            ]

    assert scan() == []  # open
    with sessions.begin() as session:
        assert close_batch(session, tenant=tenant, batch_id=batch_id) is None
    assert scan() == []  # closed, jobs still queued
    with sessions.begin() as session:
        for job_id in jobs:
            assert fail_job(session, job_id, code="x", message="y") is not None
    assert scan() == [batch_id]
    assert scan() == []  # once
    # A re-run points an item of the closed batch at a new job (add_counts reopens it).
    with sessions.begin() as session:
        assert lock_for_write(session, tenant=tenant, batch_id=batch_id, allow={"closed"}) is None
        rerun = create_job(
            session, tenant=tenant, task="caption", model="gemini-2.5-flash", prompt=None,
            labels=None, options=JobOptions(), inputs=[INPUT], retry_of=jobs[0],
        ).id  # fmt: skip
        item = session.scalar(select(BATCH_ITEMS.c.id).where(BATCH_ITEMS.c.job_id == jobs[0]))
        assert item is not None
        repoint_items(session, [(item, rerun)])
        add_counts(session, batch_id)
    assert scan() == []  # the re-run's job is still queued
    with sessions.begin() as session:
        assert cancel_job(session, tenant=tenant, job_id=rerun) is not None
    assert scan() == [batch_id]
    with sessions.begin() as session:  # lock_for_write(reopen=True) reopens it as well
        assert lock_for_write(
            session, tenant=tenant, batch_id=batch_id, allow={"closed"}, reopen=True
        ) is None  # fmt: skip
        ended_at = session.scalar(select(BATCHES.c.ended_at).where(BATCHES.c.id == batch_id))
    assert ended_at is None
    assert scan() == [batch_id]
    assert [kind for kind, _ in _events(sessions, tenant)] == ["batch.completed"] * 3
