"""The body of a webhook: ``{"type", "timestamp", "data"}`` (Standard Webhooks' shape).

Built by the sender at an event's first send and frozen in ``webhook_events.payload``, so every
attempt, endpoint and replay sends the same bytes for the same ``include_result``. A job's data
carries its status, cost, error, batch and a link, and its result when the result's compact JSON
fits ``VISIONQ_WEBHOOK_RESULT_MAX_BYTES``: the frozen payload carries it whatever the endpoint
that sent first wants, and ``for_endpoint`` takes it out for endpoints with
``include_result=false`` (``result_included`` says what that endpoint got). A batch's data
carries its counts by status. A job or batch
deleted by retention before the first send is announced from the event row alone
(``"expired": true``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from visionq.models.tables import BATCH_ITEMS, BATCHES, JOBS
from visionq.models.webhook_deliveries import DeliveryJob
from visionq.models.webhook_outbox import EventType
from visionq.vision.costing import usd_text

_JOB_STATUS = {
    EventType.JOB_SUCCEEDED: "succeeded",
    EventType.JOB_FAILED: "failed",
    EventType.JOB_CANCELLED: "cancelled",
}
_ENDED = ("succeeded", "failed", "cancelled")


def body_bytes(payload: Mapping[str, Any]) -> bytes:
    """The bytes sent (and signed): compact JSON, UTF-8, keys in the payload's order."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def timestamp_text(at: datetime) -> str:
    """An instant as the payload shows it: ISO 8601 UTC with microseconds and a ``Z``."""
    moment = at.astimezone(UTC) if at.tzinfo is not None else at
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _when(at: datetime | None) -> str | None:
    return None if at is None else timestamp_text(at)


def _link(public_url: str, path: str) -> str:
    return public_url.rstrip("/") + path


def build_payload(
    session: Session, job: DeliveryJob, *, public_url: str, result_max_bytes: int
) -> dict[str, Any]:
    """The payload of ``job``'s event, read from the database now (one or two queries), the
    same for every endpoint: it carries a job's result whenever it fits (``for_endpoint``
    strips it per endpoint).

    ``public_url`` is the base of links (empty: path-only links); ``result_max_bytes`` 0
    never includes a result.
    """
    kind = EventType(job.event_type)
    if kind in _JOB_STATUS:
        data = _job_data(
            session, job.subject_id, kind, public_url, result_max_bytes=result_max_bytes
        )
    elif kind is EventType.BATCH_COMPLETED:
        data = _batch_data(session, job.subject_id, public_url)
    else:
        # budget.threshold events are written with their payload (nothing to read later).
        data = {"object": "budget", "tenant": job.tenant}
    return {"type": kind.value, "timestamp": timestamp_text(job.occurred_at), "data": data}


def for_endpoint(payload: Mapping[str, Any], include_result: bool) -> dict[str, Any]:
    """The frozen ``payload`` as an endpoint gets it: without the job's result (and with
    ``result_included: false``) when the endpoint has ``include_result=false``."""
    data = payload.get("data")
    if include_result or not isinstance(data, Mapping) or "result" not in data:
        return dict(payload)
    stripped = {key: value for key, value in data.items() if key != "result"}
    stripped["result_included"] = False
    return {**payload, "data": stripped}


_JOB_COLUMNS = (
    JOBS.c.id, JOBS.c.status, JOBS.c.task, JOBS.c.model, JOBS.c.tier, JOBS.c.served_tier,
    JOBS.c.created_at, JOBS.c.finished_at, JOBS.c.cost_nusd, JOBS.c.error_code,
    JOBS.c.error_message, JOBS.c.result,
)  # fmt: skip


def _job_data(
    session: Session,
    job_id: str,
    kind: EventType,
    public_url: str,
    *,
    result_max_bytes: int,
) -> dict[str, Any]:
    row = session.execute(select(*_JOB_COLUMNS).where(JOBS.c.id == job_id)).mappings().first()
    links = {"self": _link(public_url, f"/v1/jobs/{job_id}")}
    if row is None:
        return {
            "object": "job", "id": job_id, "status": _JOB_STATUS[kind], "expired": True,
            "links": links, "result_included": False,
        }  # fmt: skip
    item = session.execute(
        select(BATCH_ITEMS.c.batch_id, BATCH_ITEMS.c.key).where(BATCH_ITEMS.c.job_id == job_id)
    ).first()
    error = None
    if row["error_code"]:
        error = {"code": row["error_code"], "message": row["error_message"] or ""}
    data: dict[str, Any] = {
        "object": "job",
        "id": row["id"],
        "status": row["status"],
        "task": row["task"],
        "model": row["model"],
        "tier": row["tier"],
        "served_tier": row["served_tier"],
        "created_at": _when(row["created_at"]),
        "finished_at": _when(row["finished_at"]),
        "cost_usd": None if row["cost_nusd"] is None else usd_text(row["cost_nusd"]),
        "error": error,
        "batch": None if item is None else {"id": item.batch_id, "item_key": item.key},
        "links": links,
    }
    result = row["result"]
    fits = result is not None and len(body_bytes(result)) <= result_max_bytes
    data["result_included"] = bool(result_max_bytes > 0 and fits)
    if data["result_included"]:
        data["result"] = result
    return data


def _batch_data(session: Session, batch_id: str, public_url: str) -> dict[str, Any]:
    links = {
        "self": _link(public_url, f"/v1/batches/{batch_id}"),
        "items": _link(public_url, f"/v1/batches/{batch_id}/items"),
    }
    batch = session.execute(
        select(BATCHES.c.name, BATCHES.c.state, BATCHES.c.ended_at).where(BATCHES.c.id == batch_id)
    ).first()
    if batch is None:
        return {"object": "batch", "id": batch_id, "expired": True, "links": links}
    rows = session.execute(
        select(JOBS.c.status, func.count(), func.sum(JOBS.c.cost_nusd))
        .select_from(BATCH_ITEMS.join(JOBS, JOBS.c.id == BATCH_ITEMS.c.job_id))
        .where(BATCH_ITEMS.c.batch_id == batch_id)
        .group_by(JOBS.c.status)
    ).all()
    counts = dict.fromkeys(_ENDED, 0)
    cost = 0
    for status, count, spent in rows:
        if status in counts:
            counts[status] = int(count)
        cost += int(spent or 0)
    return {
        "object": "batch",
        "id": batch_id,
        "name": batch.name,
        "state": batch.state,
        "counts": counts,
        "cost_usd": usd_text(cost),
        "ended_at": _when(batch.ended_at),
        "links": links,
    }
