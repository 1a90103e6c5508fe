"""The webhook endpoints of a tenant (/v1/webhooks): CRUD, the signing secret and its
rotation. Their attempts, deliveries and replays: api/routes/webhook_log.py. Delivery itself
is the worker's (worker/webhook_send.py); the rows are models/webhook_endpoints.py's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Path, Request, Response
from fastapi.concurrency import run_in_threadpool

from visionq.api.deps import ApiResources, Caller, CallerDep, ResourcesDep
from visionq.api.errors import ApiError
from visionq.api.json_body import Model, json_request_body, read_json_model
from visionq.api.openapi import error_responses
from visionq.api.webhook_check import checked_url, event_types
from visionq.api.webhook_public import (
    caller_of,
    endpoint_id_of,
    endpoint_public,
    not_found,
    owned,
)
from visionq.api.webhook_schemas import (
    RotateRequest,
    WebhookCreate,
    WebhookCreated,
    WebhookEndpoint,
    WebhookList,
    WebhookSecret,
    WebhookUpdate,
)
from visionq.models import webhook_endpoints as endpoints

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

CREATE_ERRORS = error_responses(401, 409, 413, 415, 422, 503)
LIST_ERRORS = error_responses(401, 503)
READ_ERRORS = error_responses(401, 404, 422, 503)
UPDATE_ERRORS = error_responses(401, 404, 413, 415, 422, 503)
# 409 webhook_callbacks_endpoint: the callbacks endpoint is neither deleted nor disabled.
PATCH_ERRORS = error_responses(401, 404, 409, 413, 415, 422, 503)
DELETE_ERRORS = error_responses(401, 404, 409, 422, 503)
EndpointIdPath = Annotated[str, Path(description="The endpoint's id (a UUID), as created.")]
_CREATE_EXAMPLE = '{"url": "https://example.com/hooks", "events": ["job.succeeded"]}'
_UPDATE_EXAMPLE = '{"enabled": true}'
_ROTATE_EXAMPLE = '{"grace_s": 86400} (or no body: the default grace)'
Answer = TypeVar("Answer")


async def endpoint_body_call(
    request: Request,
    resources: ApiResources,
    endpoint_id: str,
    handler: Callable[[Model, Caller, str, ApiResources], Answer],
    body_model: type[Model],
    *,
    example: str,
    empty_is_default: bool = False,
) -> Answer:
    """The opening of a route on one endpoint that reads a JSON body: the caller (401
    first), the endpoint id (404), the body (413/415/422, see read_json_model), then
    ``handler(body, caller, endpoint_id, resources)`` in the thread pool."""
    caller = await run_in_threadpool(caller_of, request, resources)
    full_id = endpoint_id_of(endpoint_id)
    body = await read_json_model(
        request, resources.settings, body_model, example=example, empty_is_default=empty_is_default
    )
    return await run_in_threadpool(handler, body, caller, full_id, resources)


def _public(resources: ApiResources, row: endpoints.EndpointRow) -> WebhookEndpoint:
    with resources.sessions() as session:
        return endpoint_public(session, row)


@router.post(
    "",
    status_code=201,
    response_model=WebhookCreated,
    responses=CREATE_ERRORS,
    openapi_extra=json_request_body(WebhookCreate.model_json_schema()),
    summary="Create a webhook endpoint",
)
async def create_webhook(
    request: Request, response: Response, resources: ResourcesDep
) -> WebhookCreated:
    """A new endpoint receiving the events listed (signed per Standard Webhooks with the
    secret in the answer, shown again by GET /v1/webhooks/{id}/secret). The URL is checked
    by the SSRF rules of image URLs (422 url_*); at most VISIONQ_WEBHOOK_MAX_ENDPOINTS per
    tenant (409 webhook_limit)."""
    caller = await run_in_threadpool(caller_of, request, resources)
    body = await read_json_model(
        request, resources.settings, WebhookCreate, example=_CREATE_EXAMPLE
    )
    return await run_in_threadpool(_create, body, caller, resources, response)


def _create(
    body: WebhookCreate, caller: Caller, resources: ApiResources, response: Response
) -> WebhookCreated:
    events = event_types(body.events)
    url = checked_url(body.url, resources.settings)
    limit = resources.settings.webhook_max_endpoints
    try:
        with resources.sessions.begin() as session:
            row, secret = endpoints.create_endpoint(
                session, tenant=caller.tenant, url=url, events=events,
                description=body.description, include_result=body.include_result,
                max_endpoints=limit,
            )  # fmt: skip
    except endpoints.EndpointLimit as exc:
        raise ApiError(
            "webhook_limit",
            f"This tenant has {limit} webhook endpoints, the limit "
            "(VISIONQ_WEBHOOK_MAX_ENDPOINTS); delete one (visionq webhooks delete ID) or "
            "subscribe an existing one to more events.",
        ) from exc
    response.headers["Location"] = f"/v1/webhooks/{row.id}"
    return WebhookCreated(**_public(resources, row).model_dump(), secret=secret)


@router.get("", response_model=WebhookList, responses=LIST_ERRORS, summary="List webhook endpoints")
def read_webhooks(caller: CallerDep, resources: ResourcesDep) -> WebhookList:
    """The tenant's endpoints, oldest first (the callbacks endpoint: GET
    /v1/webhooks/callbacks)."""
    with resources.sessions() as session:
        rows = endpoints.list_endpoints(session, caller.tenant)
        return WebhookList(data=[endpoint_public(session, row) for row in rows])


@router.get(
    "/callbacks",
    response_model=WebhookEndpoint,
    responses=LIST_ERRORS,
    summary="The callbacks endpoint",
)
def read_callbacks(caller: CallerDep, resources: ResourcesDep) -> WebhookEndpoint:
    """The endpoint that signs and logs the deliveries to per-job and per-batch
    `webhook_url`s (created on first use). Its secret: GET /v1/webhooks/{id}/secret."""
    with resources.sessions.begin() as session:
        row = endpoints.callbacks_endpoint(session, caller.tenant)
    return _public(resources, row)


@router.get(
    "/{endpoint_id}",
    response_model=WebhookEndpoint,
    responses=READ_ERRORS,
    summary="Read a webhook endpoint",
)
def read_webhook(
    endpoint_id: EndpointIdPath, caller: CallerDep, resources: ResourcesDep
) -> WebhookEndpoint:
    """The endpoint with its delivery health: failing since, consecutive failures, last
    error, pending and failed deliveries, and why it was disabled if it was."""
    return _public(resources, owned(resources, caller, endpoint_id))


@router.patch(
    "/{endpoint_id}",
    response_model=WebhookEndpoint,
    responses=PATCH_ERRORS,
    openapi_extra=json_request_body(WebhookUpdate.model_json_schema()),
    summary="Change a webhook endpoint",
)
async def update_webhook(
    endpoint_id: EndpointIdPath, request: Request, resources: ResourcesDep
) -> WebhookEndpoint:
    """Change any of url, events, description, include_result, enabled. `enabled: true`
    re-enables a disabled endpoint and clears its failing state (replay what it missed with
    POST /v1/webhooks/{id}/replay). The callbacks endpoint cannot be disabled (409
    webhook_callbacks_endpoint)."""
    return await endpoint_body_call(
        request, resources, endpoint_id, _update, WebhookUpdate, example=_UPDATE_EXAMPLE,
        empty_is_default=True,
    )  # fmt: skip


def _update(
    body: WebhookUpdate, caller: Caller, endpoint_id: str, resources: ApiResources
) -> WebhookEndpoint:
    current = owned(resources, caller, endpoint_id)
    if current.kind != "endpoint" and body.enabled is False:
        raise _callbacks_fixed("disabled")
    if current.kind != "endpoint" and (body.url is not None or body.events is not None):
        raise ApiError(
            "invalid_request",
            "The callbacks endpoint has no URL or events of its own: each job or batch names "
            "its webhook_url. Create an endpoint (POST /v1/webhooks) to subscribe to events.",
        )
    events = None if body.events is None else event_types(body.events)
    url = None if body.url is None else checked_url(body.url, resources.settings)
    with resources.sessions.begin() as session:
        row = endpoints.update_endpoint(
            session, caller.tenant, endpoint_id, url=url, events=events,
            description=body.description, include_result=body.include_result,
            enabled=body.enabled,
        )  # fmt: skip
    if row is None:
        raise not_found(endpoint_id)
    return _public(resources, row)


@router.delete(
    "/{endpoint_id}",
    status_code=204,
    response_class=Response,
    responses=DELETE_ERRORS,
    summary="Delete a webhook endpoint",
)
def delete_webhook(
    endpoint_id: EndpointIdPath, caller: CallerDep, resources: ResourcesDep
) -> Response:
    """Delete the endpoint with its secrets, deliveries and delivery log; its pending
    deliveries are not sent. The callbacks endpoint cannot be deleted (409
    webhook_callbacks_endpoint)."""
    full_id = endpoint_id_of(endpoint_id)
    if owned(resources, caller, full_id).kind != "endpoint":
        raise _callbacks_fixed("deleted")
    with resources.sessions.begin() as session:
        deleted = endpoints.delete_endpoint(session, caller.tenant, full_id)
    if not deleted:
        raise not_found(endpoint_id)
    return Response(status_code=204)


def _callbacks_fixed(what: str) -> ApiError:
    return ApiError(
        "webhook_callbacks_endpoint",
        f"The callbacks endpoint cannot be {what}: it signs the callbacks to your jobs' and "
        "batches' webhook_url, so its pending callbacks would be lost and your receivers' "
        "secret would change. Rotate its secret (visionq webhooks rotate ID) or submit jobs "
        "without webhook_url.",
    )


@router.get(
    "/{endpoint_id}/secret",
    response_model=WebhookSecret,
    responses=READ_ERRORS,
    summary="Read an endpoint's signing secret",
)
def read_webhook_secret(
    endpoint_id: EndpointIdPath, caller: CallerDep, resources: ResourcesDep
) -> WebhookSecret:
    """The current signing secret (whsec_...), and until when the previous one still signs
    after a rotation."""
    row = owned(resources, caller, endpoint_id)
    with resources.sessions() as session:
        secret = endpoints.current_secret(session, row.id)
        shown = endpoint_public(session, row)
    return WebhookSecret(secret=secret, previous_expires_at=shown.previous_secret_expires_at)


@router.post(
    "/{endpoint_id}/rotate",
    response_model=WebhookSecret,
    responses=UPDATE_ERRORS,
    openapi_extra=json_request_body(RotateRequest.model_json_schema(), required=False),
    summary="Rotate an endpoint's signing secret",
)
async def rotate_webhook_secret(
    endpoint_id: EndpointIdPath, request: Request, resources: ResourcesDep
) -> WebhookSecret:
    """A new signing secret. The previous one signs too for `grace_s` seconds (default
    VISIONQ_WEBHOOK_ROTATION_GRACE_S): every delivery carries both signatures, so receivers
    can switch secrets without losing an event."""
    return await endpoint_body_call(
        request, resources, endpoint_id, _rotate, RotateRequest, example=_ROTATE_EXAMPLE,
        empty_is_default=True,
    )  # fmt: skip


def _rotate(
    body: RotateRequest, caller: Caller, endpoint_id: str, resources: ApiResources
) -> WebhookSecret:
    row = owned(resources, caller, endpoint_id)
    grace = resources.settings.webhook_rotation_grace_s if body.grace_s is None else body.grace_s
    with resources.sessions.begin() as session:
        secret, previous_expires_at = endpoints.rotate_secret(session, row.id, grace_s=grace)
    return WebhookSecret(secret=secret, previous_expires_at=previous_expires_at)
