"""The emulator's front end refuses what Google's ProtoJSON front end refuses, with its bodies.

Over HTTP against a real emulator (raw bodies, and the real SDK where it can send the
case), plus the schema's own header.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import errors, types

from tests.emulator.conftest import API_KEY, MODEL, make_client
from tests.emulator.helpers import image_part, parts
from visionq.emulator.apischema import load_schema
from visionq.emulator.shapes import encode, random_scene

PNG = encode(random_scene(3, count=1)[0])
HEADERS = {"x-goog-api-key": API_KEY}
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"


def _post(url: str, body: Any, version: str = "v1beta", method: str = "generateContent") -> Any:
    return httpx.post(f"{url}/{version}/models/{MODEL}:{method}", headers=HEADERS, json=body)


def _text_body(**extra: Any) -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": [{"text": "hello"}]}], **extra}


def _violations(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    [detail] = error["details"]
    assert detail["@type"] == BAD_REQUEST
    violations: list[dict[str, str]] = detail["fieldViolations"]
    assert error["message"] == "\n".join(v["description"] for v in violations)
    return violations


def test_unknown_field_is_google_s_bad_request(emulator_url: str) -> None:
    response = _post(emulator_url, _text_body(generationConfig={"foo": 1}))
    description = (
        "Invalid JSON payload received. Unknown name \"foo\" at 'generation_config':"
        " Cannot find field."
    )
    assert response.json() == {
        "error": {
            "code": 400,
            "message": description,
            "status": "INVALID_ARGUMENT",
            "details": [
                {
                    "@type": BAD_REQUEST,
                    "fieldViolations": [{"field": "generation_config", "description": description}],
                }
            ],
        }
    }


def test_unknown_top_level_field_has_no_field_path(emulator_url: str) -> None:
    [violation] = _violations(_post(emulator_url, _text_body(temperature=0.2)))
    assert violation == {
        "description": 'Invalid JSON payload received. Unknown name "temperature":'
        " Cannot find field."
    }


def test_every_violation_is_listed(emulator_url: str) -> None:
    body = {
        "contents": [{"parts": [{"text": "x", "colour": "red"}]}],
        "generation_config": {"max_output_tokens": "abc", "media_resolution": "FOO"},
    }
    violations = _violations(_post(emulator_url, body))
    assert [v["field"] for v in violations] == [
        "contents[0].parts[0]",
        "generation_config.max_output_tokens",
        "generation_config.media_resolution",
    ]
    assert violations[1]["description"] == (
        "Invalid value at 'generation_config.max_output_tokens' (TYPE_INT32), \"abc\""
    )
    assert violations[2]["description"] == (
        "Invalid value at 'generation_config.media_resolution' (type.googleapis.com/"
        'google.ai.generativelanguage.v1beta.GenerationConfig.MediaResolution), "FOO"'
    )


@pytest.mark.parametrize(
    ("config", "field", "shown"),
    [
        ({"temperature": "warm"}, "temperature", '(TYPE_FLOAT), "warm"'),
        ({"candidateCount": 1.5}, "candidate_count", "(TYPE_INT32), 1.5"),
        ({"candidateCount": 2**31}, "candidate_count", "(TYPE_INT32), 2147483648"),
        ({"responseLogprobs": "true"}, "response_logprobs", '(TYPE_BOOL), "true"'),
        ({"responseMimeType": 5}, "response_mime_type", "(TYPE_STRING), 5"),
        ({"stopSequences": [None]}, "stop_sequences[0]", "(TYPE_STRING), null"),
        (
            {"mediaResolution": "media_resolution_low"},
            "media_resolution",
            "(type.googleapis.com/google.ai.generativelanguage.v1beta.GenerationConfig"
            '.MediaResolution), "media_resolution_low"',
        ),
    ],
)
def test_wrong_json_types_and_values(
    emulator_url: str, config: dict[str, Any], field: str, shown: str
) -> None:
    [violation] = _violations(_post(emulator_url, _text_body(generationConfig=config)))
    path = f"generation_config.{field}"
    assert violation == {"field": path, "description": f"Invalid value at '{path}' {shown}"}


def test_objects_and_lists_in_the_wrong_place(emulator_url: str) -> None:
    body = {
        "contents": [{"parts": [{"text": {"value": "x"}}]}],
        "generationConfig": {"temperature": [0.1]},
    }
    violations = _violations(_post(emulator_url, body))
    assert [v["description"] for v in violations] == [
        "Invalid JSON payload received. Unknown name \"text\" at 'contents[0].parts[0]':"
        " Starting an object on a scalar field",
        "Invalid JSON payload received. Unknown name \"temperature\" at 'generation_config':"
        " Proto field is not repeating, cannot start list.",
    ]


def test_oneof_set_twice_and_field_given_in_both_casings(emulator_url: str) -> None:
    data = base64.b64encode(PNG).decode()
    part = {"text": "x", "inlineData": {"mimeType": "image/png", "data": data}}
    body = {"contents": [{"parts": [part]}], "generationConfig": {}, "generation_config": {}}
    violations = _violations(_post(emulator_url, body))
    assert [v["description"] for v in violations] == [
        "Invalid JSON payload received. Unknown name \"inlineData\" at 'contents[0].parts[0]':"
        " oneof field 'data' is already set. Cannot set 'inlineData'",
        'Invalid JSON payload received. Unknown name "generation_config":'
        " field 'generation_config' is given twice.",
    ]


def test_bad_base64_is_named(emulator_url: str) -> None:
    body = {"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": "ab!"}}]}]}
    [violation] = _violations(_post(emulator_url, body))
    where = "contents[0].parts[0].inline_data.data"
    assert violation == {
        "field": where,
        "description": f"Invalid value at '{where}' (TYPE_BYTES),"
        ' Base64 decoding failed for "ab!"',
    }


def test_what_protojson_accepts(emulator_url: str) -> None:
    urlsafe = base64.urlsafe_b64encode(PNG).decode().rstrip("=")
    body = {
        # A single object where a list is expected, as Google's own curl examples send it.
        "contents": {"parts": [{"inline_data": {"mime_type": "image/png", "data": urlsafe}},
                               {"text": "How big is it?"}]},
        "systemInstruction": {"parts": {"text": "Be brief."}},
        "generationConfig": {
            "maxOutputTokens": "4000",  # integers as strings
            "temperature": 1,  # floats as integers
            "mediaResolution": 1,  # enums by number
            "seed": None,  # null means unset
            "responseJsonSchema": None,
        },
        "safetySettings": [],
    }  # fmt: skip
    response = _post(emulator_url, body)
    assert response.status_code == 200, response.text
    assert "640x480" in response.json()["candidates"][0]["content"]["parts"][-1]["text"]


def test_any_json_under_struct_and_value_fields(emulator_url: str) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "x-extra": [1, None]}
    config = {"responseMimeType": "application/json", "responseJsonSchema": schema}
    assert _post(emulator_url, _text_body(generationConfig=config)).status_code == 200
    # responseSchema is Google's Schema message: unknown keywords are refused there.
    config = {"responseMimeType": "application/json", "responseSchema": schema}
    violations = _violations(_post(emulator_url, _text_body(generationConfig=config)))
    assert [v["field"] for v in violations] == [
        "generation_config.response_schema.type",
        "generation_config.response_schema.properties[0].value.type",
        "generation_config.response_schema",
    ]


@pytest.mark.parametrize(
    ("contents", "message"),
    [
        (None, "* GenerateContentRequest.contents: contents is not specified\n"),
        ([], "* GenerateContentRequest.contents: contents is not specified\n"),
        (
            [{"role": "user", "parts": []}],
            "* GenerateContentRequest.contents[0].parts: contents.parts must not be empty.\n",
        ),
        (
            [{"parts": [{"text": "a"}]}, {"role": "user"}],
            "* GenerateContentRequest.contents[1].parts: contents.parts must not be empty.\n",
        ),
        (
            [{"parts": [{"text": "a"}, {"thought": True}]}],
            "* GenerateContentRequest.contents[0].parts[1].data: required oneof field 'data'"
            " must have one initialized field\n",
        ),
    ],
)
def test_required_contents_parts_and_data(emulator_url: str, contents: Any, message: str) -> None:
    for method, request in (("generateContent", "GenerateContent"), ("countTokens", "CountTokens")):
        response = _post(emulator_url, {"contents": contents}, method=method)
        assert response.status_code == 400, response.text
        expected = message.replace("GenerateContentRequest", f"{request}Request")
        assert response.json() == {
            "error": {"code": 400, "message": expected, "status": "INVALID_ARGUMENT"}
        }


def test_count_tokens_is_checked_too(emulator_url: str) -> None:
    body = {"generateContentRequest": {"model": f"models/{MODEL}", "contents": [{"parts": [
        {"text": "abcd"}]}], "generationConfig": {"topK": "many"}}}  # fmt: skip
    [violation] = _violations(_post(emulator_url, body, method="countTokens"))
    assert violation["field"] == "generate_content_request.generation_config.top_k"
    del body["generateContentRequest"]["generationConfig"]
    response = _post(emulator_url, body, method="countTokens")
    assert response.json()["totalTokens"] == 1


def test_the_sdk_s_gemini_3_options_pass_on_v1beta(client: genai.Client) -> None:
    image = types.Part.from_bytes(
        data=PNG, mime_type="image/png", media_resolution="MEDIA_RESOLUTION_ULTRA_HIGH"
    )
    config = types.GenerateContentConfig(
        thinking_config=types.ThinkingConfig(thinking_level=types.ThinkingLevel.LOW),
        media_resolution="MEDIA_RESOLUTION_LOW",
        response_mime_type="text/plain",
        service_tier="flex",
        max_output_tokens=2000,
    )
    reply = client.models.generate_content(
        model=MODEL, contents=parts(image, "How big is it?"), config=config
    )
    assert "640x480" in (reply.text or "")


@pytest.mark.parametrize(
    ("config", "name"),
    [
        (types.GenerateContentConfig(thinking_config=types.ThinkingConfig(thinking_budget=512)),
         "thinkingConfig"),
        (types.GenerateContentConfig(response_mime_type="application/json"), "responseMimeType"),
        (types.GenerateContentConfig(media_resolution="MEDIA_RESOLUTION_LOW"), "mediaResolution"),
    ],
)  # fmt: skip
def test_v1_refuses_what_only_v1beta_has(
    emulator_url: str, config: types.GenerateContentConfig, name: str
) -> None:
    v1 = make_client(emulator_url, version="v1")
    with pytest.raises(errors.ClientError) as info:
        v1.models.generate_content(model=MODEL, contents="hello", config=config)
    assert (info.value.code, info.value.status) == (400, "INVALID_ARGUMENT")
    assert info.value.message == (
        f"Invalid JSON payload received. Unknown name \"{name}\" at 'generation_config':"
        " Cannot find field."
    )
    v1beta = make_client(emulator_url)
    assert v1beta.models.generate_content(model=MODEL, contents="hello", config=config).text


def test_v1_has_no_file_parts_nor_part_media_resolution(emulator_url: str) -> None:
    file_part = {"fileData": {"fileUri": f"{emulator_url}/v1beta/files/abc"}}
    image = {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(PNG).decode()},
             "mediaResolution": {"level": "MEDIA_RESOLUTION_HIGH"}}  # fmt: skip
    body = {"contents": [{"parts": [file_part, image, {"text": "x"}]}]}
    violations = _violations(_post(emulator_url, body, version="v1"))
    assert [v["description"].split(":")[0] for v in violations] == [
        "Invalid JSON payload received. Unknown name \"fileData\" at 'contents[0].parts[0]'",
        "Invalid JSON payload received. Unknown name \"mediaResolution\" at 'contents[0].parts[1]'",
    ]
    image.pop("mediaResolution")
    body = {"contents": [{"parts": [image, {"text": "How big is it?"}]}]}
    assert _post(emulator_url, body, version="v1").status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/upload/v1/files"),
        ("GET", "/v1/files"),
        ("GET", "/v1/files/abc"),
        ("DELETE", "/v1/files/abc"),
    ],
)
def test_v1_has_no_file_api(emulator_url: str, method: str, path: str) -> None:
    headers = HEADERS | {"X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start"}
    response = httpx.request(method, emulator_url + path, headers=headers)
    assert response.status_code == 404
    assert response.json() == {
        "error": {"code": 404, "message": f"Method not found: {path}", "status": "NOT_FOUND"}
    }


def test_sdk_upload_on_v1_is_not_found(emulator_url: str) -> None:
    v1 = make_client(emulator_url, version="v1")
    with pytest.raises(errors.ClientError) as info:
        v1.files.upload(file=_bytes_file(), config=types.UploadFileConfig(mime_type="image/png"))
    assert info.value.code == 404


def _bytes_file() -> io.BytesIO:
    return io.BytesIO(PNG)


def test_upload_start_body_is_checked(emulator_url: str) -> None:
    headers = HEADERS | {
        "X-Goog-Upload-Protocol": "resumable",
        "X-Goog-Upload-Command": "start",
        "X-Goog-Upload-Header-Content-Length": "3",
    }
    url = f"{emulator_url}/upload/v1beta/files"
    refused = httpx.post(url, headers=headers, json={"file": {"displayName": "x", "colour": 1}})
    [violation] = _violations(refused)
    assert violation["field"] == "file"
    for size in ("3", 3):  # int64 as a string or a number
        body = {"file": {"display_name": "x", "mime_type": "image/png", "size_bytes": size}}
        response = httpx.post(url, headers=headers, json=body)
        assert response.status_code == 200, response.text


def test_the_sdk_s_file_upload_and_use_pass(files_client: genai.Client) -> None:
    uploaded = files_client.files.upload(
        file=_bytes_file(), config=types.UploadFileConfig(mime_type="image/png", display_name="d")
    )
    assert uploaded.uri is not None
    part = types.Part.from_uri(file_uri=uploaded.uri, mime_type="image/png")
    reply = files_client.models.generate_content(
        model=MODEL, contents=parts(part, image_part(PNG), "How big is it?")
    )
    assert reply.text


def test_schema_is_dated_and_sourced() -> None:
    for version in ("v1", "v1beta"):
        schema = load_schema(version)
        assert schema.source.startswith("PyPI google-ai-generativelanguage ")
        assert schema.generated[:4].isdigit()
    assert load_schema("v1").method("CreateFile") is None
    assert load_schema("v1beta").method("CreateFile") is not None
