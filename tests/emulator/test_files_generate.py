"""Uploaded files in generateContent/countTokens: same answers as inline, lifecycle errors."""

from __future__ import annotations

import random
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import errors, types
from PIL import Image

from tests.emulator.conftest import API_KEY, FILES_INLINE_LIMIT, MODEL, make_client
from tests.emulator.helpers import expire, image_part, parse_json_reply, parts, stats, upload_bytes
from visionq.emulator.shapes import Shape, draw_scene, encode, random_scene

DETECT = 'Detect every shape. Answer with a JSON list of {"box_2d", "label"}.'
IMAGE, TRUTH = random_scene(81, width=800, height=600, count=4)
PNG = encode(IMAGE)


def _generate(client: genai.Client, *contents: types.PartUnionDict) -> str:
    reply = client.models.generate_content(model=MODEL, contents=parts(*contents))
    return reply.text or ""


def _client_error(call: object) -> errors.ClientError:
    assert callable(call)
    with pytest.raises(errors.ClientError) as info:
        call()
    return info.value


def test_file_part_gives_the_same_boxes_as_inline(files_client: genai.Client) -> None:
    uploaded = upload_bytes(files_client, PNG)
    inline = parse_json_reply(_generate(files_client, image_part(PNG), DETECT))
    from_file = parse_json_reply(_generate(files_client, uploaded, DETECT))
    assert from_file == inline
    assert sorted(item["label"] for item in from_file) == sorted(s.label for s in TRUTH)
    uri_part = types.Part.from_uri(file_uri=uploaded.uri or "", mime_type="image/png")
    assert parse_json_reply(_generate(files_client, uri_part, DETECT)) == inline


def test_tokens_match_inline(files_client: genai.Client) -> None:
    uploaded = upload_bytes(files_client, PNG)
    inline = files_client.models.count_tokens(model=MODEL, contents=parts(image_part(PNG), "hi"))
    by_file = files_client.models.count_tokens(model=MODEL, contents=parts(uploaded, "hi"))
    assert by_file.total_tokens == inline.total_tokens
    reply = files_client.models.generate_content(model=MODEL, contents=parts(uploaded, "hi"))
    assert reply.usage_metadata is not None
    assert reply.usage_metadata.prompt_token_count == inline.total_tokens


def test_inline_and_file_parts_mix(files_client: genai.Client, files_url: str) -> None:
    other = encode(draw_scene(400, 300, [Shape("ellipse", "cyan", (20, 10, 120, 110))]))
    uploaded = upload_bytes(files_client, other)
    before = stats(files_url)
    text = _generate(files_client, image_part(PNG), uploaded, "Compare the two images.")
    after = stats(files_url)
    assert text.startswith("[synthetic comparison, emulator] ")
    assert "Image 1 (800x600) has 4 shapes, image 2 (400x300) has 1 shape." in text
    assert "Only in image 2: cyan ellipse." in text
    assert after["generate_calls"] - before["generate_calls"] == 1
    assert after["file_parts_used"] - before["file_parts_used"] == 1
    assert after["inline_parts_used"] - before["inline_parts_used"] == 1


def test_a_file_above_the_inline_limit_is_fine(files_client: genai.Client) -> None:
    # Random pixels: a PNG bigger than this emulator's inline limit (files don't count).
    rng = random.Random(9)
    noise = Image.frombytes("RGB", (1300, 1300), rng.randbytes(1300 * 1300 * 3))
    data = encode(noise, "PNG", compress_level=1)
    assert len(data) > FILES_INLINE_LIMIT
    inline = _client_error(lambda: _generate(files_client, image_part(data), "Describe it."))
    assert inline.message == f"Request payload size exceeds the limit: {FILES_INLINE_LIMIT} bytes."
    uploaded = upload_bytes(files_client, data)
    assert "1300x1300 photo" in _generate(files_client, uploaded, "Describe it.")


def test_expired_file_in_a_prompt_is_permission_denied(
    files_client: genai.Client, files_url: str
) -> None:
    uploaded = upload_bytes(files_client, PNG)
    expire(files_url, uploaded.name or "")
    error = _client_error(lambda: _generate(files_client, uploaded, "Describe it."))
    file_id = (uploaded.name or "").removeprefix("files/")
    assert (error.code, error.status) == (403, "PERMISSION_DENIED")
    assert error.message == (
        f"You do not have permission to access the File {file_id} or it may not exist."
    )


def test_deleted_file_in_a_prompt_is_permission_denied(files_client: genai.Client) -> None:
    uploaded = upload_bytes(files_client, PNG)
    files_client.files.delete(name=uploaded.name or "")
    error = _client_error(lambda: _generate(files_client, uploaded, "Describe it."))
    assert (error.code, error.status) == (403, "PERMISSION_DENIED")


def test_failed_file_in_a_prompt_is_failed_precondition(files_client: genai.Client) -> None:
    uploaded = upload_bytes(files_client, b"not a png at all")
    assert uploaded.state == types.FileState.FAILED
    error = _client_error(lambda: _generate(files_client, uploaded, "Describe it."))
    file_id = (uploaded.name or "").removeprefix("files/")
    assert (error.code, error.status) == (400, "FAILED_PRECONDITION")
    assert error.message == (
        f"The File {file_id} is not in an ACTIVE state and usage is not allowed."
    )


def test_processing_file_in_a_prompt_is_failed_precondition(slow_files_url: str) -> None:
    sdk = make_client(slow_files_url)
    uploaded = upload_bytes(sdk, PNG)
    assert uploaded.state == types.FileState.PROCESSING
    error = _client_error(lambda: _generate(sdk, uploaded, "Describe it."))
    assert (error.code, error.status) == (400, "FAILED_PRECONDITION")
    counted = _client_error(
        lambda: sdk.models.count_tokens(model=MODEL, contents=parts(uploaded, "x"))
    )
    assert counted.status == "FAILED_PRECONDITION"
    sdk.close()


@pytest.mark.parametrize(
    ("key", "uri_key", "mime_key"),
    [("fileData", "fileUri", "mimeType"), ("file_data", "file_uri", "mime_type")],
)
def test_both_casings_of_file_data(
    files_client: genai.Client, files_url: str, key: str, uri_key: str, mime_key: str
) -> None:
    uploaded = upload_bytes(files_client, PNG)
    part: dict[str, Any] = {key: {uri_key: uploaded.uri, mime_key: "image/png"}}
    body = {"contents": [{"role": "user", "parts": [part, {"text": DETECT}]}]}
    response = httpx.post(
        f"{files_url}/v1beta/models/{MODEL}:generateContent",
        headers={"x-goog-api-key": API_KEY},
        json=body,
    )
    assert response.status_code == 200, response.text
    text = response.json()["candidates"][0]["content"]["parts"][0]["text"]
    assert sorted(i["label"] for i in parse_json_reply(text)) == sorted(s.label for s in TRUTH)


def test_text_file_is_read_as_a_prompt_part(files_client: genai.Client) -> None:
    notes = upload_bytes(files_client, b"How many shapes are there?", "text/plain")
    text = _generate(files_client, image_part(PNG), notes)
    assert "] 4 (" in text
