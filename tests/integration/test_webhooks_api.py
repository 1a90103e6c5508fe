"""The webhook routes (api/routes/webhooks.py) on the in-process app, SQLite and PostgreSQL:
endpoint CRUD and its limits, the SSRF and event type refusals, tenant isolation, the secret
and its rotation, enabling a disabled endpoint, the delivery log, deliveries by state,
replay, the callbacks endpoint, and webhook_url on jobs and batches. Deliveries themselves
are tests/integration/test_webhooks_delivery.py's (a worker sends them)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, select, update

from tests.integration.conftest import redis_db
from tests.integration.helpers import scene_png, submit
from tests.integration.inprocess import InProcessApi, in_process_api
from visionq.models.db import make_session_factory
from visionq.models.tables import JOBS, utcnow
from visionq.models.webhook_endpoints import live_secrets
from visionq.models.webhook_outbox import EventType
from visionq.models.webhook_tables import (
    WEBHOOK_ATTEMPTS,
    WEBHOOK_DELIVERIES,
    WEBHOOK_ENDPOINTS,
    WEBHOOK_EVENTS,
)

pytestmark = pytest.mark.integration

# The receiver's address: allowed like the stack's image host (127.0.0.2), never contacted.
HOOK = "http://127.0.0.2:9/hook"
MAX_ENDPOINTS = 3


@pytest.fixture(scope="module")
def api(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str, database_url: str
) -> Iterator[InProcessApi]:
    """The app on the session's database (both kinds), with tenants of this module's own."""
    suffix = uuid.uuid4().hex[:8]
    with in_process_api(
        Path(tmp_path_factory.mktemp("webhooks-api")), redis_db(redis_url),
        (f"wh-a-{suffix}", f"wh-b-{suffix}", f"wh-c-{suffix}", f"wh-d-{suffix}"),
        database_url=database_url,
        url_fetch_allowed_networks=["127.0.0.2/32"], webhook_max_endpoints=MAX_ENDPOINTS,
    ) as app:  # fmt: skip
        yield app


def _tenant(api: InProcessApi, index: int) -> str:
    return sorted(api.keys)[index]


@pytest.fixture
def client(api: InProcessApi) -> Iterator[httpx.Client]:
    """Tenant A's client; its endpoints deleted after each test (the limit is per tenant)."""
    with api.client(_tenant(api, 0)) as client:
        yield client
        for endpoint in client.get("/v1/webhooks").json()["data"]:
            client.delete(f"/v1/webhooks/{endpoint['id']}")


def _create(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    body = {"url": HOOK, "events": ["job.succeeded", "job.failed"]} | fields
    response = client.post("/v1/webhooks", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    code: str = response.json()["error"]["code"]
    return code


def test_endpoint_crud(client: httpx.Client) -> None:
    created = _create(client, description="orders", include_result=False)
    assert created["secret"].startswith("whsec_")
    assert created["kind"] == "endpoint" and created["enabled"] is True
    assert created["events"] == ["job.succeeded", "job.failed"]
    assert created["pending"] == 0 and created["failed_24h"] == 0
    path = f"/v1/webhooks/{created['id']}"

    listed = client.get("/v1/webhooks").raise_for_status().json()["data"]
    assert [item["id"] for item in listed] == [created["id"]]
    assert "secret" not in listed[0]  # shown at create, on rotate and by GET .../secret only
    read = client.get(path).raise_for_status().json()
    assert read["description"] == "orders" and read["include_result"] is False
    assert "secret" not in read

    changed = client.patch(path, json={"events": ["batch.completed"], "description": None})
    assert changed.raise_for_status().json()["events"] == ["batch.completed"]
    assert client.get(path).json()["events"] == ["batch.completed"]

    assert client.delete(path).status_code == 204
    assert _error(client.get(path), 404) == "webhook_not_found"
    assert _error(client.delete(path), 404) == "webhook_not_found"


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("http://10.0.0.5/hook", "url_host_not_allowed"),
        ("http://127.0.0.1:8000/hook", "url_host_not_allowed"),
        ("http://[::1]/hook", "url_host_not_allowed"),
        ("http://2130706433/hook", "url_host_not_allowed"),  # 127.0.0.1 written as one number
        ("http://0x7f.1/hook", "url_host_not_allowed"),
        ("ftp://127.0.0.2/hook", "url_scheme_not_allowed"),
        ("http://user:pw@127.0.0.2/hook", "url_invalid"),
        ("http://nowhere.invalid/hook", "url_unresolvable"),
    ],
)
def test_refused_urls(client: httpx.Client, url: str, code: str) -> None:
    response = client.post("/v1/webhooks", json={"url": url, "events": ["job.failed"]})
    assert _error(response, 422) == code
    assert client.get("/v1/webhooks").json()["data"] == []


