"""Webhook deliveries (models/webhook_deliveries.py) on SQLite and PostgreSQL: fan-out taken
once, claims, attempts recorded under their claim, due with the in-flight cap and one probe
while failing, the recovery flush, the window, 410 and the disable rule.

Every test works with a tenant of its own: the database is shared by the whole module.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from tests.integration.webhook_rows import (
    DOWN,
    GONE,
    OK,
    attempt,
    claim,
    deliveries,
    fan_out_all,
    make_endpoint,
    make_events,
    pending,
    record,
    run_together,
    tenant,
)
from visionq.models.tables import WEBHOOK_ATTEMPTS, WEBHOOK_DELIVERIES, utcnow
from visionq.models.webhook_deliveries import (
    AttemptResult,
    DeliveryState,
    claim_delivery,
    due_deliveries,
    freeze_payload,
    load_claimed,
    reclaim_expired,
    replay,
)
from visionq.models.webhook_endpoints import callbacks_endpoint, get_endpoint, update_endpoint

pytestmark = pytest.mark.integration
__all__ = ["tenant"]  # the fixture


def test_fan_out_is_taken_once_by_racing_relays(
    sessions: sessionmaker[Session], tenant: str
) -> None:
    enabled = make_endpoint(sessions, tenant)
    disabled = make_endpoint(sessions, tenant)
    other_type = make_endpoint(sessions, tenant, events=("job.succeeded",))
    with sessions.begin() as session:
        update_endpoint(session, tenant, disabled, enabled=False)
    events = make_events(sessions, tenant, 30)
    callback = make_events(sessions, tenant, 1, callback_url="https://example.com/cb")
    counts: list[int] = []
    run_together(*[lambda: counts.append(fan_out_all(sessions))] * 2)
    assert sum(counts) >= len(events) + 1  # other tests' events may be fanned out too
    ours = events + callback
    by_endpoint = {e: deliveries(sessions, e) for e in (enabled, disabled, other_type)}
    assert sorted(d.event_id for d in by_endpoint[enabled]) == sorted(ours)
    assert {d.state for d in by_endpoint[enabled]} == {"pending"}
    assert {d.state for d in by_endpoint[disabled]} == {"skipped"}
    assert len(by_endpoint[disabled]) == len(ours)
    assert by_endpoint[other_type] == []
    with sessions.begin() as session:
        callbacks = callbacks_endpoint(session, tenant)
    to_callback = deliveries(sessions, callbacks.id)
    assert [(d.event_id, d.url) for d in to_callback] == [(callback[0], "https://example.com/cb")]


def test_a_delivery_is_claimed_once_and_recorded_under_its_claim(
    sessions: sessionmaker[Session], tenant: str
) -> None:
    endpoint, (delivery,) = pending(sessions, tenant, 1)
    job, token = claim(sessions, delivery)
    with sessions.begin() as session:
        assert not claim_delivery(session, delivery, token="x" * 32, expires_at=utcnow())
        assert load_claimed(session, delivery, "stale") is None
    assert (job.tenant, job.event_type, job.url, job.attempts) == (
        tenant, "job.failed", "https://example.com/hook", 0,
    )  # fmt: skip
    assert record(sessions, job, "stale", OK) is None  # not the sender's claim: nothing
    assert record(sessions, job, token, DOWN) == DeliveryState.PENDING
    assert record(sessions, job, token, OK) is None  # recorded already
    (after,) = deliveries(sessions, endpoint)
    assert (after.state, after.attempts, after.claim, after.last_error) == (
        "pending", 1, None, "network error: connection refused",
    )  # fmt: skip
    with sessions.begin() as session:
        endpoint_row = get_endpoint(session, tenant, endpoint)
        payload = freeze_payload(session, job.event_id, {"type": "job.failed", "n": 1})
        assert freeze_payload(session, job.event_id, {"type": "other"}) == payload
    # One failed attempt is not yet a failing endpoint (FAILING_AFTER in a row is).
    assert endpoint_row is not None and endpoint_row.failing_since is None
    assert endpoint_row.consecutive_failures == 1


def test_due_respects_in_flight_and_one_probe_while_failing(
    sessions: sessionmaker[Session], tenant: str
) -> None:
    _, ids = pending(sessions, tenant, 6)

    def due(max_in_flight: int) -> list[int]:
        with sessions() as session:
            found = due_deliveries(session, now=utcnow(), max_in_flight=max_in_flight, limit=1000)
        return [i for i in found if i in ids]

    assert due(4) == ids[:4]
    job, token = claim(sessions, ids[0])
    assert due(4) == ids[1:4]  # one sending: room for 3
    record(sessions, job, token, DOWN, retry_in_s=0)  # one failure: not failing yet
    assert len(due(4)) == 4
    attempt(sessions, ids[0], DOWN, retry_in_s=0)  # two in a row: one probe at a time
    assert len(due(4)) == 1
    with sessions.begin() as session:  # the claim of a dead sender expires
        session.execute(
            update(WEBHOOK_DELIVERIES).where(WEBHOOK_DELIVERIES.c.id == ids[1])
            .values(state="sending", claim="dead", claim_expires_at=utcnow() - timedelta(1))
        )  # fmt: skip
    assert due(4) == []  # the one probe is out
    with sessions.begin() as session:
        assert len(reclaim_expired(session, now=utcnow(), window_s=86400)) >= 1
    assert len(due(4)) == 1


def test_success_after_failures_flushes_the_backlog(
    sessions: sessionmaker[Session], tenant: str
) -> None:
    endpoint, (first, *rest) = pending(sessions, tenant, 3)
    with sessions.begin() as session:  # the backlog waits hours for its next step
        session.execute(
            update(WEBHOOK_DELIVERIES).where(WEBHOOK_DELIVERIES.c.id.in_(rest))
            .values(next_attempt_at=utcnow() + timedelta(hours=5))
        )  # fmt: skip
    for _ in range(2):  # two failures in a row: the endpoint is failing
        attempt(sessions, first, DOWN, retry_in_s=0)
    assert attempt(sessions, first, OK) == DeliveryState.SUCCEEDED
    rows = {d.id: d for d in deliveries(sessions, endpoint)}
    assert rows[first].state == "succeeded" and rows[first].succeeded_at is not None
    assert all(rows[i].next_attempt_at <= utcnow() for i in rest)
    with sessions() as session:
        row = get_endpoint(session, tenant, endpoint)
        attempts = session.execute(
            select(WEBHOOK_ATTEMPTS.c.attempt, WEBHOOK_ATTEMPTS.c.outcome)
            .where(WEBHOOK_ATTEMPTS.c.delivery_id == first)
            .order_by(WEBHOOK_ATTEMPTS.c.id)
        ).all()
    assert row is not None and (row.failing_since, row.consecutive_failures) == (None, 0)
    assert [tuple(a) for a in attempts] == [
        (1, "network_error"), (2, "network_error"), (3, "succeeded"),
    ]  # fmt: skip


def test_past_the_window_a_delivery_fails(sessions: sessionmaker[Session], tenant: str) -> None:
    _, (delivery,) = pending(sessions, tenant, 1)
    assert attempt(sessions, delivery, DOWN, retry_in_s=None) == DeliveryState.FAILED


def test_410_disables_the_endpoint_and_skips_its_backlog(
    sessions: sessionmaker[Session], tenant: str
) -> None:
    endpoint, (first, *rest) = pending(sessions, tenant, 3)
    assert attempt(sessions, first, GONE) == DeliveryState.FAILED
    states = {d.id: d.state for d in deliveries(sessions, endpoint)}
    assert [states[i] for i in rest] == ["skipped", "skipped"]
    with sessions.begin() as session:
        row = get_endpoint(session, tenant, endpoint)
        assert row is not None and not row.enabled
        assert row.disabled_reason is not None and "410 Gone" in row.disabled_reason
        enabled = update_endpoint(session, tenant, endpoint, enabled=True)
        assert enabled is not None and enabled.enabled and enabled.disabled_reason is None
        replayed, more = replay(session, tenant=tenant, endpoint_id=endpoint, limit=1)
        assert (replayed, more) == (1, True)
        replayed, more = replay(session, tenant=tenant, endpoint_id=endpoint, limit=10)
        assert (replayed, more) == (2, False)
    after = deliveries(sessions, endpoint)
    assert {d.state for d in after} == {"pending"}
    assert {d.replays for d in after} == {1} and {d.attempts for d in after} == {0}


def test_the_disable_rule_needs_time_and_failures(
    sessions: sessionmaker[Session], tenant: str
) -> None:
    endpoint, (first, second) = pending(sessions, tenant, 2)
    rule = {"disable_after_s": 0, "min_failures": 2}
    assert attempt(sessions, first, DOWN, **rule) == DeliveryState.PENDING  # 1 failure
    http = AttemptResult("http_error", 503, 7, "busy")
    assert attempt(sessions, first, http, **rule) == DeliveryState.SKIPPED
    with sessions() as session:
        row = get_endpoint(session, tenant, endpoint)
    assert row is not None and not row.enabled and row.disabled_reason is not None
    assert "(2 attempts; last: HTTP 503)" in row.disabled_reason
    states = {d.id: d.state for d in deliveries(sessions, endpoint)}
    assert states == {first: "skipped", second: "skipped"}


def test_the_callbacks_endpoint_is_never_disabled(
    sessions: sessionmaker[Session], tenant: str
) -> None:
    make_events(sessions, tenant, 1, callback_url="https://example.com/cb")
    fan_out_all(sessions)
    with sessions.begin() as session:
        callbacks = callbacks_endpoint(session, tenant).id
    (delivery,) = deliveries(sessions, callbacks)
    attempt(sessions, delivery.id, DOWN, disable_after_s=0, min_failures=1)
    assert attempt(sessions, delivery.id, GONE) == DeliveryState.FAILED
    with sessions() as session:
        row = get_endpoint(session, tenant, callbacks)
    assert row is not None and row.enabled and row.failing_since is None
