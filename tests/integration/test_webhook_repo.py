"""The webhook repositories on SQLite and PostgreSQL: endpoints and secrets
(models/webhook_endpoints.py), deliveries (models/webhook_deliveries.py: fan-out, claims,
attempts, the disable rule, the recovery flush), the log and replays, retention.

Every test works with a tenant of its own: the database is shared by the whole module.
"""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from visionq.cli.cost import budgets_app
from visionq.models.budgets import DEFAULT_ALERT_RATIOS
from visionq.models.jobs import InvalidCursorError
from visionq.models.retention import delete_old_events
from visionq.models.tables import (
    BUDGETS,
    WEBHOOK_ATTEMPTS,
    WEBHOOK_DELIVERIES,
    WEBHOOK_EVENTS,
    utcnow,
)
from visionq.models.webhook_deliveries import (
    AttemptResult,
    DeliveryJob,
    DeliveryState,
    EventNotFound,
    attempts_page,
    claim_delivery,
    deliveries_page,
    due_deliveries,
    fan_out,
    freeze_payload,
    load_claimed,
    reclaim_expired,
    record_attempt,
    replay,
)
from visionq.models.webhook_endpoints import (
    EndpointLimit,
    callbacks_endpoint,
    create_endpoint,
    current_secret,
    delete_endpoint,
    get_endpoint,
    list_endpoints,
    live_secrets,
    new_secret,
    rotate_secret,
    update_endpoint,
)
from visionq.models.webhook_outbox import EventType, NewEvent, record_event

pytestmark = pytest.mark.integration

JOB_EVENTS = ("job.succeeded", "job.failed", "job.cancelled")
OK = AttemptResult("succeeded", 204, 12, None)
DOWN = AttemptResult("network_error", None, 3, "connection refused")


@pytest.fixture
def tenant() -> str:
    return f"repo-{uuid.uuid4().hex[:12]}"


def _endpoint(sessions: sessionmaker[Session], tenant: str, **changes: Any) -> str:
    args: dict[str, Any] = {
        "url": "https://example.com/hook",
        "events": JOB_EVENTS,
        "description": None,
        "include_result": True,
        "max_endpoints": 20,
    }
    with sessions.begin() as session:
        row, secret = create_endpoint(session, tenant=tenant, **(args | changes))
    assert secret.startswith("whsec_")
    return row.id


def _events(sessions: sessionmaker[Session], tenant: str, count: int, **kw: Any) -> list[str]:
    with sessions.begin() as session:
        ids = [
            record_event(session, NewEvent(tenant, EventType.JOB_FAILED, str(uuid.uuid4()), **kw))
            for _ in range(count)
        ]
    assert all(ids)
    return [i for i in ids if i]


def _fan_out(sessions: sessionmaker[Session]) -> int:
    with sessions.begin() as session:
        return fan_out(session, now=utcnow(), limit=10_000).events


def _deliveries(sessions: sessionmaker[Session], endpoint_id: str) -> list[Any]:
    with sessions() as session:
        return list(
            session.execute(
                select(WEBHOOK_DELIVERIES)
                .where(WEBHOOK_DELIVERIES.c.endpoint_id == endpoint_id)
                .order_by(WEBHOOK_DELIVERIES.c.id)
            )
        )


def _claim(sessions: sessionmaker[Session], delivery_id: int) -> tuple[DeliveryJob, str]:
    token = uuid.uuid4().hex
    with sessions.begin() as session:
        assert claim_delivery(
            session, delivery_id, token=token, expires_at=utcnow() + timedelta(seconds=60)
        )
    with sessions() as session:
        job = load_claimed(session, delivery_id, token)
    assert job is not None
    return job, token


def _record(
    sessions: sessionmaker[Session],
    job: DeliveryJob,
    token: str,
    result: AttemptResult,
    *,
    retry_in_s: float | None = 60,
    disable_after_s: float = 86400,
    min_failures: int = 10,
) -> DeliveryState | None:
    now = utcnow()
    with sessions.begin() as session:
        return record_attempt(
            session, job, token, result,
            next_attempt_at=None if retry_in_s is None else now + timedelta(seconds=retry_in_s),
            now=now, disable_after_s=disable_after_s, disable_min_failures=min_failures,
        )  # fmt: skip


