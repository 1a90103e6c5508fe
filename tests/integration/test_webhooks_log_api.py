"""The webhook delivery log routes (api/routes/webhooks.py): attempts, deliveries, replay."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import insert, select

from tests.integration.inprocess import InProcessApi
from tests.integration.webhooks_api_fixtures import HOOK, _create, _error, _tenant, api, client
from visionq.models.db import make_session_factory
from visionq.models.tables import utcnow
from visionq.models.webhook_outbox import EventType
from visionq.models.webhook_tables import WEBHOOK_ATTEMPTS, WEBHOOK_DELIVERIES, WEBHOOK_EVENTS

__all__ = ["api", "client"]  # the fixtures


pytestmark = pytest.mark.integration


def _seed(api: InProcessApi, endpoint_id: str, states: list[str]) -> list[str]:
    """One event per state, its delivery to ``endpoint_id`` in that state and one attempt
    row (failed, or succeeded for a succeeded delivery). Returns the event ids."""
    tenant = _tenant(api, 0)
    now = utcnow()
    ids = []
    with make_session_factory(api.engine).begin() as session:
        for n, state in enumerate(states):
            event_id = f"msg_{uuid.uuid4().hex[:26]}"
            ids.append(event_id)
            at = now - timedelta(minutes=10 - n)
            session.execute(
                insert(WEBHOOK_EVENTS).values(
                    id=event_id, tenant=tenant, type=EventType.JOB_FAILED.value,
                    subject_id=str(uuid.uuid4()), occurred_at=at, fanned_out_at=at,
                )
            )  # fmt: skip
            delivery = session.execute(
                insert(WEBHOOK_DELIVERIES).values(
                    event_id=event_id, endpoint_id=endpoint_id, url=HOOK, state=state,
                    attempts=1, replays=0, next_attempt_at=at, window_started_at=at,
                    last_status=503 if state != "succeeded" else 204,
                    created_at=at, updated_at=at,
                )
            ).inserted_primary_key  # fmt: skip
            session.execute(
                insert(WEBHOOK_ATTEMPTS).values(
                    delivery_id=delivery[0], endpoint_id=endpoint_id, event_id=event_id,
                    attempt=1, replay=False, started_at=at, latency_ms=12,
                    outcome="succeeded" if state == "succeeded" else "http_error",
                    status_code=204 if state == "succeeded" else 503,
                    error=None if state == "succeeded" else "HTTP 503",
                )
            )  # fmt: skip
    return ids


def test_log_messages_and_replay(api: InProcessApi, client: httpx.Client) -> None:
    endpoint = _create(client)
    path = f"/v1/webhooks/{endpoint['id']}"
    events = _seed(api, endpoint["id"], ["succeeded", "failed", "failed", "skipped"])

    log = client.get(f"{path}/attempts").raise_for_status().json()
    assert [row["event_id"] for row in log["data"]] == events[::-1]  # newest first
    assert log["data"][0]["status_code"] == 503 and log["data"][0]["latency_ms"] == 12
    failed = client.get(f"{path}/attempts", params={"outcome": "failed"}).json()["data"]
    assert {row["event_id"] for row in failed} == set(events[1:])
    page = client.get(f"{path}/attempts", params={"limit": 2}).json()
    assert len(page["data"]) == 2 and page["next_cursor"]
    rest = client.get(f"{path}/attempts", params={"limit": 2, "cursor": page["next_cursor"]})
    assert [row["event_id"] for row in rest.json()["data"]] == events[1::-1]
    bad_cursor = client.get(f"{path}/attempts", params={"cursor": "not-a-cursor"})
    assert _error(bad_cursor, 400) == "invalid_cursor"

    by_state = client.get(f"{path}/deliveries", params={"state": "failed"}).json()["data"]
    assert {row["event_id"] for row in by_state} == set(events[1:3])
    assert client.get(path).json()["failed_24h"] == 2

    one = client.post(f"{path}/replay", json={"event_id": events[1]})
    assert one.status_code == 202 and one.json() == {"replayed": 1, "more": False}
    assert client.get(path).json()["pending"] == 1
    since = (utcnow() - timedelta(hours=1)).isoformat()
    rest_failed = client.post(f"{path}/replay", json={"since": since, "states": ["failed"]})
    assert rest_failed.json()["replayed"] == 1
    both = client.post(f"{path}/replay", json={"since": since})  # failed and skipped
    assert both.json()["replayed"] == 1  # the skipped one; the others are pending now
    pending = client.get(f"{path}/deliveries", params={"state": "pending"}).json()["data"]
    assert {row["event_id"] for row in pending} == set(events[1:])
    with make_session_factory(api.engine)() as session:
        replays = session.scalars(
            select(WEBHOOK_DELIVERIES.c.replays).where(
                WEBHOOK_DELIVERIES.c.event_id.in_(events[1:])
            )
        ).all()
    assert sorted(replays) == [1, 1, 1]

    unknown = client.post(f"{path}/replay", json={"event_id": "msg_unknown0000000000000000"})
    assert _error(unknown, 404) == "webhook_event_not_found"
    for body in (
        {},
        {"event_id": events[0], "since": since},
        {"event_id": events[0], "states": ["failed"]},
    ):
        assert _error(client.post(f"{path}/replay", json=body), 422) == "invalid_request"
