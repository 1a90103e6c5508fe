"""worker.webhook_send.deliver end to end on a real (SQLite) database and a real receiver
(tests/webhookrecv.py, verifying with the standardwebhooks reference library): signed
deliveries, both signatures during a rotation's grace, retries then the disable rule under a
settable clock, 410, an endpoint disabled after the claim, a stale claim, and a URL refused
by the SSRF check at send time. The stack test is tests/integration/test_webhooks_delivery.py.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
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
from visionq.models.settings import Settings
from visionq.models.table_base import utcnow
from visionq.models.tables import WEBHOOK_ATTEMPTS, WEBHOOK_DELIVERIES
from visionq.models.webhook_deliveries import (
    attempts_page,
    claim_delivery,
    due_deliveries,
    fan_out,
)
from visionq.models.webhook_endpoints import (
    create_endpoint,
    get_endpoint,
    rotate_secret,
    update_endpoint,
)
from visionq.worker.webhook_send import deliver

__all__ = ["receiver"]  # the fixture


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return send_settings(tmp_path, webhook_disable_after_s=60, webhook_disable_min_failures=3)


def _round(
    sessions: sessionmaker[Session], settings: Settings, clock: Clock | None = None
) -> list[str]:
    """One relay step done by hand (fan out, claim what is due) and each claim delivered."""
    now = (clock or utcnow)()
    with sessions.begin() as session:
        fan_out(session, now=now)
        due = due_deliveries(session, now=now, max_in_flight=8, limit=100)
    states = []
    for delivery_id in due:
        claim = secrets.token_hex(16)
        with sessions.begin() as session:
            won = claim_delivery(
                session, delivery_id, token=claim, expires_at=now + timedelta(seconds=60)
            )
        if not won:
            continue  # skipped meanwhile (the endpoint was disabled by the one before)
        states.append(deliver(sessions, settings, delivery_id, claim, clock=clock or utcnow))
    return states


def test_deliveries_are_signed_and_logged(
    sessions: sessionmaker[Session], settings: Settings, receiver: Receiver
) -> None:
    endpoint_id, secret = make_endpoint(sessions, receiver.url)
    receiver.secrets = [secret]
    jobs = succeeded_jobs(sessions, 3)
    assert _round(sessions, settings) == ["succeeded"] * 3
    got = receiver.snapshot()
    assert all(r.verified for r in got) and sorted(r.subject_id for r in got) == sorted(jobs)
    assert {r.type for r in got} == {"job.succeeded"} and len({r.msg_id for r in got}) == 3
    assert got[0].json()["data"]["result"] == {"text": "a cat"}
    assert got[0].headers["user-agent"] == "visionq-webhooks/1"
    with sessions() as session:
        log, _ = attempts_page(
            session, tenant=TENANT, endpoint_id=endpoint_id, outcome=None, since=None,
            cursor=None, limit=10,
        )  # fmt: skip
    assert [(a.attempt, a.outcome, a.status_code) for a in log] == [(1, "succeeded", 204)] * 3
    assert all(a.latency_ms is not None and a.latency_ms >= 0 for a in log)
    assert _round(sessions, settings) == []  # nothing sent twice


def test_both_secrets_sign_during_a_rotation_grace(
    sessions: sessionmaker[Session], settings: Settings, receiver: Receiver
) -> None:
    endpoint_id, old = make_endpoint(sessions, receiver.url)
    with sessions.begin() as session:
        new, expires = rotate_secret(session, endpoint_id, grace_s=3600)
    assert expires is not None
    succeeded_jobs(sessions, 1)
    assert _round(sessions, settings) == ["succeeded"]
    (request,) = receiver.snapshot()
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for only in ([old], [new]):
        receiver.secrets = only
        assert receiver._verify(request.body, request.headers), only
    # After the grace only the new secret signs: a receiver left with the old one fails.
    later = Clock()
    later.now += timedelta(hours=2)
    succeeded_jobs(sessions, 1)
    assert _round(sessions, settings, later) == ["succeeded"]
    last = receiver.snapshot()[-1]
    assert len(last.headers["webhook-signature"].split(" ")) == 1
    receiver.secrets = [old]
    assert not receiver._verify(last.body, last.headers)
    receiver.secrets = [new]
    assert receiver._verify(last.body, last.headers)


def test_a_receiver_failing_for_long_gets_the_endpoint_disabled(
    sessions: sessionmaker[Session], settings: Settings
) -> None:
    clock = Clock()
    with Receiver([], script=lambda n: 500) as failing:
        endpoint_id, _ = make_endpoint(sessions, failing.url)
        succeeded_jobs(sessions, 3)
        # The first round sends all three (not failing yet); from then on one probe at a
        # time, 30 s apart: at 60 s the endpoint has failed for 60 s, 5 attempts in a row.
        seen = []
        for _ in range(6):
            seen.extend(_round(sessions, settings, clock))
            clock.now += timedelta(seconds=30)
        assert seen == ["pending"] * 4 + ["skipped"]
        assert len(failing.snapshot()) == 5
    with sessions() as session:
        endpoint = get_endpoint(session, TENANT, endpoint_id)
        states = list(session.scalars(select(WEBHOOK_DELIVERIES.c.state)))
    assert endpoint is not None and not endpoint.enabled
    assert endpoint.disabled_reason is not None and "5 attempts" in endpoint.disabled_reason
    assert "HTTP 500" in endpoint.disabled_reason and sorted(states) == ["skipped"] * 3


def test_410_disables_the_endpoint(sessions: sessionmaker[Session], settings: Settings) -> None:
    with Receiver([], script=lambda n: 410) as gone:
        endpoint_id, _ = make_endpoint(sessions, gone.url)
        succeeded_jobs(sessions, 2)
        states = _round(sessions, settings)
    assert states[0] == "failed"
    with sessions() as session:
        endpoint = get_endpoint(session, TENANT, endpoint_id)
        left = list(session.scalars(select(WEBHOOK_DELIVERIES.c.state)))
    assert endpoint is not None and not endpoint.enabled
    assert "410" in (endpoint.disabled_reason or "") and sorted(left) == ["failed", "skipped"]


def test_an_endpoint_disabled_after_the_claim_is_not_sent(
    sessions: sessionmaker[Session], settings: Settings, receiver: Receiver
) -> None:
    endpoint_id, _ = make_endpoint(sessions, receiver.url)
    succeeded_jobs(sessions, 1)
    delivery_id = claim_one(sessions, "c1", now=utcnow(), expires_in_s=60)
    with sessions.begin() as session:
        update_endpoint(session, TENANT, endpoint_id, enabled=False)
    assert deliver(sessions, settings, delivery_id, "c1") == "skipped"
    assert receiver.snapshot() == []
    with sessions() as session:
        assert session.scalar(select(WEBHOOK_DELIVERIES.c.state)) == "skipped"


def test_a_stale_claim_sends_nothing(
    sessions: sessionmaker[Session], settings: Settings, receiver: Receiver
) -> None:
    make_endpoint(sessions, receiver.url)
    succeeded_jobs(sessions, 1)
    delivery_id = claim_one(sessions, "mine", now=utcnow(), expires_in_s=0)
    assert deliver(sessions, settings, delivery_id, "someone-else") == "stale"
    assert receiver.snapshot() == []


def test_a_url_now_pointing_at_a_private_address_is_refused(
    sessions: sessionmaker[Session], settings: Settings, receiver: Receiver
) -> None:
    # Allowed when it was made; the network is no longer allowed when the attempt is made
    # (as when a name's DNS answer moves to an internal address).
    endpoint_id, _ = make_endpoint(sessions, receiver.url)
    succeeded_jobs(sessions, 1)
    narrowed = settings.model_copy(update={"url_fetch_allowed_networks": ["127.0.0.2/32"]})
    assert _round(sessions, narrowed) == ["pending"]
    assert receiver.snapshot() == []
    with sessions() as session:
        (attempt,), _ = attempts_page(
            session, tenant=TENANT, endpoint_id=endpoint_id, outcome="failed", since=None,
            cursor=None, limit=10,
        )  # fmt: skip
    assert attempt.outcome == "refused" and attempt.status_code is None
    assert "127.0.0.1" in (attempt.error or "")


@pytest.mark.parametrize("first", ["without", "with"])
def test_include_result_is_per_endpoint_whoever_sends_first(
    sessions: sessionmaker[Session], settings: Settings, receiver: Receiver, first: str
) -> None:
    # One event, two endpoints: the payload is frozen once, by the first send, yet each
    # endpoint gets what it asked for, in either order.
    made: dict[str, tuple[str, Receiver]] = {}
    with Receiver([]) as other:
        for name, include, got in (("without", False, receiver), ("with", True, other)):
            with sessions.begin() as session:
                row, secret = create_endpoint(
                    session, tenant=TENANT, url=got.url, events=["job.succeeded"],
                    description=None, include_result=include, max_endpoints=20,
                )  # fmt: skip
            got.secrets = [secret]
            made[name] = (row.id, got)
        succeeded_jobs(sessions, 1)
        now = utcnow()
        with sessions.begin() as session:
            fan_out(session, now=now)
            d = WEBHOOK_DELIVERIES.c
            rows = session.execute(select(d.endpoint_id, d.id))
            by_endpoint = {row.endpoint_id: row.id for row in rows}
        for name in (first, "with" if first == "without" else "without"):
            delivery_id = by_endpoint[made[name][0]]
            with sessions.begin() as session:
                assert claim_delivery(
                    session, delivery_id, token=name, expires_at=now + timedelta(seconds=60)
                )
            assert deliver(sessions, settings, delivery_id, name) == "succeeded"
        (without,) = receiver.snapshot()
        (with_result,) = other.snapshot()
    assert without.verified and with_result.verified
    assert without.json()["data"]["result_included"] is False
    assert "result" not in without.json()["data"]
    assert with_result.json()["data"]["result_included"] is True
    assert with_result.json()["data"]["result"] == {"text": "a cat"}


def _attempts(sessions: sessionmaker[Session], delivery_id: int) -> list[int | None]:
    with sessions() as session:
        return list(
            session.scalars(
                select(WEBHOOK_ATTEMPTS.c.status_code)
                .where(WEBHOOK_ATTEMPTS.c.delivery_id == delivery_id)
                .order_by(WEBHOOK_ATTEMPTS.c.id)
            )
        )


def test_one_refused_delivery_keeps_its_schedule_and_the_endpoint_its_slots(
    sessions: sessionmaker[Session], settings: Settings, receiver: Receiver
) -> None:
    endpoint_id, secret = make_endpoint(sessions, receiver.url)
    receiver.secrets = [secret]
    receiver.script = lambda n: 400 if n == 1 else 204  # the first delivery refused once
    clock = Clock()
    succeeded_jobs(sessions, 1)
    assert _round(sessions, settings, clock) == ["pending"]
    with sessions() as session:
        poison = session.scalar(select(WEBHOOK_DELIVERIES.c.id))
    assert poison is not None
    # One delivery refused is not a failing endpoint: the others still go max_in_flight
    # at a time.
    succeeded_jobs(sessions, 3)
    with sessions.begin() as session:
        fan_out(session, now=clock.now)
        assert len(due_deliveries(session, now=clock.now, max_in_flight=8, limit=100)) == 3
        endpoint = get_endpoint(session, TENANT, endpoint_id)
    assert endpoint is not None and endpoint.failing_since is None
    for _ in range(3):  # others succeed meanwhile, no time passes: the 400 one is not sent
        assert _round(sessions, settings, clock) == ["succeeded"] * (3 if _ == 0 else 1)
        succeeded_jobs(sessions, 1)
    assert _attempts(sessions, poison) == [400]
    # Its next step (1 s ±20 %) comes: tried again, once (with the last new one).
    clock.now += timedelta(seconds=2)
    assert _round(sessions, settings, clock) == ["succeeded"] * 2
    assert _attempts(sessions, poison) == [400, 204]


def test_the_recovery_flush_leaves_a_refused_delivery_on_its_schedule(
    sessions: sessionmaker[Session], settings: Settings, receiver: Receiver
) -> None:
    endpoint_id, _ = make_endpoint(sessions, receiver.url)
    receiver.script = lambda n: {1: 400, 2: 503}.get(n, 204)
    clock = Clock()
    succeeded_jobs(sessions, 2)
    # Two failures in a row (a 400 and a 503): the endpoint is failing.
    assert _round(sessions, settings, clock) == ["pending", "pending"]
    with sessions() as session:
        refused, unavailable = session.scalars(
            select(WEBHOOK_DELIVERIES.c.id).order_by(WEBHOOK_DELIVERIES.c.id)
        )
        endpoint = get_endpoint(session, TENANT, endpoint_id)
    assert endpoint is not None and endpoint.failing_since is not None
    assert _attempts(sessions, refused) == [400] and _attempts(sessions, unavailable) == [503]
    succeeded_jobs(sessions, 1)
    # It answers again: the 503 one (the receiver was down) is due now, the 400 one keeps
    # its own next step.
    assert _round(sessions, settings, clock) == ["succeeded"]
    with sessions() as session:
        due = dict(
            (row.id, row.next_attempt_at)
            for row in session.execute(
                select(WEBHOOK_DELIVERIES.c.id, WEBHOOK_DELIVERIES.c.next_attempt_at)
            )
        )
    assert due[unavailable] <= clock.now < due[refused]
