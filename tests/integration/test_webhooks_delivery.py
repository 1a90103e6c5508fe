"""Webhook deliveries through the whole stack: jobs submitted to the API end in the worker,
their events go through the outbox, the relay and the delivery task on the visionq.webhooks
queue, and reach a receiver (tests/webhookrecv.py) that verifies every request with the
standardwebhooks reference library, as a consumer would.

The first test runs on SQLite and PostgreSQL; the others (retries, 410, callback URLs) on
SQLite only: what differs between databases is covered by the first one and by
tests/integration/test_webhook_deliveries_repo.py. Receivers listen on 127.0.0.2, the one
address the stacks allow besides public ones.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks import Webhook

from tests.integration.conftest import Stack, _build_stack
from tests.integration.helpers import own_tenant, scene_png, submit, wait_all
from tests.integration.test_migration_race import empty_database
from tests.webhookrecv import Received, Receiver
from visionq.models.db import make_engine, make_session_factory
from visionq.models.webhook_deliveries import attempts_page
from visionq.models.webhook_endpoints import (
    callbacks_endpoint,
    create_endpoint,
    current_secret,
    get_endpoint,
    rotate_secret,
)

JOB_EVENTS = ["job.succeeded", "job.failed", "job.cancelled"]
SETTINGS = {
    "VISIONQ_WEBHOOK_POLL_S": "0.2",
    "VISIONQ_WEBHOOK_RETRY_DELAYS_S": "[0.2, 0.5, 1]",
    "VISIONQ_WEBHOOK_RETRY_WINDOW_S": "60",
    "VISIONQ_WEBHOOK_TIMEOUT_S": "5",
}


class HookStack:
    """A stack of its own (an empty database: no other stack's worker relays its events)
    and sessions on its database."""

    def __init__(self, stack: Stack, url: str) -> None:
        self.stack = stack
        self.url = url
        self.engine = make_engine(url, pool_size=2)
        self.sessions: sessionmaker[Session] = make_session_factory(self.engine)

    def tenant(self) -> tuple[str, httpx.Client]:
        """A tenant of this test's own and its API client."""
        name = f"hooks-{uuid.uuid4().hex[:8]}"
        return name, own_tenant(self.url, self.stack.api_url, name)

    def endpoint(self, tenant: str, url: str) -> tuple[str, str]:
        """A job-events endpoint of ``tenant`` (made in the database: the API's routes are
        tests/integration/test_webhooks_api.py's); (its id, its secret)."""
        with self.sessions.begin() as session:
            row, secret = create_endpoint(
                session, tenant=tenant, url=url, events=JOB_EVENTS, description=None,
                include_result=True, max_endpoints=20,
            )  # fmt: skip
        return row.id, secret

    def attempts(self, tenant: str, endpoint_id: str) -> list[tuple[str, int | None]]:
        """(outcome, status) of the endpoint's attempts, oldest first."""
        with self.sessions() as session:
            page, _ = attempts_page(
                session, tenant=tenant, endpoint_id=endpoint_id, outcome=None, since=None,
                cursor=None, limit=500,
            )  # fmt: skip
        return [(a.outcome, a.status_code) for a in reversed(page)]


@pytest.fixture(scope="module")
def hooks(
    tmp_path_factory: pytest.TempPathFactory, database_url: str, redis_url: str, emulator_url: str
) -> Iterator[HookStack]:
    here = tmp_path_factory.mktemp("hooks")
    url = empty_database(database_url, here)
    backend = database_url.split(":", 1)[0]
    stack = _build_stack(
        f"hooks-{backend}", here, url, redis_url, emulator_url, with_worker=True,
        extra_env=SETTINGS,
    )  # fmt: skip
    built = HookStack(stack, url)
    yield built
    stack.stop()
    built.engine.dispose()


@pytest.fixture
def own(hooks: HookStack) -> Iterator[tuple[str, httpx.Client]]:
    """A tenant of this test's own and its API client."""
    name, client = hooks.tenant()
    with client:
        yield name, client


@pytest.fixture
def sqlite_only(database_url: str) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite only (the database-dependent path is the first test's)")


def _jobs(client: httpx.Client, n: int, seed: int, **fields: str) -> list[str]:
    ids = []
    for i in range(n):
        response = submit(
            client, scene_png(seed + i, 320, 240, count=1)[0], task="caption", **fields
        )
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    return ids


def _all_delivered(ids: list[str]) -> Callable[[list[Received]], bool]:
    return lambda got: {r.subject_id for r in got if r.ok} >= set(ids)


def test_every_job_event_arrives_signed_with_both_secrets_during_a_rotation(
    hooks: HookStack, own: tuple[str, httpx.Client]
) -> None:
    tenant, client = own
    with Receiver([], host="127.0.0.2") as receiver:
        endpoint_id, old = hooks.endpoint(tenant, receiver.url)
        with hooks.sessions.begin() as session:
            new, _ = rotate_secret(session, endpoint_id, grace_s=3600)
        receiver.secrets = [old]  # a receiver not told of the rotation yet
        ids = _jobs(client, 6, seed=2100)
        jobs = {job["id"]: job for job in wait_all(client, ids, timeout=90)}
        receiver.wait_for(_all_delivered(ids), timeout=60)
        got = [r for r in receiver.snapshot() if r.ok]
    assert all(r.verified for r in got)
    for request in got:  # ...and one that has the new secret already
        Webhook(new).verify(request.body, request.headers)
    by_id = {r.msg_id: r for r in got}
    assert sorted(r.subject_id for r in by_id.values()) == sorted(ids)  # one id per event
    for request in got:
        data = request.json()["data"]
        assert data["status"] == jobs[request.subject_id]["status"]
        assert request.type == f"job.{data['status']}"
        assert data["links"]["self"] == f"/v1/jobs/{request.subject_id}"
        assert by_id[request.msg_id].body == request.body  # a duplicate is the same message
    assert hooks.attempts(tenant, endpoint_id).count(("succeeded", 204)) >= len(ids)


def test_a_receiver_failing_at_first_gets_every_event_after_retries(
    hooks: HookStack, own: tuple[str, httpx.Client], sqlite_only: None
) -> None:
    tenant, client = own
    with Receiver([], host="127.0.0.2", script=lambda n: 503 if n <= 4 else 204) as receiver:
        endpoint_id, secret = hooks.endpoint(tenant, receiver.url)
        receiver.secrets = [secret]
        ids = _jobs(client, 3, seed=2200)
        receiver.wait_for(_all_delivered(ids), timeout=60)
        got = receiver.snapshot()
    assert all(r.verified for r in got)
    log = hooks.attempts(tenant, endpoint_id)
    assert log.count(("http_error", 503)) == 4 and ("succeeded", 204) in log
    with hooks.sessions() as session:
        endpoint = get_endpoint(session, tenant, endpoint_id)
    assert endpoint is not None and endpoint.enabled and endpoint.failing_since is None


def test_410_disables_the_endpoint_with_the_reason(
    hooks: HookStack, own: tuple[str, httpx.Client], sqlite_only: None
) -> None:
    tenant, client = own
    with Receiver([], host="127.0.0.2", script=lambda n: 410) as receiver:
        endpoint_id, _ = hooks.endpoint(tenant, receiver.url)
        _jobs(client, 1, seed=2300)
        receiver.wait_for(lambda got: len(got) >= 1, timeout=60)
        deadline = time.monotonic() + 30
        while True:
            with hooks.sessions() as session:
                endpoint = get_endpoint(session, tenant, endpoint_id)
            assert endpoint is not None
            if not endpoint.enabled or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert not endpoint.enabled and "410" in (endpoint.disabled_reason or "")
    assert hooks.attempts(tenant, endpoint_id) == [("gone", 410)]


def test_a_job_callback_url_is_signed_by_the_callbacks_secret(
    hooks: HookStack, own: tuple[str, httpx.Client], sqlite_only: None
) -> None:
    tenant, client = own
    with hooks.sessions.begin() as session:
        callbacks = callbacks_endpoint(session, tenant)
        secret = current_secret(session, callbacks.id)
    with Receiver([secret], host="127.0.0.2") as receiver:
        (job_id,) = _jobs(client, 1, seed=2400, webhook_url=receiver.url)
        receiver.wait_for(_all_delivered([job_id]), timeout=60)
        (request,) = [r for r in receiver.snapshot() if r.ok]
    assert request.verified and request.subject_id == job_id
    assert hooks.attempts(tenant, callbacks.id) == [("succeeded", 204)]
