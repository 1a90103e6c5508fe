"""Retrying a job: finding the finished job whose stored inputs a new job runs again.

The new job itself is made like any submit (api/submission.py): same admission, budget
hold, rate limits and idempotency, with ``retry_of`` naming the job it retries.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from visionq.models.jobs import get_job
from visionq.models.tables import TERMINAL_STATUSES, Job


class JobNotFinishedError(Exception):
    """The job is queued or running: it may still succeed, so it cannot be retried yet."""

    def __init__(self, job: Job) -> None:
        super().__init__(f"job {job.id} is {job.status}")
        self.job = job


def retry_source(session: Session, *, tenant: str, job_id: str) -> Job | None:
    """The tenant's finished job ``job_id`` (a full id: models.jobrefs resolves prefixes)
    with its inputs, or None when there is no such job; raises JobNotFinishedError for a
    queued or running one."""
    job = get_job(session, tenant=tenant, job_id=job_id)
    if job is None:
        return None
    if job.status not in TERMINAL_STATUSES:
        raise JobNotFinishedError(job)
    return job
