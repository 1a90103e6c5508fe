"""worker/batch_api.py: a raw batch Operation read into a RemoteBatch; errors translated."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from google.genai import errors as genai_errors
from google.genai import types

from visionq.worker.batch_api import (
    GeminiBatches,
    batch_state,
    remote_from_job,
    remote_from_operation,
)
from visionq.worker.errors import GeminiCallError

OPERATION = {
    "name": "batches/abc123",
    "done": False,
    "metadata": {
        "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
        "model": "models/gemini-3.8-flash",
        "displayName": "visionq-1234",
        "state": "BATCH_STATE_RUNNING",
        "createTime": "2026-12-05T09:00:00.123456789Z",
        "updateTime": "2026-12-05T09:01:00Z",
        "batchStats": {"requestCount": "9", "successfulRequestCount": "4",
                       "pendingRequestCount": "5"},
    },
}  # fmt: skip


class _ApiClient:
    def __init__(self, body: Any = None, exc: Exception | None = None) -> None:
        self.body, self.exc = body, exc
        self.calls: list[tuple[str, str, dict[str, object]]] = []

    def request(self, method: str, path: str, request: dict[str, object]) -> Any:
        self.calls.append((method, path, request))
        if self.exc is not None:
            raise self.exc
        return SimpleNamespace(body=json.dumps(self.body), headers={})


def _batches(api: _ApiClient) -> GeminiBatches:
    client: Any = SimpleNamespace(_api_client=api)
    return GeminiBatches(client, secret="sekrit")


def test_raw_get_keeps_stats_as_ints_and_times() -> None:
    api = _ApiClient(OPERATION)
    remote = _batches(api).get("batches/abc123")
    assert api.calls == [("get", "batches/abc123", {})]
    assert remote.name == "batches/abc123"
    assert remote.display_name == "visionq-1234"
    assert remote.state == "BATCH_STATE_RUNNING" and remote.live
    assert remote.stats == {"requestCount": 9, "successfulRequestCount": 4,
                            "pendingRequestCount": 5}  # fmt: skip
    assert remote.update_time == datetime(2026, 12, 5, 9, 1, tzinfo=UTC)
    assert remote.create_time is not None and remote.create_time.microsecond == 123456


def test_a_bare_id_is_asked_as_batches_id() -> None:
    api = _ApiClient(OPERATION)
    _batches(api).get("abc123")
    assert api.calls[0][1] == "batches/abc123"


def test_finished_file_batch_names_its_output_and_error() -> None:
    operation = {
        "name": "batches/x",
        "done": True,
        "error": {"code": 13, "message": "boom", "status": "INTERNAL"},
        "metadata": {"state": "BATCH_STATE_FAILED",
                     "output": {"responsesFile": "files/batch-x"}},
    }  # fmt: skip
    remote = remote_from_operation(operation)
    assert remote.state == "BATCH_STATE_FAILED" and not remote.live
    assert remote.responses_file == "files/batch-x"
    assert remote.error == {"code": 13, "message": "boom", "status": "INTERNAL"}
    assert remote.stats == {}


def test_states_from_either_spelling() -> None:
    assert batch_state("JOB_STATE_SUCCEEDED") == "BATCH_STATE_SUCCEEDED"
    assert batch_state(types.JobState.JOB_STATE_EXPIRED) == "BATCH_STATE_EXPIRED"
    assert batch_state("BATCH_STATE_PENDING") == "BATCH_STATE_PENDING"
    assert batch_state(None) == "BATCH_STATE_UNSPECIFIED"


def test_typed_job_maps_to_remote() -> None:
    job = types.BatchJob(
        name="batches/q", display_name="visionq-9", state=types.JobState.JOB_STATE_PENDING
    )
    remote = remote_from_job(job)
    assert (remote.name, remote.display_name, remote.state) == (
        "batches/q", "visionq-9", "BATCH_STATE_PENDING",
    )  # fmt: skip


def test_404_is_a_gemini_call_error_with_its_status() -> None:
    error = genai_errors.ClientError(
        404, {"error": {"code": 404, "message": "not found sekrit", "status": "NOT_FOUND"}}
    )
    with pytest.raises(GeminiCallError) as caught:
        _batches(_ApiClient(exc=error)).get("batches/gone")
    assert caught.value.http_status == 404 and not caught.value.retryable
    assert "sekrit" not in caught.value.message


def test_a_body_that_is_not_an_operation_is_retryable() -> None:
    with pytest.raises(GeminiCallError) as caught:
        _batches(_ApiClient(["not", "an", "object"])).get("batches/x")
    assert caught.value.code == "malformed_response" and caught.value.retryable


def test_no_client_says_what_to_set() -> None:
    with pytest.raises(GeminiCallError, match="GEMINI_API_KEY"):
        GeminiBatches(None, secret=None).get("batches/x")


def test_odd_operation_fields_read_leniently_or_as_malformed() -> None:
    """Review nit 4: the Operation is parsed by a model; an unreadable count is 0 (never a
    ValueError out of the poller), null objects read as empty, and a metadata that is not
    an object is a retryable malformed_response."""
    stats = {"requestCount": "many", "pendingRequestCount": "3"}
    metadata = {"state": "BATCH_STATE_RUNNING", "updateTime": "x", "batchStats": stats}
    odd = {"name": "batches/o", "metadata": metadata}
    remote = remote_from_operation(odd)
    assert remote.stats == {"requestCount": 0, "pendingRequestCount": 3}
    assert remote.update_time is None and remote.live
    bare = remote_from_operation({"name": "batches/n", "metadata": None})
    assert (bare.state, bare.stats, bare.responses_file) == ("BATCH_STATE_UNSPECIFIED", {}, None)
    with pytest.raises(GeminiCallError) as caught:
        _batches(_ApiClient({"name": "batches/m", "metadata": ["no"]})).get("batches/m")
    assert caught.value.code == "malformed_response" and caught.value.retryable
