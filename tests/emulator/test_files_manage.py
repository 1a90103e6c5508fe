"""files.get / list / delete, the PROCESSING -> ACTIVE lifecycle and expiry."""

from __future__ import annotations

import time
from itertools import islice

import httpx
import pytest
from google import genai
from google.genai import errors, types

from tests.emulator.conftest import API_KEY, make_client
from tests.emulator.helpers import counter_values, expire, reset, stats, upload_bytes
from visionq.emulator.errors import EmulatorError
from visionq.emulator.files import FileStore, id_from_uri
from visionq.emulator.shapes import encode, random_scene

PNG = encode(random_scene(71, count=1)[0])
POLL_LIMIT_S = 60.0


def _client_error(call: object) -> errors.ClientError:
    assert callable(call)
    with pytest.raises(errors.ClientError) as info:
        call()
    return info.value


def test_get_returns_the_uploaded_file(files_client: genai.Client) -> None:
    uploaded = upload_bytes(files_client, PNG, display_name="get me")
    fetched = files_client.files.get(name=uploaded.name or "")
    assert fetched.model_dump() == uploaded.model_dump()
    by_id = files_client.files.get(name=(uploaded.name or "").removeprefix("files/"))
    assert by_id.name == uploaded.name


def test_unknown_file_is_permission_denied(files_client: genai.Client) -> None:
    error = _client_error(lambda: files_client.files.get(name="files/doesnotexist0"))
    assert (error.code, error.status) == (403, "PERMISSION_DENIED")
    assert error.message == (
        "You do not have permission to access the File doesnotexist0 or it may not exist."
    )
    error = _client_error(lambda: files_client.files.delete(name="files/doesnotexist0"))
    assert error.code == 403


def test_delete_then_get_is_permission_denied(files_client: genai.Client, files_url: str) -> None:
    uploaded = upload_bytes(files_client, PNG)
    before = stats(files_url)["files_deleted"]
    files_client.files.delete(name=uploaded.name or "")
    assert stats(files_url)["files_deleted"] - before == 1
    error = _client_error(lambda: files_client.files.get(name=uploaded.name or ""))
    assert error.code == 403


def test_delete_answers_an_empty_object(files_client: genai.Client, files_url: str) -> None:
    uploaded = upload_bytes(files_client, PNG)
    response = httpx.delete(
        f"{files_url}/v1beta/{uploaded.name}", headers={"x-goog-api-key": API_KEY}
    )
    assert (response.status_code, response.json()) == (200, {})


def test_expired_file_is_permission_denied(files_client: genai.Client, files_url: str) -> None:
    uploaded = upload_bytes(files_client, PNG)
    name = uploaded.name or ""
    live_before = stats(files_url)["files"]
    expire(files_url, name)
    file_id = name.removeprefix("files/")
    error = _client_error(lambda: files_client.files.get(name=name))
    assert (error.code, error.status) == (403, "PERMISSION_DENIED")
    assert error.message == (
        f"You do not have permission to access the File {file_id} or it may not exist."
    )
    assert _client_error(lambda: files_client.files.delete(name=name)).code == 403
    assert stats(files_url)["files"] == live_before - 1
    assert name not in {f.name for f in files_client.files.list(config={"page_size": 100})}


def test_expire_endpoint_for_unknown_file_is_404(files_url: str) -> None:
    response = httpx.post(f"{files_url}/_emulator/files/nosuchfile:expire")
    assert response.status_code == 404


def test_files_api_needs_a_key(files_url: str) -> None:
    assert httpx.get(f"{files_url}/v1beta/files").status_code == 403
    wrong = make_client(files_url, api_key="wrong-key")
    assert _client_error(lambda: wrong.files.get(name="files/abc")).code == 400
    wrong.close()


def test_processing_becomes_active(delayed_files_url: str) -> None:
    sdk = make_client(delayed_files_url)
    uploaded = upload_bytes(sdk, PNG)
    # The finalize answer is computed at creation, so it is PROCESSING for any delay > 0.
    assert uploaded.state == types.FileState.PROCESSING
    assert uploaded.update_time == uploaded.create_time
    deadline = time.monotonic() + POLL_LIMIT_S
    fetched = uploaded
    while fetched.state == types.FileState.PROCESSING and time.monotonic() < deadline:
        time.sleep(0.1)
        fetched = sdk.files.get(name=uploaded.name or "")
    assert fetched.state == types.FileState.ACTIVE
    assert fetched.update_time is not None and uploaded.create_time is not None
    assert fetched.update_time > uploaded.create_time
    sdk.close()


