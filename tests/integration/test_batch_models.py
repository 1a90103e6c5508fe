"""Batch rows (models/batches.py) on SQLite and PostgreSQL: lookups, locks, states, counts."""

from __future__ import annotations

import threading
import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from tests.integration.batch_rows import _batch, _items, _set, tenant
from tests.job_rows import job_row
from visionq.models.batches import (
    BatchNameTakenError,
    add_counts,
    cancel_batch,
    close_batch,
    create_batch,
    existing_items,
    find_batch,
    get_batch,
    insert_items,
    list_batches,
    lock_for_write,
)
from visionq.models.batchjobs import NewJobRow, insert_jobs
from visionq.models.budgets import budget_state, reserve, set_budget
from visionq.models.jobs import InvalidCursorError
from visionq.models.tables import JOBS, Batch, utcnow

__all__ = ["tenant"]  # the fixture (test_batch_progress_rows.py imports it and the steps here)


def test_batches_by_id_name_and_pages(sessions: sessionmaker[Session], tenant: str) -> None:
    ids = [_batch(sessions, tenant, f"n{i}") for i in range(5)]
    with sessions.begin() as session, pytest.raises(BatchNameTakenError) as taken:
        create_batch(
            session, tenant=tenant, name="n2", task="detect", model=None, prompt=None,
            labels=None, options={}, response_schema=None, defaults_hash="x" * 64,
            expected_items=3,
        )  # fmt: skip
    assert taken.value.existing.id == ids[2]
    # Another tenant may use the same name.
    assert _batch(sessions, "someone-else-" + tenant, "n2") != ids[2]
    with sessions() as session:
        got = get_batch(session, tenant=tenant, batch_id=ids[0])
        assert got is not None and got.name == "n0" and got.state == "open"
        assert got.item_count == 0 and got.options == {}
        assert get_batch(session, tenant="other", batch_id=ids[0]) is None
        assert get_batch(session, tenant=tenant, batch_id="not-an-id") is None
        found = find_batch(session, tenant=tenant, name="n3")
        assert found is not None and found.id == ids[3]
        walked: list[Batch] = []
        cursor = None
        while True:
            page, cursor = list_batches(session, tenant=tenant, limit=2, cursor=cursor)
            walked += page
            if cursor is None:
                break
        assert [b.id for b in walked] == ids[::-1]
        named, _ = list_batches(session, tenant=tenant, limit=10, cursor=None, name="n1")
        assert [b.id for b in named] == [ids[1]]
        with pytest.raises(InvalidCursorError):
            list_batches(session, tenant=tenant, limit=2, cursor="garbage!")
    with sessions.begin() as session:
        assert close_batch(session, tenant=tenant, batch_id=ids[4]) is None
    with sessions() as session:
        closed, _ = list_batches(session, tenant=tenant, limit=10, cursor=None, state="closed")
        assert [b.id for b in closed] == [ids[4]]


def test_lock_close_and_states(sessions: sessionmaker[Session], tenant: str) -> None:
    batch_id = _batch(sessions, tenant)
    with sessions.begin() as session:
        assert lock_for_write(session, tenant=tenant, batch_id=batch_id, allow={"open"}) is None
        assert lock_for_write(session, tenant="x", batch_id=batch_id, allow={"open"}) == "missing"
        assert lock_for_write(session, tenant=tenant, batch_id="nope", allow={"open"}) == "missing"
    with sessions.begin() as session:
        assert close_batch(session, tenant=tenant, batch_id=batch_id) is None
    with sessions.begin() as session:
        assert close_batch(session, tenant=tenant, batch_id=batch_id) is None  # idempotent
        assert lock_for_write(session, tenant=tenant, batch_id=batch_id, allow={"open"}) == "closed"
        allowed = lock_for_write(
            session, tenant=tenant, batch_id=batch_id, allow={"open", "closed"}
        )
        assert allowed is None
    with sessions.begin() as session:
        assert len(cancel_batch(session, tenant=tenant, batch_id=batch_id)) == 0
    with sessions.begin() as session:
        assert close_batch(session, tenant=tenant, batch_id=batch_id) == "cancelled"
        assert close_batch(session, tenant=tenant, batch_id=str(uuid.uuid4())) == "missing"
    with sessions() as session:
        batch = get_batch(session, tenant=tenant, batch_id=batch_id)
        assert batch is not None and batch.state == "cancelled"
        assert batch.closed_at is not None and batch.cancelled_at is not None


def test_add_counts_adds(sessions: sessionmaker[Session], tenant: str) -> None:
    batch_id = _batch(sessions, tenant)
    for _ in range(2):
        with sessions.begin() as session:
            add_counts(
                session, batch_id, items=3, est_min_nusd=10, est_max_nusd=20, est_tokens=30,
                received=2, referenced=1, prior_cost_nusd=5, prior_tokens=7,
            )  # fmt: skip
    with sessions() as session:
        batch = get_batch(session, tenant=tenant, batch_id=batch_id)
    assert batch is not None
    assert (batch.item_count, batch.estimate_min_nusd, batch.estimate_max_nusd) == (6, 20, 40)
    assert (batch.estimate_input_tokens, batch.images_received, batch.images_referenced) == (
        60,
        4,
        2,
    )
    assert (batch.prior_cost_nusd, batch.prior_tokens) == (10, 14)