def test_endpoints_crud_limit_and_tenancy(sessions: sessionmaker[Session], tenant: str) -> None:
    first = _endpoint(sessions, tenant, description="ops")
    second = _endpoint(sessions, tenant, events=("batch.completed",), include_result=False)
    with sessions.begin() as session, pytest.raises(EndpointLimit):
        create_endpoint(
            session, tenant=tenant, url="https://example.com/3", events=JOB_EVENTS,
            description=None, include_result=True, max_endpoints=2,
        )  # fmt: skip
    with sessions.begin() as session, pytest.raises(ValueError, match="unknown event type"):
        create_endpoint(
            session, tenant=tenant, url="https://example.com/3", events=["job.done"],
            description=None, include_result=True, max_endpoints=20,
        )  # fmt: skip
    with sessions.begin() as session:
        callbacks = callbacks_endpoint(session, tenant)
        assert callbacks_endpoint(session, tenant).id == callbacks.id
        assert (callbacks.kind, callbacks.url) == ("callbacks", None)
        assert [row.id for row in list_endpoints(session, tenant)] == [first, second]
        assert get_endpoint(session, "someone-else", first) is None
        assert get_endpoint(session, tenant, callbacks.id) is not None
        row = get_endpoint(session, tenant, first)
        assert row is not None
        assert (row.description, row.events, row.enabled) == ("ops", JOB_EVENTS, True)
        changed = update_endpoint(
            session, tenant, second, events=["budget.threshold"], url="https://example.com/b"
        )
        assert changed is not None
        assert (changed.events, changed.url, changed.include_result) == (
            ("budget.threshold",), "https://example.com/b", False,
        )  # fmt: skip
        assert update_endpoint(session, "someone-else", second, enabled=False) is None
        assert not delete_endpoint(session, "someone-else", second)
        assert delete_endpoint(session, tenant, second)
        assert [row.id for row in list_endpoints(session, tenant)] == [first]


def test_rotation_keeps_the_previous_secret_for_the_grace(
    sessions: sessionmaker[Session], tenant: str
) -> None:
    endpoint = _endpoint(sessions, tenant)
    with sessions.begin() as session:
        old = current_secret(session, endpoint)
        new, expires = rotate_secret(session, endpoint, grace_s=3600)
    assert new != old and new.startswith("whsec_") and len(new_secret()) == len(new)
    assert expires is not None and expires > utcnow() + timedelta(minutes=59)
    with sessions.begin() as session:
        assert current_secret(session, endpoint) == new
        assert live_secrets(session, endpoint, utcnow()) == [new, old]
        assert live_secrets(session, endpoint, utcnow() + timedelta(hours=2)) == [new]
        newest, _ = rotate_secret(session, endpoint, grace_s=0)
        assert live_secrets(session, endpoint, utcnow() + timedelta(seconds=1)) == [newest, old]


