"""Read a JSON request body into a pydantic model by hand, within VISIONQ_MAX_REQUEST_BYTES:
the routes that do this authenticate first (FastAPI reads a ``body:`` parameter before any
dependency, so a caller without a key could make the API read and parse any size of body),
and malformed JSON gets the message POST /v1/jobs gives (where it broke, what to send)."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from visionq.api.errors import ApiError
from visionq.api.openapi import inline_refs
from visionq.api.rawjob import describe, too_large
from visionq.models.settings import Settings

Model = TypeVar("Model", bound=BaseModel)


async def read_body(request: Request, settings: Settings) -> bytes:
    """The body's bytes; 413 once it passes VISIONQ_MAX_REQUEST_BYTES (declared or read)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > settings.max_request_bytes:
        raise too_large("request", int(declared), settings.max_request_bytes)
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > settings.max_request_bytes:
            raise too_large("request", len(body), settings.max_request_bytes)
    return bytes(body)


async def read_json_model(
    request: Request,
    settings: Settings,
    model: type[Model],
    *,
    example: str,
    empty_is_default: bool = False,
) -> Model:
    """The body as ``model``: 415 for another content type, 413 for a body too large, 422
    naming what is wrong (``example`` shows what to send). An empty body is ``{}`` when
    ``empty_is_default`` (every field has a default), else a 422 saying to send one."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in ("application/json", ""):
        raise ApiError(
            "unsupported_media_type",
            f"Send the body as application/json, not {content_type!r}; for example {example}.",
        )
    body = await read_body(request, settings)
    if not body.strip():
        if empty_is_default:
            return model.model_validate({})
        raise ApiError("invalid_request", f"The body is empty; send a JSON object: {example}.")
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise ApiError(_error_code(exc), _message(exc, example)) from exc


def _message(exc: ValidationError, example: str) -> str:
    message = describe(exc)
    if any(error["type"] in ("json_invalid", "model_type") for error in exc.errors()):
        return f"{message}. Send a JSON object, for example {example}."
    return message


def _error_code(exc: ValidationError) -> str:
    """invalid_options when only the options are wrong (as POST /v1/jobs), else
    invalid_request."""
    fields = {str(error["loc"][0]) if error["loc"] else "" for error in exc.errors()}
    only = fields.pop() if len(fields) == 1 else ""
    return {"options": "invalid_options", "schema": "invalid_schema"}.get(only, "invalid_request")


def json_request_body(schema: dict[str, Any], *, required: bool = True) -> dict[str, Any]:
    """The OpenAPI ``requestBody`` of a route reading ``schema`` by hand (its $defs inlined:
    FastAPI does not put a model it does not see in the document's components)."""
    return {
        "requestBody": {
            "required": required,
            "content": {"application/json": {"schema": inline_refs(schema)}},
        }
    }
