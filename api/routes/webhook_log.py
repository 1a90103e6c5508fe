"""A webhook endpoint's delivery log and replays (/v1/webhooks/{id}/...): ``attempts``, every
HTTP attempt (outcome, status code, latency, error); ``deliveries``, one per event sent or to
send to the endpoint (its state, attempts so far, next attempt); ``replay``. The same words
name them in the client (client.webhooks.attempts/deliveries), the CLI (visionq webhooks
attempts/deliveries) and the schemas (WebhookAttempt, WebhookDelivery). The endpoints
themselves: api/routes/webhooks.py."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request

from visionq.api.deps import ApiResources, Caller, CallerDep, ResourcesDep
from visionq.api.errors import ApiError
from visionq.api.json_body import json_request_body
from visionq.api.openapi import error_responses
from visionq.api.routes.webhooks import EndpointIdPath, endpoint_body_call
from visionq.api.webhook_public import owned
from visionq.api.webhook_schemas import (
    AttemptOutcomeName,
    DeliveryStateName,
    ReplayRequest,
    ReplayResult,
    WebhookAttempt,
    WebhookAttemptPage,
    WebhookDelivery,
    WebhookDeliveryPage,
)
from visionq.models.jobs import InvalidCursorError
from visionq.models.webhook_deliveries import (
    EventNotFound,
    attempts_page,
    deliveries_page,
    replay,
)

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

PAGE_ERRORS = error_responses(400, 401, 404, 422, 503)
REPLAY_ERRORS = error_responses(401, 404, 409, 413, 415, 422, 503)
_REPLAY_EXAMPLE = '{"event_id": "msg_..."} or {"since": "2026-12-05T10:00:00Z"}'
_PAGE_MAX = 200
LimitQuery = Annotated[int, Query(ge=1, le=_PAGE_MAX, description="Page size.")]
CursorQuery = Annotated[
    str | None, Query(max_length=200, description="next_cursor of the previous page.")
]
StateQuery = Annotated[
    DeliveryStateName | None, Query(description="Only deliveries in this state.")
]


def _cursor_error(exc: Exception) -> ApiError:
    return ApiError("invalid_cursor", f"The cursor is invalid ({exc}); start without one.")


@router.get(
    "/{endpoint_id}/attempts",
    response_model=WebhookAttemptPage,
    responses=PAGE_ERRORS,
    summary="The delivery log: every attempt",
)
def read_webhook_attempts(
    *,
    endpoint_id: EndpointIdPath,
    caller: CallerDep,
    resources: ResourcesDep,
    outcome: Annotated[
        AttemptOutcomeName | None,
        Query(description="succeeded, or failed (every other outcome)."),
    ] = None,
    since: Annotated[datetime | None, Query(description="Only attempts from then on.")] = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> WebhookAttemptPage:
    """Every HTTP attempt to this endpoint, newest first: event, attempt number, outcome,
    status code, latency, error, and whether it was a replay."""
    row = owned(resources, caller, endpoint_id)
    with resources.sessions() as session:
        try:
            rows, next_cursor = attempts_page(
                session, tenant=caller.tenant, endpoint_id=row.id, outcome=outcome,
                since=since, cursor=cursor, limit=limit,
            )  # fmt: skip
        except (InvalidCursorError, ValueError) as exc:
            raise _cursor_error(exc) from exc
    return WebhookAttemptPage(data=[_attempt(item) for item in rows], next_cursor=next_cursor)


def _attempt(row: Any) -> WebhookAttempt:
    return WebhookAttempt(
        event_id=row.event_id, event_type=row.event_type, attempt=row.attempt, at=row.at,
        outcome=row.outcome, status_code=row.status_code, latency_ms=row.latency_ms,
        error=row.error, replay=bool(row.replay),
    )  # fmt: skip


@router.get(
    "/{endpoint_id}/deliveries",
    response_model=WebhookDeliveryPage,
    responses=PAGE_ERRORS,
    summary="Deliveries by state",
)
def read_webhook_deliveries(
    *,
    endpoint_id: EndpointIdPath,
    caller: CallerDep,
    resources: ResourcesDep,
    state: StateQuery = None,
    limit: LimitQuery = 50,
    cursor: CursorQuery = None,
) -> WebhookDeliveryPage:
    """One delivery per event sent (or to send) to this endpoint, newest first: its state
    (pending, sending, succeeded, failed, skipped), attempts so far, next attempt (each
    attempt: GET /v1/webhooks/{id}/attempts)."""
    row = owned(resources, caller, endpoint_id)
    with resources.sessions() as session:
        try:
            rows, next_cursor = deliveries_page(
                session, tenant=caller.tenant, endpoint_id=row.id, state=state,
                cursor=cursor, limit=limit,
            )  # fmt: skip
        except (InvalidCursorError, ValueError) as exc:
            raise _cursor_error(exc) from exc
    return WebhookDeliveryPage(
        data=[WebhookDelivery.model_validate(item, from_attributes=True) for item in rows],
        next_cursor=next_cursor,
    )


@router.post(
    "/{endpoint_id}/replay",
    status_code=202,
    response_model=ReplayResult,
    responses=REPLAY_ERRORS,
    openapi_extra=json_request_body(ReplayRequest.model_json_schema()),
    summary="Replay events",
)
async def replay_webhook(
    endpoint_id: EndpointIdPath, request: Request, resources: ResourcesDep
) -> ReplayResult:
    """Send again one event (`event_id`; also one this endpoint never had, if it wants that
    type) or every delivery in `states` (default failed and skipped) since a time. Replayed
    deliveries get a fresh 24 h retry window. 409 webhook_disabled on a disabled endpoint:
    enable it first (PATCH {"enabled": true})."""
    return await endpoint_body_call(
        request, resources, endpoint_id, _replay, ReplayRequest, example=_REPLAY_EXAMPLE
    )


def _replay(
    body: ReplayRequest, caller: Caller, endpoint_id: str, resources: ApiResources
) -> ReplayResult:
    row = owned(resources, caller, endpoint_id)
    if not row.enabled:
        raise ApiError(
            "webhook_disabled",
            f"Webhook endpoint {row.id} is disabled ({row.disabled_reason or 'by you'}); enable "
            "it first (visionq webhooks update ID --enable), then replay.",
        )
    states: tuple[Literal["failed", "skipped"], ...] = tuple(body.states or ("failed", "skipped"))
    with resources.sessions.begin() as session:
        try:
            replayed, more = replay(
                session, tenant=caller.tenant, endpoint_id=row.id, event_id=body.event_id,
                since=body.since, states=states, limit=resources.settings.webhook_replay_max,
            )  # fmt: skip
        except EventNotFound as exc:
            raise ApiError(
                "webhook_event_not_found",
                f"No event {body.event_id!r} of this tenant that this endpoint subscribes to; "
                "event ids are the webhook-id header of a delivery (see GET "
                "/v1/webhooks/{id}/deliveries or visionq webhooks deliveries ID).",
            ) from exc
    return ReplayResult(replayed=replayed, more=more)