def test_refused_events_and_bodies(client: httpx.Client) -> None:
    bad_type = client.post("/v1/webhooks", json={"url": HOOK, "events": ["job.done"]})
    assert _error(bad_type, 422) == "unknown_event_type"
    assert "job.succeeded" in bad_type.json()["error"]["message"]
    assert _error(client.post("/v1/webhooks", json={"url": HOOK, "events": []}), 422) == (
        "invalid_request"
    )
    twice = {"url": HOOK, "events": ["job.failed", "job.failed"]}
    assert _error(client.post("/v1/webhooks", json=twice), 422) == "invalid_request"
    extra = {"url": HOOK, "events": ["job.failed"], "secret": "whsec_x"}
    assert _error(client.post("/v1/webhooks", json=extra), 422) == "invalid_request"
    nul = {"url": HOOK, "events": ["job.failed"], "description": "a\x00b"}
    assert _error(client.post("/v1/webhooks", json=nul), 422) == "invalid_request"
    endpoint = _create(client)
    path = f"/v1/webhooks/{endpoint['id']}"
    private = client.patch(path, json={"url": "http://192.168.1.1/"})
    assert _error(private, 422) == "url_host_not_allowed"
    assert _error(client.patch(path, json={"events": ["nope"]}), 422) == "unknown_event_type"
    # WebhookUpdate checks its fields as WebhookCreate does (the validators they share).
    for body in ({"events": ["job.failed", "job.failed"]}, {"description": "a\x00b"}):
        assert _error(client.patch(path, json=body), 422) == "invalid_request"
    assert client.get(path).json()["url"] == HOOK


def test_limit_ids_and_tenants(api: InProcessApi, client: httpx.Client) -> None:
    ids = [_create(client)["id"] for _ in range(MAX_ENDPOINTS)]
    over = client.post("/v1/webhooks", json={"url": HOOK, "events": ["job.failed"]})
    assert _error(over, 409) == "webhook_limit"
    assert "VISIONQ_WEBHOOK_MAX_ENDPOINTS" in over.json()["error"]["message"]
    for bad in ("nope", "x" * 300, "%00"):
        assert _error(client.get(f"/v1/webhooks/{bad}"), 404) == "webhook_not_found"
    with api.client(_tenant(api, 1)) as other:
        assert other.get("/v1/webhooks").json()["data"] == []
        for path in ("", "/secret", "/attempts", "/deliveries"):
            assert _error(other.get(f"/v1/webhooks/{ids[0]}{path}"), 404) == "webhook_not_found"
        assert _error(other.delete(f"/v1/webhooks/{ids[0]}"), 404) == "webhook_not_found"
        assert _error(other.post(f"/v1/webhooks/{ids[0]}/rotate"), 404) == "webhook_not_found"
        assert _error(other.patch(f"/v1/webhooks/{ids[0]}", json={"enabled": False}), 404) == (
            "webhook_not_found"
        )
    with api.client(None) as anonymous:
        assert _error(anonymous.get("/v1/webhooks"), 401) == "unauthorized"
        assert _error(anonymous.post("/v1/webhooks", json={}), 401) == "unauthorized"
    assert client.get(f"/v1/webhooks/{ids[0]}").status_code == 200


def test_secret_and_rotation(api: InProcessApi, client: httpx.Client) -> None:
    created = _create(client)
    path = f"/v1/webhooks/{created['id']}"
    assert client.get(f"{path}/secret").json() == {
        "secret": created["secret"],
        "previous_expires_at": None,
    }
    before = utcnow()
    rotated = client.post(f"{path}/rotate", json={"grace_s": 3600}).raise_for_status().json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != created["secret"]
    expires = _at(rotated["previous_expires_at"])
    assert before + timedelta(seconds=3590) < expires < utcnow() + timedelta(seconds=3610)
    read = client.get(path).json()
    assert read["secret_rotated_at"] is not None
    assert _at(read["previous_secret_expires_at"]) == expires
    assert client.get(f"{path}/secret").json()["secret"] == rotated["secret"]
    # During the grace both secrets sign (the newest first).
    with make_session_factory(api.engine)() as session:
        assert live_secrets(session, created["id"], utcnow()) == [
            rotated["secret"],
            created["secret"],
        ]
    # No grace: the previous secret stops signing now.
    third = client.post(f"{path}/rotate", json={"grace_s": 0}).raise_for_status().json()
    with make_session_factory(api.engine)() as session:
        live = live_secrets(session, created["id"], utcnow() + timedelta(seconds=1))
    assert live[0] == third["secret"] and rotated["secret"] not in live
    assert created["secret"] in live  # its own grace (3600 s) runs on
    # No body: the server's default grace (VISIONQ_WEBHOOK_ROTATION_GRACE_S).
    default = client.post(f"{path}/rotate").raise_for_status().json()
    grace = api.settings.webhook_rotation_grace_s
    assert _at(default["previous_expires_at"]) > utcnow() + timedelta(seconds=grace - 60)
    too_long = client.post(f"{path}/rotate", json={"grace_s": 604801})
    assert _error(too_long, 422) == "invalid_request"


