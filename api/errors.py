"""One error shape for every failure: {"error": {"code": "...", "message": "..."}}."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from models.blobs import BlobStoreUnavailableError

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error answer: HTTP status, a stable machine code and a message for people."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


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
        return JSONResponse(
            error_body(code, str(exc)),
            status_code=status,
            headers={"Retry-After": str(STORE_RETRY_AFTER_S)},
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return JSONResponse(
            error_body("internal_error", "An unexpected error occurred; it has been logged."),
            status_code=500,
        )
