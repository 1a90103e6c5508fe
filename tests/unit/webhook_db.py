"""Shared steps for the webhook unit tests on a real (SQLite) database: a settable clock, a
receiver, an endpoint, succeeded jobs with their events, and one claimed delivery."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.webhookrecv import Receiver
from visionq.models.settings import Settings
from visionq.models.table_base import utcnow
from visionq.models.tables import Job
from visionq.models.webhook_deliveries import claim_delivery, due_deliveries, fan_out
from visionq.models.webhook_endpoints import create_endpoint
from visionq.models.webhook_outbox import EventType, NewEvent, record_event

TENANT = "t"


class Clock:
    """A settable clock for the relay and the sender (the database's times follow it)."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


def send_settings(data_dir: Path, **changes: Any) -> Settings:
    """Settings for sending to a receiver on loopback quickly (``changes`` override)."""
    values: dict[str, Any] = {
        "url_fetch_allowed_networks": ["127.0.0.0/8"], "webhook_timeout_s": 3,
        "webhook_retry_delays_s": [1.0], "webhook_retry_window_s": 3600,
    }  # fmt: skip
    return Settings(data_dir=data_dir, **(values | changes))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A receiver that answers 204 to all; set its ``secrets`` to verify signatures."""
    with Receiver([]) as got:
        yield got


def make_endpoint(sessions: sessionmaker[Session], url: str) -> tuple[str, str]:
    """An endpoint of TENANT for job.succeeded at ``url``: (its id, its secret)."""
    with sessions.begin() as session:
        row, secret = create_endpoint(
            session, tenant=TENANT, url=url, events=["job.succeeded"], description=None,
            include_result=True, max_endpoints=20,
        )  # fmt: skip
    return row.id, secret


def succeeded_jobs(sessions: sessionmaker[Session], n: int) -> list[str]:
    """``n`` succeeded jobs of TENANT, each with its job.succeeded event; their ids."""
    now = utcnow()
    ids = [f"job-{i}-{secrets.token_hex(4)}" for i in range(n)]
    with sessions.begin() as session:
        for job_id in ids:
            session.add(
                Job(
                    id=job_id, tenant=TENANT, task="caption", model="m", status="succeeded",
                    created_at=now, finished_at=now, result={"text": "a cat"},
                )
            )  # fmt: skip
            record_event(session, NewEvent(TENANT, EventType.JOB_SUCCEEDED, job_id))
    return ids


def claim_one(
    sessions: sessionmaker[Session], token: str, *, now: datetime, expires_in_s: float
) -> int:
    """Fan out, take the one delivery due and claim it with ``token``: its id."""
    with sessions.begin() as session:
        fan_out(session, now=now)
        (delivery_id,) = due_deliveries(session, now=now, max_in_flight=8, limit=10)
        assert claim_delivery(
            session, delivery_id, token=token, expires_at=now + timedelta(seconds=expires_in_s)
        )
    return delivery_id