def _at(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


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


def test_enable_clears_the_disabled_state(api: InProcessApi, client: httpx.Client) -> None:
    endpoint = _create(client)
    path = f"/v1/webhooks/{endpoint['id']}"
    now = utcnow()
    with make_session_factory(api.engine).begin() as session:
        session.execute(
            update(WEBHOOK_ENDPOINTS)
            .where(WEBHOOK_ENDPOINTS.c.id == endpoint["id"])
            .values(
                enabled=False, disabled_at=now, disabled_reason="every delivery failed",
                failing_since=now - timedelta(days=1), consecutive_failures=12,
                last_failure_at=now, last_error="HTTP 503",
            )
        )  # fmt: skip
    shown = client.get(path).json()
    assert shown["enabled"] is False and shown["disabled_reason"] == "every delivery failed"
    refused = client.post(f"{path}/replay", json={"since": now.isoformat()})
    assert _error(refused, 409) == "webhook_disabled"
    assert "enable" in refused.json()["error"]["message"]

    enabled = client.patch(path, json={"enabled": True}).raise_for_status().json()
    assert enabled["enabled"] is True
    assert enabled["disabled_at"] is None and enabled["disabled_reason"] is None
    assert enabled["failing_since"] is None and enabled["consecutive_failures"] == 0
    assert client.post(f"{path}/replay", json={"since": now.isoformat()}).status_code == 202


def test_callbacks_endpoint(client: httpx.Client) -> None:
    first = client.get("/v1/webhooks/callbacks").raise_for_status().json()
    assert first["kind"] == "callbacks" and first["url"] is None
    assert client.get("/v1/webhooks/callbacks").json()["id"] == first["id"]
    secret = client.get(f"/v1/webhooks/{first['id']}/secret").json()["secret"]
    assert secret.startswith("whsec_")
    no_url = client.patch(f"/v1/webhooks/{first['id']}", json={"url": HOOK})
    assert _error(no_url, 422) == "invalid_request"
    assert first["id"] not in [item["id"] for item in client.get("/v1/webhooks").json()["data"]]
    # Neither deleted (its pending callbacks lost, remade with a new secret) nor disabled.
    deleted = client.delete(f"/v1/webhooks/{first['id']}")
    assert _error(deleted, 409) == "webhook_callbacks_endpoint"
    assert "visionq webhooks rotate" in deleted.json()["error"]["message"]
    disabled = client.patch(f"/v1/webhooks/{first['id']}", json={"enabled": False})
    assert _error(disabled, 409) == "webhook_callbacks_endpoint"
    after = client.get(f"/v1/webhooks/{first['id']}").raise_for_status().json()
    assert after["enabled"] is True
    assert client.get(f"/v1/webhooks/{first['id']}/secret").json()["secret"] == secret


def test_webhook_url_length_is_bounded_in_both_bodies(api: InProcessApi) -> None:
    """A multipart webhook_url has the JSON body's (and the OpenAPI document's) bounds:
    5,000 characters or an empty one is a 422, nothing stored; 2,048 is taken."""
    image, _ = scene_png(2102)
    long = HOOK + "/" + "b" * 5000
    with api.client(_tenant(api, 3)) as client:
        body = {"task": "caption", "images": [{"data": base64.b64encode(image).decode()}]}
        assert _error(client.post("/v1/jobs", json=body | {"webhook_url": long}), 422) == (
            "invalid_request"
        )
        for url in (long, ""):
            refused = submit(client, image, task="caption", webhook_url=url)
            assert _error(refused, 422) == "invalid_request"
            assert "2,048" in refused.json()["error"]["message"]
        assert client.get("/v1/jobs").json()["jobs"] == []  # nothing stored
        longest = HOOK + "/" + "b" * (2048 - len(HOOK) - 1)
        taken = submit(client, image, task="caption", webhook_url=longest)
        assert taken.status_code == 202 and taken.json()["webhook_url"] == longest
        form = client.get("/openapi.json").json()["paths"]["/v1/jobs"]["post"]["requestBody"]
        field = form["content"]["multipart/form-data"]["schema"]["properties"]["webhook_url"]
        assert (field["minLength"], field["maxLength"]) == (1, 2048)


def test_webhook_url_on_jobs_and_batches(api: InProcessApi) -> None:
    image, _ = scene_png(2101)
    with api.client(_tenant(api, 2)) as client:
        body = {"task": "caption", "images": [{"data": base64.b64encode(image).decode()}]}
        refused = client.post("/v1/jobs", json=body | {"webhook_url": "http://10.1.2.3/x"})
        assert _error(refused, 422) == "url_host_not_allowed"
        assert "webhook_url" in refused.json()["error"]["message"]
        multipart_refused = submit(client, image, task="caption", webhook_url="gopher://x")
        assert _error(multipart_refused, 422) == "url_scheme_not_allowed"
        assert client.get("/v1/jobs").json()["jobs"] == []  # nothing stored

        job = client.post("/v1/jobs", json=body | {"webhook_url": HOOK}).raise_for_status()
        assert job.json()["webhook_url"] == HOOK
        form_job = submit(client, image, task="caption", webhook_url=HOOK, options={"cache": False})
        assert form_job.raise_for_status().json()["webhook_url"] == HOOK
        assert client.get(f"/v1/jobs/{job.json()['id']}").json()["webhook_url"] == HOOK
        plain = client.post("/v1/jobs", json=body | {"options": {"cache": False}})
        assert plain.raise_for_status().json()["webhook_url"] is None
        # A retry announces its end where the job it retries did.
        client.post(f"/v1/jobs/{job.json()['id']}/cancel").raise_for_status()
        retried = client.post(f"/v1/jobs/{job.json()['id']}/retry").raise_for_status()
        assert retried.json()["webhook_url"] == HOOK
        _retry_with_a_url_refused_now(api, client, retried.json()["id"])
        # The callbacks endpoint that signs them was made with the first job.
        with make_session_factory(api.engine)() as session:
            kinds = session.scalars(
                select(WEBHOOK_ENDPOINTS.c.kind).where(
                    WEBHOOK_ENDPOINTS.c.tenant == _tenant(api, 2)
                )
            ).all()
            stored = session.scalar(
                select(JOBS.c.callback_url).where(JOBS.c.id == job.json()["id"])
            )
        assert kinds == ["callbacks"] and stored == HOOK

        batch_body = {"name": f"hooked-{uuid.uuid4().hex[:6]}", "task": "caption"}
        bad = client.post("/v1/batches", json=batch_body | {"webhook_url": "http://[fd00::1]/"})
        assert _error(bad, 422) == "url_host_not_allowed"
        made = client.post("/v1/batches", json=batch_body | {"webhook_url": HOOK})
        assert made.status_code == 201 and made.json()["webhook_url"] == HOOK
        again = client.post("/v1/batches", json=batch_body | {"webhook_url": HOOK})
        assert again.status_code == 200  # the same defaults: resumed
        other = client.post("/v1/batches", json=batch_body | {"webhook_url": HOOK + "2"})
        assert _error(other, 409) == "batch_name_taken"
        assert client.get(f"/v1/batches/{made.json()['id']}").json()["webhook_url"] == HOOK


def _retry_with_a_url_refused_now(api: InProcessApi, client: httpx.Client, job_id: str) -> None:
    """A job whose stored webhook_url no longer passes the check is still retried: without
    it, with a warning, when the rules refuse it now; with it when its host does not resolve
    now (DNS may be down for a moment: every delivery checks again)."""
    client.post(f"/v1/jobs/{job_id}/cancel").raise_for_status()
    for url, kept in (("http://10.1.2.3/x", None), ("https://no-such-host.invalid/x", True)):
        with make_session_factory(api.engine).begin() as session:
            session.execute(update(JOBS).where(JOBS.c.id == job_id).values(callback_url=url))
        retried = client.post(f"/v1/jobs/{job_id}/retry")
        assert retried.status_code == 202, retried.text
        warnings = [w["code"] for w in retried.json()["warnings"]]
        if kept:
            assert retried.json()["webhook_url"] == url and "webhook_url_dropped" not in warnings
        else:
            assert retried.json()["webhook_url"] is None and "webhook_url_dropped" in warnings
            (dropped,) = [
                w for w in retried.json()["warnings"] if w["code"] == "webhook_url_dropped"
            ]
            assert "submit the job again with a webhook_url" in dropped["message"]
