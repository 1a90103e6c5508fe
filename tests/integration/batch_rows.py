"""Shared steps for the batch database tests on SQLite and PostgreSQL (models/batches.py,
models/batchjobs.py): a tenant of the test's own, batches, their items (a queued job each) and
changes to a job's row.

Every test works in its own tenant: the database is shared by the whole session.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from tests.job_rows import job_row
from visionq.models.batches import create_batch, insert_items, lock_for_write
from visionq.models.batchjobs import insert_jobs
from visionq.models.tables import JOBS


@pytest.fixture
def tenant() -> str:
    return f"batch-{uuid.uuid4().hex[:12]}"


def _batch(sessions: sessionmaker[Session], tenant: str, name: str = "b") -> str:
    with sessions.begin() as session:
        return create_batch(
            session, tenant=tenant, name=name, task="caption", model=None, prompt=None,
            labels=None, options={}, response_schema=None, defaults_hash="h" * 64,
            expected_items=None,
        ).id  # fmt: skip


def _items(
    sessions: sessionmaker[Session], tenant: str, batch_id: str, keys: list[str]
) -> dict[str, str]:
    """Add one queued job per key to the batch; returns key -> job id."""
    rows = [job_row(tenant) for _ in keys]
    with sessions.begin() as session:
        assert lock_for_write(session, tenant=tenant, batch_id=batch_id, allow={"open"}) is None
        insert_jobs(session, rows)
        insert_items(
            session, batch_id, [(key, row.id) for key, row in zip(keys, rows, strict=True)]
        )
    return {key: row.id for key, row in zip(keys, rows, strict=True)}


def _set(sessions: sessionmaker[Session], job_id: str, **values: Any) -> None:
    with sessions.begin() as session:
        session.execute(update(JOBS).where(JOBS.c.id == job_id).values(**values))
