"""The tables of webhooks (issue 21): a tenant's endpoints and their signing secrets, the
outbox of events (written in the transaction that made each happen), one delivery per
(event, endpoint) carrying the retry state, and one attempt row per HTTP try (the log).
Re-exported by models/tables.py, the one place code imports tables from."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column

from visionq.models.table_base import URL_MAX_CHARS, Base, utcnow


class EndpointKind(enum.StrEnum):
    ENDPOINT = "endpoint"  # made by the tenant (CRUD), with its own URL
    CALLBACKS = "callbacks"  # one per tenant: signs per-job / per-batch callback URLs


class DisabledBy(enum.StrEnum):
    """Who disabled an endpoint: its tenant on purpose (paused, no alert) or visionq after
    failed deliveries or a 410 (an incident: VisionqWebhookEndpointDisabled)."""

    TENANT = "tenant"
    VISIONQ = "visionq"


class WebhookEndpoint(Base):
    """Where a tenant wants events sent, which ones (``events``, and the same as bits in
    ``event_mask`` for SQL), and its health: failing since when, disabled and why."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_tenant", "tenant", "kind"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(
        String(16), default=EndpointKind.ENDPOINT, server_default=EndpointKind.ENDPOINT.value
    )
    # NULL for the callbacks endpoint: each of its deliveries carries its own URL.
    url: Mapped[str | None] = mapped_column(String(URL_MAX_CHARS), default=None)
    description: Mapped[str | None] = mapped_column(String(200), default=None)
    events: Mapped[list[str]] = mapped_column(JSON)
    event_mask: Mapped[int] = mapped_column(Integer)
    include_result: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    disabled_at: Mapped[datetime | None] = mapped_column(default=None)
    disabled_reason: Mapped[str | None] = mapped_column(Text, default=None)
    # A DisabledBy value while disabled, else NULL (the gauge tells paused from disabled).
    disabled_by: Mapped[str | None] = mapped_column(String(16), default=None)
    failing_since: Mapped[datetime | None] = mapped_column(default=None)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_success_at: Mapped[datetime | None] = mapped_column(default=None)
    last_failure_at: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookSecret(Base):
    """A signing secret of an endpoint: the current one has ``expires_at`` NULL; a rotated
    one keeps signing until ``expires_at`` (both signatures are sent meanwhile)."""

    __tablename__ = "webhook_secrets"
    __table_args__ = (Index("ix_webhook_secrets_endpoint", "endpoint_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    secret: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)


class WebhookEvent(Base):
    """The outbox: one row per thing that happened. ``id`` is the Standard Webhooks
    ``webhook-id`` (the same for every attempt, endpoint and replay: receivers deduplicate
    on it). ``payload`` is frozen at the first send; ``fanned_out_at`` set once the relay
    made its deliveries."""

    __tablename__ = "webhook_events"
    __table_args__ = (
        Index("ix_webhook_events_fanout", "fanned_out_at", "occurred_at"),
        Index("ix_webhook_events_tenant", "tenant", "occurred_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(100))
    type: Mapped[str] = mapped_column(String(32))
    # The job or batch id, or the budget's tenant for budget.threshold.
    subject_id: Mapped[str] = mapped_column(String(36))
    callback_url: Mapped[str | None] = mapped_column(String(URL_MAX_CHARS), default=None)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    payload: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    fanned_out_at: Mapped[datetime | None] = mapped_column(default=None)


class WebhookDelivery(Base):
    """One event to one endpoint: the retry state machine (pending → sending → succeeded,
    or back to pending with ``next_attempt_at``; failed past the window; skipped while the
    endpoint is disabled). ``claim`` fences the sender holding it."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "endpoint_id", name="uq_webhook_deliveries_event_endpoint"),
        Index("ix_webhook_deliveries_state_next", "state", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", "state", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("webhook_events.id", ondelete="CASCADE"))
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(URL_MAX_CHARS))
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    replays: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column()
    window_started_at: Mapped[datetime] = mapped_column()
    claim: Mapped[str | None] = mapped_column(String(32), default=None)
    claim_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    last_status: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    succeeded_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookAttempt(Base):
    """One HTTP try of a delivery: the log a tenant reads (endpoint and event denormalised
    so the log is one indexed query)."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (
        Index("ix_webhook_attempts_endpoint", "endpoint_id", "started_at"),
        # The cascade from a deleted delivery (retention, a deleted endpoint) finds its
        # attempts by this; without it every deleted delivery scans the log.
        Index("ix_webhook_attempts_delivery", "delivery_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE")
    )
    endpoint_id: Mapped[str] = mapped_column(String(36))
    event_id: Mapped[str] = mapped_column(String(40))
    attempt: Mapped[int] = mapped_column(Integer)
    replay: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    started_at: Mapped[datetime] = mapped_column()
    latency_ms: Mapped[int | None] = mapped_column(Integer, default=None)
    outcome: Mapped[str] = mapped_column(String(16))
    status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    error: Mapped[str | None] = mapped_column(String(500), default=None)


WEBHOOK_ENDPOINTS = cast(Table, WebhookEndpoint.__table__)
WEBHOOK_SECRETS = cast(Table, WebhookSecret.__table__)
WEBHOOK_EVENTS = cast(Table, WebhookEvent.__table__)
WEBHOOK_DELIVERIES = cast(Table, WebhookDelivery.__table__)
WEBHOOK_ATTEMPTS = cast(Table, WebhookAttempt.__table__)
