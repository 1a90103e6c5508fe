"""The ETA's figures in progress_rows (models/batchreads.py), on SQLite and PostgreSQL: only
jobs a worker ran count in the measured rate (not cache hits, not jobs cancelled while
queued), and the window starts at the first of them."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from tests.integration.batch_rows import _batch, _items, _set, tenant
from visionq.api.batch_progress import totals
from visionq.models.batches import progress_rows
from visionq.models.tables import utcnow

__all__ = ["tenant"]  # the fixture (tests/integration/batch_rows.py)


def test_only_jobs_a_worker_ran_measure_the_rate(
    sessions: sessionmaker[Session], tenant: str
) -> None:
    batch_id = _batch(sessions, tenant)
    jobs = _items(sessions, tenant, batch_id, ["ran", "old", "hit", "cancelled", "running"])
    now = utcnow()
    _set(sessions, jobs["ran"], status="succeeded", attempt_count=1,
         started_at=now - timedelta(seconds=20), finished_at=now)  # fmt: skip
    _set(sessions, jobs["old"], status="succeeded", attempt_count=1,
         started_at=now - timedelta(hours=3), finished_at=now - timedelta(hours=2))  # fmt: skip
    # A cache hit: succeeded at intake, never claimed.
    _set(sessions, jobs["hit"], status="succeeded", cached_from=jobs["ran"], started_at=now,
         finished_at=now)  # fmt: skip
    _set(sessions, jobs["cancelled"], status="cancelled", finished_at=now)
    _set(sessions, jobs["running"], status="running", attempt_count=1,
         started_at=now - timedelta(seconds=30))  # fmt: skip
    with sessions() as session:
        rows = {
            row.status: row
            for row in progress_rows(session, batch_id, since=now - timedelta(minutes=5))
        }
    assert (rows["succeeded"].recent, rows["succeeded"].ran_recent) == (2, 1)
    assert (rows["cancelled"].recent, rows["cancelled"].ran_recent) == (1, 0)
    assert rows["cancelled"].first_started is None
    assert rows["running"].first_started == now - timedelta(seconds=30)
    found = totals(list(rows.values()))
    assert (found.recent, found.first_started) == (1, now - timedelta(hours=3))
