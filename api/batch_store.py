"""Storing batch jobs many at a time (adds and re-runs): the rows of a chunk of planned jobs,
and their messages sent after the commit."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from visionq.api.deps import ApiResources
from visionq.api.job_checks import AdmittedFields
from visionq.models.batchjobs import CachedAnswer, NewJobRow, mark_unsent_many
from visionq.models.fairqueue import QueuedJob
from visionq.models.jobs import NewInput
from visionq.vision.catalogue import ServiceTier
from visionq.vision.costing import reservation_nusd
from visionq.vision.estimate import StoredEstimate
from visionq.vision.tasks import JobOptions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlannedJob:
    """A job admitted and estimated, its images stored: ready to insert."""

    fields: AdmittedFields
    # The options as sent (economy may have set max_side or the media resolution).
    options: JobOptions
    estimate: StoredEstimate
    inputs: list[NewInput]
    cache_key: str
    retry_of: str | None = None


def job_rows(
    planned: Sequence[PlannedJob],
    *,
    tenant: str,
    cached: Mapping[str, CachedAnswer],
    capped: bool,
    priority: int = 5,
) -> tuple[list[NewJobRow], int]:
    """The rows to insert (fresh uuid4 ids), and the sum to reserve against the budget: each
    job's worst case when the tenant has a cap (``capped``), else 0. A job whose options
    allow the cache and whose cache key is in ``cached`` is born succeeded with that answer,
    free, and reserves nothing (as a single submit's)."""
    rows: list[NewJobRow] = []
    total = 0
    for plan in planned:
        answer = cached.get(plan.cache_key) if plan.options.cache else None
        reserved = reservation_nusd(plan.estimate) if capped and answer is None else 0
        total += reserved
        rows.append(
            NewJobRow(
                id=str(uuid.uuid4()),
                tenant=tenant,
                task=plan.fields.task,
                model=plan.fields.model,
                prompt=plan.fields.prompt,
                labels=plan.fields.labels,
                options=plan.options,
                response_schema=plan.fields.schema,
                estimate=plan.estimate,
                reserved_nusd=reserved,
                cache_key=plan.cache_key,
                cached=answer,
                warnings=plan.fields.warnings or None,
                retry_of=plan.retry_of,
                inputs=plan.inputs,
                tier=plan.fields.tier.value,
                lane=plan.estimate.tier.value,
                deadline_s=plan.fields.deadline_s,
                priority=priority,
            )
        )
    return rows, total


def to_send(rows: Iterable[NewJobRow]) -> list[QueuedJob]:
    """The inserted jobs that need a message: not born from the cache, and not in the
    batch lane (the lane gathers those from the table; they get no message)."""
    return [
        QueuedJob(row.id, row.tenant, row.priority)
        for row in rows
        if row.cached is None and row.lane != ServiceTier.BATCH
    ]


def send_after_commit(resources: ApiResources, jobs: Sequence[QueuedJob]) -> None:
    """Send the committed jobs' messages; those Redis did not take are marked unsent, so
    the sweeper sends them once it is back. Never raises: the jobs are stored, and an error
    answer now would make the client add them again (the keys would find them, but a
    failed call reads as lost work)."""
    if not jobs:
        return
    job_ids = [job.job_id for job in jobs]
    unsent = resources.queue.enqueue_many(jobs)
    if not unsent:
        return
    log.error(
        "could not enqueue %d of %d batch jobs; the sweeper will send them",
        len(unsent), len(job_ids),
    )  # fmt: skip
    try:
        with resources.sessions.begin() as session:
            mark_unsent_many(session, unsent)
    except SQLAlchemyError as exc:
        # Unmarked, they are still sent by the sweeper once their message looks stale
        # (VISIONQ_REQUEUE_AFTER_S), as a single job's would be.
        log.error(
            "could not mark %d batch jobs unsent (%s); sent after the requeue delay",
            len(unsent), exc,
        )  # fmt: skip
