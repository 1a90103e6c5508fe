"""The webhook log on SQLite and PostgreSQL (models/webhook_log.py): replays, attempt and
delivery pages, and retention of old events (models/retention.py).

Every test works with a tenant of its own: the database is shared by the whole module.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from tests.integration.webhook_rows import (
    DOWN,
    OK,
    attempt,
    deliveries,
    fan_out_all,
    make_endpoint,
    make_events,
    pending,
    tenant,
)
from visionq.models.jobs import InvalidCursorError
from visionq.models.retention import delete_old_events
from visionq.models.tables import WEBHOOK_ATTEMPTS, WEBHOOK_EVENTS, utcnow
from visionq.models.webhook_deliveries import EventNotFound, attempts_page, deliveries_page, replay

pytestmark = pytest.mark.integration
__all__ = ["tenant"]  # the fixture


def test_replay_one_event_also_to_an_endpoint_made_later(
    sessions: sessionmaker[Session], tenant: str
) -> None:
    first = make_endpoint(sessions, tenant)
    (event,) = make_events(sessions, tenant, 1)
    fan_out_all(sessions)
    later = make_endpoint(sessions, tenant)
    only_batches = make_endpoint(sessions, tenant, events=("batch.completed",))
    with sessions.begin() as session:
        assert replay(session, tenant=tenant, endpoint_id=first, event_id=event, limit=9) == (
            0, False,
        )  # pending already  # fmt: skip
        assert replay(session, tenant=tenant, endpoint_id=later, event_id=event, limit=9) == (
            1, False,
        )  # fmt: skip
        with pytest.raises(EventNotFound):
            replay(session, tenant=tenant, endpoint_id=only_batches, event_id=event, limit=9)
        with pytest.raises(EventNotFound):
            replay(session, tenant=tenant, endpoint_id=later, event_id="msg_nope", limit=9)
        with pytest.raises(EventNotFound):
            replay(session, tenant="someone-else", endpoint_id=later, event_id=event, limit=9)
    assert [(d.event_id, d.state) for d in deliveries(sessions, later)] == [(event, "pending")]


def test_log_pages_walk_newest_first(sessions: sessionmaker[Session], tenant: str) -> None:
    endpoint, ids = pending(sessions, tenant, 3)
    for delivery in ids:
        attempt(sessions, delivery, DOWN, retry_in_s=0)
        attempt(sessions, delivery, OK)
    seen: list[Any] = []
    cursor = None
    with sessions() as session:
        while True:
            page, cursor = attempts_page(
                session, tenant=tenant, endpoint_id=endpoint, outcome=None, since=None,
                cursor=cursor, limit=4,
            )  # fmt: skip
            seen.extend(page)
            if cursor is None:
                break
        failed, _ = attempts_page(
            session, tenant=tenant, endpoint_id=endpoint, outcome="failed", since=None,
            cursor=None, limit=50,
        )  # fmt: skip
        nobody, _ = attempts_page(
            session, tenant="someone-else", endpoint_id=endpoint, outcome=None, since=None,
            cursor=None, limit=50,
        )  # fmt: skip
        done, more = deliveries_page(
            session, tenant=tenant, endpoint_id=endpoint, state="succeeded", cursor=None,
            limit=2,
        )  # fmt: skip
        rest, end = deliveries_page(
            session, tenant=tenant, endpoint_id=endpoint, state="succeeded", cursor=more,
            limit=2,
        )  # fmt: skip
        with pytest.raises(InvalidCursorError):
            deliveries_page(
                session, tenant=tenant, endpoint_id=endpoint, state=None, cursor="bad",
                limit=2,
            )  # fmt: skip
    assert len(seen) == 6 and [a.at for a in seen] == sorted((a.at for a in seen), reverse=True)
    assert {(a.outcome, a.attempt) for a in failed} == {("network_error", 1)} and len(failed) == 3
    assert nobody == []
    assert len(done) == 2 and more is not None and len(rest) == 1 and end is None
    assert {d.event_type for d in done + rest} == {"job.failed"}
    assert all(d.next_attempt_at is None for d in done)


def test_retention_deletes_old_events_whose_deliveries_ended(
    sessions: sessionmaker[Session], tenant: str
) -> None:
    endpoint = make_endpoint(sessions, tenant)
    done, waiting, recent = make_events(sessions, tenant, 3)
    fan_out_all(sessions)
    by_event = {d.event_id: d.id for d in deliveries(sessions, endpoint)}
    attempt(sessions, by_event[done], OK)
    old = utcnow() - timedelta(days=40)
    with sessions.begin() as session:
        session.execute(
            update(WEBHOOK_EVENTS).where(WEBHOOK_EVENTS.c.id.in_([done, waiting]))
            .values(occurred_at=old)
        )  # fmt: skip
    assert delete_old_events(sessions, retention_days=30, dry_run=True) >= 1
    assert delete_old_events(sessions, retention_days=30) >= 1
    with sessions() as session:
        left = set(
            session.scalars(select(WEBHOOK_EVENTS.c.id).where(WEBHOOK_EVENTS.c.tenant == tenant))
        )
        attempts = session.scalar(select(func.count()).where(WEBHOOK_ATTEMPTS.c.event_id == done))
    assert left == {waiting, recent}
    assert attempts == 0  # cascaded with the delivery
    assert sorted(d.event_id for d in deliveries(sessions, endpoint)) == sorted(left)
