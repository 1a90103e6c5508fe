"""The batch database layer (models/batches.py, models/batchjobs.py) on SQLite and PostgreSQL.

Every test works in its own tenant: the database is shared by the whole session.
"""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Text, cast, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from tests.job_rows import job_row
from visionq.models.batch_reruns import repoint_items, rerun_sources
from visionq.models.batches import (
    BatchNameTakenError,
    ProgressRow,
    add_counts,
    cancel_batch,
    close_batch,
    create_batch,
    existing_items,
    find_batch,
    get_batch,
    insert_items,
    items_page,
    list_batches,
    lock_for_write,
    progress_rows,
)
from visionq.models.batchjobs import (
    CachedAnswer,
    NewJobRow,
    find_cached_many,
    insert_jobs,
    job_inputs_of,
    mark_unsent_many,
    stored_inputs,
)
from visionq.models.budgets import budget_state, reserve, set_budget
from visionq.models.jobs import InvalidCursorError, NewInput, create_job, find_cached
from visionq.models.leases import jobs_to_send
from visionq.models.retention import delete_old_batches, delete_old_jobs
from visionq.models.tables import BATCH_ITEMS, BATCHES, JOB_INPUTS, JOBS, Batch, utcnow
from visionq.vision.estimate import StoredEstimate
from visionq.vision.tasks import JobOptions

SHA_A, SHA_B = "a" * 64, "b" * 64


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
