"""Helpers of the Batch API tests (test_batches.py, test_batch_faults.py)."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
from google import genai
from google.genai import types

from tests.emulator.conftest import API_KEY, MODEL

DONE = ("BATCH_STATE_SUCCEEDED", "BATCH_STATE_FAILED", "BATCH_STATE_CANCELLED",
        "BATCH_STATE_EXPIRED")  # fmt: skip
KEY = {"x-goog-api-key": API_KEY}
WAIT_S = 20.0


def raw_get(url: str, name: str) -> dict[str, Any]:
    """The Operation as the wire carries it (the SDK drops batchStats)."""
    response = httpx.get(f"{url}/v1beta/{name}", headers=KEY)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def wait_state(url: str, name: str, states: tuple[str, ...] = DONE) -> dict[str, Any]:
    """Poll until the batch is in one of ``states``; its raw Operation."""
    deadline = time.monotonic() + WAIT_S
    while True:
        body = raw_get(url, name)
        if body["metadata"]["state"] in states:
            return body
        assert time.monotonic() < deadline, f"{name} stuck in {body['metadata']['state']}"
        time.sleep(0.05)


def text_request(text: str, job_id: str) -> types.InlinedRequest:
    """An inline request with our job id in its metadata."""
    return types.InlinedRequest(contents=text, metadata={"job_id": job_id})


def image_contents(data: bytes) -> list[types.Content]:
    """One user turn: a PNG and a prompt."""
    parts = [types.Part.from_bytes(data=data, mime_type="image/png"), types.Part(text="caption")]
    return [types.Content(role="user", parts=parts)]


def image_request(data: bytes, job_id: str) -> types.InlinedRequest:
    """An inline request: one PNG and a prompt."""
    return types.InlinedRequest(
        contents=image_contents(data),
        metadata={"job_id": job_id},
        config=types.GenerateContentConfig(max_output_tokens=200),
    )


def jsonl(lines: list[Any]) -> bytes:
    """A JSONL file: dicts are dumped, strings written as they are (bad lines)."""
    return "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines).encode()


def file_line(key: str, text: str) -> dict[str, Any]:
    """One JSONL input line."""
    return {"key": key, "request": {"contents": [{"role": "user", "parts": [{"text": text}]}]}}


def create_inline(sdk: genai.Client, count: int = 2, name: str = "visionq-t") -> str:
    """A batch of ``count`` text requests; its name."""
    src = [text_request(f"hello {i}", f"job-{i}") for i in range(count)]
    job = sdk.batches.create(model=MODEL, src=src, config={"display_name": name})
    assert job.name is not None
    return job.name
