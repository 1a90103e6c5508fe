"""Request plumbing shared by the route modules: API versions, key check, body reading."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request

from visionq.emulator import errors, frontend
from visionq.emulator.config import EmulatorConfig
from visionq.emulator.errors import EmulatorError
from visionq.emulator.state import EmulatorState

API_VERSIONS = ("v1", "v1beta")


def app_state(request: Request) -> EmulatorState:
    """The ``EmulatorState`` of the app serving ``request``."""
    state: EmulatorState = request.app.state.emulator
    return state


def check_version(request: Request, version: str) -> None:
    """404 like Google's front end for an API version the emulator does not serve, or a
    route that version's schema has no method for (v1 has no File API)."""
    if version not in API_VERSIONS:
        raise errors.method_not_found(request.url.path)
    frontend.check_route(version, request.method, request.url.path)


def check_api_key(request: Request, config: EmulatorConfig) -> None:
    """Reject requests without a key (403) or with a key not in the config (400)."""
    key = request.headers.get("x-goog-api-key") or request.query_params.get("key") or ""
    if not key.strip():
        raise errors.missing_api_key()
    if not config.accepts_key(key):
        raise errors.invalid_api_key()


def base_url(request: Request) -> str:
    """``scheme://host:port`` as the caller reached the emulator (from its Host header).

    Upload URLs and file URIs are built from it, so they point back at this emulator
    under whatever name the caller used (localhost, a compose service name...).
    """
    return str(request.base_url).rstrip("/")


async def read_body(
    request: Request, limit: int, too_large: Callable[[], EmulatorError] | None = None
) -> bytes:
    """The request body, refused as soon as it grows past ``limit`` bytes.

    ``too_large`` builds the error (default: the inline request-size error).
    """
    refuse = too_large or (lambda: errors.payload_too_large(limit))
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise refuse()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise refuse()
        chunks.append(chunk)
    return b"".join(chunks)
