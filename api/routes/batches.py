"""The batch endpoints: create (idempotent by name), list, read with progress, items, close,
cancel, re-run and results export. Adding items is api/routes/batch_items.py's."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from visionq.api.batch_create import create, model_of
from visionq.api.batch_export import MEDIA_TYPES, export_stream
from visionq.api.batch_ids import batch_id_of, batch_not_found, batch_refused
from visionq.api.batch_progress import batch_public
from visionq.api.batch_rerun import rerun
from visionq.api.batch_schemas import (
    BatchCreate,
    BatchPage,
    BatchPublic,
    BatchState,
    ItemPage,
    ItemPublic,
    ItemStatus,
    RerunRequest,
    RerunResult,
    text_problem,
)
from visionq.api.deps import ApiResources, Caller, CallerDep, ResourcesDep
from visionq.api.errors import ApiError
from visionq.api.json_body import json_request_body, read_json_model
from visionq.api.openapi import error_responses
from visionq.api.submission import authorize_batch
from visionq.models import batches as store
from visionq.models.jobs import InvalidCursorError
from visionq.models.metrics import count_ended
from visionq.models.tables import Batch

router = APIRouter(prefix="/v1/batches", tags=["batches"])

CREATE_ERRORS = error_responses(401, 409, 413, 415, 422, 429, 503, tiers=True)
LIST_ERRORS = error_responses(400, 401, 422, 503)
READ_ERRORS = error_responses(401, 404, 422, 503)
ITEMS_ERRORS = error_responses(400, 401, 404, 422, 503)
CLOSE_ERRORS = error_responses(401, 404, 409, 422, 503)
RERUN_ERRORS = error_responses(401, 402, 404, 409, 413, 415, 422, 429, 503, tiers=True)
EXPORT_ERRORS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The results, one item a line (JSON Lines) or a row (CSV, with a "
        "header), in the order the items were added.",
        "content": {
            "application/x-ndjson": {"schema": {"type": "string"}},
            "text/csv": {"schema": {"type": "string"}},
        },
    },
    **error_responses(401, 404, 422, 503),
}
# Items per page of GET /v1/batches/{id}/items.
ITEMS_PAGE_MAX = 1000
BatchIdPath = Annotated[str, Path(description="The batch's id (a UUID), as created.")]
_CREATE_EXAMPLE = '{"name": "photos", "task": "caption"}'
_RERUN_EXAMPLE = '{"statuses": ["failed"]} ({} or no body: the failed items)'


def _text(value: str | None, what: str) -> str | None:
    """``value`` if a database can compare it (no control characters, valid Unicode)."""
    problem = None if value is None else text_problem(value)
    if problem is not None:
        raise ApiError("invalid_request", f"{what} {problem}.")
    return value


@router.post(
    "",
    status_code=201,
    response_model=BatchPublic,
    responses={
        200: {
            "model": BatchPublic,
            "description": "A batch of this name and these defaults existed: it is answered "
            "(header Idempotent-Replayed: true).",
        },
        **CREATE_ERRORS,
    },
    openapi_extra=json_request_body(BatchCreate.model_json_schema(by_alias=True)),
    summary="Create a batch",
)
async def create_batch(
    request: Request, response: Response, resources: ResourcesDep
) -> BatchPublic:
    """Create a named batch with the defaults of its items (201). The same name with the
    same defaults answers the existing batch (200, `Idempotent-Replayed: true`), so a client
    can resume by creating again; with other defaults it is a 409 `batch_name_taken`."""
    # The key and the rate first: nothing of the body is read for a caller without a key.
    caller = await run_in_threadpool(authorize_batch, request, resources)
    body = await read_json_model(request, resources.settings, BatchCreate, example=_CREATE_EXAMPLE)
    batch, replayed = await run_in_threadpool(create, body, caller, resources)
    if replayed:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    response.headers["Location"] = f"/v1/batches/{batch.id}"
    return await run_in_threadpool(_public, resources, batch, False)


def _public(resources: ApiResources, batch: Batch, with_progress: bool) -> BatchPublic:
    with resources.sessions() as session:
        return batch_public(
            session,
            batch,
            resources.settings,
            with_progress=with_progress,
            model=model_of(batch, resources) if with_progress else None,
        )


def _owned(session: Session, caller: Caller, batch_id: str) -> Batch:
    batch = store.get_batch(session, tenant=caller.tenant, batch_id=batch_id_of(batch_id))
    if batch is None:
        raise batch_not_found(batch_id)
    return batch


@router.get("", response_model=BatchPage, responses=LIST_ERRORS, summary="List batches")
def read_batches(
    *,
    caller: CallerDep,
    resources: ResourcesDep,
    name: Annotated[
        str | None, Query(max_length=200, description="Only the batch of this name.")
    ] = None,
    state: Annotated[BatchState | None, Query(description="Only batches in this state.")] = None,
    limit: Annotated[int, Query(ge=1, le=200, description="Page size.")] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
) -> BatchPage:
    """The caller's batches, newest first, without progress (read one for it)."""
    _text(name, "name")
    with resources.sessions() as session:
        try:
            batches, next_cursor = store.list_batches(
                session, tenant=caller.tenant, limit=limit, cursor=cursor, name=name, state=state
            )
        except InvalidCursorError as exc:
            raise ApiError("invalid_cursor", "The cursor is invalid; start without one.") from exc
        return BatchPage(
            batches=[
                batch_public(session, batch, resources.settings, with_progress=False)
                for batch in batches
            ],
            next_cursor=next_cursor,
        )


