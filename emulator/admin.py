"""Emulator-only endpoints for tests and benchmarks. NOT part of the Gemini API.

They need no API key, live under ``/_emulator/`` (a prefix Google does not use) and
never appear in the SDK:

- ``GET /_emulator/stats``: counters (see ``state.Counters``) plus ``files`` (live,
  unexpired files) and ``upload_sessions`` (uploads started but not finalized).
- ``POST /_emulator/reset``: forget all files, upload sessions and counters.
- ``POST /_emulator/files/{id}:expire``: make one file expire now, as if its 48 hours had
  passed; answers the (now expired) File, 404 for an unknown id.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from emulator import errors
from emulator.httpio import app_state, base_url
from emulator.state import EmulatorState


def stats_body(state: EmulatorState) -> dict[str, Any]:
    """The stats JSON: every counter, live files and open upload sessions."""
    return {
        **state.counters.as_dict(),
        "files": len(state.files.live()),
        "upload_sessions": len(state.files.sessions),
    }


async def stats(request: Request) -> Response:
    """``GET /_emulator/stats``."""
    return JSONResponse(stats_body(app_state(request)))


async def reset(request: Request) -> Response:
    """``POST /_emulator/reset``: answers the stats after the reset (all zero)."""
    state = app_state(request)
    state.reset()
    return JSONResponse(stats_body(state))


async def file_action(request: Request, target: str) -> Response:
    """``POST /_emulator/files/{id}:expire``."""
    file_id, _, action = target.rpartition(":")
    if action != "expire" or not file_id:
        raise errors.method_not_found(request.url.path)
    state = app_state(request)
    stored = state.files.expire(file_id.removeprefix("files/"))
    return JSONResponse(stored.resource(state.clock(), base_url(request)))