def test_a_locked_batch_shows_the_winners_keys(
    sessions: sessionmaker[Session], tenant: str
) -> None:
    """Two adds of the same key at once: the second waits for the first's lock, then sees
    its key (exists) instead of inserting it again."""
    batch_id = _batch(sessions, tenant)
    first_locked, second_started = threading.Event(), threading.Event()
    seen: dict[str, str | None] = {}
    errors: list[BaseException] = []
    row = job_row(tenant)

    def first() -> None:
        try:
            with sessions.begin() as session:
                assert (
                    lock_for_write(session, tenant=tenant, batch_id=batch_id, allow={"open"})
                    is None
                )
                assert existing_items(session, batch_id, ["k", "other"]) == {}
                insert_jobs(session, [row])
                insert_items(session, batch_id, [("k", row.id)])
                first_locked.set()
                second_started.wait(10)
        except BaseException as exc:
            errors.append(exc)
            first_locked.set()

    def second() -> None:
        first_locked.wait(10)
        try:
            with sessions.begin() as session:
                second_started.set()
                # Blocks until the first commits (row lock on PostgreSQL, write lock on SQLite).
                assert (
                    lock_for_write(session, tenant=tenant, batch_id=batch_id, allow={"open"})
                    is None
                )
                seen.update(existing_items(session, batch_id, ["k", "other"]))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert seen == {"k": row.id}


def test_a_key_is_unique_in_a_batch_even_without_the_lock(
    sessions: sessionmaker[Session], tenant: str
) -> None:
    """Belt and braces: two transactions inserting the same key unchecked: one wins, the
    other gets IntegrityError (and then sees the winner's key)."""
    batch_id = _batch(sessions, tenant)
    other_batch = _batch(sessions, tenant, "other")
    a, b = job_row(tenant), job_row(tenant)
    inserted = threading.Event()
    outcome: dict[str, BaseException | None] = {}

    def insert(name: str, row: NewJobRow, wait: threading.Event | None) -> None:
        try:
            with sessions.begin() as session:
                insert_jobs(session, [row])
                insert_items(session, batch_id, [("same", row.id)])
                inserted.set()
                if wait is not None:
                    wait.wait(0.5)  # hold the transaction open while the other one inserts
            outcome[name] = None
        except IntegrityError as exc:
            outcome[name] = exc
            inserted.set()

    hold = threading.Event()
    first = threading.Thread(target=insert, args=("a", a, hold))
    first.start()
    inserted.wait(10)
    second = threading.Thread(target=insert, args=("b", b, None))
    second.start()
    first.join(30)
    second.join(30)
    assert outcome["a"] is None and isinstance(outcome["b"], IntegrityError)
    with sessions() as session:
        assert existing_items(session, batch_id, ["same"]) == {"same": a.id}
    # The same key in another batch is another item.
    _items(sessions, tenant, other_batch, ["same"])


def test_cancel_batch_cancels_only_queued_jobs_and_releases_their_budget(
    sessions: sessionmaker[Session], tenant: str
) -> None:
    batch_id = _batch(sessions, tenant)
    keys = [f"k{i}" for i in range(6)]
    rows = [job_row(tenant, reserved_nusd=1000) for _ in keys]
    outside = job_row(tenant, reserved_nusd=1000)  # a queued job of the tenant, not in the batch
    with sessions.begin() as session:
        set_budget(session, tenant=tenant, daily_nusd=10**12, monthly_nusd=None)
    with sessions.begin() as session:
        assert reserve(session, tenant=tenant, amount_nusd=7000)
        insert_jobs(session, [*rows, outside])
        insert_items(
            session, batch_id, [(key, row.id) for key, row in zip(keys, rows, strict=True)]
        )
    _set(sessions, rows[0].id, status="running")
    _set(sessions, rows[1].id, status="succeeded", finished_at=utcnow(), reserved_nusd=1000)
    with sessions.begin() as session:  # the succeeded job settled its own reservation
        from visionq.models.budgets import settle

        settle(session, tenant=tenant, reserved_nusd=1000, cost_nusd=10)
    with sessions.begin() as session:
        assert len(cancel_batch(session, tenant=tenant, batch_id=batch_id)) == 4
    with sessions() as session:
        status = dict(
            session.execute(select(JOBS.c.id, JOBS.c.status).where(JOBS.c.tenant == tenant)).all()
        )
        reserved = budget_state(session, tenant).reserved_nusd
        batch = get_batch(session, tenant=tenant, batch_id=batch_id)
        cancelled = session.execute(select(JOBS).where(JOBS.c.id == rows[2].id)).one()
    assert status[rows[0].id] == "running" and status[rows[1].id] == "succeeded"
    assert [status[row.id] for row in rows[2:]] == ["cancelled"] * 4
    assert status[outside.id] == "queued"
    assert cancelled.error_code == "cancelled" and cancelled.finished_at is not None
    # The running job's and the outside job's reservations are still held.
    assert reserved == 2000
    assert batch is not None and batch.state == "cancelled" and batch.cancelled_at is not None
    with sessions.begin() as session:  # again: nothing left to cancel, same state
        assert len(cancel_batch(session, tenant=tenant, batch_id=batch_id)) == 0
        assert len(cancel_batch(session, tenant="x", batch_id=batch_id)) == 0
        assert (
            lock_for_write(session, tenant=tenant, batch_id=batch_id, allow={"open", "closed"})
            == "cancelled"
        )
    with sessions() as session:
        assert budget_state(session, tenant).reserved_nusd == 2000
