"""Retrying a job: finding the finished job whose stored inputs a new job runs again, and
the batch item it is the latest job of, if any.

A single job's retry is made like any submit (api/submission.py): same admission, budget
hold, rate limits and idempotency, with ``retry_of`` naming the job it retries. A batch
item's latest job is retried as a re-run of that item (api/batch_rerun.py), so the batch
counts the new job and a later batch re-run does not run the item again.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from visionq.models.batch_reruns import ItemPlace, item_of_job, replacing_item
from visionq.models.jobs import get_job
from visionq.models.tables import TERMINAL_STATUSES, Job


class JobNotFinishedError(Exception):
    """The job is queued or running: it may still succeed, so it cannot be retried yet."""

    def __init__(self, job: Job) -> None:
        super().__init__(f"job {job.id} is {job.status}")
        self.job = job


class JobSupersededError(Exception):
    """The job was a batch item's, and a newer job (``item.job_id``) replaced it there:
    retrying it would run the item a second time beside its latest job."""

    def __init__(self, job: Job, item: ItemPlace) -> None:
        super().__init__(f"job {job.id} was replaced by {item.job_id}")
        self.job = job
        self.item = item


@dataclass(frozen=True)
class RetrySource:
    """The finished job to retry, and the batch item it is the latest job of (None for a
    single job)."""

    job: Job
    item: ItemPlace | None


def retry_source(session: Session, *, tenant: str, job_id: str) -> RetrySource | None:
    """The tenant's finished job ``job_id`` (a full id: models.jobrefs resolves prefixes)
    with its inputs and batch item, or None when there is no such job. Raises
    JobNotFinishedError for a queued or running one, JobSupersededError for a batch job a
    newer job replaced in its item."""
    job = get_job(session, tenant=tenant, job_id=job_id)
    if job is None:
        return None
    if job.status not in TERMINAL_STATUSES:
        raise JobNotFinishedError(job)
    item = item_of_job(session, job.id)
    if item is None:
        replaced = replacing_item(session, tenant=tenant, job_id=job.id)
        if replaced is not None:
            raise JobSupersededError(job, replaced)
    return RetrySource(job, item)