def test_list_pages_newest_first(delayed_files_url: str) -> None:
    reset(delayed_files_url)
    sdk = make_client(delayed_files_url)
    names = [upload_bytes(sdk, PNG, display_name=f"n{i}").name for i in range(23)]
    first = sdk.files.list(config={"page_size": 10})
    assert len(first.page) == 10
    assert [f.name for f in first.page] == names[::-1][:10]
    # islice: a pager that never ends must fail the test, not hang it.
    everything = [f.name for f in islice(sdk.files.list(config={"page_size": 10}), 100)]
    assert everything == names[::-1]
    default = sdk.files.list()
    assert len(default.page) == 10  # default page size
    sdk.close()


def test_list_raw_pages_and_tokens(delayed_files_url: str) -> None:
    reset(delayed_files_url)
    headers = {"x-goog-api-key": API_KEY}
    url = f"{delayed_files_url}/v1beta/files"
    assert httpx.get(url, headers=headers).json() == {}
    sdk = make_client(delayed_files_url)
    for _ in range(3):
        upload_bytes(sdk, PNG)
    sdk.close()
    page = httpx.get(url, headers=headers, params={"pageSize": 2}).json()
    assert len(page["files"]) == 2 and page["nextPageToken"]
    rest = httpx.get(
        url, headers=headers, params={"pageSize": 2, "pageToken": page["nextPageToken"]}
    )
    assert len(rest.json()["files"]) == 1 and "nextPageToken" not in rest.json()
    huge = httpx.get(url, headers=headers, params={"pageSize": 1000}).json()
    assert len(huge["files"]) == 3
    bad = httpx.get(url, headers=headers, params={"pageToken": "garbage!"})
    assert bad.status_code == 400


def test_reset_clears_files_and_counters(delayed_files_url: str) -> None:
    sdk = make_client(delayed_files_url)
    upload_bytes(sdk, PNG)
    sdk.close()
    assert stats(delayed_files_url)["files"] >= 1
    reset(delayed_files_url)
    after = stats(delayed_files_url)
    assert after["files"] == 0
    assert all(value == 0 for value in counter_values(after))


# --- the store's state machine with a fake clock (no HTTP, no sleeping) -----------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _stored(store: FileStore, processing_s: float, ttl_s: float, failed: bool = False) -> str:
    session = store.start(name=None, display_name="", mime_type="image/png", size=3, version="v1")
    session.buffer.extend(b"abc")
    return store.finish(
        session, b"abc", processing_s=processing_s, ttl_s=ttl_s, failed=failed
    ).file_id


def test_state_machine_with_a_fake_clock() -> None:
    clock = FakeClock()
    store = FileStore(clock)
    good = _stored(store, processing_s=5, ttl_s=100)
    bad = _stored(store, processing_s=5, ttl_s=100, failed=True)
    assert store.get(good).state(clock.now) == "PROCESSING"
    with pytest.raises(EmulatorError) as info:
        store.for_prompt(good)
    assert (info.value.code, info.value.status) == (400, "FAILED_PRECONDITION")
    clock.now += 5
    assert store.get(good).state(clock.now) == "ACTIVE"
    assert store.get(bad).state(clock.now) == "FAILED"
    assert store.for_prompt(good)[1] == b"abc"
    with pytest.raises(EmulatorError) as failed:
        store.for_prompt(bad)
    assert failed.value.status == "FAILED_PRECONDITION"
    clock.now += 95
    with pytest.raises(EmulatorError) as expired:
        store.get(good)
    assert expired.value.code == 403
    assert store.files[good].data is None  # expired bytes are dropped
    assert store.live() == []


def test_file_ids_from_uris() -> None:
    assert id_from_uri("https://generativelanguage.googleapis.com/v1beta/files/abc123") == "abc123"
    assert id_from_uri("http://emulator:8001/v1/files/my-file") == "my-file"
    assert id_from_uri("files/abc") == "abc"
    assert id_from_uri("gs://bucket/picture.png") is None
    assert id_from_uri("https://example.com/picture.png") is None
