"""Adding items to a batch, and asking which it has: POST /v1/batches/{id}/items and
/lookup. The work is in api/batch_intake.py; the body reader in api/batch_body.py."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool

from visionq.api.batch_body import MAX_ITEMS_FIELD_BYTES, read_items_request
from visionq.api.batch_ids import batch_id_of
from visionq.api.batch_intake import add_items, lookup
from visionq.api.batch_schemas import BatchLookup, BatchLookupResult, ItemsAdd, ItemsAdded
from visionq.api.deps import CallerDep, ResourcesDep
from visionq.api.json_body import json_request_body, read_json_model
from visionq.api.openapi import error_responses, inline_refs
from visionq.api.submission import authorize_batch

router = APIRouter(prefix="/v1/batches", tags=["batches"])

ADD_ERRORS = error_responses(400, 401, 402, 404, 409, 413, 415, 422, 429, 503, 507, tiers=True)
LOOKUP_ERRORS = error_responses(401, 404, 413, 415, 422, 503)
BatchIdPath = Annotated[str, Path(description="The batch's id (a UUID), as created.")]


_MULTIPART_SCHEMA = {
    "type": "object",
    "required": ["items"],
    "additionalProperties": False,
    "properties": {
        "items": {
            "type": "string",
            "description": 'The items as JSON text, as the JSON body: {"items": [{"key": '
            '"a.jpg", "images": [{"part": 0}]}]}; images as {"part": N} (the N-th `image` '
            f'part, from 0), {{"url": ...}} or {{"sha256": ...}}. At most '
            f"{MAX_ITEMS_FIELD_BYTES // (1024 * 1024)} MB.",
        },
        "image": {
            "type": "array",
            "items": {"type": "string", "format": "binary"},
            "description": "The image files the items refer to by index.",
        },
    },
}
ADD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": inline_refs(ItemsAdd.model_json_schema())},
            "multipart/form-data": {"schema": _MULTIPART_SCHEMA},
        },
    }
}


@router.post(
    "/{batch_id}/items",
    response_model=ItemsAdded,
    responses=ADD_ERRORS,
    openapi_extra=ADD_BODY,
    summary="Add items to a batch",
)
async def add_batch_items(
    batch_id: BatchIdPath, request: Request, resources: ResourcesDep
) -> ItemsAdded:
    """Add up to VISIONQ_BATCH_MAX_ITEMS_PER_ADD items, each a job as POST /v1/jobs makes
    it (the batch's defaults, overridden by the item's fields). Answers 200 with one
    outcome per item, in order: `created` (its job), `exists` (the key was added before:
    its job, nothing new; so an interrupted upload is resumed by adding again) or
    `rejected` (the error a single submit would answer; the other items are added).

    Images: multipart `image` parts referred to by index, base64 data (JSON bodies), URLs,
    or the sha256 of an image a job of the caller's tenant already has (nothing is uploaded).
    The whole call fails, adding nothing, on 402 (budget), 409 (batch closed or
    cancelled), 422 (too many items, a key twice), 429 (rate, or unfinished jobs: retry
    after Retry-After), 503/507.
    """
    # Two thread-pool round trips in all: the key and the rate before the body is read on
    # the event loop, then everything after it.
    caller = await run_in_threadpool(authorize_batch, request, resources)
    full_id = batch_id_of(batch_id)
    raw = await read_items_request(request, resources.settings)
    return await run_in_threadpool(add_items, raw, caller, full_id, resources)


@router.post(
    "/{batch_id}/lookup",
    response_model=BatchLookupResult,
    responses=LOOKUP_ERRORS,
    openapi_extra=json_request_body(BatchLookup.model_json_schema()),
    summary="Which keys a batch has, which images are stored",
)
async def lookup_batch(
    batch_id: BatchIdPath, request: Request, caller: CallerDep, resources: ResourcesDep
) -> BatchLookupResult:
    """The keys among `keys` the batch has (with their job ids), and the images among
    `sha256s` a job of the caller's tenant has: a client resuming an upload sends neither
    the items it finds nor the bytes of the images it finds (it refers to them by sha256).
    The key is checked before the body is read."""
    full_id = batch_id_of(batch_id)
    body = await read_json_model(
        request, resources.settings, BatchLookup, example='{"keys": ["a.jpg"], "sha256s": []}'
    )
    return await run_in_threadpool(lookup, body, caller, full_id, resources)
