"""Jobs many at a time, for batches: bulk INSERT, cache and stored-image lookups, unsent marks.

Each function does for many jobs what a single submit does for one (models/jobs.py,
models/leases.py), in a constant number of statements: the rows inserted are the same,
column for column, as create_job's for the same input (both are built by build_job).
IN lists are cut to IN_CHUNK values (SQLite limits bound parameters; long lists also
defeat PostgreSQL's plan cache).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, TypeVar

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from visionq.models.jobs import NewInput, born_ended_event, build_job, input_values, job_values
from visionq.models.tables import BATCH_ITEMS, JOB_INPUTS, JOBS, JobStatus
from visionq.models.webhook_outbox import NewEvent, record_events
from visionq.vision.estimate import StoredEstimate
from visionq.vision.tasks import JobOptions

IN_CHUNK = 500
T = TypeVar("T")


@dataclass(frozen=True)
class CachedAnswer:
    """A finished job whose answer a new identical job reuses (see find_cached_many)."""

    id: str
    result: dict[str, Any] | None
    model_version: str | None


@dataclass(frozen=True)
class NewJobRow:
    """One job to insert: what create_job takes, with the id chosen by the caller (uuid4)."""

    id: str
    tenant: str
    task: str
    model: str
    prompt: str | None
    labels: list[str] | None
    options: JobOptions
    response_schema: dict[str, Any] | None
    estimate: StoredEstimate | None
    reserved_nusd: int
    cache_key: str | None
    cached: CachedAnswer | None
    warnings: list[dict[str, str]] | None
    retry_of: str | None
    inputs: Sequence[NewInput]
    # The tier asked for (maybe auto), the lane it resolved to, seconds to the deadline.
    tier: str = "standard"
    lane: str = "standard"
    deadline_s: float | None = None
    # Where the job's end event is also sent (a per-job or per-batch webhook_url).
    callback_url: str | None = None
    # The order within the tenant's waiting jobs (0..9, 9 first; the batch's priority).
    priority: int = 5


def chunks(items: Collection[T], size: int = IN_CHUNK) -> Iterator[list[T]]:
    """``items`` in lists of at most ``size`` (for IN lists and executemany)."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def insert_jobs(session: Session, rows: Sequence[NewJobRow]) -> None:
    """Insert the jobs and their inputs: one executemany for the jobs (two when some are
    born from the cache: their rows set more columns) and one for the inputs. Queued jobs
    get ``enqueued_at = created_at`` like create_job's: the caller sends them after the
    commit and marks the ones it could not send (mark_unsent_many). Jobs born succeeded
    from the cache get their job.succeeded events (models/webhook_outbox.record_events)."""
    if not rows:
        return
    jobs: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    inputs: list[dict[str, Any]] = []
    born_ended: list[NewEvent] = []
    for row in rows:
        job = build_job(
            job_id=row.id, tenant=row.tenant, task=row.task, model=row.model,
            prompt=row.prompt, labels=row.labels, options=row.options, inputs=row.inputs,
            response_schema=row.response_schema, estimate=row.estimate,
            reserved_nusd=row.reserved_nusd, cache_key=row.cache_key, cached=row.cached,
            warnings=row.warnings, retry_of=row.retry_of, tier=row.tier, lane=row.lane,
            deadline_s=row.deadline_s, callback_url=row.callback_url, priority=row.priority,
        )  # fmt: skip
        if row.cached is not None:
            born_ended.append(born_ended_event(job))
        values = job_values(job)
        # An executemany needs the same columns in every row: group by the columns set.
        jobs.setdefault(tuple(values), []).append(values)
        inputs.extend(input_values(item, job.id) for item in job.inputs)
    connection = session.connection()
    for group in jobs.values():
        connection.execute(insert(JOBS), group)
    if inputs:
        connection.execute(insert(JOB_INPUTS), inputs)
    if born_ended:
        record_events(session, born_ended)


def find_cached_many(
    session: Session, *, tenant: str, cache_keys: Collection[str]
) -> dict[str, CachedAnswer]:
    """For each cache key the tenant's newest succeeded job asking exactly that (as
    models.jobs.find_cached), by cache key; keys no such job has are left out."""
    found: dict[str, CachedAnswer] = {}
    for chunk in chunks(set(cache_keys)):
        newest = (
            func.row_number()
            .over(
                partition_by=JOBS.c.cache_key,
                order_by=(JOBS.c.finished_at.desc(), JOBS.c.id.desc()),
            )
            .label("rank")
        )
        ranked = (
            select(JOBS.c.id, JOBS.c.cache_key, newest)
            .where(
                JOBS.c.tenant == tenant,
                JOBS.c.cache_key.in_(chunk),
                JOBS.c.status == JobStatus.SUCCEEDED,
            )
            .subquery()
        )
        # The window picks ids; the results (possibly large) are read for the winners only.
        query = select(JOBS.c.id, JOBS.c.cache_key, JOBS.c.result, JOBS.c.model_version).join(
            ranked, (ranked.c.id == JOBS.c.id) & (ranked.c.rank == 1)
        )
        for row in session.execute(query):
            found[row.cache_key] = CachedAnswer(row.id, row.result, row.model_version)
    return found


