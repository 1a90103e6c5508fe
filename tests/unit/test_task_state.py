"""Flower shows a failed job as failed under the job's id (issue 17): the task id is the
job id, and the task's state follows the job (FAILURE once the job's failure is stored)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.workercontext import worker_context, worker_resources
from visionq.api.queue import JobQueue
from visionq.models.budgets import reserve
from visionq.models.fairqueue import QueuedJob
from visionq.models.jobs import NewInput, cancel_job, create_job, get_job
from visionq.models.leases import DueJob
from visionq.worker import tasks
from visionq.worker.celery_app import app as celery_app
from visionq.worker.context import WorkerContext
from visionq.worker.lifecycle import WorkerLifecycle
from visionq.worker.tasks import JobFailedError, process_job


@pytest.fixture
def context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WorkerContext]:
    """The task runs on a test database: its process's lifecycle opens this context."""
    built = worker_context(tmp_path)
    lifecycle = WorkerLifecycle(lambda settings: worker_resources(built))
    monkeypatch.setattr(tasks, "WORKER", lifecycle)
    lifecycle.open(built.settings)
    yield built
    lifecycle.close()


def _job(context: WorkerContext, sha256: str) -> str:
    with context.sessions.begin() as session:
        assert reserve(session, tenant="t", amount_nusd=0)
        return create_job(
            session, tenant="t", task="caption", model="gemini-3.6-flash", prompt=None,
            labels=None, options={}, inputs=[NewInput(sha256, "image/png", 8, 8, 100)],
        ).id  # fmt: skip


def test_a_failed_job_is_a_failed_task_under_the_jobs_id(context: WorkerContext) -> None:
    # Its image is missing from the blob store: the job fails input_missing, no call made.
    job_id = _job(context, "0" * 64)
    result = process_job.apply(args=[job_id], task_id=job_id)
    assert result.id == job_id and result.state == "FAILURE"
    assert isinstance(result.result, JobFailedError)
    assert result.result.code == "input_missing" and job_id in str(result.result)
    with context.sessions() as session:
        job = get_job(session, tenant="t", job_id=job_id)
        assert job is not None and job.status == "failed"  # stored before the task failed
    # A message delivered again for the failed job fails the same way (not SUCCESS).
    again = process_job.apply(args=[job_id], task_id=job_id)
    assert again.state == "FAILURE" and isinstance(again.result, JobFailedError)


def test_the_failure_is_expected_and_never_retried() -> None:
    # throws: Celery logs it in one line (no traceback) and records FAILURE; no autoretry.
    assert JobFailedError in process_job.throws
    assert not getattr(process_job, "autoretry_for", ())


def test_messages_carry_the_job_id_as_task_id(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[dict[str, Any]] = []

    def record(name: str, **kwargs: Any) -> None:
        sent.append(kwargs)

    monkeypatch.setattr(celery_app, "send_task", record)
    # FIFO (fair share sends the same message from run_next: tests/unit/test_fair_dispatch.py)
    monkeypatch.setenv("VISIONQ_FAIR_SHARE", "false")
    tasks.send_job(DueJob("job-1", "t", 5))
    queue = JobQueue("redis://127.0.0.1:1/0")
    monkeypatch.setattr(queue._app, "send_task", record)
    queue.enqueue(QueuedJob("job-2", "t", 5))
    queue.close()
    assert [(item["args"], item["task_id"]) for item in sent] == [
        (["job-1"], "job-1"), (["job-2"], "job-2"),
    ]  # fmt: skip


def test_a_cancelled_job_is_a_revoked_task_not_a_success(
    context: WorkerContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Flower showed a cancelled job SUCCESS: its task now announces task-revoked (Flower:
    REVOKED) and is ignored, so no task-succeeded event follows."""
    events: list[tuple[str, dict[str, Any]]] = []

    def record(type_: str, **fields: Any) -> None:
        events.append((type_, fields))

    monkeypatch.setattr(process_job, "send_event", record)
    job_id = _job(context, "0" * 64)
    with context.sessions.begin() as session:
        assert cancel_job(session, tenant="t", job_id=job_id)
    result = process_job.apply(args=[job_id], task_id=job_id)
    assert result.id == job_id and result.state == "IGNORED"
    assert [type_ for type_, _ in events] == ["task-revoked"]
    assert events[0][1]["terminated"] is False
    # A job that succeeded or failed sends no such event.
    events.clear()
    failed = _job(context, "0" * 64)
    assert process_job.apply(args=[failed], task_id=failed).state == "FAILURE"
    assert events == []


def test_a_crash_ends_the_job_internal_error_and_counts_it_ended(
    context: WorkerContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prometheus_client import REGISTRY

    def crash(*_: Any) -> str:
        raise ZeroDivisionError("a bug of ours")

    monkeypatch.setattr(tasks, "run_job", crash)
    job_id = _job(context, "1" * 64)
    labels = {"tenant": "t", "task": "caption", "model": "gemini-3.6-flash", "tier": "standard",
              "outcome": "failed"}  # fmt: skip
    before = REGISTRY.get_sample_value("visionq_jobs_ended_total", labels) or 0
    result = process_job.apply(args=[job_id], task_id=job_id)
    assert result.state == "FAILURE" and result.result.code == "internal_error"
    assert REGISTRY.get_sample_value("visionq_jobs_ended_total", labels) == before + 1
    # Delivered again: the job already ended, nothing counted twice.
    process_job.apply(args=[job_id], task_id=job_id)
    assert REGISTRY.get_sample_value("visionq_jobs_ended_total", labels) == before + 1
