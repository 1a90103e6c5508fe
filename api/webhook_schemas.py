"""Request and answer bodies of the webhook routes (/v1/webhooks...): endpoints, their secret,
the delivery log, the deliveries by state and replay."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from visionq.api.batch_schemas import text_problem
from visionq.api.schemas import NextCursor
from visionq.models.table_base import URL_MAX_CHARS

EVENT_TYPES: tuple[str, ...] = (
    "job.succeeded",
    "job.failed",
    "job.cancelled",
    "batch.completed",
    "budget.threshold",
)
EndpointKindName = Literal["endpoint", "callbacks"]
DeliveryStateName = Literal["pending", "sending", "succeeded", "failed", "skipped"]
AttemptOutcomeName = Literal["succeeded", "failed"]
DESCRIPTION_MAX_CHARS = 200
# Seven days: the longest both secrets may stay valid after a rotation.
GRACE_MAX_S = 604_800

# The OpenAPI document lists the event types; the route checks them (unknown_event_type).
_EVENTS_SCHEMA: dict[str, Any] = {"items": {"type": "string", "enum": list(EVENT_TYPES)}}
_URL_DESCRIPTION = (
    "Where the events are POSTed: an http(s) URL (https required when the server sets "
    "VISIONQ_WEBHOOK_REQUIRE_HTTPS). Checked by the same SSRF rules as image URLs (a private "
    "or unresolvable host is refused with 422 url_host_not_allowed / url_unresolvable), "
    "again at every delivery."
)


def _printable(value: str | None, what: str) -> str | None:
    problem = None if value is None else text_problem(value)
    if problem is not None:
        raise ValueError(f"{what} {problem}")
    return value


def _unique_events(events: list[str] | None) -> list[str] | None:
    if events is not None and len(set(events)) != len(events):
        raise ValueError("events must not repeat an event type")
    return events


class _EndpointBody(BaseModel):
    """The checks WebhookCreate and WebhookUpdate share (their fields differ in defaults, so
    each declares its own; check_fields=False lets these validators name them)."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("url", "description", check_fields=False)
    @classmethod
    def _text_ok(cls, value: str | None) -> str | None:
        return _printable(value, "the text")

    @field_validator("events", check_fields=False)
    @classmethod
    def _events_once(cls, value: list[str] | None) -> list[str] | None:
        return _unique_events(value)


class WebhookCreate(_EndpointBody):
    """A new endpoint of the caller's tenant."""

    url: str = Field(min_length=1, max_length=URL_MAX_CHARS, description=_URL_DESCRIPTION)
    events: list[str] = Field(
        min_length=1,
        description="The event types sent to this endpoint (at least one; an unknown one is "
        "422 unknown_event_type).",
        json_schema_extra=_EVENTS_SCHEMA,
    )
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX_CHARS)
    include_result: bool = Field(
        default=True,
        description="Put a job's result in job.* payloads when it is small enough "
        "(VISIONQ_WEBHOOK_RESULT_MAX_BYTES); otherwise only a link.",
    )


class WebhookUpdate(_EndpointBody):
    """Fields to change; those left out (or null) stay as they are."""

    url: str | None = Field(
        default=None, min_length=1, max_length=URL_MAX_CHARS, description=_URL_DESCRIPTION
    )
    events: list[str] | None = Field(
        default=None,
        min_length=1,
        description="Replaces the event types (at least one).",
        json_schema_extra=_EVENTS_SCHEMA,
    )
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX_CHARS)
    include_result: bool | None = None
    enabled: bool | None = Field(
        default=None,
        description="false pauses deliveries (events are recorded as skipped, replayable); "
        "true re-enables a disabled endpoint and clears its failing state.",
    )


