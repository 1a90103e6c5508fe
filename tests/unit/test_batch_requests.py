"""worker/batch_requests.py: inline while the body fits, else a JSONL file whose lines are
what the SDK sends for the same request; large or shared images by File API reference."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from google import genai
from google.genai import _common, batches, types

from tests.unit.batchlane import MODEL, FakeUploads, blob, spec, store_at
from visionq.vision.costing import CostBook
from visionq.worker.batch_requests import (
    BatchBuilder,
    BatchPolicy,
    inlined_request,
    jsonl_line,
    read_lines,
)
from visionq.worker.files import UploadCache
from visionq.worker.requests import GeminiRequest

KIB = 1024
MARGIN = timedelta(hours=26)


def _builder(
    tmp_path: Path, uploads: FakeUploads, *, inline_max: int, file_min: int = 8 * KIB
) -> BatchBuilder:
    return BatchBuilder(
        blobs=store_at(tmp_path), uploads=cast(UploadCache, uploads),
        catalogue=CostBook.load().catalogue,
        policy=BatchPolicy(
            inline_max_bytes=inline_max, file_image_min_bytes=file_min, file_margin=MARGIN
        ),
        folder=tmp_path,
    )  # fmt: skip


def test_small_batch_stays_inline(tmp_path: Path) -> None:
    store, uploads = store_at(tmp_path), FakeUploads()
    specs = [spec(f"j{i}", blob(store, 2 * KIB, i)) for i in range(5)]
    built = _builder(tmp_path, uploads, inline_max=1_000_000).build(specs)
    assert built.mode == "inline" and built.path is None
    assert built.job_ids == [f"j{i}" for i in range(5)]
    assert [r.metadata for r in built.inline] == [{"job_id": f"j{i}"} for i in range(5)]
    assert uploads.asked == []
    assert all(t == ["inline"] for t in built.transports.values())
    # The body estimate: each request's JSON (base64 images) plus the per-request overhead.
    assert 5 * (4 * 2 * KIB // 3) < built.request_bytes < 1_000_000


def test_past_the_inline_cap_every_request_goes_to_the_file(tmp_path: Path) -> None:
    store, uploads = store_at(tmp_path), FakeUploads()
    big = [blob(store, 40 * KIB, i) for i in range(3)]
    small = [blob(store, 2 * KIB, 100 + i) for i in range(3)]
    shared = blob(store, 2 * KIB, 999)
    specs = [spec(f"b{i}", sha) for i, sha in enumerate(big)]
    specs += [spec(f"s{i}", sha) for i, sha in enumerate(small)]
    specs += [spec("x1", shared), spec("x2", shared)]
    built = _builder(tmp_path, uploads, inline_max=60 * KIB).build(specs)
    try:
        assert built.mode == "file" and built.path is not None and built.inline == []
        assert built.path.name.endswith(".tmp")
        lines = list(read_lines(built.path))
        assert [line["key"] for line in lines] == [s.id for s in specs]
        assert built.job_ids == [s.id for s in specs]
        assert built.request_bytes == built.path.stat().st_size
        by_key = {line["key"]: line["request"]["contents"][0]["parts"] for line in lines}
        # Large images and the one two jobs share go by reference; small ones inline.
        for key in ("b0", "b1", "b2", "x1", "x2"):
            assert "fileData" in by_key[key][0] and "inlineData" not in by_key[key][0]
            assert built.transports[key] == ["file"]
        for key in ("s0", "s1", "s2"):
            assert by_key[key][0]["inlineData"]["mimeType"] == "image/png"
            assert built.transports[key] == ["inline"]
        assert {sha for sha, _, _ in uploads.asked} == {*big, shared}
        # Files referenced by a batch must outlive it: the batch's margin, not a call's.
        assert set(uploads.margins) == {MARGIN}
    finally:
        built.discard()
    assert not built.path.exists()


def _file_batch(tmp_path: Path, store: Any, jobs: int) -> list[Any]:
    return [spec(f"b{i}", blob(store, 40 * KIB, i)) for i in range(jobs)]


def test_the_lock_is_renewed_while_the_batch_is_built(tmp_path: Path) -> None:
    """Building 1,000 requests (decodes, uploads) outlasts the lane's lock: ``renew`` runs
    before each request and each upload (rate-limited; here without a limit)."""
    store, uploads = store_at(tmp_path), FakeUploads()
    specs = _file_batch(tmp_path, store, 6)
    calls: list[int] = []
    builder = BatchBuilder(
        blobs=store, uploads=cast(UploadCache, uploads), catalogue=CostBook.load().catalogue,
        policy=BatchPolicy(
            inline_max_bytes=100 * KIB, file_image_min_bytes=8 * KIB, file_margin=MARGIN
        ),
        folder=tmp_path, renew_every_s=0.0,
    )  # fmt: skip
    built = builder.build(specs, renew=lambda: calls.append(1))
    built.discard()
    assert built.mode == "file" and len(uploads.asked) == 6
    assert len(calls) == len(specs) + len(uploads.asked)


def test_lock_renewals_are_rate_limited(tmp_path: Path) -> None:
    """With a clock moving 0.25 s per look, at most one renewal per second."""
    store, uploads = store_at(tmp_path), FakeUploads()
    specs = _file_batch(tmp_path, store, 8)
    ticks = iter(i * 0.25 for i in range(10_000))
    calls: list[int] = []
    builder = BatchBuilder(
        blobs=store, uploads=cast(UploadCache, uploads), catalogue=CostBook.load().catalogue,
        policy=BatchPolicy(
            inline_max_bytes=100 * KIB, file_image_min_bytes=8 * KIB, file_margin=MARGIN
        ),
        folder=tmp_path, clock=lambda: next(ticks),
    )  # fmt: skip
    built = builder.build(specs, renew=lambda: calls.append(1))
    built.discard()
    looks = len(specs) + len(uploads.asked)  # 16 looks, 4 s of fake time
    assert len(calls) == looks // 4


def test_a_job_whose_image_is_gone_is_left_out(tmp_path: Path) -> None:
    store, uploads = store_at(tmp_path), FakeUploads()
    specs = [spec("ok", blob(store, KIB)), spec("gone", "f" * 64)]
    built = _builder(tmp_path, uploads, inline_max=1_000_000).build(specs)
    assert built.job_ids == ["ok"]
    assert built.failed["gone"].code == "blob_not_found"


def _camel(value: Any) -> Any:
    """Keys in camelCase, enums as their values: the SDK mixes snake_case into the nested
    objects it sends (Gemini's JSON parser takes both spellings)."""
    if isinstance(value, dict):
        return {
            re.sub(r"_([a-z])", lambda m: m.group(1).upper(), str(k)): _camel(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return getattr(value, "value", value)


@pytest.mark.parametrize(
    ("task", "options"),
    [
        ("caption", {}),
        ("detect", {"thinking_level": "LOW", "media_resolution": "LOW", "max_output_tokens": 900}),
        ("classify", {"temperature": 0.3}),
    ],
)
def test_jsonl_line_is_what_the_sdk_sends_inline(
    tmp_path: Path, task: str, options: dict[str, Any]
) -> None:
    """Contract: our JSONL request equals the SDK's own inline request body (its private
    _InlinedRequest_to_mldev, test-only) once spelling is normalised."""
    store = store_at(tmp_path)
    job = spec("j1", blob(store, 3 * KIB), task=task, options=options)
    request = _builder(tmp_path, FakeUploads(), inline_max=1_000_000)._request(job, None)
    request.parts.insert(
        0, types.Part.from_uri(file_uri="https://e/v1beta/files/abc", mime_type="image/png")
    )
    client = genai.Client(api_key="unused")
    sdk = batches._InlinedRequest_to_mldev(client._api_client, inlined_request("j1", request))
    sdk = _common.encode_unserializable_types(_common.convert_to_dict(sdk))
    line = jsonl_line("j1", request)
    assert line["key"] == "j1"
    assert _camel(json.loads(json.dumps(sdk["request"], default=str))) == line["request"]
    assert sdk["metadata"] == {"job_id": "j1"}


def test_line_without_config_has_no_generation_config() -> None:
    request = GeminiRequest(model=MODEL, parts=[types.Part.from_text(text="hi")], config={},
                            transports=[])  # fmt: skip
    assert jsonl_line("k", request) == {
        "key": "k", "request": {"contents": [{"parts": [{"text": "hi"}], "role": "user"}]}
    }  # fmt: skip
