"""The emulator's Batch API through the real google-genai SDK (and raw HTTP where the SDK
drops what it reads: batchStats, errors).

Every test starts with ``set_faults`` (reset, then its own settings) on one shared emulator
whose batches stay PENDING 0.2 s and answer their lines without pacing.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest
from google import genai
from google.genai import errors, types

from tests.emulator.batch_helpers import (
    DONE,
    KEY,
    WAIT_S,
    create_inline,
    file_line,
    image_contents,
    image_request,
    jsonl,
    raw_get,
    text_request,
    wait_state,
)
from tests.emulator.conftest import MODEL, make_client, running_emulator
from tests.emulator.helpers import blank, set_faults, stats, upload_bytes


def test_inline_batch_goes_pending_running_succeeded(
    batch_url: str, batch_sdk: genai.Client
) -> None:
    set_faults(batch_url, batch_lines_per_s=20, batch_pending_s=0.2)
    src = [image_request(blank(64, 48), "j-0"), text_request("hi", "j-1"), text_request("x", "j-2")]
    job = batch_sdk.batches.create(model=MODEL, src=src, config={"display_name": "visionq-abc"})
    assert job.state == types.JobState.JOB_STATE_PENDING
    assert job.display_name == "visionq-abc"
    assert job.name is not None and job.name.startswith("batches/")
    first = raw_get(batch_url, job.name)
    assert first["done"] is False
    assert first["metadata"]["batchStats"] == {"requestCount": "3", "pendingRequestCount": "3"}
    running = wait_state(batch_url, job.name, ("BATCH_STATE_RUNNING", *DONE))
    assert running["metadata"]["state"] == "BATCH_STATE_RUNNING"
    done = wait_state(batch_url, job.name)
    meta = done["metadata"]
    assert meta["state"] == "BATCH_STATE_SUCCEEDED" and done["done"] is True
    # int64 strings, zero counts (failed, pending) left out.
    assert meta["batchStats"] == {"requestCount": "3", "successfulRequestCount": "3"}
    assert "endTime" in meta and meta["updateTime"] >= meta["createTime"]
    assert done["response"]["inlinedResponses"] == meta["output"]["inlinedResponses"]
    typed = batch_sdk.batches.get(name=job.name)
    assert typed.state == types.JobState.JOB_STATE_SUCCEEDED
    assert typed.dest is not None and typed.dest.inlined_responses is not None
    got = [r.metadata for r in typed.dest.inlined_responses]
    assert got == [{"job_id": "j-0"}, {"job_id": "j-1"}, {"job_id": "j-2"}]
    first_answer = typed.dest.inlined_responses[0].response
    assert first_answer is not None and first_answer.text
    assert first_answer.usage_metadata is not None
    counters = stats(batch_url)
    assert counters["batches_created"] == 1 and counters["batch_lines_answered"] == 3
    assert counters["calls_by_tier"] == {"batch": 3}
    assert counters["answered_ok"] == 0  # batch lines are not generateContent calls


def test_batch_lines_cost_half_of_standard(batch_url: str, batch_sdk: genai.Client) -> None:
    set_faults(batch_url)
    image = blank(320, 240)
    direct = batch_sdk.models.generate_content(
        model=MODEL,
        contents=image_contents(image),
        config=types.GenerateContentConfig(max_output_tokens=200),
    )
    name = batch_sdk.batches.create(model=MODEL, src=[image_request(image, "x")]).name
    assert name is not None
    wait_state(batch_url, name)
    typed = batch_sdk.batches.get(name=name)
    assert typed.dest is not None and typed.dest.inlined_responses is not None
    line = typed.dest.inlined_responses[0].response
    assert line is not None and line.usage_metadata == direct.usage_metadata
    billed = stats(batch_url)["billed_usd_by_tier"]
    assert billed["standard"] > 0
    assert billed["batch"] == pytest.approx(billed["standard"] * 0.5)


def test_file_batch_output_downloads_at_both_paths(batch_url: str, batch_sdk: genai.Client) -> None:
    set_faults(batch_url)
    data = jsonl([file_line("a", "one"), file_line("b", "two")])
    uploaded = upload_bytes(batch_sdk, data, mime_type="jsonl", display_name="input")
    assert uploaded.name is not None
    job = batch_sdk.batches.create(model=MODEL, src=uploaded.name)
    assert job.name is not None
    done = wait_state(batch_url, job.name)
    assert done["metadata"]["inputConfig"] == {"fileName": uploaded.name}
    typed = batch_sdk.batches.get(name=job.name)
    assert typed.dest is not None
    output = typed.dest.file_name
    assert output == f"files/batch-{job.name.removeprefix('batches/')}"
    assert typed.dest.inlined_responses is None
    body = batch_sdk.files.download(file=output)
    lines = [json.loads(line) for line in body.decode().splitlines()]
    assert [line["key"] for line in lines] == ["a", "b"]
    assert all(types.GenerateContentResponse.model_validate(x["response"]).text for x in lines)
    docs_path = f"{batch_url}/download/v1beta/{output}:download?alt=media"
    again = httpx.get(docs_path, headers=KEY)
    assert again.status_code == 200 and again.content == body
    meta = batch_sdk.files.get(name=output)
    assert meta.source == types.FileSource.GENERATED and meta.download_uri


def test_uploaded_files_cannot_be_downloaded(batch_url: str, batch_sdk: genai.Client) -> None:
    set_faults(batch_url)
    uploaded = upload_bytes(batch_sdk, jsonl([file_line("a", "x")]), mime_type="application/jsonl")
    assert uploaded.name is not None
    with pytest.raises(errors.ClientError) as caught:
        batch_sdk.files.download(file=uploaded.name)
    assert caught.value.code == 400
    both = httpx.get(f"{batch_url}/download/v1beta/{uploaded.name}:download?alt=media", headers=KEY)
    assert both.status_code == 400


def test_bad_lines_are_per_line_errors(batch_url: str, batch_sdk: genai.Client) -> None:
    set_faults(batch_url)
    data = jsonl(
        [
            file_line("ok", "fine"),
            "{not json",
            {"key": "unknown", "request": {"contents": [], "bogus": 1}},
            {"key": "empty", "request": {"contents": []}},
            {"key": "extra", "request": {"contents": []}, "other": 1},
        ]
    )
    uploaded = upload_bytes(batch_sdk, data, mime_type="text/plain")
    assert uploaded.name is not None
    name = batch_sdk.batches.create(model=MODEL, src=uploaded.name).name
    assert name is not None
    done = wait_state(batch_url, name)
    assert done["metadata"]["state"] == "BATCH_STATE_SUCCEEDED"
    assert done["metadata"]["batchStats"] == {
        "requestCount": "5",
        "successfulRequestCount": "1",
        "failedRequestCount": "4",
    }
    output = done["metadata"]["output"]["responsesFile"]
    lines = [json.loads(x) for x in batch_sdk.files.download(file=output).decode().splitlines()]
    assert "response" in lines[0] and lines[0]["key"] == "ok"
    assert [x["error"]["code"] for x in lines[1:]] == [400, 400, 400, 400]
    assert lines[1]["error"]["status"] == "INVALID_ARGUMENT" and "key" not in lines[1]
    assert [x.get("key") for x in lines[2:]] == ["unknown", "empty", "extra"]
    assert stats(batch_url)["batch_lines_failed"] == 4


def test_inline_line_error_keeps_its_metadata(batch_url: str, batch_sdk: genai.Client) -> None:
    set_faults(batch_url)
    src = [image_request(b"not an image", "broken"), text_request("fine", "ok")]
    name = batch_sdk.batches.create(model=MODEL, src=src).name
    assert name is not None
    wait_state(batch_url, name)
    typed = batch_sdk.batches.get(name=name)
    assert typed.dest is not None and typed.dest.inlined_responses is not None
    broken, fine = typed.dest.inlined_responses
    assert broken.metadata == {"job_id": "broken"} and broken.response is None
    assert broken.error is not None and broken.error.code == 400
    assert fine.metadata == {"job_id": "ok"} and fine.response is not None


def test_unknown_field_in_the_body_refuses_the_create(batch_url: str) -> None:
    set_faults(batch_url)
    request = {"request": {"contents": [{"parts": [{"text": "x"}]}], "bogus": 1}}
    body = {"batch": {"displayName": "d", "inputConfig": {"requests": {"requests": [request]}}}}
    response = httpx.post(
        f"{batch_url}/v1beta/models/{MODEL}:batchGenerateContent", json=body, headers=KEY
    )
    assert response.status_code == 400
    assert "bogus" in response.json()["error"]["message"]
    snake = {"batch": {"display_name": "d", "input_config": {"requests": {"requests": []}}}}
    empty = httpx.post(
        f"{batch_url}/v1beta/models/{MODEL}:batchGenerateContent", json=snake, headers=KEY
    )
    assert empty.status_code == 400  # snake_case is read; no requests is refused
    assert stats(batch_url)["batches_created"] == 0


def test_inline_body_over_the_cap_is_400() -> None:
    with running_emulator("--batch-inline-limit-bytes", "1000") as small:
        client = make_client(small)
        with pytest.raises(errors.ClientError) as caught:
            client.batches.create(model=MODEL, src=[text_request("x" * 2000, "big")])
        assert caught.value.code == 400
        assert "payload size exceeds" in str(caught.value)


def test_file_input_must_exist_and_be_jsonl(batch_url: str, batch_sdk: genai.Client) -> None:
    set_faults(batch_url)
    with pytest.raises(errors.ClientError) as unknown:
        batch_sdk.batches.create(model=MODEL, src="files/nosuchfile")
    assert unknown.value.code == 403
    image = upload_bytes(batch_sdk, blank(8, 8), mime_type="image/png")
    assert image.name is not None
    with pytest.raises(errors.ClientError) as wrong_type:
        batch_sdk.batches.create(model=MODEL, src=image.name)
    assert wrong_type.value.code == 400 and "MIME type" in str(wrong_type.value)


def test_list_pages_newest_first(batch_url: str, batch_sdk: genai.Client) -> None:
    set_faults(batch_url)
    names = [create_inline(batch_sdk, 1, f"visionq-{i}") for i in range(3)]
    listed = list(batch_sdk.batches.list(config={"page_size": 2}))  # the pager fetches page 2
    assert [job.name for job in listed] == names[::-1]
    first = httpx.get(f"{batch_url}/v1beta/batches", params={"pageSize": 2}, headers=KEY).json()
    assert len(first["operations"]) == 2 and first["nextPageToken"]
    second = httpx.get(
        f"{batch_url}/v1beta/batches", params={"pageToken": first["nextPageToken"]}, headers=KEY
    ).json()
    assert [op["name"] for op in second["operations"]] == [names[0]]
    assert "nextPageToken" not in second
    assert [job.display_name for job in listed] == ["visionq-2", "visionq-1", "visionq-0"]


def test_cancel_keeps_answered_lines_and_delete_refuses_running(
    batch_url: str, batch_sdk: genai.Client
) -> None:
    set_faults(batch_url, batch_lines_per_s=4)
    name = create_inline(batch_sdk, 10)
    deadline = time.monotonic() + WAIT_S
    while "successfulRequestCount" not in raw_get(batch_url, name)["metadata"].get(
        "batchStats", {}
    ):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    with pytest.raises(errors.ClientError) as running:
        batch_sdk.batches.delete(name=name)
    assert running.value.code == 400
    assert running.value.status == "FAILED_PRECONDITION"
    batch_sdk.batches.cancel(name=name)
    cancelled = raw_get(batch_url, name)
    assert cancelled["metadata"]["state"] == "BATCH_STATE_CANCELLED" and cancelled["done"]
    answered = cancelled["metadata"]["output"]["inlinedResponses"]["inlinedResponses"]
    assert 1 <= len(answered) < 10
    assert cancelled["metadata"]["batchStats"]["successfulRequestCount"] == str(len(answered))
    time.sleep(0.5)  # nothing moves after a cancel
    assert raw_get(batch_url, name) == cancelled
    batch_sdk.batches.cancel(name=name)  # already ended: left as it is
    batch_sdk.batches.delete(name=name)
    with pytest.raises(errors.ClientError) as gone:
        batch_sdk.batches.get(name=name)
    assert gone.value.code == 404
    with pytest.raises(errors.ClientError) as unknown:
        batch_sdk.batches.delete(name="batches/nosuchbatch")
    assert unknown.value.code == 404


def test_batches_only_on_v1beta(batch_url: str) -> None:
    response = httpx.get(f"{batch_url}/v1/batches", headers=KEY)
    assert response.status_code == 404
