"""HTTP layer: routes, Google-style error bodies and the model methods' endpoint.

The File API lives in files_api.py, the emulator-only endpoints in admin.py.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from visionq.emulator import admin, batches_api, errors, files_api, frontend, gate, models_api
from visionq.emulator.config import EmulatorConfig
from visionq.emulator.errors import EmulatorError
from visionq.emulator.httpio import API_VERSIONS, app_state, base_url, check_api_key, read_body
from visionq.emulator.request import parse_json_body
from visionq.emulator.service import Call, Result, count_tokens, generate_content
from visionq.emulator.state import EmulatorState

Method = Callable[[EmulatorState, Call, Mapping[str, Any]], Awaitable[Result]]
METHODS: dict[str, Method] = {
    "generateContent": generate_content,
    "streamGenerateContent": generate_content,
    "countTokens": count_tokens,
}
# The methods that pass through the fault stage (gate.py); countTokens does not.
GENERATE_METHODS = frozenset({"generateContent", "streamGenerateContent"})
# The Batch API's create (batches_api.py); its lines pass no fault stage, only batch faults.
BATCH_METHOD = "batchGenerateContent"


def _sse(result: Result) -> Response:
    # One chunk carrying the whole answer is a valid stream for the SDK's SSE reader.
    payload = f"data: {json.dumps(result.body)}\r\n\r\n"
    return Response(payload, media_type="text/event-stream", headers=result.headers)


async def model_method(request: Request, version: str, target: str) -> Response:
    """``POST /{version}/models/{model}:{method}``."""
    model, _, method_name = target.rpartition(":")
    if method_name == BATCH_METHOD and model:
        return await batches_api.create(request, version, model)
    method = METHODS.get(method_name)
    if version not in API_VERSIONS or not model or method is None:
        raise errors.method_not_found(request.url.path)
    state = app_state(request)
    check_api_key(request, state.config)
    # Aliases and routed ids are answered by the model they point at (its rules, billing
    # and quotas; modelVersion names it); shut-down, closed and unknown ids are 404s.
    spec = state.catalogue.resolve(model, version, method_name, state.config.existing_project)
    body = parse_json_body(await read_body(request, state.config.inline_limit_bytes))
    frontend.check_body(body, version, method_name, request.url.path)
    if method_name in GENERATE_METHODS:
        await gate.fault_stage(state, spec.id, request.is_disconnected)
    call = Call(requested=model, spec=spec, api_version=version, base_url=base_url(request))
    result = await method(state, call, body)
    if method_name == "streamGenerateContent":
        return _sse(result)
    return JSONResponse(result.body, headers=result.headers)


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
    # Emulator-only endpoints first, so "/_emulator/..." never reaches the API routes.
    app.add_api_route("/_emulator/stats", admin.stats, methods=["GET"])
    app.add_api_route("/_emulator/reset", admin.reset, methods=["POST"])
    app.add_api_route("/_emulator/faults", admin.get_faults, methods=["GET"])
    app.add_api_route("/_emulator/faults", admin.set_faults, methods=["POST"])
    app.add_api_route("/_emulator/files/{target}", admin.file_action, methods=["POST"])
    app.add_api_route("/_emulator/public/{name}", admin.put_public, methods=["PUT"])
    app.add_api_route("/_emulator/public/{name}", admin.get_public, methods=["GET"])
    app.add_api_route("/{version}/models/{target}", model_method, methods=["POST"])
    app.add_api_route("/{version}/models/{target}", models_api.get_model, methods=["GET"])
    app.add_api_route("/{version}/models", models_api.list_models, methods=["GET"])
    app.add_api_route("/{version}/batches", batches_api.list_batches, methods=["GET"])
    app.add_api_route("/{version}/batches/{batch_id}", batches_api.get_batch, methods=["GET"])
    app.add_api_route("/{version}/batches/{target}", batches_api.batch_action, methods=["POST"])
    app.add_api_route("/{version}/batches/{batch_id}", batches_api.delete_batch, methods=["DELETE"])
    app.add_api_route("/download/{version}/files/{file_id}", files_api.download, methods=["GET"])
    app.add_api_route("/upload/{version}/files", files_api.upload, methods=["POST"])
    app.add_api_route("/{version}/files", files_api.list_files, methods=["GET"])
    app.add_api_route("/{version}/files/{file_id}", files_api.get_file, methods=["GET"])
    app.add_api_route("/{version}/files/{file_id}", files_api.delete_file, methods=["DELETE"])
    return app
