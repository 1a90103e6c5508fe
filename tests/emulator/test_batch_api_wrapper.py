"""worker/batch_api.GeminiBatches against the emulator through the real SDK: the raw get
(the SDK's private _api_client.request, decision D3) still reads batchStats, and every call
the lane makes works end to end (an SDK upgrade that breaks one fails here)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.genai import types

from tests.emulator.batch_helpers import WAIT_S
from tests.emulator.conftest import API_KEY, MODEL, make_client
from tests.emulator.helpers import blank, set_faults
from visionq.worker.batch_api import GeminiBatches, RemoteBatch
from visionq.worker.batch_results import read_inline, read_jsonl
from visionq.worker.errors import GeminiCallError


@pytest.fixture
def batches(batch_url: str) -> Iterator[GeminiBatches]:
    set_faults(batch_url)
    wrapper = GeminiBatches(make_client(batch_url), secret=API_KEY)
    yield wrapper
    wrapper.close()


def _request(job_id: str) -> types.InlinedRequest:
    parts = [types.Part.from_bytes(data=blank(64, 48), mime_type="image/png"),
             types.Part.from_text(text="Describe the image.")]  # fmt: skip
    return types.InlinedRequest(
        contents=[types.Content(role="user", parts=parts)],
        config=types.GenerateContentConfig(max_output_tokens=300),
        metadata={"job_id": job_id},
    )


def _done(batches: GeminiBatches, name: str) -> RemoteBatch:
    deadline = time.monotonic() + WAIT_S
    while True:
        remote = batches.get(name)
        if not remote.live:
            return remote
        assert time.monotonic() < deadline, f"{name} stuck in {remote.state}"
        time.sleep(0.05)


def test_inline_batch_create_get_inlined_delete(batches: GeminiBatches) -> None:
    created = batches.create(
        model=MODEL, src=[_request("j-1"), _request("j-2")], display_name="visionq-wrap-1"
    )
    assert created.name.startswith("batches/") and created.display_name == "visionq-wrap-1"
    assert created.state == "BATCH_STATE_PENDING"
    first = batches.get(created.name)
    assert first.stats.get("requestCount") == 2
    done = _done(batches, created.name)
    assert done.state == "BATCH_STATE_SUCCEEDED"
    assert done.stats == {"requestCount": 2, "successfulRequestCount": 2}
    assert done.update_time is not None and done.create_time is not None
    assert done.end_time is not None and done.responses_file is None
    lines = list(read_inline(batches.inlined(created.name)))
    assert [line.job_id for line in lines] == ["j-1", "j-2"]
    assert all(line.response is not None and line.response.text for line in lines)
    assert created.name in {remote.name for remote in batches.list_all()}
    batches.delete(created.name)
    with pytest.raises(GeminiCallError) as caught:
        batches.get(created.name)
    assert caught.value.http_status == 404


def test_file_batch_upload_download(batches: GeminiBatches, tmp_path: Path) -> None:
    source = tmp_path / "input.jsonl.tmp"
    line = {"key": "k-1", "request": {"contents": [{"role": "user",
                                                    "parts": [{"text": "hello"}]}]}}  # fmt: skip
    source.write_text(json.dumps(line) + "\n")
    input_file = batches.upload_jsonl(source, display_name="visionq-wrap-2")
    assert input_file.startswith("files/")
    created = batches.create(model=MODEL, src=input_file, display_name="visionq-wrap-2")
    done = _done(batches, created.name)
    assert done.responses_file == f"files/batch-{created.name.removeprefix('batches/')}"
    output = tmp_path / "output.tmp"
    batches.download(done.responses_file, output)
    lines = list(read_jsonl(output))
    assert [x.job_id for x in lines] == ["k-1"] and lines[0].response is not None
    batches.delete_file(input_file)


def test_jsonl_upload_returns_once_the_file_is_active(emulator_url: str, tmp_path: Path) -> None:
    """The default emulator keeps an upload PROCESSING for 0.5 s, as Gemini processes files:
    a batch created from the file at once would be refused (400 FAILED_PRECONDITION)."""
    wrapper = GeminiBatches(make_client(emulator_url), secret=API_KEY)
    try:
        source = tmp_path / "input.jsonl.tmp"
        line = {"key": "k-1", "request": {"contents": [{"role": "user",
                                                        "parts": [{"text": "hi"}]}]}}  # fmt: skip
        source.write_text(json.dumps(line) + "\n")
        input_file = wrapper.upload_jsonl(source, display_name="visionq-wrap-active")
        created = wrapper.create(model=MODEL, src=input_file, display_name="visionq-wrap-active")
        assert created.state == "BATCH_STATE_PENDING"
        wrapper.cancel(created.name)
    finally:
        wrapper.close()


def test_cancel_ends_a_running_batch(batch_url: str, batches: GeminiBatches) -> None:
    set_faults(batch_url, batch_stall=True)
    created = batches.create(model=MODEL, src=[_request("j")], display_name="visionq-wrap-3")
    batches.cancel(created.name)
    assert _done(batches, created.name).state == "BATCH_STATE_CANCELLED"


def test_unknown_batch_is_a_404(batches: GeminiBatches) -> None:
    with pytest.raises(GeminiCallError) as caught:
        batches.get("batches/doesnotexist")
    assert caught.value.http_status == 404 and not caught.value.retryable
