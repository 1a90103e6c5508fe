"""The OpenAPI document describes the webhooks visionq sends (issue 21 review NIT): every
event type, its body schema and the Standard Webhooks headers, so that a receiver's client
generator gets types; sample bodies of each shape (as the worker and the budget code build
them) validate against it."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from fastapi.testclient import TestClient

from visionq.api.app import create_app
from visionq.models.settings import Settings
from visionq.models.webhook_outbox import EventType

JOB = {
    "object": "job", "id": "j1", "status": "succeeded", "task": "caption", "model": "m",
    "tier": "standard", "served_tier": "standard", "created_at": "2026-12-05T10:00:00.000000Z",
    "finished_at": "2026-12-05T10:00:01.000000Z", "cost_usd": "0.0001", "error": None,
    "batch": {"id": "b1", "item_key": "a.png"}, "links": {"self": "/v1/jobs/j1"},
    "result_included": True, "result": {"caption": "x"},
}  # fmt: skip
SAMPLES = {
    "job.succeeded": JOB,
    "job.failed": JOB | {"status": "failed", "error": {"code": "gemini_error", "message": "m"},
                         "result_included": False, "result": None},
    "job.cancelled": {"object": "job", "id": "j2", "status": "cancelled", "expired": True,
                      "links": {"self": "/v1/jobs/j2"}, "result_included": False},
    "batch.completed": {
        "object": "batch", "id": "b1", "name": "photos", "state": "closed",
        "counts": {"succeeded": 2, "failed": 1, "cancelled": 0}, "cost_usd": "0.01",
        "ended_at": "2026-12-05T10:00:02.000000Z",
        "links": {"self": "/v1/batches/b1", "items": "/v1/batches/b1/items"},
    },
    "budget.threshold": {
        "object": "budget", "tenant": "acme", "period": "day", "period_key": "2026-12-05",
        "ratio": 0.8, "spent_usd": "0.81", "cap_usd": "1",
    },
}  # fmt: skip


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    with TestClient(create_app(Settings())) as client:
        served: dict[str, Any] = client.get("/openapi.json").json()
    return served


def _schema(doc: dict[str, Any], event_type: str) -> dict[str, Any]:
    body = doc["webhooks"][event_type]["post"]["requestBody"]["content"]["application/json"]
    return {**body["schema"], "components": doc["components"]}


def test_every_webhook_event_is_in_the_openapi_document(doc: dict[str, Any]) -> None:
    assert sorted(doc["webhooks"]) == sorted(kind.value for kind in EventType)
    for event_type, item in doc["webhooks"].items():
        headers = {p["name"]: p["required"] for p in item["post"]["parameters"]}
        assert headers == {"webhook-id": True, "webhook-timestamp": True,
                           "webhook-signature": True}, event_type  # fmt: skip
        assert "security" not in item["post"], event_type  # receivers get no bearer key


@pytest.mark.parametrize("event_type", sorted(SAMPLES))
def test_sample_bodies_validate_against_the_webhook_schema(
    doc: dict[str, Any], event_type: str
) -> None:
    body = {"type": event_type, "timestamp": "2026-12-05T10:00:02.000000Z",
            "data": SAMPLES[event_type]}  # fmt: skip
    jsonschema.validate(body, _schema(doc, event_type))
    with pytest.raises(jsonschema.ValidationError):  # another type's data is refused
        other = "budget.threshold" if event_type != "budget.threshold" else "job.succeeded"
        jsonschema.validate(body | {"data": SAMPLES[other]}, _schema(doc, event_type))
