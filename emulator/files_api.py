"""File API over HTTP, as the google-genai SDK drives it (see GEMINI.md, "File API").

Resumable upload:

1. ``POST /upload/{ver}/files`` with ``X-Goog-Upload-Protocol: resumable``,
   ``X-Goog-Upload-Command: start``, ``X-Goog-Upload-Header-Content-Length/-Type`` and an
   optional ``{"file": {...}}`` body; the API key is checked here. The answer carries an
   absolute ``x-goog-upload-url`` back to this emulator and ``X-Goog-Upload-Status: active``.
2. Chunks are POSTed to that URL without a key (its ``upload_id`` is an unguessable
   session token) with ``X-Goog-Upload-Command: upload`` (``upload, finalize`` on the
   last) and ``X-Goog-Upload-Offset``. ``query`` and ``cancel`` are understood too.
   Every answer, errors included, carries ``X-Goog-Upload-Status``: the SDK resends a
   chunk whose answer lacks it and raises on anything but ``active``/``final``.
3. The finalize answer is ``{"file": File}``.

Plus ``GET /{ver}/files/{id}``, ``GET /{ver}/files`` and ``DELETE /{ver}/files/{id}``, and
the download of generated files (a batch's output ``files/batch-<id>``) at both paths the
SDK and the docs use: ``GET /{ver}/files/{id}:download?alt=media`` and
``GET /download/{ver}/files/{id}:download?alt=media`` (400 for an uploaded file).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio.to_thread
from fastapi import Request
from fastapi.responses import JSONResponse, Response

from visionq.emulator import errors, frontend
from visionq.emulator.errors import EmulatorError
from visionq.emulator.files import UploadSession, decodes
from visionq.emulator.httpio import app_state, base_url, check_api_key, check_version, read_body
from visionq.emulator.request import get_field, parse_json_body
from visionq.emulator.state import EmulatorState

STATUS_HEADER = "X-Goog-Upload-Status"
# The File API is served on v1beta only (v1's schema has no file methods).
FILE_VERSIONS = ("v1beta",)
# Google announces this granularity; the SDK ignores it (its chunks are 8 MiB).
CHUNK_GRANULARITY = str(256 * 1024)
START_BODY_LIMIT = 1024 * 1024
MAX_DISPLAY_NAME = 512
DEFAULT_MIME_TYPE = "application/octet-stream"


def _header(request: Request, name: str) -> str:
    return request.headers.get(name, "").strip()


def _declared_size(request: Request, meta: Mapping[str, Any]) -> int:
    raw = _header(request, "x-goog-upload-header-content-length")
    if not raw:
        value = get_field(meta, "size_bytes")
        raw = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
    if not raw.isdigit():
        raise errors.upload_error(
            "X-Goog-Upload-Header-Content-Length is required for a resumable upload."
        )
    return int(raw)


def _mime_type(request: Request, meta: Mapping[str, Any]) -> str:
    value = _header(request, "x-goog-upload-header-content-type") or get_field(meta, "mime_type")
    if not isinstance(value, str) or not value.strip():
        return DEFAULT_MIME_TYPE
    return value.split(";")[0].strip().lower()


def _file_meta(body: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = get_field(body, "file")
    if meta is None:
        return {}
    if not isinstance(meta, Mapping):
        raise errors.invalid_argument("Invalid value at 'file': expected an object.")
    return meta


async def _start(request: Request, state: EmulatorState, version: str) -> Response:
    check_api_key(request, state.config)
    if _header(request, "x-goog-upload-protocol").lower() != "resumable":
        raise errors.upload_error("The emulator supports only X-Goog-Upload-Protocol: resumable.")
    if _header(request, "x-goog-upload-command").lower() != "start":
        raise errors.upload_error(
            "The first resumable request must be X-Goog-Upload-Command: start."
        )
    raw = await read_body(request, START_BODY_LIMIT)
    body = parse_json_body(raw) if raw.strip() else {}
    frontend.check_body(body, version, "CreateFile", request.url.path)
    meta = _file_meta(body)
    size = _declared_size(request, meta)
    if size > state.config.file_max_bytes:
        raise errors.file_too_large(size, state.config.file_max_bytes)
    display_name = get_field(meta, "display_name")
    display_name = display_name if isinstance(display_name, str) else ""
    if len(display_name) > MAX_DISPLAY_NAME:
        raise errors.invalid_argument("The display name must be at most 512 characters.")
    name = get_field(meta, "name")
    session = state.files.start(
        name=name if isinstance(name, str) and name else None,
        display_name=display_name,
        mime_type=_mime_type(request, meta),
        size=size,
        version=version,
    )
    state.counters.uploads_started += 1
    url = f"{base_url(request)}/upload/{version}/files?upload_id={session.token}"
    return Response(
        status_code=200,
        headers={
            "x-goog-upload-url": url + "&upload_protocol=resumable",
            STATUS_HEADER: "active",
            "X-Goog-Upload-Chunk-Granularity": CHUNK_GRANULARITY,
        },
    )


def _commands(request: Request) -> set[str]:
    raw = _header(request, "x-goog-upload-command").lower()
    commands = {c.strip() for c in raw.split(",") if c.strip()}
    allowed = ({"upload"}, {"upload", "finalize"}, {"finalize"}, {"query"}, {"cancel"})
    if commands not in allowed:
        raise errors.upload_error(f"Invalid X-Goog-Upload-Command: {raw or '(missing)'}.")
    return commands


def _progress(session: UploadSession, status: str = "active") -> Response:
    return Response(
        status_code=200,
        headers={STATUS_HEADER: status, "X-Goog-Upload-Size-Received": str(session.received)},
    )


async def _append(request: Request, state: EmulatorState, session: UploadSession) -> None:
    offset = _header(request, "x-goog-upload-offset")
    if offset != str(session.received):
        raise errors.upload_error(
            f"Invalid X-Goog-Upload-Offset {offset or '(missing)'}: the upload has"
            f" {session.received} bytes."
        )
    remaining = session.size - session.received

    def too_long() -> EmulatorError:
        return errors.upload_error(
            f"The upload exceeds its declared X-Goog-Upload-Header-Content-Length"
            f" of {session.size} bytes."
        )

    data = await read_body(request, remaining, too_long)
    # Another chunk for the same session may have landed while this body streamed in.
    if str(session.received) != offset:
        raise errors.upload_error("Concurrent chunks for one upload session.")
    session.buffer.extend(data)
    state.counters.upload_chunks += 1
    state.counters.upload_bytes += len(data)


async def _finalize(request: Request, state: EmulatorState, session: UploadSession) -> Response:
    if session.received != session.size:
        raise errors.upload_error(
            f"Upload finalized after {session.received} of {session.size} declared bytes."
        )
    # Claim the session before awaiting, so a concurrent finalize cannot make a 2nd file.
    state.files.cancel(session.token)
    data = bytes(session.buffer)
    # Decoding a large image is CPU work; a worker thread keeps other requests flowing.
    ok = await anyio.to_thread.run_sync(decodes, session.mime_type, data)
    config = state.config
    stored = state.files.finish(
        session,
        data,
        processing_s=config.file_processing_s,
        ttl_s=config.file_ttl_s,
        failed=not ok,
    )
    state.counters.uploads_completed += 1
    state.counters.uploads_failed_processing += 0 if ok else 1
    body = {"file": stored.resource(state.clock(), base_url(request))}
    return JSONResponse(body, headers={STATUS_HEADER: "final"})


async def _chunk(request: Request, state: EmulatorState, token: str) -> Response:
    session = state.files.session(token)
    commands = _commands(request)
    if commands == {"query"}:
        return _progress(session)
    if commands == {"cancel"}:
        state.files.cancel(token)
        return _progress(session, "cancelled")
    if "upload" in commands:
        await _append(request, state, session)
    if "finalize" in commands:
        return await _finalize(request, state, session)
    return _progress(session)


async def upload(request: Request, version: str) -> Response:
    """``POST /upload/{version}/files``: start a session, or take a chunk (``upload_id``)."""
    check_version(request, version)
    state = app_state(request)
    token = request.query_params.get("upload_id")
    if token is None:
        return await _start(request, state, version)
    try:
        return await _chunk(request, state, token)
    except EmulatorError as exc:
        # "final" makes the SDK stop and raise this error instead of resending the chunk.
        response = exc.response()
        response.headers[STATUS_HEADER] = "final"
        return response


DOWNLOAD_SUFFIX = ":download"


async def get_file(request: Request, version: str, file_id: str) -> Response:
    """``GET /{version}/files/{id}``: the File; 403 if unknown, deleted or expired.

    ``{id}:download`` is the download of a generated file (``download``).
    """
    if file_id.endswith(DOWNLOAD_SUFFIX):
        return await download(request, version, file_id)
    check_version(request, version)
    state = app_state(request)
    check_api_key(request, state.config)
    stored = state.files.get(file_id)
    return JSONResponse(stored.resource(state.clock(), base_url(request)))


def _page_size(request: Request) -> int | None:
    raw = request.query_params.get("pageSize") or request.query_params.get("page_size")
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise errors.invalid_argument(
            f"Invalid value at 'page_size' (TYPE_INT32), \"{raw}\""
        ) from exc


async def list_files(request: Request, version: str) -> Response:
    """``GET /{version}/files?pageSize=&pageToken=``: newest first, 10 (max 100) a page."""
    check_version(request, version)
    state = app_state(request)
    check_api_key(request, state.config)
    token = request.query_params.get("pageToken") or request.query_params.get("page_token")
    files, next_token = state.files.page(_page_size(request), token)
    now, base = state.clock(), base_url(request)
    body: dict[str, Any] = {}
    # ProtoJSON leaves out empty lists and strings, so an empty listing is "{}".
    if files:
        body["files"] = [stored.resource(now, base) for stored in files]
    if next_token:
        body["nextPageToken"] = next_token
    return JSONResponse(body)


async def delete_file(request: Request, version: str, file_id: str) -> Response:
    """``DELETE /{version}/files/{id}``: ``{}``; 403 if unknown, deleted or expired."""
    check_version(request, version)
    state = app_state(request)
    check_api_key(request, state.config)
    state.files.delete(file_id)
    state.counters.files_deleted += 1
    return JSONResponse({})


async def download(request: Request, version: str, file_id: str) -> Response:
    """``GET [/download]/{version}/files/{id}:download``: a generated file's bytes.

    403 if unknown, deleted or expired (as files.get); 400 for an uploaded file.
    """
    if version not in FILE_VERSIONS or not file_id.endswith(DOWNLOAD_SUFFIX):
        raise errors.method_not_found(request.url.path)
    state = app_state(request)
    check_api_key(request, state.config)
    stored = state.files.download(file_id.removesuffix(DOWNLOAD_SUFFIX))
    assert stored.data is not None
    return Response(stored.data, media_type=stored.mime_type)