def stored_inputs(
    session: Session, *, tenant: str, sha256s: Collection[str]
) -> dict[str, NewInput]:
    """The images among ``sha256s`` that a job of this tenant has as an input, as inputs
    for a new job, by sha256. Only the tenant's own jobs count: never another tenant's, so
    a reference cannot reveal what others hold. ``changes`` is empty: the new job gets the
    stored image as it is."""
    found: dict[str, NewInput] = {}
    columns = (
        JOB_INPUTS.c.sha256,
        JOB_INPUTS.c.mime_type,
        JOB_INPUTS.c.width,
        JOB_INPUTS.c.height,
        JOB_INPUTS.c.byte_size,
    )
    for chunk in chunks(set(sha256s)):
        query = (
            select(*columns)
            .join(JOBS, JOBS.c.id == JOB_INPUTS.c.job_id)
            .where(JOBS.c.tenant == tenant, JOB_INPUTS.c.sha256.in_(chunk))
            .distinct()
        )
        for row in session.execute(query):
            found[row.sha256] = NewInput(
                row.sha256, row.mime_type, row.width, row.height, row.byte_size
            )
    return found


def job_inputs_of(session: Session, job_ids: Collection[str]) -> dict[str, list[NewInput]]:
    """The stored inputs of each job, in order, with what was done to each image (for a
    re-run: the new job runs on exactly these images, no blob read)."""
    found: dict[str, list[NewInput]] = {}
    for chunk in chunks(set(job_ids)):
        query = (
            select(
                JOB_INPUTS.c.job_id,
                JOB_INPUTS.c.sha256,
                JOB_INPUTS.c.mime_type,
                JOB_INPUTS.c.width,
                JOB_INPUTS.c.height,
                JOB_INPUTS.c.byte_size,
                JOB_INPUTS.c.changes,
            )
            .where(JOB_INPUTS.c.job_id.in_(chunk))
            .order_by(JOB_INPUTS.c.job_id, JOB_INPUTS.c.position)
        )
        for row in session.execute(query):
            found.setdefault(row.job_id, []).append(
                NewInput(
                    row.sha256,
                    row.mime_type,
                    row.width,
                    row.height,
                    row.byte_size,
                    tuple(row.changes or ()),
                )
            )
    return found


def mark_unsent_many(session: Session, job_ids: Collection[str]) -> None:
    """Their messages did not reach the broker: the sweeper sends them (the bulk of
    models.leases.mark_unsent; jobs no longer queued are left alone)."""
    for chunk in chunks(job_ids):
        session.execute(
            update(JOBS)
            .where(JOBS.c.id.in_(chunk), JOBS.c.status == JobStatus.QUEUED)
            .values(enqueued_at=None)
        )


def job_statuses(session: Session, job_ids: Collection[str]) -> dict[str, str]:
    """Each job's status, by id (jobs not found are left out)."""
    statuses: dict[str, str] = {}
    for chunk in chunks(job_ids):
        query = select(JOBS.c.id, JOBS.c.status).where(JOBS.c.id.in_(chunk))
        statuses.update((row.id, row.status) for row in session.execute(query))
    return statuses


@dataclass(frozen=True)
class RerunFields:
    """What a re-run copies of an old job: its fields (its inputs come with job_inputs_of)."""

    id: str
    task: str
    model: str
    prompt: str | None
    labels: list[str] | None
    options: JobOptions
    response_schema: dict[str, Any] | None


def rerun_fields(session: Session, job_ids: Collection[str]) -> dict[str, RerunFields]:
    """The fields of the jobs ``job_ids`` (IN queries, no children), by id."""
    columns = (
        JOBS.c.id, JOBS.c.task, JOBS.c.model, JOBS.c.prompt, JOBS.c.labels, JOBS.c.options,
        JOBS.c.response_schema,
    )  # fmt: skip
    found: dict[str, RerunFields] = {}
    for chunk in chunks(job_ids):
        rows = session.execute(select(*columns).where(JOBS.c.id.in_(chunk)))
        found.update((row.id, RerunFields(*row)) for row in rows)
    return found


@dataclass(frozen=True)
class BatchRef:
    """The batch item a job is the latest job of."""

    batch_id: str
    key: str


def batch_refs(session: Session, job_ids: Collection[str]) -> dict[str, BatchRef]:
    """The batch item of each job among ``job_ids`` that is an item's latest job (through
    ix_batch_items_job_id); single jobs, and jobs a re-run replaced, are left out."""
    found: dict[str, BatchRef] = {}
    for chunk in chunks(job_ids):
        query = select(BATCH_ITEMS.c.job_id, BATCH_ITEMS.c.batch_id, BATCH_ITEMS.c.key).where(
            BATCH_ITEMS.c.job_id.in_(chunk)
        )
        found.update(
            (row.job_id, BatchRef(row.batch_id, row.key)) for row in session.execute(query)
        )
    return found
