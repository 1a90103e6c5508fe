"""Error bodies: the SDK must raise ClientError with the real service's code/status/message."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
from google import genai
from google.genai import errors, types

from tests.emulator.conftest import API_KEY, MODEL, make_client
from tests.emulator.helpers import ask, image_part, parts
from visionq.emulator.shapes import encode, random_scene

SCENE, TRUTH = random_scene(7, count=1)
PNG = encode(SCENE)


def _raises(call: object) -> errors.ClientError:
    assert callable(call)
    with pytest.raises(errors.ClientError) as info:
        call()
    return info.value


def test_missing_key_is_permission_denied(emulator_url: str) -> None:
    sdk = genai.Client(
        api_key=" ",
        http_options=types.HttpOptions(base_url=emulator_url, api_version="v1beta", timeout=10_000),
    )
    error = _raises(lambda: sdk.models.generate_content(model=MODEL, contents="hi"))
    assert (error.code, error.status) == (403, "PERMISSION_DENIED")
    assert error.message is not None
    assert error.message.startswith("Method doesn't allow unregistered callers")


def test_wrong_key_is_invalid_argument_with_error_info(emulator_url: str) -> None:
    sdk = make_client(emulator_url, api_key="wrong-key")
    error = _raises(lambda: sdk.models.generate_content(model=MODEL, contents="hi"))
    assert (error.code, error.status) == (400, "INVALID_ARGUMENT")
    assert error.message == "API key not valid. Please pass a valid API key."
    info = error.details["error"]["details"][0]
    assert info["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    assert (info["reason"], info["domain"]) == ("API_KEY_INVALID", "googleapis.com")


def test_every_configured_key_is_accepted(emulator_url: str) -> None:
    sdk = make_client(emulator_url, api_key="second-key")
    assert sdk.models.generate_content(model=MODEL, contents="hello").text


def test_key_in_query_parameter(emulator_url: str) -> None:
    body = {"contents": [{"parts": [{"text": "how big?"}]}]}
    url = f"{emulator_url}/v1beta/models/{MODEL}:generateContent"
    assert httpx.post(url, params={"key": API_KEY}, json=body).status_code == 200
    assert httpx.post(url, params={"key": "nope"}, json=body).status_code == 400
    assert httpx.post(url, json=body).status_code == 403


def test_unknown_model_is_not_found(client: genai.Client) -> None:
    error = _raises(lambda: client.models.generate_content(model="gemini-0.1-nano", contents="x"))
    assert (error.code, error.status) == (404, "NOT_FOUND")
    assert error.message == (
        "models/gemini-0.1-nano is not found for API version v1beta, or is not supported for"
        " generateContent. Call ListModels to see the list of available models and their"
        " supported methods."
    )


def test_unsupported_mime_type(client: genai.Client) -> None:
    gif = encode(random_scene(8, count=1)[0].convert("P"), "PNG")
    error = _raises(
        lambda: client.models.generate_content(
            model=MODEL, contents=parts(image_part(gif, "image/gif"), "caption")
        )
    )
    assert (error.code, error.status) == (400, "INVALID_ARGUMENT")
    assert error.message == "Unsupported MIME type: image/gif"


def test_payload_over_the_inline_limit(files_client: genai.Client) -> None:
    big = b"\x00" * (4 * 1024 * 1024)  # base64 growth pushes the request past 4 MiB
    error = _raises(
        lambda: files_client.models.generate_content(
            model=MODEL, contents=parts(image_part(big, "image/png"), "caption")
        )
    )
    assert (error.code, error.status) == (400, "INVALID_ARGUMENT")
    assert error.message == "Request payload size exceeds the limit: 4194304 bytes."


def test_default_inline_limit_is_100_mb(client: genai.Client) -> None:
    # 16 MiB of bytes is over 21 MiB of JSON: past the old 20 MB limit, within 100 MB,
    # so the request is read and the image itself is what gets refused.
    big = b"\x00" * (16 * 1024 * 1024)
    error = _raises(
        lambda: client.models.generate_content(
            model=MODEL, contents=parts(image_part(big, "image/png"), "caption")
        )
    )
    assert (error.message or "").startswith("Unable to process input image.")


def test_undecodable_image(client: genai.Client) -> None:
    error = _raises(lambda: ask(client, b"definitely not a png", "caption"))
    assert (error.code, error.status) == (400, "INVALID_ARGUMENT")
    assert error.message == (
        "Unable to process input image. Please retry or report in"
        " https://developers.generativeai.google/guide/troubleshooting"
    )


def test_unknown_file_uri_is_permission_denied(client: genai.Client) -> None:
    # Users report 403 for file URIs that are unknown, deleted or expired.
    part = types.Part.from_uri(file_uri="https://example.invalid/files/abc", mime_type="image/png")
    error = _raises(lambda: client.models.generate_content(model=MODEL, contents=parts(part, "x")))
    assert (error.code, error.status) == (403, "PERMISSION_DENIED")
    assert error.message == "You do not have permission to access the File abc or it may not exist."


def test_non_file_uri_is_invalid_argument(client: genai.Client) -> None:
    part = types.Part.from_uri(file_uri="gs://bucket/picture.png", mime_type="image/png")
    error = _raises(lambda: client.models.generate_content(model=MODEL, contents=parts(part, "x")))
    assert (error.code, error.status) == (400, "INVALID_ARGUMENT")
    assert error.message == "Invalid or unsupported file uri: gs://bucket/picture.png"


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'"text"'])
def test_malformed_json_body(emulator_url: str, body: bytes) -> None:
    response = httpx.post(
        f"{emulator_url}/v1beta/models/{MODEL}:generateContent",
        headers={"x-goog-api-key": API_KEY, "content-type": "application/json"},
        content=body,
    )
    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert response.json()["error"]["message"].startswith("Invalid JSON payload received.")


def test_missing_contents_and_bad_base64(emulator_url: str) -> None:
    url = f"{emulator_url}/v1beta/models/{MODEL}:generateContent"
    headers = {"x-goog-api-key": API_KEY}
    empty = httpx.post(url, headers=headers, json={})
    assert empty.status_code == 400
    assert "contents is not specified" in empty.json()["error"]["message"]
    bad = {"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": "!!"}}]}]}
    response = httpx.post(url, headers=headers, json=bad)
    assert response.status_code == 400
    assert "Base64 decoding failed" in response.json()["error"]["message"]


def test_both_casings_and_both_base64_alphabets(emulator_url: str) -> None:
    # v1beta: the v1 API has no responseMimeType (see test_strict_parsing.py).
    url = f"{emulator_url}/v1beta/models/{MODEL}:generateContent"
    headers = {"x-goog-api-key": API_KEY}
    standard = base64.b64encode(PNG).decode()
    for part in (
        {"inlineData": {"mimeType": "image/png", "data": standard}},
        {"inline_data": {"mime_type": "image/png", "data": base64.urlsafe_b64encode(PNG).decode()}},
    ):
        body = {
            "contents": [{"role": "user", "parts": [part, {"text": "Detect box_2d"}]}],
            "generation_config": {"response_mime_type": "application/json"},
        }
        response = httpx.post(url, headers=headers, json=body)
        assert response.status_code == 200, response.text
        text = response.json()["candidates"][0]["content"]["parts"][0]["text"]
        assert [item["label"] for item in json.loads(text)] == [TRUTH[0].label]


@pytest.mark.parametrize("version", ["v1", "v1beta"])
def test_both_api_versions_serve_generate_and_count(emulator_url: str, version: str) -> None:
    sdk = make_client(emulator_url, version=version)
    reply = sdk.models.generate_content(
        model=MODEL, contents=parts(image_part(PNG), "How big is it?")
    )
    assert "640x480" in (reply.text or "")
    assert sdk.models.count_tokens(model=MODEL, contents=parts("abcd")).total_tokens == 1


def test_unknown_version_and_method_are_not_found(emulator_url: str) -> None:
    headers = {"x-goog-api-key": API_KEY}
    for path in (f"/v2/models/{MODEL}:generateContent", f"/v1beta/models/{MODEL}:embed"):
        response = httpx.post(emulator_url + path, headers=headers, json={})
        assert response.status_code == 404
        assert response.json()["error"]["status"] == "NOT_FOUND"


def test_healthz(emulator_url: str) -> None:
    assert httpx.get(f"{emulator_url}/healthz").json() == {"status": "ok"}
