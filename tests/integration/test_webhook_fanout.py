"""Fan-out (models/webhook_fanout.py) on SQLite and PostgreSQL: one event that cannot be fanned
out, or a delivery that exists already, holds up no other event; a replay of an event the
relay has not fanned out yet leaves it to the fan-out; retention keeps events not fanned out.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from tests.integration.webhook_rows import deliveries, make_endpoint, make_events, tenant
from visionq.models.retention import delete_old_events
from visionq.models.tables import WEBHOOK_DELIVERIES, WEBHOOK_EVENTS, utcnow
from visionq.models.webhook_deliveries import fan_out, replay

pytestmark = pytest.mark.integration
__all__ = ["tenant"]  # the fixture


def _fanned_out_at(sessions: sessionmaker[Session], event_id: str) -> object:
    with sessions() as session:
        return session.scalar(
            select(WEBHOOK_EVENTS.c.fanned_out_at).where(WEBHOOK_EVENTS.c.id == event_id)
        )


def test_an_event_of_an_unknown_type_holds_up_no_other(
    sessions: sessionmaker[Session], tenant: str
) -> None:
    endpoint = make_endpoint(sessions, tenant)
    poison = f"msg_{uuid.uuid4().hex}"
    now = utcnow()
    with sessions.begin() as session:
        # Written by a newer version (a type this one does not know), and the oldest.
        session.execute(
            insert(WEBHOOK_EVENTS).values(
                id=poison, tenant=tenant, type="job.exploded", subject_id="j",
                occurred_at=now.replace(year=now.year - 1),
            )
        )  # fmt: skip
    (event,) = make_events(sessions, tenant, 1)
    with sessions.begin() as session:
        done = fan_out(session, now=utcnow(), limit=10_000)
    assert poison in done.unfannable and done.by_type["job.failed"] >= 1
    assert [(d.event_id, d.state) for d in deliveries(sessions, endpoint)] == [(event, "pending")]
    assert _fanned_out_at(sessions, poison) is not None  # never taken again
    with sessions.begin() as session:
        assert poison not in fan_out(session, now=utcnow(), limit=10_000).unfannable


def test_a_delivery_that_exists_already_is_kept_and_the_page_goes_on(
    sessions: sessionmaker[Session], tenant: str
) -> None:
    endpoint = make_endpoint(sessions, tenant)
    first, second = make_events(sessions, tenant, 2)
    now = utcnow()
    with sessions.begin() as session:
        # Made before the fan-out (a replay of an older version did that): the unique key
        # (event_id, endpoint_id) would refuse the fan-out's insert and roll back the page.
        session.execute(
            insert(WEBHOOK_DELIVERIES).values(
                event_id=first, endpoint_id=endpoint, url="https://example.com/hook",
                state="succeeded", attempts=1, replays=1, next_attempt_at=now,
                window_started_at=now, created_at=now, updated_at=now,
            )
        )  # fmt: skip
    with sessions.begin() as session:
        done = fan_out(session, now=utcnow(), limit=10_000)
    assert first not in done.unfannable and second not in done.unfannable
    got = {d.event_id: d.state for d in deliveries(sessions, endpoint)}
    assert got == {first: "succeeded", second: "pending"}
    assert _fanned_out_at(sessions, first) is not None
    assert _fanned_out_at(sessions, second) is not None


def test_a_replay_before_the_fan_out_leaves_the_delivery_to_it(
    sessions: sessionmaker[Session], tenant: str
) -> None:
    endpoint = make_endpoint(sessions, tenant)
    (event,) = make_events(sessions, tenant, 1)
    with sessions.begin() as session:
        assert replay(session, tenant=tenant, endpoint_id=endpoint, event_id=event, limit=9) == (
            0, False,
        )  # fmt: skip
    assert deliveries(sessions, endpoint) == []
    with sessions.begin() as session:
        assert event not in fan_out(session, now=utcnow(), limit=10_000).unfannable
    assert [(d.event_id, d.state) for d in deliveries(sessions, endpoint)] == [(event, "pending")]


def test_retention_keeps_old_events_not_fanned_out_yet(
    sessions: sessionmaker[Session], tenant: str
) -> None:
    # Workers stopped (or VISIONQ_WEBHOOKS_ENABLED=false) longer than the retention: the
    # event has no delivery yet, it is not "done".
    endpoint = make_endpoint(sessions, tenant)
    old = utcnow() - timedelta(days=40)
    event = f"msg_{uuid.uuid4().hex}"
    with sessions.begin() as session:
        session.execute(
            insert(WEBHOOK_EVENTS).values(
                id=event, tenant=tenant, type="job.failed", subject_id="j", occurred_at=old
            )
        )
    delete_old_events(sessions, retention_days=30)
    with sessions() as session:
        kept = session.scalar(select(WEBHOOK_EVENTS.c.id).where(WEBHOOK_EVENTS.c.id == event))
    assert kept == event  # still there, still to fan out
    with sessions.begin() as session:
        fan_out(session, now=utcnow(), limit=10_000)
    assert [(d.event_id, d.state) for d in deliveries(sessions, endpoint)] == [(event, "pending")]
