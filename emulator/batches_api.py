"""The Batch API over HTTP, as the google-genai SDK drives it (v1beta only).

- ``POST /{v}/models/{m}:batchGenerateContent`` (dispatched from app.model_method): body
  ``{"batch": {"displayName", "inputConfig": {"requests": {"requests": [{"request",
  "metadata"}]}} | {"fileName": "files/<id>"}}}``, checked against the schema
  (``BatchGenerateContentRequest``, supplement.json) like any request; answers the
  Operation of the new PENDING batch. Inline bodies are capped at
  ``batch_inline_limit_bytes`` (20 MiB). A JSONL file must exist, be ACTIVE and be of a
  JSONL/JSON/text MIME type; each of its lines is read on its own, and a line that does not
  parse is answered with its error (the other lines still run).
- ``GET /{v}/batches/{id}``, ``GET /{v}/batches?pageSize=&pageToken=`` (``operations``,
  ``nextPageToken``, newest first), ``POST /{v}/batches/{id}:cancel`` -> ``{}``,
  ``DELETE /{v}/batches/{id}`` -> ``{}`` (400 FAILED_PRECONDITION while it runs; 404 if
  unknown).

The output file ``files/batch-<id>`` is served by files_api.py (``:download``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from visionq.emulator import batch_run, errors
from visionq.emulator.apischema import load_schema
from visionq.emulator.batch_output import operation, write_output
from visionq.emulator.batches import CANCELLED, Batch, BatchLine, new_batch_id
from visionq.emulator.errors import EmulatorError
from visionq.emulator.httpio import app_state, base_url, check_api_key, read_body
from visionq.emulator.protojson import check
from visionq.emulator.request import get_field
from visionq.emulator.state import EmulatorState

BATCH_VERSIONS = ("v1beta",)
PACKAGE = "google.ai.generativelanguage.{version}."
# MIME types a JSONL input file may have (Google's own example uploads it as "jsonl").
JSONL_MIME_TYPES = frozenset({"jsonl", "application/jsonl", "application/json", "text/plain"})
LINE_FIELDS = frozenset({"key", "request"})


def _check_version(request: Request, version: str) -> None:
    if version not in BATCH_VERSIONS:
        raise errors.method_not_found(request.url.path)


def _schema_errors(body: Any, version: str, message: str) -> EmulatorError | None:
    schema = load_schema(version)
    violations = check(body, schema, PACKAGE.format(version=version) + message)
    if not violations:
        return None
    return errors.bad_request([(v.field, v.description) for v in violations])


def _inline_lines(requests: list[Any]) -> list[BatchLine]:
    lines = []
    for item in requests:
        request = get_field(item, "request")
        has_metadata = "metadata" in item
        line = BatchLine(
            request=request if isinstance(request, dict) else None,
            metadata=item.get("metadata"),
            has_metadata=has_metadata,
        )
        if line.request is None:
            line.error = errors.invalid_argument("* InlinedRequest.request: request is required")
        lines.append(line)
    return lines


def _file_line(raw: bytes, number: int, version: str) -> BatchLine:
    try:
        item = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        detail = f"Line {number} is not valid JSON: {exc}."
        return BatchLine(request=None, error=errors.invalid_json(detail))
    if not isinstance(item, dict):
        return BatchLine(request=None, error=errors.invalid_json(f"Line {number}: not an object."))
    key = item.get("key")
    line = BatchLine(request=None, key=key if isinstance(key, str) else None)
    unknown = sorted(set(item) - LINE_FIELDS)
    request = item.get("request")
    if unknown:
        line.error = errors.invalid_argument(
            f'Line {number}: unknown name "{unknown[0]}"; a line has "key" and "request".'
        )
    elif not isinstance(request, dict):
        line.error = errors.invalid_argument(f'Line {number}: "request" must be an object.')
    else:
        line.request = request
        line.error = _schema_errors(request, version, "GenerateContentRequest")
    return line


def _file_lines(state: EmulatorState, file_name: str, version: str) -> list[BatchLine]:
    file_id = file_name.removeprefix("files/")
    stored, data = state.files.for_prompt(file_id)
    if stored.mime_type not in JSONL_MIME_TYPES:
        allowed = ", ".join(sorted(JSONL_MIME_TYPES))
        raise errors.invalid_argument(
            f"Batch input file {file_name} has MIME type {stored.mime_type}; upload it as"
            f" one of {allowed}."
        )
    return [
        _file_line(raw, number, version)
        for number, raw in enumerate(data.splitlines(), start=1)
        if raw.strip()
    ]


def _input(
    state: EmulatorState, batch: Mapping[str, Any], version: str
) -> tuple[str | None, list[BatchLine]]:
    config = get_field(batch, "input_config")
    if not isinstance(config, Mapping):
        raise errors.invalid_argument("* GenerateContentBatch.input_config: required")
    file_name = get_field(config, "file_name")
    inline = get_field(config, "requests")
    if isinstance(file_name, str) and file_name:
        return file_name, _file_lines(state, file_name, version)
    requests = get_field(inline, "requests") if isinstance(inline, Mapping) else None
    if not requests:
        raise errors.invalid_argument(
            "* GenerateContentBatch.input_config: give requests.requests or file_name"
        )
    return None, _inline_lines(list(requests))


async def create(request: Request, version: str, model: str) -> Response:
    """``POST /{version}/models/{model}:batchGenerateContent``."""
    _check_version(request, version)
    state = app_state(request)
    check_api_key(request, state.config)
    spec = state.catalogue.resolve(
        model, version, "batchGenerateContent", state.config.existing_project
    )
    raw = await read_body(request, state.config.batch_inline_limit_bytes)
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise errors.invalid_json(
            f"Unexpected token at position {getattr(exc, 'pos', 0)}."
        ) from exc
    problem = _schema_errors(body, version, "BatchGenerateContentRequest")
    if problem is not None:
        raise problem
    batch_body = get_field(body, "batch")
    if not isinstance(batch_body, Mapping):
        raise errors.invalid_argument("* BatchGenerateContentRequest.batch: batch is required")
    file_name, lines = _input(state, batch_body, version)
    display_name = get_field(batch_body, "display_name")
    now = state.clock()
    batch = Batch(
        batch_id=new_batch_id(),
        model=f"models/{model}",
        answering_model=spec.id,
        api_version=version,
        base_url=base_url(request),
        display_name=display_name if isinstance(display_name, str) else "",
        file_name=file_name,
        lines=lines,
        created=now,
        updated=now,
        seq=state.batches.next_seq(),
        expire_at=now + state.config.batch_ttl_s,
        stall=state.take_batch_fault("stall"),
        fail=state.take_batch_fault("fail"),
    )
    if not batch.stall and state.take_batch_fault("expire"):
        assert state.faults.batch_expire_after_s is not None
        batch.forced_expiry = True
        batch.expire_at = now + state.faults.batch_expire_after_s
    state.batches.add(batch)
    state.counters.batches_created += 1
    batch_run.start(state, batch)
    lose = state.take_batch_fault("lose_create")
    if state.faults.batch_create_delay_s > 0:
        await asyncio.sleep(state.faults.batch_create_delay_s)
    if lose:
        # The batch exists and runs; only its answer is lost (not idempotent to retry).
        raise errors.failure(503)
    return JSONResponse(operation(batch))


async def get_batch(request: Request, version: str, batch_id: str) -> Response:
    """``GET /{version}/batches/{id}``: the Operation; 404 if unknown."""
    _check_version(request, version)
    state = app_state(request)
    check_api_key(request, state.config)
    return JSONResponse(operation(state.batches.get(batch_id)))


def _page_size(request: Request) -> int | None:
    raw = request.query_params.get("pageSize") or request.query_params.get("page_size")
    if not raw:
        return None
    if not raw.isdigit():
        raise errors.invalid_argument(f"Invalid value at 'page_size' (TYPE_INT32), \"{raw}\"")
    return int(raw)


async def list_batches(request: Request, version: str) -> Response:
    """``GET /{version}/batches?pageSize=&pageToken=``: newest first."""
    _check_version(request, version)
    state = app_state(request)
    check_api_key(request, state.config)
    token = request.query_params.get("pageToken") or request.query_params.get("page_token")
    batches, next_token = state.batches.page(_page_size(request), token)
    body: dict[str, Any] = {}
    if batches:
        body["operations"] = [operation(batch) for batch in batches]
    if next_token:
        body["nextPageToken"] = next_token
    return JSONResponse(body)


async def batch_action(request: Request, version: str, target: str) -> Response:
    """``POST /{version}/batches/{id}:cancel``: ``{}``; a batch already ended is left as is."""
    _check_version(request, version)
    batch_id, _, action = target.rpartition(":")
    if action != "cancel" or not batch_id:
        raise errors.method_not_found(request.url.path)
    state = app_state(request)
    check_api_key(request, state.config)
    batch = state.batches.get(batch_id)
    if batch.live:
        if batch.task is not None:
            batch.task.cancel()
        batch.end(CANCELLED, state.clock())
        # The lines answered so far stay available, as on the real service.
        if batch.results:
            write_output(batch, state.files, state.config.file_ttl_s)
    return JSONResponse({})


async def delete_batch(request: Request, version: str, batch_id: str) -> Response:
    """``DELETE /{version}/batches/{id}``: ``{}``."""
    _check_version(request, version)
    state = app_state(request)
    check_api_key(request, state.config)
    state.batches.delete(batch_id)
    return JSONResponse({})
