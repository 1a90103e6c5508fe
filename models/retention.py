"""Retention (`visionq gc`): old finished jobs, expired idempotency keys, unused images,
batches whose jobs are all gone, and old webhook events whose deliveries all ended.

Safe while the service runs:
- a job is deleted only when finished more than VISIONQ_RETENTION_DAYS ago, and the
  DELETE itself re-checks that, batch by batch (short transactions, no long locks);
- a blob no job references is not deleted at once: it is moved to the store's trash
  (models/blobs.py), where readers still find it, once it is older than a grace period;
  it is deleted only when it has stayed there for the grace period and is still
  unreferenced. A job submitted between gc's scan and its move referenced a blob that
  then reads from the trash and is put back by the next run, so no job loses an image.
The grace period outlasts any job (its deadline, a Gemini call and a lease), so a
worker's intermediate blob (a downscaled copy) is never collected while a job uses it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice
from typing import Any, TypeVar

import redis
from sqlalchemy import ColumnElement, delete, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from visionq.models.blobs import BlobStore
from visionq.models.idempotency import forget_expired
from visionq.models.settings import Settings
from visionq.models.tables import (
    BATCH_ITEMS,
    BATCHES,
    TERMINAL_STATUSES,
    WEBHOOK_DELIVERIES,
    WEBHOOK_EVENTS,
    Attempt,
    IdempotencyKey,
    Job,
    JobInput,
    utcnow,
)
from visionq.vision.task_registry import kinds_with

BATCH = 500
# Never less than an hour, whatever the settings: room for a slow submit or store.
MIN_GRACE_S = 3600.0
T = TypeVar("T")
# One gc at a time across every host sharing the database and the blob store: a Redis lock
# (they share Redis too). Its TTL frees it if a gc dies holding it.
GC_LOCK = "visionq:gc"
GC_LOCK_TTL_S = 3600


class GcRunningError(RuntimeError):
    """Another `visionq gc` holds the lock."""


@contextmanager
def gc_lock(redis_url: str) -> Iterator[None]:
    """Hold the gc lock for the block; GcRunningError if another gc holds it."""
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=5, socket_timeout=10)
    try:
        lock = client.lock(GC_LOCK, timeout=GC_LOCK_TTL_S)
        if not lock.acquire(blocking=False):
            raise GcRunningError(
                "another gc is running (it holds the lock in Redis, freed when it ends or "
                f"within {GC_LOCK_TTL_S // 60} minutes if it died); run gc again later."
            )
        try:
            yield
        finally:
            # Expired (a run longer than the TTL) or Redis gone: nothing left to free.
            with contextlib.suppress(redis.RedisError):
                lock.release()
    finally:
        client.close()


@dataclass
class GcReport:
    """What one run deleted (or, dry, would delete)."""

    jobs: int = 0
    batches: int = 0
    idempotency_keys: int = 0
    blobs_trashed: int = 0
    blobs_restored: int = 0
    blobs_deleted: int = 0
    webhook_events: int = 0


def grace_s(settings: Settings) -> float:
    """How long an unreferenced blob waits before the trash, and in the trash."""
    longest_job = settings.job_deadline_s + settings.gemini_timeout_s + settings.lease_s
    return max(MIN_GRACE_S, longest_job)


def _batches(items: Iterable[T], size: int = BATCH) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def delete_old_jobs(
    sessions: sessionmaker[Session], *, retention_days: int, dry_run: bool = False
) -> int:
    """Delete jobs finished more than ``retention_days`` ago with their inputs, attempts
    and idempotency keys, one batch per transaction; returns how many (0 days: none)."""
    if retention_days <= 0:
        return 0
    cutoff = utcnow() - timedelta(days=retention_days)
    old = (Job.status.in_(TERMINAL_STATUSES), Job.finished_at < cutoff)
    if dry_run:
        with sessions() as session:
            return int(session.scalar(select(func.count()).select_from(Job).where(*old)) or 0)
    deleted = 0
    while True:
        with sessions.begin() as session:
            ids = _candidates(session, old)
            if not ids:
                return deleted
            # Children and job under the same conditions, checked again in each DELETE: a
            # job that changed since the SELECT (no longer finished and old) keeps its
            # inputs, attempts and keys.
            still_old = select(Job.id).where(Job.id.in_(ids), *old)
            session.execute(delete(IdempotencyKey).where(IdempotencyKey.job_id.in_(still_old)))
            session.execute(delete(Attempt).where(Attempt.job_id.in_(still_old)))
            session.execute(delete(JobInput).where(JobInput.job_id.in_(still_old)))
            result = session.execute(delete(Job).where(Job.id.in_(ids), *old))
            deleted += int(result.rowcount)  # type: ignore[attr-defined]


def delete_old_batches(
    sessions: sessionmaker[Session], *, retention_days: int, dry_run: bool = False
) -> int:
    """Delete batches left with nothing to show: none of their items has a job any more
    (retention deleted them: an item's job_id is then NULL) and the batch was last written
    more than ``retention_days`` ago; their items go with them. Returns how many (0 days:
    none). A dry run counts the batches that qualify now, before this run's job deletions."""
    if retention_days <= 0:
        return 0
    cutoff = utcnow() - timedelta(days=retention_days)
    with_job = (
        select(BATCH_ITEMS.c.id)
        .where(BATCH_ITEMS.c.batch_id == BATCHES.c.id, BATCH_ITEMS.c.job_id.is_not(None))
        .exists()
    )
    # Re-checked by the DELETE: adding to a batch first writes its updated_at.
    old = (BATCHES.c.updated_at < cutoff, ~with_job)
    if dry_run:
        with sessions() as session:
            count = select(func.count()).select_from(BATCHES).where(*old)
            return int(session.scalar(count) or 0)
    deleted = 0
    while True:
        with sessions.begin() as session:
            ids = list(session.scalars(select(BATCHES.c.id).where(*old).limit(BATCH)))
            if not ids:
                return deleted
            still_old = select(BATCHES.c.id).where(BATCHES.c.id.in_(ids), *old)
            session.execute(delete(BATCH_ITEMS).where(BATCH_ITEMS.c.batch_id.in_(still_old)))
            result = session.execute(delete(BATCHES).where(BATCHES.c.id.in_(ids), *old))
            deleted += int(result.rowcount)  # type: ignore[attr-defined]


def delete_old_events(
    sessions: sessionmaker[Session], *, retention_days: int, dry_run: bool = False
) -> int:
    """Delete webhook events that happened more than ``retention_days`` ago, were fanned
    out and have no delivery still to send (pending or sending), with their deliveries and
    attempt log (foreign key cascades); returns how many (0 days: none)."""
    if retention_days <= 0:
        return 0
    cutoff = utcnow() - timedelta(days=retention_days)
    d = WEBHOOK_DELIVERIES.c
    unsent = (
        select(d.id)
        .where(d.event_id == WEBHOOK_EVENTS.c.id, d.state.in_(("pending", "sending")))
        .exists()
    )
    # Re-checked by the DELETE: a replay makes a delivery pending again. An event not fanned
    # out yet (workers stopped, webhooks turned off) has no delivery at all: kept until it is.
    old = (
        WEBHOOK_EVENTS.c.occurred_at < cutoff,
        WEBHOOK_EVENTS.c.fanned_out_at.is_not(None),
        ~unsent,
    )
    if dry_run:
        with sessions() as session:
            count = select(func.count()).select_from(WEBHOOK_EVENTS).where(*old)
            return int(session.scalar(count) or 0)
    deleted = 0
    while True:
        with sessions.begin() as session:
            ids = list(session.scalars(select(WEBHOOK_EVENTS.c.id).where(*old).limit(BATCH)))
            if not ids:
                return deleted
            result = session.execute(
                delete(WEBHOOK_EVENTS).where(WEBHOOK_EVENTS.c.id.in_(ids), *old)
            )
            deleted += int(result.rowcount)  # type: ignore[attr-defined]


def _candidates(session: Session, old: tuple[ColumnElement[bool], ...]) -> list[str]:
    """A batch of ids of jobs matching ``old`` (re-checked by the DELETEs that follow)."""
    return list(session.scalars(select(Job.id).where(*old).limit(BATCH)))


def mask_digests(result: dict[str, Any] | None) -> set[str]:
    """The mask blobs a segment result names."""
    objects = (result or {}).get("objects")
    if not isinstance(objects, list):
        return set()
    return {
        item["mask_sha256"]
        for item in objects
        if isinstance(item, dict) and isinstance(item.get("mask_sha256"), str)
    }


def _kept(doomed_before: datetime | None) -> list[ColumnElement[bool]]:
    """Conditions of the jobs a dry run would keep (all jobs when nothing is deleted)."""
    if doomed_before is None:
        return []
    return [or_(Job.status.not_in(TERMINAL_STATUSES), Job.finished_at >= doomed_before)]


def referenced(
    session: Session, digests: list[str], masks: set[str], doomed_before: datetime | None = None
) -> set[str]:
    """Which of ``digests`` a job still uses: as an input, or as a mask in ``masks``
    (ignoring jobs finished before ``doomed_before``: a dry run's deletions)."""
    query = select(JobInput.sha256).where(JobInput.sha256.in_(digests))
    if doomed_before is not None:
        query = query.join(Job, Job.id == JobInput.job_id).where(*_kept(doomed_before))
    return set(session.scalars(query.distinct())) | (masks & set(digests))


def referenced_masks(session: Session, doomed_before: datetime | None = None) -> set[str]:
    """Every mask blob a stored result names (segment jobs, cached copies included)."""
    found: set[str] = set()
    rows = session.execute(
        select(Job.result).where(
            Job.task.in_(kinds_with(lambda spec: spec.masks)),
            Job.result.is_not(None),
            *_kept(doomed_before),
        )
    ).yield_per(BATCH)
    for (result,) in rows:
        found |= mask_digests(result)
    return found


def collect_blobs(
    sessions: sessionmaker[Session],
    blobs: BlobStore,
    *,
    grace: float,
    dry_run: bool = False,
    doomed_before: datetime | None = None,
) -> tuple[int, int, int]:
    """(trashed, restored, deleted): trash old unreferenced blobs, put back referenced
    ones, delete those trashed more than ``grace`` seconds ago and still unreferenced.
    A dry run passes ``doomed_before``, the jobs it would have deleted."""
    now = time.time()
    trashed = restored = deleted = 0
    # First the trash: the references are read after every entry in it was moved there
    # (a reference made before the move has been committed for at least ``grace``).
    with sessions() as session:
        masks = referenced_masks(session, doomed_before)
    for batch in _batches(blobs.trashed()):
        with sessions() as session:
            used = referenced(session, [sha for _, sha, _ in batch], masks, doomed_before)
        for path, sha256, moved in batch:
            if sha256 in used:
                restored += 1
                if not dry_run:
                    blobs.restore(path, sha256)
            elif moved < now - grace:
                deleted += 1
                if not dry_run:
                    blobs.purge(path)
    # Then the store: old blobs nothing references go to the trash.
    with sessions() as session:
        masks = referenced_masks(session, doomed_before)
    for digests in _batches(blobs.stored_before(now - grace)):
        with sessions() as session:
            used = referenced(session, digests, masks, doomed_before)
        for sha256 in digests:
            if sha256 not in used and (dry_run or blobs.trash(sha256)):
                trashed += 1
    return trashed, restored, deleted


def collect(
    settings: Settings,
    sessions: sessionmaker[Session],
    blobs: BlobStore,
    *,
    dry_run: bool = False,
    grace: float | None = None,
) -> GcReport:
    """One garbage collection: old jobs, expired idempotency keys, unreferenced blobs, old
    webhook events."""
    report = GcReport()
    report.jobs = delete_old_jobs(sessions, retention_days=settings.retention_days, dry_run=dry_run)
    report.batches = delete_old_batches(
        sessions, retention_days=settings.retention_days, dry_run=dry_run
    )
    report.webhook_events = delete_old_events(
        sessions, retention_days=settings.retention_days, dry_run=dry_run
    )
    if dry_run:
        cutoff = utcnow() - timedelta(seconds=settings.idempotency_ttl_s)
        with sessions() as session:
            expired = select(func.count()).where(IdempotencyKey.created_at < cutoff)
            report.idempotency_keys = int(session.scalar(expired) or 0)
    else:
        with sessions.begin() as session:
            report.idempotency_keys = forget_expired(session, ttl_s=settings.idempotency_ttl_s)
    doomed_before = None
    if dry_run and settings.retention_days > 0:
        doomed_before = utcnow() - timedelta(days=settings.retention_days)
    report.blobs_trashed, report.blobs_restored, report.blobs_deleted = collect_blobs(
        sessions,
        blobs,
        grace=grace_s(settings) if grace is None else grace,
        dry_run=dry_run,
        doomed_before=doomed_before,
    )
    return report
