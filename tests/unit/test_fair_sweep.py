"""The sweeper's side of fair share (worker/tasks.py, worker/sweeper.py) on a real Redis and
SQLite: a job waiting in its tenant's set is not "lost" (its send time is its pop), a bad
row does not hold back the jobs after it, missing tokens are counted from the token list
alone, and with fair share off the sets are drained into FIFO messages."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from unittest.mock import MagicMock

import pytest
import redis
from celery import Celery
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from tests.job_rows import job_row
from visionq.models.batchjobs import insert_jobs
from visionq.models.broker import JOBS_QUEUE, TOKEN_PRIORITY
from visionq.models.fairqueue import FairQueue, QueuedJob
from visionq.models.leases import DueJob, jobs_to_send
from visionq.models.settings import Settings
from visionq.models.tables import Job, utcnow
from visionq.worker.celery_app import celery_config
from visionq.worker.sweeper import Sweeper
from visionq.worker.tasks import pop_next, send_due, upkeep

TOKENS = f"{JOBS_QUEUE}\x06\x16{TOKEN_PRIORITY}"


@pytest.fixture
def celery(redis_url: str, client: redis.Redis) -> Iterator[Celery]:
    app = Celery("fair-sweep-test", set_as_current=False)
    app.conf.update(celery_config(Settings(redis_url=redis_url)))
    yield app
    app.close()


def _queued(sessions: sessionmaker[Session], count: int, *, sent_ago_s: float) -> list[str]:
    """Queued jobs whose message went ``sent_ago_s`` ago (tenant t, priority 5)."""
    rows = [job_row("t") for _ in range(count)]
    with sessions.begin() as session:
        insert_jobs(session, rows)
        ids = [row.id for row in rows]
        sent = utcnow() - timedelta(seconds=sent_ago_s)
        session.execute(update(Job).where(Job.id.in_(ids)).values(enqueued_at=sent))
    return ids


def _sweeper(sessions: sessionmaker[Session], send: object) -> Sweeper:
    lock = MagicMock()
    lock.set.return_value = True  # the sweep lock is ours
    return Sweeper(sessions=sessions, send=send, redis_client=lock,  # type: ignore[arg-type]
                   settings=Settings(gemini_api_key=None, requeue_after_s=60))  # fmt: skip


def test_a_job_waiting_in_its_set_is_not_sent_again(
    sessions: sessionmaker[Session], client: redis.Redis, celery: Celery
) -> None:
    fair = FairQueue(client, weights={})
    ids = _queued(sessions, 5, sent_ago_s=3600)  # waited an hour behind a backlog
    fair.push([QueuedJob(job_id, "t", 5) for job_id in ids])
    client.delete(TOKENS)
    seq = client.get("visionq:{fair}:seq")

    def send(job: DueJob) -> bool:
        return send_due(celery, fair, job, fair_share=True)

    report = _sweeper(sessions, send).sweep_once()
    assert report is not None
    assert (report.sent, report.still_waiting) == (0, 5)  # none counted as "sent again"
    assert client.llen(TOKENS) == 0 and fair.size() == 5
    assert client.get("visionq:{fair}:seq") == seq  # no arrival counted for a no-op push
    with sessions() as session:  # looked at again after VISIONQ_REQUEUE_AFTER_S, not now
        assert jobs_to_send(session, requeue_after_s=60) == []


def test_a_pop_is_the_send_time(sessions: sessionmaker[Session], client: redis.Redis) -> None:
    fair = FairQueue(client, weights={})
    [job_id] = _queued(sessions, 1, sent_ago_s=3600)
    fair.push([QueuedJob(job_id, "t", 5)])
    assert pop_next(fair, sessions) == job_id
    with sessions() as session:
        # Popped just now: not due until VISIONQ_REQUEUE_AFTER_S after the pop (a worker
        # killed between pop and send), so no second PROCESS_JOB while the first is in flight.
        assert jobs_to_send(session, requeue_after_s=60) == []
        popped_at = session.scalar(select(Job.enqueued_at).where(Job.id == job_id))
        assert popped_at is not None
    assert [due.id for due in _due(sessions, requeue_after_s=0)] == [job_id]


def _due(sessions: sessionmaker[Session], *, requeue_after_s: float) -> list[DueJob]:
    with sessions() as session:
        return jobs_to_send(session, requeue_after_s=requeue_after_s)


def test_a_bad_row_does_not_hold_back_the_jobs_after_it(
    sessions: sessionmaker[Session], client: redis.Redis, celery: Celery
) -> None:
    fair = FairQueue(client, weights={})
    first, bad, last = _queued(sessions, 3, sent_ago_s=3600)

    def send(job: DueJob) -> bool:
        # A priority the database now refuses (CHECK in migration 0012), as an old row or a
        # hand-made one would carry: the push raises ValueError for this job alone.
        return send_due(celery, fair, replace(job, priority=10) if job.id == bad else job,
                        fair_share=True)  # fmt: skip

    report = _sweeper(sessions, send).sweep_once()
    assert report is not None and (report.sent, report.unsendable) == (2, 0)
    assert fair.size() == 2 and {fair.pop(), fair.pop()} == {first, last}


def test_tokens_held_by_workers_do_not_hide_missing_ones(
    client: redis.Redis, celery: Celery
) -> None:
    fair = FairQueue(client, weights={})
    fair.push([QueuedJob(f"j{n}", "t", 5) for n in range(3)])
    # Messages taken by workers and not acknowledged (a long job, a killed worker's token:
    # kombu keeps them until the visibility timeout): they are no token for these jobs.
    client.hset("unacked", mapping={"tag-1": "held", "tag-2": "held"})
    assert upkeep(celery, fair, fair_share=True, limit=500) == 3
    assert client.llen(TOKENS) == 3
    assert upkeep(celery, fair, fair_share=True, limit=500) == 0  # each has its token now


def test_fair_share_off_drains_the_sets_into_fifo_messages(
    client: redis.Redis, celery: Celery
) -> None:
    fair = FairQueue(client, weights={})
    fair.push([QueuedJob(f"j{n}", "t", 5) for n in range(5)])
    assert upkeep(celery, fair, fair_share=False, limit=3) == 3  # a page per sweep
    assert upkeep(celery, fair, fair_share=False, limit=3) == 2
    assert fair.size() == 0 and client.llen(TOKENS) == 0
    assert client.llen(JOBS_QUEUE) == 5  # PROCESS_JOB by id, priority 0's list
