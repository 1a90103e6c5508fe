"""Emulator-only endpoints for tests and benchmarks. NOT part of the Gemini API.

They need no API key, live under ``/_emulator/`` (a prefix Google does not use) and
never appear in the SDK:

- ``GET /_emulator/stats``: counters (see ``state.Counters``) plus ``files`` (live,
  unexpired files), ``upload_sessions`` (uploads started but not finalized) and the
  busiest quota windows (see ``quota.QuotaTracker.stats``).
- ``POST /_emulator/reset``: forget all files, upload sessions, counters and quota
  windows; restore the fault settings given at start-up.
- ``GET /_emulator/faults``: the current fault and quota settings.
- ``POST /_emulator/faults``: change some of them (a JSON object of fields); answers all
  of them. An unknown field or a bad value is a 400 and changes nothing.
- ``POST /_emulator/files/{id}:expire``: make one file expire now, as if its 48 hours had
  passed; answers the (now expired) File, 404 for an unknown id.
- ``PUT /_emulator/public/{name}``: store a "public web object" (the body, with its
  Content-Type) that ``fileData`` parts may name by its URL on this emulator;
  ``GET /_emulator/public/{name}`` serves it back (404 if unknown).
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from visionq.emulator import errors
from visionq.emulator.httpio import app_state, base_url, read_body
from visionq.emulator.request import parse_json_body
from visionq.emulator.state import EmulatorState

# Far more than any settings object needs; the limit only guards against accidents.
FAULTS_BODY_LIMIT = 64 * 1024
DEFAULT_PUBLIC_TYPE = "application/octet-stream"


def stats_body(state: EmulatorState) -> dict[str, Any]:
    """The stats JSON: every counter, live files, open upload sessions, quota windows."""
    return {
        **state.counters.as_dict(),
        "files": len(state.files.live()),
        "upload_sessions": len(state.files.sessions),
        **state.quota.stats(state.monotonic(), state.faults.quota_window_s),
        "spend_usd": state.spend.total_usd,
        "spend_usd_in_window": state.spend.spent(state.monotonic(), state.faults.spend_window_s),
    }


async def stats(request: Request) -> Response:
    """``GET /_emulator/stats``."""
    return JSONResponse(stats_body(app_state(request)))


async def reset(request: Request) -> Response:
    """``POST /_emulator/reset``: answers the stats after the reset (all zero)."""
    state = app_state(request)
    state.reset()
    return JSONResponse(stats_body(state))


async def get_faults(request: Request) -> Response:
    """``GET /_emulator/faults``: the fault and quota settings in force."""
    return JSONResponse(app_state(request).faults.as_dict())


async def set_faults(request: Request) -> Response:
    """``POST /_emulator/faults``: apply the given fields; answers all settings after it."""
    state = app_state(request)
    changes = parse_json_body(await read_body(request, FAULTS_BODY_LIMIT))
    try:
        settings = state.set_faults(changes)
    except ValueError as exc:
        raise errors.invalid_argument(f"Invalid fault settings: {exc}") from exc
    return JSONResponse(settings.as_dict())


async def file_action(request: Request, target: str) -> Response:
    """``POST /_emulator/files/{id}:expire``."""
    file_id, _, action = target.rpartition(":")
    if action != "expire" or not file_id:
        raise errors.method_not_found(request.url.path)
    state = app_state(request)
    stored = state.files.expire(file_id.removeprefix("files/"))
    return JSONResponse(stored.resource(state.clock(), base_url(request)))


async def put_public(request: Request, name: str) -> Response:
    """``PUT /_emulator/public/{name}``: answers ``{"uri": URL to use in fileData}``."""
    state = app_state(request)
    data = await read_body(request, state.config.file_max_bytes)
    mime_type = request.headers.get("content-type", DEFAULT_PUBLIC_TYPE).split(";")[0].strip()
    state.public[name] = (mime_type.lower(), data)
    return JSONResponse({"uri": f"{base_url(request)}/_emulator/public/{name}"})


async def get_public(request: Request, name: str) -> Response:
    """``GET /_emulator/public/{name}``: the stored object, 404 if there is none."""
    found = app_state(request).public.get(name)
    if found is None:
        raise errors.method_not_found(request.url.path)
    return Response(found[1], media_type=found[0])
