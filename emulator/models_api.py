"""models.get and models.list: Model objects from the emulator's catalogue.

``GET /{v}/models/{id}`` answers the Model of a served id, a routed id (the successor
answers, so its limits and thinking are shown under the asked name) or an alias; shut-down
and unknown ids are 404s, closed ones the "no longer available to new users" 404.
``GET /{v}/models?pageSize=&pageToken=`` lists them all except shut-down (and closed)
ones, 50 per page by default, at most 1000.
"""

from __future__ import annotations

import base64
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from visionq.emulator import errors
from visionq.emulator.catalog import ModelSpec
from visionq.emulator.httpio import app_state, check_api_key, check_version

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
METHODS = ["generateContent", "countTokens", "createCachedContent", "batchGenerateContent"]


def model_resource(name: str, spec: ModelSpec) -> dict[str, Any]:
    """The Model object of ``models/{name}``, answered by ``spec``."""
    thinks = spec.thinking is not None
    resource: dict[str, Any] = {
        "name": f"models/{name}",
        "baseModelId": name,
        "version": spec.version,
        "displayName": spec.display_name,
        "description": f"{spec.display_name} (emulated; answered by {spec.id})",
        "inputTokenLimit": spec.input_token_limit,
        "outputTokenLimit": spec.output_token_limit,
        "supportedGenerationMethods": METHODS,
        "temperature": 1,
        "topP": 0.95,
        "topK": 64,
        "maxTemperature": 2,
        "thinking": thinks,
    }
    return resource


async def get_model(request: Request, version: str, target: str) -> Response:
    """``GET /{version}/models/{id}``."""
    check_version(request, version)
    state = app_state(request)
    check_api_key(request, state.config)
    spec = state.catalogue.resolve(target, version, "get", state.config.existing_project)
    return JSONResponse(model_resource(target, spec))


def _page_size(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_PAGE_SIZE
    if not raw.lstrip("-").isdigit():
        raise errors.invalid_argument(f"Invalid value at 'page_size' (TYPE_INT32), \"{raw}\"")
    size = int(raw)
    return DEFAULT_PAGE_SIZE if size <= 0 else min(size, MAX_PAGE_SIZE)


def _offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = int(base64.urlsafe_b64decode(token.encode()).decode().removeprefix("models:"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.invalid_page_token() from exc
    if offset < 0:
        raise errors.invalid_page_token()
    return offset


async def list_models(request: Request, version: str) -> Response:
    """``GET /{version}/models``."""
    check_version(request, version)
    state = app_state(request)
    check_api_key(request, state.config)
    size = _page_size(request.query_params.get("pageSize"))
    start = _offset(request.query_params.get("pageToken"))
    shown = state.catalogue.listed(state.config.existing_project)
    page = shown[start : start + size]
    body: dict[str, Any] = {"models": [model_resource(name, spec) for name, spec in page]}
    if start + size < len(shown):
        body["nextPageToken"] = base64.urlsafe_b64encode(f"models:{start + size}".encode()).decode()
    return JSONResponse(body)
