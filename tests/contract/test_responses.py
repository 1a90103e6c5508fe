"""Contract (b): every body the emulator answers is one the published schema allows.

Answers of every model id of the emulator's own catalogue (served, routed, aliased, and the
404s of the others) on both API versions, streams event by event, countTokens, every fault
and outcome setting, the error bodies (400, 403, 404, 409, 429, 500, 503, 504), the File API
and models.get/list: each 2xx body against the method's response message, each error
against Google's JSON error body (``google.rpc.Status`` fields, a ``status`` of
``google.rpc.Code``, details as ``google.protobuf.Any`` of the ``google.rpc`` types).
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from importlib import resources
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.contract.wire import Recorder, response_problems
from tests.emulator.conftest import API_KEY
from visionq.emulator import faults

HEADERS = {"x-goog-api-key": API_KEY}
CATALOGUE = json.loads(
    resources.files("visionq.emulator").joinpath("data", "models.json").read_text()
)
SERVED = [
    model
    for model, spec in CATALOGUE["models"].items()
    if spec["status"] in ("stable", "preview", "deprecated") and "*" not in model
]
NOT_SERVED = [m.replace("*", "001") for m, s in CATALOGUE["models"].items() if m not in SERVED]
MODEL = SERVED[0]


def _png(width: int = 120, height: int = 90) -> str:
    picture = Image.new("RGB", (width, height), "white")
    picture.paste("red", (20, 20, 70, 60))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


IMAGE = {"inlineData": {"mimeType": "image/png", "data": _png()}}
PROMPTS = {
    "caption": "Write a one-sentence caption.",
    "detect": 'Detect the shapes. Return a JSON list with "box_2d" and "label".',
    "segment": 'Give the segmentation masks. JSON with "box_2d", "mask" and "label".',
}
SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


class Api:
    """An httpx client on the emulator whose every Gemini API exchange is checked."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.recorder = Recorder()
        self.http = httpx.Client(base_url=url, event_hooks=self.recorder.hooks(), timeout=60)
        self.problems: list[str] = []

    def __call__(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = HEADERS | kwargs.pop("headers", {})
        response = self.http.request(method, path, headers=headers, **kwargs)
        for exchange in self.recorder.take():
            if not exchange.path.startswith(("/_emulator", "/healthz")):
                self.problems += response_problems(exchange)
        return response

    def generate(self, body: dict[str, Any], model: str = MODEL, **kwargs: Any) -> httpx.Response:
        version = kwargs.pop("version", "v1beta")
        method = kwargs.pop("method", "generateContent")
        return self("POST", f"/{version}/models/{model}:{method}", json=body, params=kwargs or None)

    def faults(self, **settings: Any) -> None:
        self("POST", "/_emulator/reset")
        if settings:
            response = self("POST", "/_emulator/faults", json=settings)
            assert response.status_code == 200, response.text


def _body(prompt: str, *, images: int = 1, **config: Any) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [IMAGE] * images + [{"text": prompt}]
    body: dict[str, Any] = {"contents": [{"role": "user", "parts": parts}]}
    if config:
        body["generationConfig"] = config
    return body


@pytest.fixture
def api(contract_emulator: str) -> Iterator[Api]:
    client = Api(contract_emulator)
    client.faults()
    yield client
    client.faults()
    client.http.close()
    assert not client.problems, "\n".join(client.problems[:20])


@pytest.mark.parametrize("model", SERVED + list(CATALOGUE.get("aliases", {})))
def test_answers_of_every_model(api: Api, model: str) -> None:
    json_config: dict[str, Any] = {"responseMimeType": "application/json"}
    answered = [
        api.generate(_body(PROMPTS["caption"]), model),
        api.generate(_body(PROMPTS["detect"], **json_config), model),
        api.generate(_body(PROMPTS["segment"], **json_config), model),
        api.generate(_body("Compare these images.", images=2), model),
        api.generate(
            _body("Count.", responseMimeType="application/json", responseJsonSchema=SCHEMA), model
        ),
        api.generate(_body(PROMPTS["caption"], thinkingConfig={"includeThoughts": True}), model),
        api.generate(_body(PROMPTS["caption"]), model, method="streamGenerateContent", alt="sse"),
        api.generate(_body(PROMPTS["caption"]), model, method="countTokens"),
        api.generate(
            {"generateContentRequest": {"model": f"models/{model}", **_body(PROMPTS["caption"])}},
            model,
            method="countTokens",
        ),
        # v1: only what v1 has (no responseMimeType, thinkingConfig, fileData).
        api.generate(_body(PROMPTS["caption"]), model, version="v1"),
        api.generate(_body(PROMPTS["caption"]), model, version="v1", method="countTokens"),
        api.generate(
            _body(PROMPTS["caption"]),
            model,
            version="v1",
            method="streamGenerateContent",
            alt="sse",
        ),
    ]
    assert [r.status_code for r in answered] == [200] * len(answered), answered[-1].text


@pytest.mark.parametrize("model", NOT_SERVED)
def test_models_that_do_not_answer_themselves(api: Api, model: str) -> None:
    # Routed ids are answered by their successor; the others are 404s.
    response = api.generate(_body(PROMPTS["caption"]), model)
    assert response.status_code in (200, 404)
    api.generate(_body(PROMPTS["caption"]), model, method="countTokens")
    api("GET", f"/v1beta/models/{model}")


def _fault_settings() -> Iterator[dict[str, Any]]:
    yield from ({"always_fail": status} for status in faults.ALWAYS_FAIL_STATUSES)
    for shape in faults.QUOTA_SHAPES:
        for tier in faults.QUOTA_TIERS:
            for spend in faults.SPEND_TIERS if shape == "spend_limit" else (1,):
                yield {
                    "always_fail": 429,
                    "quota_shape": shape,
                    "quota_tier": tier,
                    "spend_tier": spend,
                }
                yield {
                    "fail_429_rate": 1,
                    "quota_shape": shape,
                    "quota_tier": tier,
                    "spend_tier": spend,
                }
    yield {"daily_quota_exhausted": True}
    yield {"daily_quota_exhausted": True, "quota_tier": "free"}
    yield {"fail_503_rate": 1}
    yield {"fail_500_rate": 1}
    yield from ({"prompt_block_reason": reason} for reason in faults.PROMPT_BLOCK_REASONS)
    yield from ({"blocked_finish_reason": reason} for reason in faults.BLOCKED_FINISH_REASONS)
    yield from ({"empty_answer": kind} for kind in faults.EMPTY_ANSWERS)
    yield from ({"mask_format": kind} for kind in faults.MASK_FORMATS)
    yield {"thoughts_tokens": 0}
    yield {"thoughts_tokens": 5000}
    yield {"priority_downgrade": True}
    yield {"flex_shed_rate": 1}
    yield {"rpm": 1}
    yield {"tpm": 1}


FAULTS = list(_fault_settings())


@pytest.mark.parametrize("settings", FAULTS, ids=[json.dumps(s) for s in FAULTS])
def test_every_fault_and_outcome(api: Api, settings: dict[str, Any]) -> None:
    api.faults(**settings)
    thoughts: dict[str, Any] = {
        "thinkingConfig": {"includeThoughts": True},
        "maxOutputTokens": 6000,
    }
    statuses = []
    for tier in (None, "priority", "flex"):
        body = _body(PROMPTS["segment"], responseMimeType="application/json", **thoughts)
        if tier is not None:
            body["serviceTier"] = tier
        statuses.append(api.generate(body).status_code)
        statuses.append(api.generate(body, method="streamGenerateContent", alt="sse").status_code)
    assert api.generate(_body(PROMPTS["caption"]), method="countTokens").status_code == 200
    failing = {"always_fail", "fail_429_rate", "fail_503_rate", "fail_500_rate"}
    if failing & set(settings) or settings.get("daily_quota_exhausted"):
        assert all(status >= 400 for status in statuses), statuses


def test_error_bodies(api: Api) -> None:
    thinking_only = next(
        m for m in SERVED if not CATALOGUE["models"][m].get("thinking", {}).get("budget_zero")
    )
    statuses = [
        api.generate(_body("x", colour="red")).status_code,  # ProtoJSON: BadRequest details
        api.generate({"contents": [{"parts": []}]}).status_code,  # required fields
        api.generate(_body("x", thinkingConfig={"thinkingBudget": 0}), thinking_only).status_code,
        api.generate(
            _body("x", thinkingConfig={"thinkingLevel": "LOW", "thinkingBudget": 512})
        ).status_code,
        api.generate(
            {"contents": [{"parts": [{"inlineData": {"mimeType": "audio/ogg", "data": "AAAA"}}]}]}
        ).status_code,
        api.generate(
            {
                "contents": [
                    {
                        "parts": [
                            {"inlineData": {"mimeType": "image/png", "data": "AAAA"}},
                            {"text": "x"},
                        ]
                    }
                ]
            }
        ).status_code,
        api.generate(
            {
                "contents": [
                    {"parts": [{"fileData": {"fileUri": f"{api.url}/v1beta/files/nosuchfile"}}]}
                ]
            }
        ).status_code,
        api.generate(
            {
                "contents": [
                    {
                        "parts": [
                            {"fileData": {"fileUri": "gs://bucket/x.png", "mimeType": "image/png"}}
                        ]
                    }
                ]
            }
        ).status_code,
        api(
            "POST",
            f"/v1beta/models/{MODEL}:generateContent",
            json=_body("x"),
            headers={"x-goog-api-key": "wrong"},
        ).status_code,
        api(
            "POST",
            f"/v1beta/models/{MODEL}:generateContent",
            json=_body("x"),
            headers={"x-goog-api-key": ""},
        ).status_code,
        api("POST", f"/v1beta/models/{MODEL}:generateContent", content=b"{not json").status_code,
        api.generate(_body("x"), "no-such-model").status_code,
        api.generate(_body("x"), method="embedContent").status_code,
        api("GET", "/v1/files").status_code,
        api("GET", "/v1beta/files/nosuchfile").status_code,
        api("DELETE", "/v1beta/files/nosuchfile").status_code,
        api("GET", "/v1beta/files", params={"pageToken": "bogus"}).status_code,
        api("GET", "/v1beta/files", params={"pageSize": "many"}).status_code,
        api("GET", "/v1beta/models/no-such-model").status_code,
    ]
    assert all(status >= 400 for status in statuses), statuses
    assert {400, 403, 404} <= set(statuses)


def _upload(api: Api, data: bytes, mime_type: str, **meta: Any) -> httpx.Response:
    start = api(
        "POST",
        "/upload/v1beta/files",
        json={"file": {"mimeType": mime_type, "sizeBytes": str(len(data)), **meta}},
        headers={
            "X-Goog-Upload-Protocol": "resumable",
            "X-Goog-Upload-Command": "start",
            "X-Goog-Upload-Header-Content-Length": str(len(data)),
            "X-Goog-Upload-Header-Content-Type": mime_type,
        },
    )
    if start.status_code != 200:
        return start
    url = start.headers["x-goog-upload-url"].removeprefix(api.url)
    half = len(data) // 2
    api(
        "POST",
        url,
        content=data[:half],
        headers={"X-Goog-Upload-Command": "upload", "X-Goog-Upload-Offset": "0"},
    )
    return api(
        "POST",
        url,
        content=data[half:],
        headers={"X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": str(half)},
    )


def test_file_api_bodies(api: Api) -> None:
    assert api("GET", "/v1beta/files").status_code == 200  # none yet: "{}"
    png = base64.b64decode(_png())
    done = _upload(api, png, "image/png", displayName="a picture", name="files/contract-1")
    assert done.status_code == 200, done.text
    file = done.json()["file"]
    assert _upload(api, png, "image/png", name="files/contract-1").status_code == 409
    assert _upload(api, png, "image/png", name="files/-bad-").status_code == 400
    failed = _upload(api, b"\x89PNG not really", "image/png")  # FAILED, with an error Status
    assert failed.json()["file"]["state"] == "FAILED"
    _upload(api, b"some words", "text/plain")
    file_id = file["name"].removeprefix("files/")
    assert api("GET", f"/v1beta/files/{file_id}").status_code == 200
    assert api("GET", "/v1beta/files", params={"pageSize": 1}).status_code == 200
    answer = api.generate(
        {
            "contents": [
                {
                    "parts": [
                        {"fileData": {"fileUri": file["uri"], "mimeType": "image/png"}},
                        {"text": "x"},
                    ]
                }
            ]
        }
    )
    assert answer.status_code == 200
    assert api("DELETE", f"/v1beta/files/{file_id}").status_code == 200
    assert api("GET", f"/v1beta/files/{file_id}").status_code >= 400
    kept = _upload(api, png, "image/png").json()["file"]["name"].removeprefix("files/")
    api("POST", f"/_emulator/files/{kept}:expire")
    assert api("GET", f"/v1beta/files/{kept}").status_code == 403
    assert (
        api.generate(
            {"contents": [{"parts": [{"fileData": {"fileUri": file["uri"]}}, {"text": "x"}]}]}
        ).status_code
        == 403
    )


def test_models_get_and_list(api: Api) -> None:
    for version in ("v1", "v1beta"):
        listing = api("GET", f"/{version}/models")
        assert listing.status_code == 200
        names = [m["name"] for m in listing.json()["models"]]
        for name in names:
            api("GET", f"/{version}/{name}")
        page = api("GET", f"/{version}/models", params={"pageSize": 2})
        token = page.json().get("nextPageToken")
        if token:
            api("GET", f"/{version}/models", params={"pageSize": 2, "pageToken": token})
