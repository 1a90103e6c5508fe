"""models/webhook_claims.py with the relay and the sender on a real (SQLite) database: a
message that waited in the queue is sent once (the sender extends its claim when it starts);
a delivery no worker ever sends counts ``lost`` attempts and fails at its window's end; one
that cannot be prepared is an ``internal_error`` attempt; one whose window ended while it
waited is failed unsent; callback URLs are throttled per host; the due scan is bounded and
reaches past a failing endpoint's backlog."""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from tests.unit.webhook_db import (
    TENANT,
    Clock,
    claim_one,
    make_endpoint,
    receiver,
    send_settings,
    succeeded_jobs,
)
from tests.webhookrecv import Receiver
from visionq.models import metrics
from visionq.models.settings import Settings
from visionq.models.table_base import utcnow
from visionq.models.tables import (
    WEBHOOK_ATTEMPTS,
    WEBHOOK_DELIVERIES,
    WEBHOOK_ENDPOINTS,
    WEBHOOK_EVENTS,
)
from visionq.models.webhook_deliveries import (
    AttemptResult,
    claim_delivery,
    due_deliveries,
    fan_out,
    load_claimed,
    reclaim_expired,
    record_attempt,
    start_claimed,
)
from visionq.models.webhook_endpoints import callbacks_endpoint
from visionq.models.webhook_outbox import EventType, NewEvent, record_event
from visionq.worker import webhook_send
from visionq.worker.webhook_relay import CLAIM_MARGIN_S, DISPATCH_CLAIM_S, WebhookRelay
from visionq.worker.webhook_send import deliver

_D = WEBHOOK_DELIVERIES.c
__all__ = ["receiver"]  # the fixture


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return send_settings(tmp_path)


def _log(sessions: sessionmaker[Session]) -> list[tuple[int, str]]:
    with sessions() as session:
        rows = session.execute(
            select(WEBHOOK_ATTEMPTS.c.attempt, WEBHOOK_ATTEMPTS.c.outcome).order_by(
                WEBHOOK_ATTEMPTS.c.id
            )
        )
        return [(attempt, outcome) for attempt, outcome in rows]


def _delivery(sessions: sessionmaker[Session]) -> Any:
    with sessions() as session:
        return session.execute(select(WEBHOOK_DELIVERIES)).one()


def test_a_message_that_waited_in_the_queue_is_sent_once(
    sessions: sessionmaker[Session], settings: Settings, receiver: Receiver
) -> None:
    _, secret = make_endpoint(sessions, receiver.url)
    receiver.secrets = [secret]
    succeeded_jobs(sessions, 1)
    clock = Clock()
    sent: list[tuple[int, str]] = []
    relay = WebhookRelay(sessions, lambda d, c: sent.append((d, c)), settings, clock=clock)
    assert relay.run_once()["dispatched"] == 1
    # Every worker slot busy with jobs: the message waits longer than an attempt's deadline.
    clock.now += timedelta(seconds=settings.webhook_timeout_s + CLAIM_MARGIN_S + 60)
    report = relay.run_once()
    assert (report["reclaimed"], report["dispatched"]) == (0, 0)
    ((delivery_id, claim),) = sent
    assert deliver(sessions, settings, delivery_id, claim, clock=clock) == "succeeded"
    assert len(receiver.snapshot()) == 1 and _log(sessions) == [(1, "succeeded")]


