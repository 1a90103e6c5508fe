"""The webhook endpoint routes (api/routes/webhooks.py): CRUD, refusals, limits, secrets, enable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import update

from tests.integration.inprocess import InProcessApi
from tests.integration.webhooks_api_fixtures import (
    HOOK,
    MAX_ENDPOINTS,
    _create,
    _error,
    _tenant,
    api,
    client,
)
from visionq.models.db import make_session_factory
from visionq.models.tables import utcnow
from visionq.models.webhook_endpoints import live_secrets
from visionq.models.webhook_tables import WEBHOOK_ENDPOINTS

__all__ = ["api", "client"]  # the fixtures


pytestmark = pytest.mark.integration


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