class WebhookEndpoint(BaseModel):
    """An endpoint: where its events go, which ones, and how its deliveries are doing."""

    id: str
    kind: EndpointKindName = Field(
        description="endpoint (created by you) or callbacks (the signer and delivery log "
        "of per-job and per-batch webhook_url callbacks; one per tenant, url null)."
    )
    url: str | None
    events: list[str]
    description: str | None
    include_result: bool
    enabled: bool
    disabled_at: datetime | None
    disabled_reason: str | None = Field(
        description="Why deliveries stopped (e.g. every delivery failed for 24 h, or the "
        'receiver answered 410); re-enable with PATCH {"enabled": true}.'
    )
    failing_since: datetime | None = Field(
        description="Set while deliveries fail: the first failure since the last success."
    )
    consecutive_failures: int
    last_success_at: datetime | None
    last_failure_at: datetime | None
    last_error: str | None
    pending: int = Field(description="Deliveries waiting to be sent or retried.")
    failed_24h: int = Field(description="Deliveries that ended failed in the last 24 hours.")
    created_at: datetime
    updated_at: datetime
    secret_rotated_at: datetime | None = Field(
        description="When the current secret replaced another (null: never rotated, or the "
        "previous secret expired over a day ago)."
    )
    previous_secret_expires_at: datetime | None = Field(
        description="Until then the previous secret signs too (both signatures are sent)."
    )


class WebhookCreated(WebhookEndpoint):
    secret: str = Field(
        description="The signing secret (whsec_...): verify each delivery's "
        "webhook-signature with it (Standard Webhooks)."
    )


class WebhookList(BaseModel):
    data: list[WebhookEndpoint]


class WebhookSecret(BaseModel):
    secret: str = Field(description="The current signing secret (whsec_...).")
    previous_expires_at: datetime | None = Field(
        default=None,
        description="After a rotation: until then the previous secret signs too.",
    )


class RotateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_s: int | None = Field(
        default=None,
        ge=0,
        le=GRACE_MAX_S,
        strict=True,
        description="Seconds the previous secret still signs (default "
        "VISIONQ_WEBHOOK_ROTATION_GRACE_S); 0 retires it at once.",
    )


class ReplayRequest(BaseModel):
    """Replay one event (``event_id``) or the deliveries in ``states`` since a time."""

    model_config = ConfigDict(extra="forbid")

    event_id: str | None = Field(
        default=None, min_length=1, max_length=40, pattern=r"^msg_[A-Za-z0-9_-]{1,36}$"
    )
    since: datetime | None = None
    states: list[Literal["failed", "skipped"]] | None = Field(
        default=None, min_length=1, description="With since: default failed and skipped."
    )

    @model_validator(mode="after")
    def _one_selector(self) -> ReplayRequest:
        if (self.event_id is None) == (self.since is None):
            raise ValueError("give exactly one of event_id or since")
        if self.states is not None and self.event_id is not None:
            raise ValueError("states goes with since, not with event_id")
        return self


class ReplayResult(BaseModel):
    replayed: int = Field(description="Deliveries set to be sent again.")
    more: bool = Field(
        description="More matched than one call replays (VISIONQ_WEBHOOK_REPLAY_MAX): call again."
    )


class WebhookAttempt(BaseModel):
    """One HTTP try of a delivery (the delivery log)."""

    event_id: str
    event_type: str
    attempt: int
    at: datetime
    outcome: str = Field(
        description="succeeded, http_error, timeout, network_error, refused (SSRF rules), "
        "gone (410), lost (no worker finished the attempt) or internal_error (visionq could "
        "not prepare the request)."
    )
    status_code: int | None
    latency_ms: int | None
    error: str | None
    replay: bool


class WebhookAttemptPage(BaseModel):
    data: list[WebhookAttempt]
    next_cursor: NextCursor


class WebhookDelivery(BaseModel):
    """One event's delivery to this endpoint: its state and retries."""

    id: int
    event_id: str
    event_type: str
    url: str
    state: str
    attempts: int
    replays: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    created_at: datetime
    succeeded_at: datetime | None


class WebhookDeliveryPage(BaseModel):
    data: list[WebhookDelivery]
    next_cursor: NextCursor
