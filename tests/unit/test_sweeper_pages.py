"""The sweeper sends page after page while whole pages go out (a batch's jobs left unsent by
a broker outage drain in one sweep, up to PAGES_PER_SWEEP pages)."""

from __future__ import annotations

from unittest.mock import MagicMock

from sqlalchemy.orm import Session, sessionmaker

from tests.job_rows import job_row
from visionq.models.batchjobs import insert_jobs, mark_unsent_many
from visionq.models.leases import DueJob, jobs_to_send
from visionq.models.settings import Settings
from visionq.worker.sweeper import PAGE, Sweeper


def _unsent_jobs(sessions: sessionmaker[Session], count: int) -> list[str]:
    rows = [job_row("t") for _ in range(count)]
    with sessions.begin() as session:
        insert_jobs(session, rows)
        mark_unsent_many(session, [row.id for row in rows])
    return [row.id for row in rows]


def _sweeper(sessions: sessionmaker[Session], send: MagicMock) -> Sweeper:
    redis_client = MagicMock()
    redis_client.set.return_value = True  # the sweep lock is ours
    return Sweeper(
        sessions=sessions, send=send, redis_client=redis_client,
        settings=Settings(gemini_api_key=None),
    )  # fmt: skip


def test_one_sweep_sends_every_page_once(sessions: sessionmaker[Session]) -> None:
    ids = _unsent_jobs(sessions, 2 * PAGE + 7)
    send = MagicMock()
    report = _sweeper(sessions, send).sweep_once()
    assert report is not None and (report.sent, report.unsendable) == (len(ids), 0)
    sent = [call.args[0].id for call in send.call_args_list]
    assert sorted(sent) == sorted(ids)  # each once
    with sessions() as session:
        assert jobs_to_send(session, requeue_after_s=900) == []


def test_a_failed_send_ends_the_sweep(sessions: sessionmaker[Session]) -> None:
    ids = _unsent_jobs(sessions, PAGE + 10)
    calls = 0

    def send(job: DueJob) -> None:
        nonlocal calls
        calls += 1
        if calls > PAGE + 3:
            raise ConnectionError("broker down")

    report = _sweeper(sessions, MagicMock(side_effect=send)).sweep_once()
    assert report is not None and (report.sent, report.unsendable) == (PAGE + 3, 7)
    with sessions() as session:
        assert len(jobs_to_send(session, requeue_after_s=900, limit=10_000)) == len(ids) - PAGE - 3