@router.get(
    "/{batch_id}", response_model=BatchPublic, responses=READ_ERRORS, summary="Read a batch"
)
def read_batch(batch_id: BatchIdPath, caller: CallerDep, resources: ResourcesDep) -> BatchPublic:
    """The batch with its progress: counts by status, tokens, cost so far, the whole
    batch's estimate and the ETA."""
    with resources.sessions() as session:
        batch = _owned(session, caller, batch_id)
    return _public(resources, batch, True)


_ITEM_CURSOR = re.compile(r"[0-9]{1,10}")
# batch_items.id is a 32-bit integer on PostgreSQL: a larger cursor is none we gave (and
# comparing with it would be an error of the database, a 500).
_ITEM_ID_MAX = 2**31 - 1


def _item_cursor(cursor: str | None) -> int:
    if cursor is None:
        return 0
    if not _ITEM_CURSOR.fullmatch(cursor) or int(cursor) > _ITEM_ID_MAX:
        raise ApiError("invalid_cursor", "The cursor is invalid; start without one.")
    return int(cursor)


@router.get(
    "/{batch_id}/items", response_model=ItemPage, responses=ITEMS_ERRORS, summary="List items"
)
def read_batch_items(
    *,
    batch_id: BatchIdPath,
    caller: CallerDep,
    resources: ResourcesDep,
    status: Annotated[
        ItemStatus | None, Query(description="Only items whose latest job is in this status.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=ITEMS_PAGE_MAX, description="Page size.")] = 1000,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
) -> ItemPage:
    """The batch's items in the order they were added: key, latest job, its status."""
    after = _item_cursor(cursor)
    with resources.sessions() as session:
        batch = _owned(session, caller, batch_id)
        rows = store.items_page(session, batch.id, after_id=after, limit=limit + 1, status=status)
    more = len(rows) > limit
    rows = rows[:limit]
    return ItemPage(
        items=[
            ItemPublic(
                key=row.key,
                job_id=row.job_id,
                status=cast(ItemStatus, row.status),
                error_code=row.error_code,
                reruns=row.reruns,
            )
            for row in rows
        ],
        next_cursor=str(rows[-1].id) if more and rows else None,
    )


@router.post(
    "/{batch_id}/close", response_model=BatchPublic, responses=CLOSE_ERRORS, summary="Close a batch"
)
def close_batch(batch_id: BatchIdPath, caller: CallerDep, resources: ResourcesDep) -> BatchPublic:
    """No more items may be added (409 `batch_closed`); its jobs run on and its failed
    items can still be re-run. Closing a closed batch changes nothing."""
    full_id = batch_id_of(batch_id)
    with resources.sessions.begin() as session:
        refused = store.close_batch(session, tenant=caller.tenant, batch_id=full_id)
    if refused is not None and refused != "closed":
        raise batch_refused(full_id, refused)
    with resources.sessions() as session:
        batch = _owned(session, caller, full_id)
    return _public(resources, batch, True)


@router.post(
    "/{batch_id}/cancel",
    response_model=BatchPublic,
    responses=READ_ERRORS,
    summary="Cancel a batch",
)
def cancel_batch(batch_id: BatchIdPath, caller: CallerDep, resources: ResourcesDep) -> BatchPublic:
    """Cancel the batch's queued jobs (their budget holds are released) and refuse new
    items and re-runs. Running jobs finish: their Gemini calls are already paid. Cancelling
    a cancelled batch changes nothing."""
    with resources.sessions() as session:
        full_id = _owned(session, caller, batch_id).id
    with resources.sessions.begin() as session:
        ended = store.cancel_batch(session, tenant=caller.tenant, batch_id=full_id)
    count_ended(ended)
    resources.queue.forget([(job.id, job.tenant) for job in ended])
    with resources.sessions() as session:
        batch = _owned(session, caller, full_id)
    return _public(resources, batch, True)


@router.post(
    "/{batch_id}/rerun",
    status_code=202,
    response_model=RerunResult,
    responses=RERUN_ERRORS,
    openapi_extra=json_request_body(RerunRequest.model_json_schema(), required=False),
    summary="Re-run failed items",
)
async def rerun_batch(
    batch_id: BatchIdPath, request: Request, resources: ResourcesDep
) -> RerunResult:
    """Give each item whose latest job failed (or, with `statuses`, was cancelled) a new job
    from the same stored images, optionally only for some `error_codes`, on another `model`
    or with `options` merged over the old job's. The old jobs and their attempts stay; each
    item points at its new job (its `retry_of` names the old one). 409 for a cancelled
    batch; a closed one can be re-run.

    Items are re-run 500 at a time, each page committed on its own: an error on a later
    page (budget, unfinished jobs' limit) leaves the pages before it re-run. Asking again
    continues: an item whose new job is queued or running is not picked again. No body
    (or `{}`) re-runs the failed items. `model` and `options` are checked up front (422),
    whether or not an item qualifies."""
    caller = await run_in_threadpool(authorize_batch, request, resources)
    full_id = batch_id_of(batch_id)
    body = await read_json_model(
        request, resources.settings, RerunRequest, example=_RERUN_EXAMPLE, empty_is_default=True
    )
    return await run_in_threadpool(rerun, body, caller, full_id, resources)


@router.get(
    "/{batch_id}/results",
    response_class=StreamingResponse,
    responses=EXPORT_ERRORS,
    summary="Export a batch's results",
)
def export_batch(
    *,
    batch_id: BatchIdPath,
    caller: CallerDep,
    resources: ResourcesDep,
    format: Annotated[
        Literal["jsonl", "csv"], Query(description="jsonl (default) or csv.")
    ] = "jsonl",
    status: Annotated[
        ItemStatus | None, Query(description="Only items whose latest job is in this status.")
    ] = None,
) -> StreamingResponse:
    """Every item with its key, job, status, result or error, tokens and cost, streamed a
    page at a time (any size of batch in constant memory). CSV columns: key, job_id,
    status, task, model, text, error_code, error_message, prompt_tokens, candidates_tokens,
    thoughts_tokens, total_tokens, cost_usd, estimate_max_usd, reruns, created_at,
    finished_at, result_json."""
    with resources.sessions() as session:
        batch = _owned(session, caller, batch_id)
    filename = "".join(char if char.isalnum() or char in "-_." else "_" for char in batch.name)
    return StreamingResponse(
        export_stream(resources, batch.id, format, status),
        media_type=MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{filename}.{format}"'},
    )
