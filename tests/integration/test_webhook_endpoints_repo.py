"""models/webhook_endpoints.py on SQLite and PostgreSQL, what the review found: the endpoint
limit holds under concurrent creates; the callbacks endpoint is never deleted.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.integration.test_webhook_repo import _endpoint, tenant
from visionq.models.webhook_endpoints import (
    EndpointLimit,
    callbacks_endpoint,
    create_endpoint,
    current_secret,
    delete_endpoint,
    list_endpoints,
)

pytestmark = pytest.mark.integration
__all__ = ["tenant"]  # the fixture, shared with test_webhook_repo.py
LIMIT = 3


def _create(session: Session, tenant: str) -> None:
    create_endpoint(
        session, tenant=tenant, url="https://example.com/hook", events=["job.failed"],
        description=None, include_result=True, max_endpoints=LIMIT,
    )  # fmt: skip


def test_concurrent_creates_keep_to_the_limit(sessions: sessionmaker[Session], tenant: str) -> None:
    for _ in range(LIMIT - 1):
        _endpoint(sessions, tenant)
    outcome: list[str] = []

    def second() -> None:
        try:
            with sessions.begin() as session:
                _create(session, tenant)
            outcome.append("created")
        except EndpointLimit:
            outcome.append("limit")

    # The first create is made and not committed yet when the second one counts: without
    # serialising, the second counts LIMIT - 1 too and both are made.
    with sessions.begin() as session:
        _create(session, tenant)
        racer = threading.Thread(target=second)
        racer.start()
        racer.join(timeout=2)  # it finishes now unless it waits for this transaction
    racer.join(timeout=60)
    assert outcome == ["limit"]
    with sessions() as session:
        assert len(list_endpoints(session, tenant)) == LIMIT


def test_the_callbacks_endpoint_is_never_deleted(
    sessions: sessionmaker[Session], tenant: str
) -> None:
    with sessions.begin() as session:
        made = callbacks_endpoint(session, tenant)
        secret = current_secret(session, made.id)
    with sessions.begin() as session:
        assert delete_endpoint(session, tenant, made.id) is False
    with sessions.begin() as session:
        assert callbacks_endpoint(session, tenant).id == made.id
        assert current_secret(session, made.id) == secret  # not made again with a new one
