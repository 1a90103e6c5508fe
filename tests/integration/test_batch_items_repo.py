"""Batch items on SQLite and PostgreSQL: progress counts, item pages, re-run sources, retention."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from tests.integration.batch_rows import _batch, _items, _set, tenant
from tests.job_rows import job_row
from visionq.models.batch_reruns import repoint_items, rerun_sources
from visionq.models.batches import ProgressRow, items_page, lock_for_write, progress_rows
from visionq.models.batchjobs import insert_jobs, job_inputs_of
from visionq.models.retention import delete_old_batches, delete_old_jobs
from visionq.models.tables import BATCH_ITEMS, BATCHES, JOBS, utcnow

__all__ = ["tenant"]  # the fixture


def test_progress_rows_count_by_status(sessions: sessionmaker[Session], tenant: str) -> None:
    batch_id = _batch(sessions, tenant)
    jobs = _items(sessions, tenant, batch_id, [f"k{i}" for i in range(7)])
    now = utcnow()
    usage = {"prompt_tokens": 10, "candidates_tokens": 5, "thoughts_tokens": 2, "total_tokens": 17}
    _set(sessions, jobs["k0"], status="succeeded", finished_at=now, cost_nusd=100, **usage)
    _set(
        sessions,
        jobs["k1"],
        status="succeeded",
        finished_at=now - timedelta(hours=2),
        cost_nusd=50,
        **usage,
    )
    _set(sessions, jobs["k2"], status="failed", finished_at=now, error_code="x")
    _set(sessions, jobs["k3"], status="running")
    with sessions.begin() as session:  # k4: retention deleted its job
        session.execute(delete(JOBS).where(JOBS.c.id == jobs["k4"]))
    with sessions() as session:
        rows = {
            row.status: row
            for row in progress_rows(session, batch_id, since=now - timedelta(minutes=5))
        }
        first = session.scalar(select(JOBS.c.created_at).where(JOBS.c.id == jobs["k0"]))
    assert set(rows) == {"succeeded", "failed", "running", "queued", "expired"}
    assert rows["succeeded"] == ProgressRow("succeeded", 2, 20, 10, 4, 34, 150, 1, first)
    assert (rows["queued"].count, rows["queued"].recent, rows["queued"].cost_nusd) == (2, 0, 0)
    assert (rows["failed"].count, rows["failed"].recent) == (1, 1)
    assert (rows["running"].count, rows["expired"].count) == (1, 1)
    assert rows["expired"].first_created is None
    assert all(
        isinstance(row.cost_nusd, int) and isinstance(row.total, int) for row in rows.values()
    )
    with sessions() as session:
        assert progress_rows(session, _batch(sessions, tenant, "empty"), since=now) == []


def test_items_page_walks_in_insertion_order(sessions: sessionmaker[Session], tenant: str) -> None:
    batch_id = _batch(sessions, tenant)
    # Keys out of sort order (and one a collation would move): pages follow insertion.
    keys = [f"z{i:02d}" if i % 2 else f"A{i:02d}" for i in range(25)] + ["ä", 'a,"b"\nc']
    jobs = _items(sessions, tenant, batch_id, keys)
    _items(sessions, tenant, _batch(sessions, tenant, "other"), ["A00"])  # not in this batch
    _set(sessions, jobs["z01"], status="failed", error_code="boom", error_message="it broke")
    with sessions.begin() as session:
        session.execute(delete(JOBS).where(JOBS.c.id == jobs["z03"]))
    walked = []
    after = 0
    while True:
        with sessions() as session:  # a short read per page, as the export does
            page = items_page(session, batch_id, after_id=after, limit=10)
        if not page:
            break
        assert len(page) <= 10
        walked += page
        after = page[-1].id
    assert [row.key for row in walked] == keys
    assert [row.id for row in walked] == sorted(row.id for row in walked)
    by_key = {row.key: row for row in walked}
    assert by_key["z01"].status == "failed" and by_key["z01"].error_code == "boom"
    assert by_key["z03"].status == "expired" and by_key["z03"].job_id is None
    assert by_key["z03"].task is None and by_key["z03"].created_at is not None
    assert by_key["A00"].status == "queued" and by_key["A00"].task == "caption"
    assert by_key["A00"].job_id == jobs["A00"] and by_key["A00"].reruns == 0
    with sessions() as session:
        failed = items_page(session, batch_id, after_id=0, limit=100, status="failed")
        expired = items_page(session, batch_id, after_id=0, limit=100, status="expired")
        queued = items_page(session, batch_id, after_id=0, limit=100, status="queued")
    assert [r.key for r in failed] == ["z01"] and [r.key for r in expired] == ["z03"]
    assert len(queued) == len(keys) - 2


def test_rerun_sources_and_repoint_items(sessions: sessionmaker[Session], tenant: str) -> None:
    batch_id = _batch(sessions, tenant)
    keys = [f"k{i}" for i in range(6)]
    jobs = _items(sessions, tenant, batch_id, keys)
    _set(sessions, jobs["k0"], status="failed", error_code="a", cost_nusd=7, total_tokens=70)
    _set(sessions, jobs["k1"], status="succeeded")
    _set(sessions, jobs["k2"], status="failed", error_code="b")
    _set(sessions, jobs["k3"], status="cancelled", error_code="cancelled")
    _set(sessions, jobs["k5"], status="failed", error_code="a")
    with sessions() as session:
        failed = rerun_sources(
            session, batch_id, statuses=["failed"], error_codes=None, after_id=0, limit=10
        )
        only_a = rerun_sources(
            session, batch_id, statuses=["failed"], error_codes=["a"], after_id=0, limit=10
        )
        both = rerun_sources(
            session,
            batch_id,
            statuses=["failed", "cancelled"],
            error_codes=None,
            after_id=0,
            limit=2,
        )
        rest = rerun_sources(
            session, batch_id, statuses=["failed", "cancelled"], error_codes=None,
            after_id=both[-1].item_id, limit=10,
        )  # fmt: skip
    assert [s.key for s in failed] == ["k0", "k2", "k5"]
    assert (failed[0].job_id, failed[0].cost_nusd, failed[0].total_tokens) == (jobs["k0"], 7, 70)
    assert (failed[1].cost_nusd, failed[1].total_tokens) == (0, 0)
    assert [s.key for s in only_a] == ["k0", "k5"]
    assert [s.key for s in both] == ["k0", "k2"] and [s.key for s in rest] == ["k3", "k5"]
    # The re-run: new jobs on the old inputs, items pointed at them.
    with sessions.begin() as session:
        assert (
            lock_for_write(session, tenant=tenant, batch_id=batch_id, allow={"open", "closed"})
            is None
        )
        inputs = job_inputs_of(session, [s.job_id for s in failed])
        new = [job_row(tenant, retry_of=s.job_id, inputs=inputs[s.job_id]) for s in failed]
        insert_jobs(session, new)
        repoint_items(session, [(s.item_id, row.id) for s, row in zip(failed, new, strict=True)])
    with sessions() as session:
        again = rerun_sources(
            session, batch_id, statuses=["failed"], error_codes=None, after_id=0, limit=10
        )
        page = {row.key: row for row in items_page(session, batch_id, after_id=0, limit=10)}
        retry_of = dict(
            session.execute(select(JOBS.c.id, JOBS.c.retry_of).where(JOBS.c.tenant == tenant)).all()
        )
        old_status = session.scalar(select(JOBS.c.status).where(JOBS.c.id == jobs["k0"]))
    assert again == []
    for source, row in zip(failed, new, strict=True):
        assert page[source.key].job_id == row.id and page[source.key].reruns == 1
        assert page[source.key].status == "queued" and retry_of[row.id] == source.job_id
    assert page["k1"].reruns == 0 and page["k1"].job_id == jobs["k1"]
    assert old_status == "failed"  # the old job is untouched


def test_gc_expires_items_then_deletes_batches_left_without_jobs(
    sessions: sessionmaker[Session], tenant: str
) -> None:
    gone = _batch(sessions, tenant, "gone")
    kept = _batch(sessions, tenant, "kept")
    recent = _batch(sessions, tenant, "recent")
    old = utcnow() - timedelta(days=40)
    gone_jobs = _items(sessions, tenant, gone, ["a", "b"])
    kept_jobs = _items(sessions, tenant, kept, ["a", "b"])
    recent_jobs = _items(sessions, tenant, recent, ["a"])
    for job_id in [*gone_jobs.values(), kept_jobs["a"], *recent_jobs.values()]:
        _set(sessions, job_id, status="succeeded", finished_at=old)
    with sessions.begin() as session:
        session.execute(
            update(BATCHES).where(BATCHES.c.id.in_([gone, kept])).values(updated_at=old)
        )
    # The database is shared: only this test's jobs are old enough for a 35-day retention.
    assert delete_old_jobs(sessions, retention_days=35) >= 4
    with sessions() as session:
        items = dict(
            session.execute(
                select(BATCH_ITEMS.c.key, BATCH_ITEMS.c.job_id).where(
                    BATCH_ITEMS.c.batch_id == kept
                )
            ).all()
        )
        assert items == {"a": None, "b": kept_jobs["b"]}
    assert delete_old_batches(sessions, retention_days=35, dry_run=True) >= 1
    assert delete_old_batches(sessions, retention_days=35) >= 1
    with sessions() as session:
        left = set(session.scalars(select(BATCHES.c.id).where(BATCHES.c.tenant == tenant)))
        orphans = session.scalars(
            select(BATCH_ITEMS.c.id).where(BATCH_ITEMS.c.batch_id == gone)
        ).all()
    # "kept" still has a job; "recent" was written lately (its items read as expired).
    assert left == {kept, recent} and orphans == []
    assert delete_old_batches(sessions, retention_days=0) == 0
