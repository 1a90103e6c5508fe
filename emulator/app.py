"""HTTP layer: routes, API-key check, body size limit and Google-style error bodies."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from emulator import errors
from emulator.config import EmulatorConfig
from emulator.errors import EmulatorError
from emulator.request import parse_json_body
from emulator.service import EmulatorState, count_tokens, generate_content

API_VERSIONS = ("v1", "v1beta")
Method = Callable[[EmulatorState, str, Mapping[str, Any]], Awaitable[dict[str, Any]]]
METHODS: dict[str, Method] = {
    "generateContent": generate_content,
    "streamGenerateContent": generate_content,
    "countTokens": count_tokens,
}


def _state(request: Request) -> EmulatorState:
    state: EmulatorState = request.app.state.emulator
    return state


def check_api_key(request: Request, config: EmulatorConfig) -> None:
    """Reject requests without a key (403) or with a key not in the config (400)."""
    key = request.headers.get("x-goog-api-key") or request.query_params.get("key") or ""
    if not key.strip():
        raise errors.missing_api_key()
    if not config.accepts_key(key):
        raise errors.invalid_api_key()


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused as soon as it grows past ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise errors.payload_too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise errors.payload_too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _sse(body: dict[str, Any]) -> Response:
    # One chunk carrying the whole answer is a valid stream for the SDK's SSE reader.
    payload = f"data: {json.dumps(body)}\r\n\r\n"
    return Response(payload, media_type="text/event-stream")


async def model_method(request: Request, version: str, target: str) -> Response:
    """``POST /{version}/models/{model}:{method}``."""
    model, _, method_name = target.rpartition(":")
    method = METHODS.get(method_name)
    if version not in API_VERSIONS or not model or method is None:
        raise errors.method_not_found(request.url.path)
    state = _state(request)
    check_api_key(request, state.config)
    if not state.config.knows_model(model):
        raise errors.model_not_found(model, version, method_name)
    body = parse_json_body(await read_body(request, state.config.inline_limit_bytes))
    result = await method(state, model, body)
    if method_name == "streamGenerateContent":
        return _sse(result)
    return JSONResponse(result)


async def healthz() -> dict[str, str]:
    """Liveness probe."""
    return {"status": "ok"}


async def _emulator_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, EmulatorError)
    return exc.response()


async def _http_error(request: Request, exc: Exception) -> Response:
    # Unknown routes and methods answer in Google's error shape, not FastAPI's.
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return errors.method_not_found(request.url.path).response()
    return EmulatorError(exc.status_code, str(exc.detail)).response()


def create_app(config: EmulatorConfig) -> FastAPI:
    """A new emulator app; all its state lives on ``app.state.emulator``."""
    app = FastAPI(title="visionq Gemini emulator", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.emulator = EmulatorState(config=config)
    app.add_exception_handler(EmulatorError, _emulator_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_api_route("/healthz", healthz, methods=["GET"])
    app.add_api_route("/{version}/models/{target}", model_method, methods=["POST"])
    return app
