"""One error shape for every failure: {"error": {"code": "...", "message": "..."}}."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from visionq.models.blobs import BlobStoreUnavailableError
from visionq.vision.errors import CodedError
from visionq.vision.tasks import JobSpecError

log = logging.getLogger(__name__)


class ApiError(CodedError):
    """An error answer, raised by a route or its checks: a stable machine code, a message for
    people and the HTTP status HTTP_STATUS gives the code (the error shape of
    install_error_handlers). ``codes`` lists the API's own codes; lower layers' codes come
    through ``ApiError.of``."""

    codes = frozenset(
        {
            "batch_cancelled",
            "batch_closed",
            "batch_name_taken",
            "batch_not_found",
            "budget_exceeded",
            "cors_refused",
            "cost_unbounded",
            "deadline_too_short",
            "duplicate_item_key",
            "empty_image",
            "idempotency_key_reused",
            "image_not_found",
            "image_not_stored",
            "invalid_api_key",
            "invalid_base64",
            "invalid_cursor",
            "invalid_idempotency_key",
            "invalid_item_key",
            "invalid_model",
            "invalid_multipart",
            "invalid_options",
            "invalid_request",
            "invalid_schema",
            "invalid_text",
            "job_inputs_gone",
            "job_not_finished",
            "job_not_found",
            "job_superseded",
            "label_too_long",
            "mask_not_found",
            "missing_task",
            "no_annotation",
            "payload_too_large",
            "rate_limited",
            "schema_too_large",
            "tier_not_priced",
            "tier_unavailable",
            "too_many_active_jobs",
            "too_many_images",
            "too_many_items",
            "unauthorized",
            "unavailable",
            "unknown_task",
            "unsupported_media_type",
            "unknown_event_type",
            "webhook_callbacks_endpoint",
            "webhook_disabled",
            "webhook_event_not_found",
            "webhook_limit",
            "webhook_not_found",
        }
    )

    def __init__(self, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(code, message)
        # No status by hand: a code missing from the table is a KeyError (a bug the unit
        # test catches), never a silent default.
        self.status = http_status(code)
        self.headers = headers

    @classmethod
    def of(cls, exc: CodedError, message: str | None = None) -> ApiError:
        """The answer to a coded error of a lower layer: its code, the status HTTP_STATUS
        gives that code, and its message (or ``message``, e.g. naming the image)."""
        return cls(exc.code, exc.message if message is None else message)


# The HTTP status of each code the API answers: its own (ApiError.codes) and those a lower
# layer's CodedError carries to it; declared once here, so no route picks a status by hand.
# tests/unit/test_error_codes.py checks every code of ApiError, JobSpecError,
# ImageRejectedError, JobIdError and UrlFetchError has its entry.
HTTP_STATUS: dict[str, int] = {
    # The API's own codes (ApiError.codes), by status.
    "invalid_cursor": 400,
    "invalid_idempotency_key": 400,
    "invalid_multipart": 400,
    "cors_refused": 400,
    "invalid_api_key": 401,
    "unauthorized": 401,
    "budget_exceeded": 402,
    "job_not_finished": 409,
    "job_superseded": 409,
    "no_annotation": 409,
    "mask_not_found": 404,
    "image_not_found": 404,
    "batch_not_found": 404,
    "batch_closed": 409,
    "batch_cancelled": 409,
    "batch_name_taken": 409,
    "job_inputs_gone": 410,
    "payload_too_large": 413,
    "cost_unbounded": 422,
    "deadline_too_short": 422,
    "empty_image": 422,
    "idempotency_key_reused": 422,
    "invalid_base64": 422,
    "invalid_model": 422,
    "invalid_options": 422,
    "invalid_request": 422,
    "invalid_schema": 422,
    "invalid_text": 422,
    "label_too_long": 422,
    "missing_task": 422,
    "schema_too_large": 422,
    "tier_not_priced": 422,
    "tier_unavailable": 422,
    "too_many_images": 422,
    "too_many_items": 422,
    "duplicate_item_key": 422,
    "invalid_item_key": 422,
    "image_not_stored": 422,
    "unknown_task": 422,
    "rate_limited": 429,
    "too_many_active_jobs": 429,
    "unavailable": 503,
    # Webhook endpoints (api/routes/webhooks.py).
    "webhook_not_found": 404,
    "webhook_event_not_found": 404,
    "webhook_disabled": 409,
    "webhook_limit": 409,
    "webhook_callbacks_endpoint": 409,
    "unknown_event_type": 422,
    # vision.tasks.JobSpecError: the request cannot be run as given.
    **dict.fromkeys(JobSpecError.codes, 422),
    # vision.formats.ImageRejectedError
    "unsupported_media_type": 415,
    "image_too_large": 413,
    "corrupt_image": 422,
    # models.jobrefs.JobIdError: a short prefix is the request's fault, an ambiguous one a
    # conflict between the request and what exists.
    "invalid_job_id": 422,
    "job_not_found": 404,
    "ambiguous_job_id": 409,
    # api.urlfetch.UrlFetchError: refused before fetching (422), the remote end failed
    # (502), too slow (504) or too large (413).
    "url_invalid": 422,
    "url_scheme_not_allowed": 422,
    "url_host_not_allowed": 422,
    "url_unresolvable": 422,
    "url_too_many_redirects": 422,
    "url_fetch_failed": 502,
    "url_http_error": 502,
    "url_fetch_timeout": 504,
    "url_too_large": 413,
}


def http_status(code: str) -> int:
    """The HTTP status of ``code``; a KeyError (a bug, caught by the unit test) if the table
    has no entry: there is no default status."""
    return HTTP_STATUS[code]


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    402: "budget_exceeded",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    503: "unavailable",
    507: "insufficient_storage",
}
# Seconds a client waits after a storage fault (database locked or down, store full).
DATABASE_RETRY_AFTER_S = 5
STORE_RETRY_AFTER_S = 30


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        parts.append(f"{where}: {error.get('msg')}" if where else str(error.get("msg")))
    return "; ".join(parts) or "The request is invalid."


def install_error_handlers(app: FastAPI) -> None:
    """Route every error, ours or the framework's, to the shared error shape."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(
            error_body(exc.code, exc.message), status_code=exc.status, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(
            error_body("invalid_request", _validation_message(exc)), status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        return JSONResponse(
            error_body(code, str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    @app.exception_handler(PoolTimeoutError)
    async def _database(_: Request, exc: Exception) -> JSONResponse:
        # A locked (SQLite) or unreachable (PostgreSQL) database is a resource fault, not a
        # bug: the request stored nothing (its transaction rolled back); it can be repeated.
        log.warning("database unavailable: %s", exc)
        return JSONResponse(
            error_body(
                "unavailable",
                "The database is busy or unreachable; nothing was stored. Retry after the "
                "Retry-After delay.",
            ),
            status_code=503,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
        )

    @app.exception_handler(BlobStoreUnavailableError)
    async def _store(_: Request, exc: BlobStoreUnavailableError) -> JSONResponse:
        log.warning("blob store refused a write: %s", exc)
        status, code = (507, "insufficient_storage") if exc.full else (503, "unavailable")
        # A missing bucket or a bad option never heals by waiting: no Retry-After.
        retry = {} if exc.permanent else {"Retry-After": str(STORE_RETRY_AFTER_S)}
        return JSONResponse(error_body(code, str(exc)), status_code=status, headers=retry)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return JSONResponse(
            error_body("internal_error", "An unexpected error occurred; it has been logged."),
            status_code=500,
        )
