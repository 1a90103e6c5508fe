"""The webhook routes' lookups: the caller, an endpoint id from a path and the caller's
endpoint of that id (404 otherwise), and an endpoint as the API shows it (its row with its
pending and recently failed deliveries and its secret rotation)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import cast

from fastapi import Request
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from visionq.api.deps import ApiResources, Caller, authenticate_caller
from visionq.api.errors import ApiError
from visionq.api.webhook_schemas import EndpointKindName, WebhookEndpoint
from visionq.models.table_base import utcnow
from visionq.models.webhook_endpoints import EndpointRow, get_endpoint
from visionq.models.webhook_tables import WEBHOOK_DELIVERIES, WEBHOOK_SECRETS

_SHOWN = 64


def caller_of(request: Request, resources: ApiResources) -> Caller:
    """The caller of a route that reads its body by hand (authenticated before reading)."""
    with resources.sessions() as session:
        return authenticate_caller(request, session)


def not_found(endpoint_id: str) -> ApiError:
    """The 404 for an endpoint id the caller's tenant has no endpoint under."""
    return ApiError(
        "webhook_not_found",
        f"No webhook endpoint {endpoint_id[:_SHOWN]!r} for this tenant; list yours with "
        "GET /v1/webhooks (visionq webhooks list).",
    )


def endpoint_id_of(value: str) -> str:
    """The endpoint id of a path, or 404: anything but a UUID names no endpoint (and never
    reaches the database)."""
    try:
        return str(uuid.UUID(value))
    except ValueError as exc:
        raise not_found(value) from exc


def owned(resources: ApiResources, caller: Caller, endpoint_id: str) -> EndpointRow:
    """The caller's endpoint of that id, or 404 (another tenant's id too)."""
    full_id = endpoint_id_of(endpoint_id)
    with resources.sessions() as session:
        row = get_endpoint(session, caller.tenant, full_id)
    if row is None:
        raise not_found(endpoint_id)
    return row


def endpoint_public(session: Session, row: EndpointRow) -> WebhookEndpoint:
    """``row`` as the API shows it, with its pending and last-24-hours failed deliveries
    and when its secret was last rotated (three indexed queries of one endpoint)."""
    now = utcnow()
    deliveries = WEBHOOK_DELIVERIES.c
    pending = session.scalar(
        select(func.count())
        .select_from(WEBHOOK_DELIVERIES)
        .where(deliveries.endpoint_id == row.id, deliveries.state.in_(("pending", "sending")))
    )
    failed = session.scalar(
        select(func.count())
        .select_from(WEBHOOK_DELIVERIES)
        .where(
            deliveries.endpoint_id == row.id,
            deliveries.state == "failed",
            deliveries.updated_at >= now - timedelta(days=1),
        )
    )
    secrets = WEBHOOK_SECRETS.c
    rows = session.execute(
        select(secrets.created_at, secrets.expires_at)
        .where(secrets.endpoint_id == row.id)
        .order_by(secrets.created_at.desc(), secrets.id.desc())
    ).all()
    current = [secret for secret in rows if secret.expires_at is None]
    previous = [secret.expires_at for secret in rows if secret.expires_at is not None]
    live_previous = [expires for expires in previous if expires > now]
    return WebhookEndpoint(
        id=row.id, kind=cast(EndpointKindName, row.kind), url=row.url, events=list(row.events),
        description=row.description, include_result=row.include_result, enabled=row.enabled,
        disabled_at=row.disabled_at, disabled_reason=row.disabled_reason,
        failing_since=row.failing_since, consecutive_failures=row.consecutive_failures,
        last_success_at=row.last_success_at, last_failure_at=row.last_failure_at,
        last_error=row.last_error, pending=pending or 0, failed_24h=failed or 0,
        created_at=row.created_at, updated_at=row.updated_at,
        secret_rotated_at=current[0].created_at if current and previous else None,
        previous_secret_expires_at=max(live_previous) if live_previous else None,
    )  # fmt: skip
