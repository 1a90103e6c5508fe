"""The webhooks visionq sends, described in the OpenAPI document's ``webhooks`` section (3.1),
so that client generators give receivers types: each event's body (worker/webhook_payload.py
builds job and batch data, models/budgets.py budget data) and the Standard Webhooks headers
(worker/webhook_sign.py). Documentation only: nothing here serves a request."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import FastAPI, Header, Response
from pydantic import BaseModel, Field

_TIMESTAMP = "When the event happened: ISO 8601 UTC, e.g. 2026-12-05T10:00:00.123456Z."
_EXPIRED = (
    "true when retention deleted the subject before the event was first sent: only the id, "
    "the status (jobs) and links are given."
)


class JobEventError(BaseModel):
    code: str = Field(description="The job's error code, as in GET /v1/jobs/{id}.")
    message: str


class JobEventBatch(BaseModel):
    id: str = Field(description="The batch the job is an item of.")
    item_key: str


class JobEventData(BaseModel):
    """A job's end: its status, cost, error, batch item and link, and its result when the
    endpoint wants results and the result's JSON fits VISIONQ_WEBHOOK_RESULT_MAX_BYTES."""

    object: Literal["job"]
    id: str
    status: Literal["succeeded", "failed", "cancelled"]
    task: str | None = None
    model: str | None = None
    tier: str | None = None
    served_tier: str | None = None
    created_at: str | None = None
    finished_at: str | None = None
    cost_usd: str | None = Field(default=None, description="Exact decimal USD, e.g. 0.000123.")
    error: JobEventError | None = None
    batch: JobEventBatch | None = None
    links: dict[str, str] = Field(
        description='{"self": ".../v1/jobs/ID"} (absolute with VISIONQ_PUBLIC_URL).'
    )
    result_included: bool = Field(description="Whether `result` is in this body.")
    result: Any = Field(default=None, description="The job's result as GET /v1/jobs/{id} shows it.")
    expired: bool = Field(default=False, description=_EXPIRED)


class BatchEventCounts(BaseModel):
    succeeded: int
    failed: int
    cancelled: int


class BatchEventData(BaseModel):
    """A closed or cancelled batch whose every item's job ended (again after a re-run)."""

    object: Literal["batch"]
    id: str
    name: str | None = None
    state: str | None = Field(default=None, description="closed or cancelled.")
    counts: BatchEventCounts | None = None
    cost_usd: str | None = None
    ended_at: str | None = None
    links: dict[str, str] = Field(
        description='{"self": ".../v1/batches/ID", "items": ".../v1/batches/ID/items"}.'
    )
    expired: bool = Field(default=False, description=_EXPIRED)


class BudgetEventData(BaseModel):
    """A tenant's spending crossed an alert ratio of a cap (once per ratio and period)."""

    object: Literal["budget"]
    tenant: str
    period: Literal["day", "month"]
    period_key: str = Field(description="The UTC day (2026-12-05) or month (2026-12).")
    ratio: float = Field(description="The alert ratio reached (visionq budgets set --alert-at).")
    spent_usd: str = Field(description="Spent in the period when it was crossed.")
    cap_usd: str = Field(description="The period's cap.")


class JobEvent(BaseModel):
    type: Literal["job.succeeded", "job.failed", "job.cancelled"]
    timestamp: str = Field(description=_TIMESTAMP)
    data: JobEventData


class BatchEvent(BaseModel):
    type: Literal["batch.completed"]
    timestamp: str = Field(description=_TIMESTAMP)
    data: BatchEventData


class BudgetEvent(BaseModel):
    type: Literal["budget.threshold"]
    timestamp: str = Field(description=_TIMESTAMP)
    data: BudgetEventData


WebhookId = Annotated[
    str,
    Header(
        description="The event's id (msg_...): the same on every attempt, replay and "
        "endpoint; deduplicate on it."
    ),
]
WebhookTimestamp = Annotated[str, Header(description="The attempt's Unix time, in seconds.")]
WebhookSignature = Annotated[
    str,
    Header(
        description="v1,<base64 HMAC-SHA256 of id.timestamp.body> with the endpoint's "
        "secret (Standard Webhooks); two, space-separated, during a rotation's grace."
    ),
]
_ANSWER: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Any 2xx, quickly: received. Anything else, a timeout or a "
        "connection error is retried (README Webhooks, Retries); 410 disables the endpoint."
    }
}


def job_event(
    event: JobEvent,
    webhook_id: WebhookId,
    webhook_timestamp: WebhookTimestamp,
    webhook_signature: WebhookSignature,
) -> None:
    """A job ended (worker, watchdog, cancel or cache hit)."""


def batch_event(
    event: BatchEvent,
    webhook_id: WebhookId,
    webhook_timestamp: WebhookTimestamp,
    webhook_signature: WebhookSignature,
) -> None:
    """A closed or cancelled batch's items all ended."""


def budget_event(
    event: BudgetEvent,
    webhook_id: WebhookId,
    webhook_timestamp: WebhookTimestamp,
    webhook_signature: WebhookSignature,
) -> None:
    """A tenant's day or month spending crossed an alert ratio of its cap."""


def describe_webhooks(app: FastAPI) -> None:
    """Add every event type visionq POSTs to ``app``'s OpenAPI ``webhooks`` section."""
    for event_type, endpoint in (
        ("job.succeeded", job_event),
        ("job.failed", job_event),
        ("job.cancelled", job_event),
        ("batch.completed", batch_event),
        ("budget.threshold", budget_event),
    ):
        app.webhooks.add_api_route(
            event_type,
            endpoint,
            methods=["POST"],
            name=event_type.replace(".", "_"),
            summary=f"{event_type} (sent by visionq to your endpoint)",
            response_class=Response,
            responses=_ANSWER,
            status_code=200,
            # The event type as operation id, as the routes' are their functions' names.
            generate_unique_id_function=lambda route: route.name,
        )
