"""Celery tasks: thin wrappers that hand a job id to the pipeline."""

from __future__ import annotations

import logging
import threading

from celery import Task

from models.jobs import fail_job
from models.settings import get_settings
from worker.celery_app import app
from worker.context import WorkerContext
from worker.pipeline import run_job

# The API enqueues by this name (it does not import the worker); keep the two in step.
PROCESS_JOB = "visionq.process_job"

log = logging.getLogger(__name__)


class PipelineTask(Task):  # type: ignore[misc]
    """Task base holding the worker process's resources, opened on first use.

    Celery keeps one instance of each task per process, which is its documented place
    for per-process resources such as database connections.
    """

    _context: WorkerContext | None = None
    _lock = threading.Lock()

    @property
    def context(self) -> WorkerContext:
        with self._lock:
            if self._context is None:
                type(self)._context = WorkerContext.build(get_settings())
            assert self._context is not None
            return self._context


@app.task(name=PROCESS_JOB, base=PipelineTask, bind=True)  # type: ignore[untyped-decorator]
def process_job(self: PipelineTask, job_id: str) -> str:
    """Run job ``job_id``; every outcome, even a bug of ours, ends the job with a reason."""
    context = self.context
    try:
        return run_job(context, job_id)
    except Exception as exc:
        # Not swallowed: logged with its traceback, and the job ends failed with the cause
        # instead of staying "running" forever.
        log.exception("job %s crashed", job_id)
        with context.sessions.begin() as session:
            fail_job(session, job_id, code="internal_error", message=f"{type(exc).__name__}: {exc}")
        return "failed"