def test_fan_out_is_taken_once_by_racing_relays(
    sessions: sessionmaker[Session], tenant: str
) -> None:
    enabled = _endpoint(sessions, tenant)
    disabled = _endpoint(sessions, tenant)
    other_type = _endpoint(sessions, tenant, events=("job.succeeded",))
    with sessions.begin() as session:
        update_endpoint(session, tenant, disabled, enabled=False)
    events = _events(sessions, tenant, 30)
    callback = _events(sessions, tenant, 1, callback_url="https://example.com/cb")
    barrier = threading.Barrier(2)
    counts: list[int] = []

    def relay() -> None:
        barrier.wait()
        counts.append(_fan_out(sessions))

    threads = [threading.Thread(target=relay) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(counts) >= len(events) + 1  # other tests' events may be fanned out too
    ours = events + callback
    by_endpoint = {e: _deliveries(sessions, e) for e in (enabled, disabled, other_type)}
    assert sorted(d.event_id for d in by_endpoint[enabled]) == sorted(ours)
    assert {d.state for d in by_endpoint[enabled]} == {"pending"}
    assert {d.state for d in by_endpoint[disabled]} == {"skipped"}
    assert len(by_endpoint[disabled]) == len(ours)
    assert by_endpoint[other_type] == []
    with sessions.begin() as session:
        callbacks = callbacks_endpoint(session, tenant)
    to_callback = _deliveries(sessions, callbacks.id)
    assert [(d.event_id, d.url) for d in to_callback] == [(callback[0], "https://example.com/cb")]


def test_a_delivery_is_claimed_once_and_recorded_under_its_claim(
    sessions: sessionmaker[Session], tenant: str
) -> None:
    endpoint = _endpoint(sessions, tenant)
    _events(sessions, tenant, 1)
    _fan_out(sessions)
    (delivery,) = _deliveries(sessions, endpoint)
    job, token = _claim(sessions, delivery.id)
    with sessions.begin() as session:
        assert not claim_delivery(session, delivery.id, token="x" * 32, expires_at=utcnow())
        assert load_claimed(session, delivery.id, "stale") is None
    assert (job.tenant, job.event_type, job.url, job.attempts) == (
        tenant, "job.failed", "https://example.com/hook", 0,
    )  # fmt: skip
    assert _record(sessions, job, "stale", OK) is None  # not the sender's claim: nothing
    assert _record(sessions, job, token, DOWN) == DeliveryState.PENDING
    assert _record(sessions, job, token, OK) is None  # recorded already
    (after,) = _deliveries(sessions, endpoint)
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
    endpoint = _endpoint(sessions, tenant)
    _events(sessions, tenant, 6)
    _fan_out(sessions)
    ids = [d.id for d in _deliveries(sessions, endpoint)]

    def due(max_in_flight: int) -> list[int]:
        with sessions() as session:
            found = due_deliveries(session, now=utcnow(), max_in_flight=max_in_flight, limit=1000)
        return [i for i in found if i in ids]

    assert due(4) == ids[:4]
    job, token = _claim(sessions, ids[0])
    assert due(4) == ids[1:4]  # one sending: room for 3
    _record(sessions, job, token, DOWN, retry_in_s=0)  # one failure: not failing yet
    assert len(due(4)) == 4
    job, token = _claim(sessions, ids[0])
    _record(sessions, job, token, DOWN, retry_in_s=0)  # two in a row: one probe at a time
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
    endpoint = _endpoint(sessions, tenant)
    _events(sessions, tenant, 3)
    _fan_out(sessions)
    first, *rest = (d.id for d in _deliveries(sessions, endpoint))
    with sessions.begin() as session:  # the backlog waits hours for its next step
        session.execute(
            update(WEBHOOK_DELIVERIES).where(WEBHOOK_DELIVERIES.c.id.in_(rest))
            .values(next_attempt_at=utcnow() + timedelta(hours=5))
        )  # fmt: skip
    for _ in range(2):  # two failures in a row: the endpoint is failing
        job, token = _claim(sessions, first)
        _record(sessions, job, token, DOWN, retry_in_s=0)
    job, token = _claim(sessions, first)
    assert _record(sessions, job, token, OK) == DeliveryState.SUCCEEDED
    rows = {d.id: d for d in _deliveries(sessions, endpoint)}
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
    endpoint = _endpoint(sessions, tenant)
    _events(sessions, tenant, 1)
    _fan_out(sessions)
    (delivery,) = _deliveries(sessions, endpoint)
    job, token = _claim(sessions, delivery.id)
    assert _record(sessions, job, token, DOWN, retry_in_s=None) == DeliveryState.FAILED


def test_410_disables_the_endpoint_and_skips_its_backlog(
    sessions: sessionmaker[Session], tenant: str
) -> None:
    endpoint = _endpoint(sessions, tenant)
    _events(sessions, tenant, 3)
    _fan_out(sessions)
    first, *rest = (d.id for d in _deliveries(sessions, endpoint))
    job, token = _claim(sessions, first)
    gone = AttemptResult("gone", 410, 5, None)
    assert _record(sessions, job, token, gone) == DeliveryState.FAILED
    states = {d.id: d.state for d in _deliveries(sessions, endpoint)}
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
    after = _deliveries(sessions, endpoint)
    assert {d.state for d in after} == {"pending"}
    assert {d.replays for d in after} == {1} and {d.attempts for d in after} == {0}


def test_the_disable_rule_needs_time_and_failures(
    sessions: sessionmaker[Session], tenant: str
) -> None:
    endpoint = _endpoint(sessions, tenant)
    _events(sessions, tenant, 2)
    _fan_out(sessions)
    first, second = (d.id for d in _deliveries(sessions, endpoint))
    rule = {"disable_after_s": 0, "min_failures": 2}
    job, token = _claim(sessions, first)
    assert _record(sessions, job, token, DOWN, **rule) == DeliveryState.PENDING  # 1 failure
    job, token = _claim(sessions, first)
    http = AttemptResult("http_error", 503, 7, "busy")
    assert _record(sessions, job, token, http, **rule) == DeliveryState.SKIPPED
    with sessions() as session:
        row = get_endpoint(session, tenant, endpoint)
    assert row is not None and not row.enabled and row.disabled_reason is not None
    assert "(2 attempts; last: HTTP 503)" in row.disabled_reason
    states = {d.id: d.state for d in _deliveries(sessions, endpoint)}
    assert states == {first: "skipped", second: "skipped"}


def test_the_callbacks_endpoint_is_never_disabled(
    sessions: sessionmaker[Session], tenant: str
) -> None:
    _events(sessions, tenant, 1, callback_url="https://example.com/cb")
    _fan_out(sessions)
    with sessions.begin() as session:
        callbacks = callbacks_endpoint(session, tenant).id
    (delivery,) = _deliveries(sessions, callbacks)
    job, token = _claim(sessions, delivery.id)
    _record(sessions, job, token, DOWN, disable_after_s=0, min_failures=1)
    job, token = _claim(sessions, delivery.id)
    gone = AttemptResult("gone", 410, 5, None)
    assert _record(sessions, job, token, gone) == DeliveryState.FAILED
    with sessions() as session:
        row = get_endpoint(session, tenant, callbacks)
    assert row is not None and row.enabled and row.failing_since is None


def test_replay_one_event_also_to_an_endpoint_made_later(
    sessions: sessionmaker[Session], tenant: str
) -> None:
    first = _endpoint(sessions, tenant)
    (event,) = _events(sessions, tenant, 1)
    _fan_out(sessions)
    later = _endpoint(sessions, tenant)
    only_batches = _endpoint(sessions, tenant, events=("batch.completed",))
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
    assert [(d.event_id, d.state) for d in _deliveries(sessions, later)] == [(event, "pending")]


def test_log_pages_walk_newest_first(sessions: sessionmaker[Session], tenant: str) -> None:
    endpoint = _endpoint(sessions, tenant)
    _events(sessions, tenant, 3)
    _fan_out(sessions)
    for delivery in _deliveries(sessions, endpoint):
        job, token = _claim(sessions, delivery.id)
        _record(sessions, job, token, DOWN, retry_in_s=0)
        job, token = _claim(sessions, delivery.id)
        _record(sessions, job, token, OK)
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
    endpoint = _endpoint(sessions, tenant)
    done, waiting, recent = _events(sessions, tenant, 3)
    _fan_out(sessions)
    by_event = {d.event_id: d.id for d in _deliveries(sessions, endpoint)}
    job, token = _claim(sessions, by_event[done])
    _record(sessions, job, token, OK)
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
    assert sorted(d.event_id for d in _deliveries(sessions, endpoint)) == sorted(left)


def test_budgets_set_alert_at(
    sessions: sessionmaker[Session], database_url: str, tenant: str
) -> None:
    runner = CliRunner()
    env = {"VISIONQ_DATABASE_URL": database_url, "COLUMNS": "100"}
    args = ["set", tenant, "--daily", "1", "--alert-at", "0.9", "--alert-at", "0.5"]
    result = runner.invoke(budgets_app, args, env=env)
    assert result.exit_code == 0, result.output
    assert "alerts at 0.5, 0.9" in result.output
    bad = runner.invoke(budgets_app, ["set", tenant, "--alert-at", "0"], env=env)
    assert bad.exit_code != 0 and "between 0" in bad.output
    with sessions() as session:
        ratios = session.scalar(select(BUDGETS.c.alert_ratios).where(BUDGETS.c.tenant == tenant))
    assert ratios == [0.5, 0.9] and DEFAULT_ALERT_RATIOS == (0.8, 1.0)
