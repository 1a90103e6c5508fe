"""The OpenAPI document: what FastAPI derives from the routes, completed with what it cannot
see (the bearer scheme checked inside the routes, the result shapes, the page size setting),
so that a client generated from /openapi.json works as it is."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from pydantic.json_schema import models_json_schema

from visionq.api.accesslog import REQUEST_ID_PATTERN
from visionq.api.results import COMPONENTS, RESULT_MODELS
from visionq.api.schemas import ErrorBody
from visionq.models.settings import Settings

BEARER = "HTTPBearer"
# Operations open to anyone (no API key): health probes and the document itself.
_PUBLIC_PATHS = frozenset({"/healthz", "/readyz"})

# What each status means wherever it is documented; a route lists only those it can answer.
_MEANINGS = {
    400: "A malformed request: a multipart body that cannot be parsed, an invalid "
    "Idempotency-Key header or cursor.",
    401: "No API key, or an unknown or revoked one (`Authorization: Bearer <key>`).",
    402: "The job's (or the jobs') worst-case cost is more than the tenant's remaining budget.",
    404: "No such job or batch for the caller's tenant (other tenants' jobs and batches are "
    "never shown).",
    409: "The job or batch is not in a state that has this (a job not finished or of another "
    "task; a batch closed or cancelled, or its name taken with other defaults), or a job id "
    "prefix matches several jobs (ambiguous_job_id).",
    413: "An image or the request is too large.",
    415: "The body is neither multipart/form-data nor application/json, or an image's "
    "format is not supported.",
    422: "A field or parameter is invalid; the message names it and says what is allowed.",
    429: "Too many submissions (per-key rate or unfinished jobs); retry after Retry-After.",
    502: "An image URL's server failed or answered an error.",
    503: "The database or the blob store is unavailable; nothing was stored. Retry after "
    "Retry-After.",
    504: "An image URL's server did not answer in time.",
    507: "The blob store is full; nothing was stored. Retry after Retry-After.",
}


# Every path answers a method it does not take with 405 in the error shape and an Allow
# header (api/errors.py): documented on each operation so a client knows the shape.
METHOD_NOT_ALLOWED: dict[str, Any] = {
    "description": "This path does not take that method (method_not_allowed); the Allow "
    "header lists the methods it takes.",
    "headers": {
        "Allow": {
            "description": "The methods this path takes, e.g. `GET, POST`.",
            "schema": {"type": "string"},
        }
    },
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
}


# The Idempotency-Key header of the routes that create a job (submit, retry), declared once.
IDEMPOTENCY_KEY_PARAMETER: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    "description": "Makes the request safe to repeat: the same key with the same request "
    "returns the job the first one created (header Idempotent-Replayed: true); with "
    "another request it is a 422 idempotency_key_reused.",
}


# The 422 codes of a job's service tier and deadline (api/tiers.py), named on each route that
# admits a job (submit, estimate, retry, a user batch's create, items and rerun), so a client
# can tell them from a malformed field.
TIER_ERRORS: dict[str, str] = {
    "tier_not_priced": "an explicit tier other than standard (flex, priority, batch) that the "
    "model has no price for today: use tier standard or auto.",
    "tier_unavailable": "tier batch while the deployment's batch lane is off "
    "(VISIONQ_BATCH_LANE_ENABLED=false): use tier flex or auto.",
    "deadline_too_short": "tier flex or batch with a deadline_s its lane can never serve at "
    "that tier (flex keeps VISIONQ_FLEX_RESERVE_S for a fallback to standard; batch needs "
    "its gather wait and VISIONQ_BATCH_SYNC_RESERVE_S); the message names the minimum.",
}


def _tier_codes(response: dict[str, Any]) -> dict[str, Any]:
    """A 422 answer that also names the tier codes, in its description and as examples."""
    listed = " ".join(f"`{code}`: {meaning}" for code, meaning in TIER_ERRORS.items())
    examples = {
        code: {
            "summary": meaning.split(":")[0],
            "value": {"error": {"code": code, "message": meaning}},
        }
        for code, meaning in TIER_ERRORS.items()
    }
    return {
        **response,
        "description": f"{response['description']} Codes of the job's tier and deadline: {listed}",
        "content": {"application/json": {"examples": examples}},
    }


def error_responses(*statuses: int, tiers: bool = False) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route that can answer these errors, each in the error shape;
    ``tiers``: a route that admits a job, whose 422 also names TIER_ERRORS."""
    responses: dict[int | str, dict[str, Any]] = {
        status: {"model": ErrorBody, "description": _MEANINGS[status]} for status in statuses
    }
    if tiers and 422 in responses:
        responses[422] = _tier_codes(responses[422])
    return responses


PNG_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A PNG image.",
        "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
    }
}


# A job's input image as stored (api/routes/inputs.py): HEIC/HEIF are answered as PNG.
IMAGE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The image as stored (upright): PNG, JPEG or WEBP; a HEIC or HEIF "
        "image as PNG, so that every browser can show it.",
        "content": {
            mime: {"schema": {"type": "string", "format": "binary"}}
            for mime in ("image/png", "image/jpeg", "image/webp")
        },
    }
}


def install_openapi(app: FastAPI, settings: Callable[[], Settings]) -> None:
    """Make ``app.openapi`` return the completed document (built once, on first use)."""
    generate = app.openapi
    built: list[dict[str, Any]] = []

    def document() -> dict[str, Any]:
        if not built:
            doc = copy.deepcopy(generate())
            complete(doc, settings())
            built.append(doc)
        return built[0]

    app.openapi = document  # type: ignore[method-assign]


# Every response carries X-Request-ID (api/accesslog.py): the client's, when it sends a sane
# one, so its own id can be matched to our log line.
REQUEST_ID_PARAMETER: dict[str, Any] = {
    "name": "X-Request-ID",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "pattern": f"^{REQUEST_ID_PATTERN}$"},
    "description": "Your id for this request, echoed in the response's X-Request-ID and "
    "written to the API's access log (one is made up when absent or not of this form).",
}


def complete(doc: dict[str, Any], settings: Settings) -> None:
    """Add the bearer scheme, the request id header, the 405 answer, the result schemas
    and the page size limit to ``doc``."""
    components = doc.setdefault("components", {})
    components.setdefault("securitySchemes", {})[BEARER] = {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key: `visionq keys create NAME` prints one.",
    }
    for path, operations in doc.get("paths", {}).items():
        for operation in operations.values():
            if path not in _PUBLIC_PATHS:
                operation["security"] = [{BEARER: []}]
            operation.setdefault("parameters", []).append(dict(REQUEST_ID_PARAMETER))
            operation.setdefault("responses", {})["405"] = copy.deepcopy(METHOD_NOT_ALLOWED)
            for parameter in operation.get("parameters", []):
                if path == "/v1/jobs" and parameter["name"] == "limit":
                    parameter["schema"]["maximum"] = settings.page_size_max
    _, schemas = models_json_schema(
        [(model, "serialization") for model in RESULT_MODELS], ref_template=COMPONENTS
    )
    components.setdefault("schemas", {}).update(schemas.get("$defs", {}))
    # The 405s name ErrorBody: present even if no route listed an error of its own.
    _, errors = models_json_schema([(ErrorBody, "serialization")], ref_template=COMPONENTS)
    for name, schema in errors.get("$defs", {}).items():
        components["schemas"].setdefault(name, schema)


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """A model's JSON schema with its $defs inlined, for a hand-written request body (a
    route that reads its body itself)."""
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(value) for value in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved
