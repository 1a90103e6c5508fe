"""Shared steps for the webhook repository tests on SQLite and PostgreSQL (endpoints, events,
fan-out, claims and attempts), each in a transaction of its own as the relay and sender do.

Every test works with a tenant of its own (the ``tenant`` fixture): the database is shared by
the whole module.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from visionq.models.tables import WEBHOOK_DELIVERIES, utcnow
from visionq.models.webhook_deliveries import (
    AttemptResult,
    DeliveryJob,
    DeliveryState,
    claim_delivery,
    fan_out,
    load_claimed,
    record_attempt,
)
from visionq.models.webhook_endpoints import create_endpoint
from visionq.models.webhook_outbox import EventType, NewEvent, record_event

JOB_EVENTS = ("job.succeeded", "job.failed", "job.cancelled")
OK = AttemptResult("succeeded", 204, 12, None)
DOWN = AttemptResult("network_error", None, 3, "connection refused")
GONE = AttemptResult("gone", 410, 5, None)


@pytest.fixture
def tenant() -> str:
    """A tenant no other test uses."""
    return f"hook-{uuid.uuid4().hex[:12]}"


def make_endpoint(sessions: sessionmaker[Session], tenant: str, **changes: Any) -> str:
    """An endpoint of ``tenant`` for the job events (``changes`` override), its id."""
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


def make_events(sessions: sessionmaker[Session], tenant: str, count: int, **kw: Any) -> list[str]:
    """``count`` job.failed events of ``tenant`` (``kw`` for NewEvent), their ids."""
    with sessions.begin() as session:
        ids = [
            record_event(session, NewEvent(tenant, EventType.JOB_FAILED, str(uuid.uuid4()), **kw))
            for _ in range(count)
        ]
    assert all(ids)
    return [i for i in ids if i]


def fan_out_all(sessions: sessionmaker[Session]) -> int:
    """Fan out every event waiting (other tests' too); how many were fanned out."""
    with sessions.begin() as session:
        return fan_out(session, now=utcnow(), limit=10_000).events


def deliveries(sessions: sessionmaker[Session], endpoint_id: str) -> list[Any]:
    """The endpoint's delivery rows, oldest first."""
    with sessions() as session:
        return list(
            session.execute(
                select(WEBHOOK_DELIVERIES)
                .where(WEBHOOK_DELIVERIES.c.endpoint_id == endpoint_id)
                .order_by(WEBHOOK_DELIVERIES.c.id)
            )
        )


def pending(
    sessions: sessionmaker[Session], tenant: str, count: int, **endpoint: Any
) -> tuple[str, list[int]]:
    """A new endpoint of ``tenant`` with ``count`` fanned-out deliveries: (its id, their ids)."""
    endpoint_id = make_endpoint(sessions, tenant, **endpoint)
    make_events(sessions, tenant, count)
    fan_out_all(sessions)
    return endpoint_id, [d.id for d in deliveries(sessions, endpoint_id)]


def claim(sessions: sessionmaker[Session], delivery_id: int) -> tuple[DeliveryJob, str]:
    """Claim the delivery as a sender does: (what to send, the claim token)."""
    token = uuid.uuid4().hex
    with sessions.begin() as session:
        assert claim_delivery(
            session, delivery_id, token=token, expires_at=utcnow() + timedelta(seconds=60)
        )
    with sessions() as session:
        job = load_claimed(session, delivery_id, token)
    assert job is not None
    return job, token


def record(
    sessions: sessionmaker[Session],
    job: DeliveryJob,
    token: str,
    result: AttemptResult,
    *,
    retry_in_s: float | None = 60,
    disable_after_s: float = 86400,
    min_failures: int = 10,
) -> DeliveryState | None:
    """Record an attempt under ``token`` (next try in ``retry_in_s``; None: past the window)."""
    now = utcnow()
    with sessions.begin() as session:
        return record_attempt(
            session, job, token, result,
            next_attempt_at=None if retry_in_s is None else now + timedelta(seconds=retry_in_s),
            now=now, disable_after_s=disable_after_s, disable_min_failures=min_failures,
        )  # fmt: skip


def attempt(
    sessions: sessionmaker[Session], delivery_id: int, result: AttemptResult, **kw: Any
) -> DeliveryState | None:
    """Claim the delivery and record one attempt with ``result`` (``kw`` as for record)."""
    job, token = claim(sessions, delivery_id)
    return record(sessions, job, token, result, **kw)


def run_together(*targets: Callable[[], object]) -> None:
    """Run the targets in threads released at once by a barrier; wait for them all."""
    barrier = threading.Barrier(len(targets))

    def run(target: Callable[[], object]) -> None:
        barrier.wait()
        target()

    threads = [threading.Thread(target=run, args=(target,)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