def test_a_started_sender_keeps_its_claim_past_the_dispatch_claim(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    make_endpoint(sessions, "https://hooks.example/in")
    succeeded_jobs(sessions, 1)
    now = utcnow()
    delivery_id = claim_one(sessions, "c1", now=now, expires_in_s=300)
    started = now + timedelta(seconds=299)
    with sessions.begin() as session:
        job = start_claimed(session, delivery_id, "c1", expires_at=started + timedelta(seconds=45))
        assert job is not None and job.due_at is not None
        # Sending (say a slow receiver): the dispatch claim's end does not take it away.
        assert reclaim_expired(session, now=now + timedelta(seconds=310), window_s=3600) == []
        assert start_claimed(session, delivery_id, "other", expires_at=started) is None
    with sessions.begin() as session:  # the sender died: given back after its own deadline
        (lost,) = reclaim_expired(session, now=started + timedelta(seconds=46), window_s=3600)
    assert (lost.tenant, lost.event_type, lost.failed) == (TENANT, "job.succeeded", False)
    assert _delivery(sessions).state == "pending"


def test_a_delivery_no_worker_sends_fails_at_its_window_end(
    sessions: sessionmaker[Session], settings: Settings, receiver: Receiver
) -> None:
    settings = settings.model_copy(update={"webhook_retry_window_s": 900})
    make_endpoint(sessions, receiver.url)
    succeeded_jobs(sessions, 1)
    clock = Clock()
    sent: list[tuple[int, str]] = []  # no worker consumes visionq.webhooks: never delivered
    relay = WebhookRelay(sessions, lambda d, c: sent.append((d, c)), settings, clock=clock)
    counted = metrics.WEBHOOK_DELIVERIES.labels(TENANT, "job.succeeded", "lost")._value.get()
    for _ in range(5):
        relay.run_once()
        clock.now += timedelta(seconds=DISPATCH_CLAIM_S + 1)
    # Sent at 0, 301 and 602 s; at 903 s the window (900 s) is over: failed, not sent again.
    delivery = _delivery(sessions)
    assert (delivery.state, delivery.attempts, len(sent)) == ("failed", 3, 3)
    assert "visionq.webhooks" in delivery.last_error
    assert "past the retry window" in delivery.last_error
    assert _log(sessions) == [(1, "lost"), (2, "lost"), (3, "lost")]
    lost = metrics.WEBHOOK_DELIVERIES.labels(TENANT, "job.succeeded", "lost")._value.get()
    assert lost == counted + 3
    # The first message, arriving at last, is stale: nothing sent.
    assert deliver(sessions, settings, *sent[0], clock=clock) == "stale"
    assert receiver.snapshot() == []


def test_a_delivery_that_cannot_be_prepared_is_an_internal_error_attempt(
    sessions: sessionmaker[Session],
    settings: Settings,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    endpoint_id, _ = make_endpoint(sessions, receiver.url)
    succeeded_jobs(sessions, 1)

    def broken(*args: object, **kwargs: object) -> dict[str, Any]:
        raise ValueError("a result this version cannot read")

    monkeypatch.setattr(webhook_send, "build_payload", broken)
    now = utcnow()
    delivery_id = claim_one(sessions, "c1", now=now, expires_in_s=60)
    assert deliver(sessions, settings, delivery_id, "c1") == "pending"
    assert receiver.snapshot() == [] and _log(sessions) == [(1, "internal_error")]
    delivery = _delivery(sessions)
    assert delivery.next_attempt_at > now and "could not prepare" in delivery.last_error
    with sessions() as session:  # not the receiver's fault: the endpoint's health untouched
        health = session.execute(
            select(WEBHOOK_ENDPOINTS.c.consecutive_failures, WEBHOOK_ENDPOINTS.c.last_error)
            .where(WEBHOOK_ENDPOINTS.c.id == endpoint_id)
        ).one()  # fmt: skip
    assert tuple(health) == (0, None)


def test_a_delivery_whose_window_ended_while_it_waited_is_failed_unsent(
    sessions: sessionmaker[Session], settings: Settings, receiver: Receiver
) -> None:
    settings = settings.model_copy(update={"webhook_retry_window_s": 600})
    make_endpoint(sessions, receiver.url)
    succeeded_jobs(sessions, 2)
    start = utcnow()
    with sessions.begin() as session:
        fan_out(session, now=start)
        first, last = due_deliveries(session, now=start, max_in_flight=8, limit=10)
        # The second one's last scheduled try is at the window's end (next_time's edge).
        session.execute(
            update(WEBHOOK_DELIVERIES).where(_D.id == last)
            .values(next_attempt_at=start + timedelta(seconds=600))
        )  # fmt: skip
    clock = Clock()
    clock.now = start + timedelta(seconds=605)  # both waited (behind a failing endpoint)
    for delivery_id in (first, last):
        with sessions.begin() as session:
            assert claim_delivery(
                session, delivery_id, token=f"c{delivery_id}",
                expires_at=clock.now + timedelta(seconds=60),
            )  # fmt: skip
    assert deliver(sessions, settings, first, f"c{first}", clock=clock) == "failed"
    assert deliver(sessions, settings, last, f"c{last}", clock=clock) == "succeeded"
    assert len(receiver.snapshot()) == 1
    with sessions() as session:
        error = session.scalar(select(_D.last_error).where(_D.id == first))
    assert error is not None and "retry window" in error


def _callbacks(sessions: sessionmaker[Session], urls: list[str]) -> str:
    with sessions.begin() as session:
        for i, url in enumerate(urls):
            record_event(
                session, NewEvent(TENANT, EventType.JOB_SUCCEEDED, f"job-{i}", callback_url=url)
            )
        fan_out(session, now=utcnow(), limit=10_000)
        return callbacks_endpoint(session, TENANT).id


def _hosts(sessions: sessionmaker[Session], ids: list[int]) -> list[str]:
    with sessions() as session:
        urls = session.scalars(select(_D.url).where(_D.id.in_(ids)))
        return sorted(url.split("/")[2] for url in urls)


def test_callback_urls_are_throttled_per_host(sessions: sessionmaker[Session]) -> None:
    # Each job its own callback URL (a query string), on two hosts.
    urls = [f"https://{host}.example/cb?job={i}" for i in range(10) for host in ("a", "b")]
    _callbacks(sessions, urls)

    def due() -> list[int]:
        with sessions() as session:
            return due_deliveries(session, now=utcnow(), max_in_flight=3, limit=100)

    assert _hosts(sessions, due()) == ["a.example"] * 3 + ["b.example"] * 3
    down = AttemptResult("timeout", None, 15000, "no answer within 15 s")
    for _ in range(2):  # host a fails twice in a row: one probe at a time there
        with sessions() as session:
            delivery_id = session.scalar(
                select(_D.id).where(_D.url.like("https://a.%"), _D.state == "pending").limit(1)
            )
        assert delivery_id is not None
        with sessions.begin() as session:
            claim_delivery(session, delivery_id, token="c", expires_at=utcnow())
            job = load_claimed(session, delivery_id, "c")
            assert job is not None
            record_attempt(
                session, job, "c", down, next_attempt_at=utcnow(), now=utcnow(),
                disable_after_s=86400, disable_min_failures=10,
            )  # fmt: skip
    assert _hosts(sessions, due()) == ["a.example"] + ["b.example"] * 3


def test_the_due_scan_is_bounded_and_reaches_past_a_failing_backlog(
    sessions: sessionmaker[Session],
) -> None:
    now = utcnow()
    with sessions.begin() as session:
        endpoints = []
        for name in ("down", "up"):
            endpoint_id = secrets.token_hex(8)
            session.execute(
                insert(WEBHOOK_ENDPOINTS).values(
                    id=endpoint_id, tenant=TENANT, kind="endpoint", url=f"https://{name}.ex/h",
                    events=["job.succeeded"], event_mask=1, created_at=now, updated_at=now,
                    failing_since=now if name == "down" else None,
                )
            )  # fmt: skip
            endpoints.append(endpoint_id)
        down, up = endpoints
        # A failing endpoint's backlog of 1,000 due deliveries, older than the healthy one's.
        for i in range(1001):
            session.execute(_event_row(f"e{i}", now - timedelta(seconds=2000 - i)))
            session.execute(
                insert(WEBHOOK_DELIVERIES).values(
                    event_id=f"e{i}", endpoint_id=down if i < 1000 else up, url="https://x/h",
                    state="pending", attempts=0, replays=0,
                    next_attempt_at=now - timedelta(seconds=2000 - i),
                    window_started_at=now, created_at=now, updated_at=now,
                )
            )  # fmt: skip
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    with sessions() as session:
        engine = session.get_bind()
        event.listen(engine, "before_cursor_execute", seen)
        try:
            picked = due_deliveries(session, now=now, max_in_flight=8, limit=10)
        finally:
            event.remove(engine, "before_cursor_execute", seen)
        rows = session.execute(select(_D.id, _D.endpoint_id).where(_D.id.in_(picked)))
        owners = {row.id: row.endpoint_id for row in rows}
    assert sorted(owners.values()) == sorted([down, up])  # one probe, and the healthy one
    reads = [s for s in statements if "FROM webhook_deliveries" in s and "GROUP BY" in s]
    assert reads == []  # no aggregate over every due row
    scans = [s for s in statements if "FROM webhook_deliveries" in s and "next_attempt_at" in s]
    assert scans and all("LIMIT" in s for s in scans)


def _event_row(event_id: str, at: Any) -> Any:
    """An outbox row (the deliveries' foreign key)."""
    return insert(WEBHOOK_EVENTS).values(
        id=event_id,
        tenant=TENANT,
        type="job.succeeded",
        subject_id=event_id,
        occurred_at=at,
        fanned_out_at=at,
    )
