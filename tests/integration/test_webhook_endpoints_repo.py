"""models/webhook_endpoints.py on SQLite and PostgreSQL: endpoints (create with the limit,
update, delete, tenancy), secret rotation with a grace, the endpoint limit under concurrent
creates; the callbacks endpoint is never deleted.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.integration.webhook_rows import JOB_EVENTS, make_endpoint, tenant
from visionq.models.tables import utcnow
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

pytestmark = pytest.mark.integration
__all__ = ["tenant"]  # the fixture
LIMIT = 3


def test_endpoints_crud_limit_and_tenancy(sessions: sessionmaker[Session], tenant: str) -> None:
    first = make_endpoint(sessions, tenant, description="ops")
    second = make_endpoint(sessions, tenant, events=("batch.completed",), include_result=False)
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
    endpoint = make_endpoint(sessions, tenant)
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


def _create(session: Session, tenant: str) -> None:
    create_endpoint(
        session, tenant=tenant, url="https://example.com/hook", events=["job.failed"],
        description=None, include_result=True, max_endpoints=LIMIT,
    )  # fmt: skip


def test_concurrent_creates_keep_to_the_limit(sessions: sessionmaker[Session], tenant: str) -> None:
    for _ in range(LIMIT - 1):
        make_endpoint(sessions, tenant)
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
