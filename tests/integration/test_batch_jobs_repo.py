"""A batch's bulk job writes and reads (models/batchjobs.py) on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session, sessionmaker

from tests.integration.batch_rows import _set, tenant
from tests.job_rows import job_row
from visionq.models.batchjobs import (
    CachedAnswer,
    NewJobRow,
    find_cached_many,
    insert_jobs,
    job_inputs_of,
    mark_unsent_many,
    stored_inputs,
)
from visionq.models.jobs import NewInput, create_job, find_cached
from visionq.models.leases import jobs_to_send
from visionq.models.tables import JOB_INPUTS, JOBS, utcnow
from visionq.vision.estimate import StoredEstimate
from visionq.vision.tasks import JobOptions

__all__ = ["tenant"]  # the fixture


SHA_A, SHA_B = "a" * 64, "b" * 64


def _raw(session: Session, table: Any, where: Any) -> list[dict[str, Any]]:
    """Rows as the database holds them: every column cast to text, so SQL NULL (None)
    and JSON null ('null') differ."""
    columns = [cast(column, Text).label(column.name) for column in table.columns]
    return [dict(row._mapping) for row in session.execute(select(*columns).where(where))]


def _inputs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Input rows in position order, without their own and their job's ids."""
    ordered = sorted(rows, key=lambda row: int(row["position"]))
    return [{k: v for k, v in row.items() if k not in {"id", "job_id"}} for row in ordered]


_TIMES = {"id", "job_id", "created_at", "enqueued_at", "started_at", "finished_at"}


@pytest.mark.parametrize("cached", [False, True])
def test_insert_jobs_writes_the_rows_create_job_writes(
    sessions: sessionmaker[Session], tenant: str, cached: bool
) -> None:
    estimate = StoredEstimate(model="gemini-2.5-flash", input_tokens=300, known=True)
    inputs = [
        NewInput(SHA_A, "image/png", 10, 20, 30),
        NewInput(SHA_B, "image/jpeg", 40, 50, 60, ("exif_transposed",)),
    ]
    answer = CachedAnswer(str(uuid.uuid4()), {"text": "a cat"}, "gemini-2.5-flash-001")
    fields: dict[str, Any] = {
        "tenant": tenant, "task": "classify", "model": "gemini-2.5-flash", "prompt": "p",
        "labels": ["cat", "dog"], "options": JobOptions(temperature=0.5),
        "response_schema": None, "estimate": estimate, "reserved_nusd": 1234,
        "cache_key": "k" * 64, "cached": answer if cached else None, "warnings": [],
        "retry_of": None, "inputs": inputs,
    }  # fmt: skip
    row = NewJobRow(id=str(uuid.uuid4()), **fields)
    with sessions.begin() as session:
        single = create_job(session, **fields)
        insert_jobs(session, [row, job_row(tenant)])  # and a plain one in the same call
    with sessions() as session:
        (one,) = _raw(session, JOBS, JOBS.c.id == single.id)
        (many,) = _raw(session, JOBS, JOBS.c.id == row.id)
        inputs_one = _raw(session, JOB_INPUTS, JOB_INPUTS.c.job_id == single.id)
        inputs_many = _raw(session, JOB_INPUTS, JOB_INPUTS.c.job_id == row.id)
        typed = session.execute(select(JOBS).where(JOBS.c.id == row.id)).one()
    assert {k: v for k, v in many.items() if k not in _TIMES} == {
        k: v for k, v in one.items() if k not in _TIMES
    }
    assert typed.enqueued_at == typed.created_at
    if cached:
        assert typed.status == "succeeded" and typed.cached_from == answer.id
        assert typed.started_at == typed.finished_at == typed.created_at
        assert typed.result == {"text": "a cat"} and typed.cost_nusd == 0
    else:
        assert typed.status == "queued" and typed.started_at is None
    assert _inputs(inputs_many) == _inputs(inputs_one)
    assert len(inputs_many) == 2


def test_find_cached_many_picks_what_find_cached_picks(
    sessions: sessionmaker[Session], tenant: str
) -> None:
    now = utcnow()
    old, new, failed, other, plain = (
        job_row(tenant, cache_key="c1"),
        job_row(tenant, cache_key="c1"),
        job_row(tenant, cache_key="c2"),
        job_row("someone-else", cache_key="c2"),
        job_row(tenant, cache_key="c3"),
    )
    with sessions.begin() as session:
        insert_jobs(session, [old, new, failed, other, plain])
    _set(
        sessions, old.id, status="succeeded", finished_at=now - timedelta(hours=1), result={"n": 1}
    )
    _set(sessions, new.id, status="succeeded", finished_at=now, result={"n": 2}, model_version="v2")
    _set(sessions, failed.id, status="failed", finished_at=now)
    _set(sessions, other.id, status="succeeded", finished_at=now, result={"n": 3})
    with sessions() as session:
        found = find_cached_many(session, tenant=tenant, cache_keys=["c1", "c2", "c3", "c4"])
        single = find_cached(session, tenant=tenant, cache_key="c1")
    assert found == {"c1": CachedAnswer(new.id, {"n": 2}, "v2")}
    assert single is not None and single.id == new.id


def test_stored_inputs_are_the_tenants_own(sessions: sessionmaker[Session], tenant: str) -> None:
    mine = uuid.uuid4().hex * 2
    theirs = uuid.uuid4().hex * 2
    rows = [
        job_row(tenant, inputs=[NewInput(mine, "image/png", 5, 6, 7, ("converted",))]),
        job_row(tenant, inputs=[NewInput(mine, "image/png", 5, 6, 7)]),
        job_row("someone-else", inputs=[NewInput(theirs, "image/jpeg", 1, 2, 3)]),
    ]
    with sessions.begin() as session:
        insert_jobs(session, rows)
    with sessions() as session:
        found = stored_inputs(session, tenant=tenant, sha256s=[mine, theirs, "f" * 64])
    assert found == {mine: NewInput(mine, "image/png", 5, 6, 7)}


def test_job_inputs_of_keeps_order_and_changes(
    sessions: sessionmaker[Session], tenant: str
) -> None:
    inputs = [
        NewInput(SHA_B, "image/png", 1, 2, 3, ("a", "b")),
        NewInput(SHA_A, "image/gif", 4, 5, 6),
    ]
    first, second = job_row(tenant, inputs=inputs), job_row(tenant)
    with sessions.begin() as session:
        insert_jobs(session, [first, second])
    with sessions() as session:
        found = job_inputs_of(session, [first.id, second.id, str(uuid.uuid4())])
    assert found == {first.id: inputs, second.id: list(second.inputs)}


def test_mark_unsent_many_leaves_them_to_the_sweeper(
    sessions: sessionmaker[Session], tenant: str
) -> None:
    queued, done = job_row(tenant), job_row(tenant)
    with sessions.begin() as session:
        insert_jobs(session, [queued, done])
    _set(sessions, done.id, status="succeeded")
    with sessions.begin() as session:
        mark_unsent_many(session, [queued.id, done.id])
    with sessions() as session:
        sent = dict(
            session.execute(
                select(JOBS.c.id, JOBS.c.enqueued_at).where(JOBS.c.tenant == tenant)
            ).all()
        )
        due = [job.id for job in jobs_to_send(session, requeue_after_s=900, limit=100_000)]
    assert sent[queued.id] is None and sent[done.id] is not None
    assert queued.id in due and done.id not in due
