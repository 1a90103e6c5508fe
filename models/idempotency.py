"""Idempotency keys of POST /v1/jobs: one job per (tenant, key) and request body."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from visionq.models.tables import IdempotencyKey, utcnow


@dataclass(frozen=True)
class Remembered:
    job_id: str
    request_hash: str


def recall(session: Session, *, tenant: str, key: str, ttl_s: float) -> Remembered | None:
    """The job an earlier request with this key created, if the key is still kept."""
    row = session.get(IdempotencyKey, (tenant, key))
    if row is None or row.created_at < utcnow() - timedelta(seconds=ttl_s):
        return None
    return Remembered(job_id=row.job_id, request_hash=row.request_hash)


def remember(
    session: Session, *, tenant: str, key: str, request_hash: str, job_id: str, ttl_s: float
) -> None:
    """Bind the key to the new job, in the job's own transaction.

    An expired row with the same key is replaced; a live one (a concurrent request with the
    same key won) makes the flush raise IntegrityError: the caller then recalls that one.
    """
    cutoff = utcnow() - timedelta(seconds=ttl_s)
    session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.tenant == tenant,
            IdempotencyKey.key == key,
            IdempotencyKey.created_at < cutoff,
        )
    )
    session.add(IdempotencyKey(tenant=tenant, key=key, request_hash=request_hash, job_id=job_id))
    session.flush()


def forget_expired(session: Session, *, ttl_s: float) -> int:
    """Delete keys older than ``ttl_s``; returns how many."""
    cutoff = utcnow() - timedelta(seconds=ttl_s)
    result = session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < cutoff))
    return int(result.rowcount)  # type: ignore[attr-defined]
