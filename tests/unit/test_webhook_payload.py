"""worker.webhook_payload: what a webhook says about a job or a batch (status, cost, error,
batch, links), when the result rides along (endpoint wants it and it fits), and what is sent
for a job deleted before its first send."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from visionq.models.tables import Batch, BatchItem, Job
from visionq.models.webhook_deliveries import DeliveryJob
from visionq.models.webhook_endpoints import EndpointRow
from visionq.worker.webhook_payload import (
    body_bytes,
    build_payload,
    for_endpoint,
    timestamp_text,
)

AT = datetime(2026, 12, 5, 11, 0, 0, 123456, tzinfo=UTC)
SMALL = {"text": "a red bicycle — leaning on a wall"}


def _endpoint(include_result: bool = True) -> EndpointRow:
    return EndpointRow(
        id="e1", tenant="t", kind="endpoint", url="https://hooks.example/in", description=None,
        events=("job.succeeded",), include_result=include_result, enabled=True,
        disabled_at=None, disabled_reason=None, failing_since=None, consecutive_failures=0,
        last_success_at=None, last_failure_at=None, last_error=None, created_at=AT,
        updated_at=AT,
    )  # fmt: skip


def _delivery(subject: str, kind: str = "job.succeeded", include: bool = True) -> DeliveryJob:
    return DeliveryJob(
        delivery_id=1, event_id="msg_x", event_type=kind, tenant="t", subject_id=subject,
        url="https://hooks.example/in", endpoint=_endpoint(include), payload=None,
        occurred_at=AT, attempts=0, window_started_at=AT,
    )  # fmt: skip


def _job(sessions: sessionmaker[Session], job_id: str, **values: Any) -> None:
    fields: dict[str, Any] = {
        "tenant": "t", "task": "caption", "model": "gemini-3.5-flash-lite", "status": "succeeded",
        "created_at": AT, "finished_at": AT, "tier": "auto", "served_tier": "flex",
        "cost_nusd": 123_000, "result": SMALL,
    }  # fmt: skip
    fields.update(values)
    with sessions.begin() as session:
        session.add(Job(id=job_id, **fields))


def _build(
    sessions: sessionmaker[Session],
    delivery: DeliveryJob,
    *,
    public_url: str = "https://visionq.example",
    max_bytes: int = 16384,
) -> dict[str, Any]:
    with sessions() as session:
        return build_payload(session, delivery, public_url=public_url, result_max_bytes=max_bytes)


def test_a_succeeded_job_with_a_small_result(sessions: sessionmaker[Session]) -> None:
    _job(sessions, "j1")
    payload = _build(sessions, _delivery("j1"))
    assert payload == {
        "type": "job.succeeded",
        "timestamp": "2026-12-05T11:00:00.123456Z",
        "data": {
            "object": "job", "id": "j1", "status": "succeeded", "task": "caption",
            "model": "gemini-3.5-flash-lite", "tier": "auto", "served_tier": "flex",
            "created_at": "2026-12-05T11:00:00.123456Z",
            "finished_at": "2026-12-05T11:00:00.123456Z", "cost_usd": "0.000123",
            "error": None, "batch": None,
            "links": {"self": "https://visionq.example/v1/jobs/j1"},
            "result_included": True, "result": SMALL,
        },
    }  # fmt: skip


@pytest.mark.parametrize(
    ("include", "max_bytes", "included"),
    [(True, len(json.dumps(SMALL, ensure_ascii=False).encode()), True), (True, 10, False),
     (False, 16384, False), (True, 0, False)],
)  # fmt: skip
def test_the_result_rides_only_when_wanted_and_small(
    sessions: sessionmaker[Session], include: bool, max_bytes: int, included: bool
) -> None:
    _job(sessions, "j2")
    # Frozen once whoever sends first: the same with either endpoint's flag.
    frozen = _build(sessions, _delivery("j2", include=not include), max_bytes=max_bytes)
    assert frozen == _build(sessions, _delivery("j2", include=include), max_bytes=max_bytes)
    data = for_endpoint(frozen, include)["data"]
    assert data["result_included"] is included
    assert ("result" in data) is included
    assert data["links"]["self"].endswith("/v1/jobs/j2")  # the link always says where it is


def test_links_are_paths_without_a_public_url(sessions: sessionmaker[Session]) -> None:
    _job(sessions, "j3")
    data = _build(sessions, _delivery("j3"), public_url="")["data"]
    assert data["links"] == {"self": "/v1/jobs/j3"}


def test_a_failed_job_carries_its_error(sessions: sessionmaker[Session]) -> None:
    _job(
        sessions, "j4", status="failed", result=None, cost_nusd=None,
        error_code="gemini_429", error_message="quota exhausted",
    )  # fmt: skip
    data = _build(sessions, _delivery("j4", "job.failed"))["data"]
    assert data["status"] == "failed" and data["cost_usd"] is None
    assert data["error"] == {"code": "gemini_429", "message": "quota exhausted"}
    assert data["result_included"] is False and "result" not in data


def test_a_job_deleted_before_its_first_send(sessions: sessionmaker[Session]) -> None:
    data = _build(sessions, _delivery("gone", "job.cancelled"))["data"]
    assert data == {
        "object": "job", "id": "gone", "status": "cancelled", "expired": True,
        "links": {"self": "https://visionq.example/v1/jobs/gone"}, "result_included": False,
    }  # fmt: skip


def test_a_batch_job_and_the_batch_completed_event(sessions: sessionmaker[Session]) -> None:
    _job(sessions, "b-ok", cost_nusd=1_000)
    _job(sessions, "b-bad", status="failed", cost_nusd=None, result=None)
    with sessions.begin() as session:
        session.add(
            Batch(
                id="b1", tenant="t", name="shelf", state="closed", task="caption",
                defaults_hash="0" * 64, ended_at=AT,
            )
        )  # fmt: skip
        session.flush()
        session.add_all([
            BatchItem(batch_id="b1", key="img-001.jpg", job_id="b-ok"),
            BatchItem(batch_id="b1", key="img-002.jpg", job_id="b-bad"),
        ])  # fmt: skip
    job_data = _build(sessions, _delivery("b-ok"))["data"]
    assert job_data["batch"] == {"id": "b1", "item_key": "img-001.jpg"}
    batch = _build(sessions, _delivery("b1", "batch.completed"))["data"]
    assert batch == {
        "object": "batch", "id": "b1", "name": "shelf", "state": "closed",
        "counts": {"succeeded": 1, "failed": 1, "cancelled": 0}, "cost_usd": "0.000001",
        "ended_at": "2026-12-05T11:00:00.123456Z",
        "links": {"self": "https://visionq.example/v1/batches/b1",
                  "items": "https://visionq.example/v1/batches/b1/items"},
    }  # fmt: skip


def test_the_bytes_are_compact_utf8_and_stable() -> None:
    payload = {"type": "job.succeeded", "data": {"text": "é", "n": [1, 2]}}
    assert body_bytes(payload) == '{"type":"job.succeeded","data":{"text":"é","n":[1,2]}}'.encode()
    assert body_bytes(json.loads(body_bytes(payload))) == body_bytes(payload)
    assert timestamp_text(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05.000000Z"
