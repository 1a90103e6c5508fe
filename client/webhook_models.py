"""The webhook routes' JSON bodies as the client sees them (api/webhook_schemas.py's answers;
unknown fields are kept, not refused, so an older client reads a newer server)."""

from __future__ import annotations

from datetime import datetime

from visionq.client.models import _Body


class WebhookEndpoint(_Body):
    id: str
    kind: str = "endpoint"
    url: str | None = None
    events: list[str]
    description: str | None = None
    include_result: bool = True
    enabled: bool = True
    disabled_at: datetime | None = None
    disabled_reason: str | None = None
    failing_since: datetime | None = None
    consecutive_failures: int = 0
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None
    last_error: str | None = None
    pending: int = 0
    failed_24h: int = 0
    created_at: datetime
    updated_at: datetime
    secret_rotated_at: datetime | None = None
    previous_secret_expires_at: datetime | None = None


class WebhookCreated(WebhookEndpoint):
    # Shown at create (and by WebhookClient.secret): verify deliveries with it.
    secret: str


class WebhookSecret(_Body):
    secret: str
    previous_expires_at: datetime | None = None


class ReplayResult(_Body):
    replayed: int
    more: bool = False


class WebhookAttempt(_Body):
    """One HTTP try of a delivery (the delivery log)."""

    event_id: str
    event_type: str
    attempt: int
    at: datetime
    outcome: str
    status_code: int | None = None
    latency_ms: int | None = None
    error: str | None = None
    replay: bool = False


class WebhookAttemptPage(_Body):
    data: list[WebhookAttempt]
    next_cursor: str | None = None


class WebhookDelivery(_Body):
    """One event's delivery to an endpoint: its state and retries."""

    id: int
    event_id: str
    event_type: str
    url: str
    state: str
    attempts: int = 0
    replays: int = 0
    next_attempt_at: datetime | None = None
    last_status: int | None = None
    last_error: str | None = None
    created_at: datetime
    succeeded_at: datetime | None = None


class WebhookDeliveryPage(_Body):
    data: list[WebhookDelivery]
    next_cursor: str | None = None
