"""`visionq retry` in-process (review of issue 17): its results read like submit's at 80
columns, --status takes only finished statuses (JobStatus's terminal ones), and its pages
(and `visionq jobs`') are ones every API accepts."""

from __future__ import annotations

import pytest

from tests.unit.cli_fakes import FakeClient, install_fake, make_job, run
from visionq.client import PAGE_SIZE_MIN
from visionq.models.tables import JobStatus

LONG_ANSWER = (
    "A red rectangle in the upper left corner beside a blue ellipse, on a white background "
    "with a thin grey border; no text, no people, no other objects anywhere in the frame."
)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeClient:
    client = install_fake(monkeypatch)
    client.finish = lambda job: job.model_copy(
        update={"status": "succeeded", "result": {"text": LONG_ANSWER}}
    )
    return client


def test_retry_wait_shows_full_ids_and_whole_answers_at_80_columns(fake: FakeClient) -> None:
    old = make_job(status="failed")
    fake.jobs[old.id] = old
    done = run("retry", old.id, "--wait")
    assert done.exit_code == 0, done.stderr
    [new_id] = [job_id for job_id in fake.jobs if job_id != old.id]
    assert f"{old.id} -> {new_id} queued" in done.stdout
    assert done.stdout.count(new_id) == 2  # OLD -> NEW, then the result's heading
    assert " ".join(done.stdout.split()).endswith(LONG_ANSWER)
    # After the OLD -> NEW line, each job is a heading and its answer wrapped to 80 columns.
    assert all(len(line) <= 80 for line in done.stdout.splitlines()[1:])


def test_status_takes_only_finished_statuses(fake: FakeClient) -> None:
    done = run("retry", "--status", "queued")
    assert done.exit_code == 2
    assert "'queued' is not one of succeeded, failed," in " ".join(done.stderr.split())
    assert "--status succeeded|failed|cancelled" in " ".join(run("retry", "--help").stdout.split())


def test_status_pages_are_no_larger_than_every_api_accepts(fake: FakeClient) -> None:
    for _ in range(3):
        job = make_job(status="failed")
        fake.jobs[job.id] = job
    done = run("retry", "--status", "failed", "--limit", "500")
    assert done.exit_code == 0, done.stderr
    assert fake.page_sizes == [PAGE_SIZE_MIN]
    assert len(fake.jobs) == 6
    assert {job.status for job in fake.jobs.values()} == {JobStatus.FAILED, JobStatus.QUEUED}


def test_jobs_pages_are_no_larger_than_every_api_accepts(fake: FakeClient) -> None:
    done = run("jobs", "--limit", "500")
    assert done.exit_code == 0, done.stderr
    assert fake.page_sizes == [PAGE_SIZE_MIN]
