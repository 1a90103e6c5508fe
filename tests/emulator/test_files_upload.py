"""File API uploads through the real SDK (resumable protocol), plus the protocol's edges."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import random
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from google import genai
from google.genai import errors, types
from PIL import Image

from tests.emulator.conftest import API_KEY, SLOW_FILES_MAX_BYTES, make_client
from tests.emulator.helpers import stats, upload_bytes
from visionq.emulator.shapes import encode, random_scene

SCENE, _ = random_scene(61, count=2)
PNG = encode(SCENE)
SDK_CHUNK = 8 * 1024 * 1024


@pytest.fixture(scope="module")
def noise_png() -> bytes:
    """A real PNG over one SDK chunk (8 MiB): random pixels do not compress."""
    rng = random.Random(5)
    side = 1800
    image = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
    data = encode(image, "PNG", compress_level=1)
    assert len(data) > SDK_CHUNK
    return data


def _sha256_field(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).hexdigest().encode()).decode()


def test_upload_bytes_returns_an_active_file(files_client: genai.Client, files_url: str) -> None:
    uploaded = upload_bytes(files_client, PNG, display_name="scene one")
    assert uploaded.name is not None
    assert uploaded.name.startswith("files/")
    file_id = uploaded.name.removeprefix("files/")
    assert file_id.isalnum() and file_id == file_id.lower()
    assert uploaded.display_name == "scene one"
    assert uploaded.mime_type == "image/png"
    assert uploaded.size_bytes == len(PNG)
    assert uploaded.state == types.FileState.ACTIVE
    assert uploaded.source == types.FileSource.UPLOADED
    assert uploaded.uri == f"{files_url}/v1beta/files/{file_id}"
    assert uploaded.sha256_hash == _sha256_field(PNG)
    assert uploaded.create_time is not None and uploaded.expiration_time is not None
    assert (uploaded.expiration_time - uploaded.create_time).total_seconds() == 48 * 3600
    assert uploaded.error is None


def test_upload_from_a_path_guesses_the_mime_type(
    files_client: genai.Client, tmp_path: Path
) -> None:
    path = tmp_path / "scene.jpg"
    path.write_bytes(encode(SCENE, "JPEG", quality=90))
    uploaded = files_client.files.upload(file=path)
    assert uploaded.mime_type == "image/jpeg"
    assert uploaded.size_bytes == path.stat().st_size
    assert uploaded.state == types.FileState.ACTIVE
    fetched = files_client.files.get(name=uploaded.name or "")
    assert fetched.sha256_hash == _sha256_field(path.read_bytes())


def test_large_real_png_is_chunked_and_active(
    files_client: genai.Client, files_url: str, noise_png: bytes
) -> None:
    before = stats(files_url)
    uploaded = upload_bytes(files_client, noise_png)
    assert uploaded.state == types.FileState.ACTIVE
    assert uploaded.size_bytes == len(noise_png)
    assert uploaded.sha256_hash == _sha256_field(noise_png)
    after = stats(files_url)
    assert after["upload_bytes"] - before["upload_bytes"] == len(noise_png)
    # One full 8 MiB chunk, then the rest with "upload, finalize".
    assert after["upload_chunks"] - before["upload_chunks"] == 2


def test_random_bytes_declared_png_end_failed(files_client: genai.Client, files_url: str) -> None:
    junk = random.Random(6).randbytes(20 * 1024 * 1024)
    before = stats(files_url)["upload_chunks"]
    uploaded = upload_bytes(files_client, junk)
    assert stats(files_url)["upload_chunks"] - before == 3
    assert uploaded.state == types.FileState.FAILED
    assert uploaded.size_bytes == len(junk)
    assert uploaded.error is not None
    assert uploaded.error.message == "The file could not be processed."
    fetched = files_client.files.get(name=uploaded.name or "")
    assert fetched.state == types.FileState.FAILED


def test_non_image_files_are_active_without_decoding(files_client: genai.Client) -> None:
    uploaded = upload_bytes(files_client, b"just some notes", "text/plain")
    assert uploaded.state == types.FileState.ACTIVE
    assert uploaded.mime_type == "text/plain"


def test_empty_png_fails(files_client: genai.Client) -> None:
    uploaded = upload_bytes(files_client, b"")
    assert uploaded.size_bytes == 0
    assert uploaded.state == types.FileState.FAILED


def test_chosen_name_and_duplicate(files_client: genai.Client) -> None:
    name = "files/my-scene-" + random.Random().randbytes(4).hex()
    uploaded = upload_bytes(files_client, PNG, name=name)
    assert uploaded.name == name
    with pytest.raises(errors.ClientError) as info:
        upload_bytes(files_client, PNG, name=name)
    assert (info.value.code, info.value.status) == (409, "ALREADY_EXISTS")
    with pytest.raises(errors.ClientError) as bad:
        upload_bytes(files_client, PNG, name="files/Not_Valid")
    assert bad.value.code == 400


def test_upload_needs_a_valid_key(files_url: str) -> None:
    wrong = make_client(files_url, api_key="wrong-key")
    with pytest.raises(errors.ClientError) as info:
        upload_bytes(wrong, PNG)
    assert (info.value.code, info.value.status) == (400, "INVALID_ARGUMENT")
    wrong.close()


def test_file_over_the_size_limit_is_refused(slow_files_url: str) -> None:
    sdk = make_client(slow_files_url)
    with pytest.raises(errors.ClientError) as info:
        upload_bytes(sdk, b"\0" * (SLOW_FILES_MAX_BYTES + 1))
    assert info.value.code == 400
    assert info.value.message == (
        f"File size {SLOW_FILES_MAX_BYTES + 1} bytes exceeds the maximum of"
        f" {SLOW_FILES_MAX_BYTES} bytes."
    )
    sdk.close()


def test_stats_count_uploads_exactly(files_client: genai.Client, files_url: str) -> None:
    before = stats(files_url)
    first = upload_bytes(files_client, PNG)
    upload_bytes(files_client, PNG)
    upload_bytes(files_client, b"not an image")
    after = stats(files_url)
    assert after["uploads_started"] - before["uploads_started"] == 3
    assert after["uploads_completed"] - before["uploads_completed"] == 3
    assert after["uploads_failed_processing"] - before["uploads_failed_processing"] == 1
    assert after["files"] - before["files"] == 3
    assert after["upload_sessions"] == before["upload_sessions"] == 0
    files_client.files.delete(name=first.name or "")
    assert stats(files_url)["files"] - before["files"] == 2


# --- the resumable protocol by hand (what the SDK relies on) ----------------------------


def _start(url: str, size: int, key: str | None = API_KEY) -> httpx.Response:
    headers = {
        "X-Goog-Upload-Protocol": "resumable",
        "X-Goog-Upload-Command": "start",
        "X-Goog-Upload-Header-Content-Length": str(size),
        "X-Goog-Upload-Header-Content-Type": "image/png",
    }
    if key is not None:
        headers["x-goog-api-key"] = key
    return httpx.post(f"{url}/upload/v1beta/files", headers=headers, json={"file": {}})


def _chunk(upload_url: str, command: str, offset: int, data: bytes = b"") -> httpx.Response:
    headers = {"X-Goog-Upload-Command": command, "X-Goog-Upload-Offset": str(offset)}
    return httpx.post(upload_url, headers=headers, content=data)


@pytest.fixture
def session(files_url: str) -> Iterator[str]:
    """An open upload session for PNG (its upload URL)."""
    started = _start(files_url, len(PNG))
    assert started.status_code == 200
    assert started.headers["x-goog-upload-status"] == "active"
    yield started.headers["x-goog-upload-url"]


def test_start_answers_an_absolute_url_to_the_emulator(files_url: str, session: str) -> None:
    assert session.startswith(f"{files_url}/upload/v1beta/files?upload_id=")


def test_start_without_key_is_refused(files_url: str) -> None:
    response = _start(files_url, 10, key=None)
    assert response.status_code == 403
    assert response.json()["error"]["status"] == "PERMISSION_DENIED"


def test_chunks_need_no_key_and_offsets_are_checked(session: str) -> None:
    half = len(PNG) // 2
    first = _chunk(session, "upload", 0, PNG[:half])
    assert (first.status_code, first.headers["x-goog-upload-status"]) == (200, "active")
    wrong = _chunk(session, "upload", 0, PNG[half:])
    assert wrong.status_code == 400
    assert wrong.headers["x-goog-upload-status"] == "final"
    assert "X-Goog-Upload-Offset 0" in wrong.json()["error"]["message"]
    query = _chunk(session, "query", 0)
    assert query.headers["x-goog-upload-size-received"] == str(half)
    last = _chunk(session, "upload, finalize", half, PNG[half:])
    assert (last.status_code, last.headers["x-goog-upload-status"]) == (200, "final")
    assert last.json()["file"]["sizeBytes"] == str(len(PNG))
    assert last.json()["file"]["state"] == "ACTIVE"
    again = _chunk(session, "upload", len(PNG), b"x")
    assert again.status_code == 404
    assert again.headers["x-goog-upload-status"] == "final"


def test_chunk_over_the_declared_size_is_refused(session: str) -> None:
    response = _chunk(session, "upload, finalize", 0, PNG + b"extra")
    assert response.status_code == 400
    assert response.headers["x-goog-upload-status"] == "final"
    assert "declared" in response.json()["error"]["message"]


def test_early_finalize_is_refused(session: str) -> None:
    response = _chunk(session, "upload, finalize", 0, PNG[:10])
    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        f"Upload finalized after 10 of {len(PNG)} declared bytes."
    )


def test_unknown_command_and_cancel(session: str) -> None:
    assert _chunk(session, "bogus", 0).status_code == 400
    cancelled = _chunk(session, "cancel", 0)
    assert cancelled.headers["x-goog-upload-status"] == "cancelled"
    assert _chunk(session, "upload", 0, PNG).status_code == 404


def test_only_resumable_uploads(files_url: str) -> None:
    response = httpx.post(
        f"{files_url}/upload/v1beta/files",
        headers={"x-goog-api-key": API_KEY, "X-Goog-Upload-Protocol": "multipart"},
        content=io.BytesIO(PNG).read(),
    )
    assert response.status_code == 400


def test_async_client_uploads_the_same_way(files_url: str, noise_png: bytes) -> None:
    async def scenario() -> tuple[types.File, types.File]:
        sdk = make_client(files_url)
        try:
            config = types.UploadFileConfig(mime_type="image/png")
            small = await sdk.aio.files.upload(file=io.BytesIO(PNG), config=config)
            large = await sdk.aio.files.upload(file=io.BytesIO(noise_png), config=config)
        finally:
            await sdk.aio.aclose()
            sdk.close()
        return small, large

    small, large = asyncio.run(scenario())
    assert (small.state, small.size_bytes) == (types.FileState.ACTIVE, len(PNG))
    assert (large.state, large.size_bytes) == (types.FileState.ACTIVE, len(noise_png))
