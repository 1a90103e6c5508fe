"""Malformed requests are refused: a 4xx in the one error shape, and no job left behind."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest

from tests.integration.bad_input_corpus import (
    BOUNDARY,
    CAPTION,
    IMAGES,
    JPEG,
    MAX_PROMPT_CHARS,
    PNG,
    PNG_B64,
    Corpus,
    Send,
    _json_images,
    _unauthenticated,
    _url_job,
    _with_json_images,
    assert_error,
    corpus,
    get,
    json_body,
    json_with_headers,
    multipart,
    raw_body,
    stack_corpus,
    unterminated,
)

__all__ = ["corpus", "stack_corpus"]  # fixtures used by this module

pytestmark = pytest.mark.integration


def _nested(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "array", "items": schema}
    return schema


UNRESOLVABLE = {
    "$defs": {"item": {"type": "string"}},
    "type": "object",
    "properties": {"items": {"type": "array", "items": {"$ref": "#/$defs/item/"}}},
}


def _big_schema() -> dict[str, Any]:
    properties = {f"field_{i}": {"type": "string", "description": "x" * 100} for i in range(600)}
    return {"type": "object", "properties": properties}


def _deep_cursor() -> str:
    return base64.urlsafe_b64encode(b"[" * 5000).decode().rstrip("=")


UUID = str(uuid.UUID(int=1))
CUSTOM = {"task": "custom", "prompt": "Extract the total."}


def case(name: str, send: Send, status: int, code: str, *marks: pytest.MarkDecorator) -> Any:
    return pytest.param(send, status, code, id=name, marks=marks)


CASES = [
    # Images that are not PNG/JPEG/WEBP/HEIC/HEIF/GIF/BMP/TIFF, whatever they are declared as.
    case("zero-byte-file", multipart(CAPTION, ["empty"]), 422, "empty_image"),
    case("text-declared-image/png", multipart(CAPTION, ["text"]), 415, "unsupported_media_type"),
    case("svg", multipart(CAPTION, ["svg"], mime_type="image/svg+xml"), 415,
         "unsupported_media_type"),
    case("html", multipart(CAPTION, ["html"]), 415, "unsupported_media_type"),
    case("ico", multipart(CAPTION, ["ico"]), 415, "unsupported_media_type"),
    case("pdf", multipart(CAPTION, ["pdf"], mime_type="application/pdf"), 415,
         "unsupported_media_type"),
    case("avif-brand", multipart(CAPTION, ["avif-brand"]), 415, "unsupported_media_type"),
    # A GIF header over script text: GIFs are taken (converted to PNG), this one is broken.
    case("polyglot-gif-js", multipart(CAPTION, ["polyglot-gif-js"]), 422, "corrupt_image"),
    case("polyglot-html-carrying-png", multipart(CAPTION, ["polyglot-html-png"]), 415,
         "unsupported_media_type"),
    # Supported formats, broken.
    case("truncated-png", multipart(CAPTION, ["truncated-png"]), 422, "corrupt_image"),
    case("truncated-jpeg", multipart(CAPTION, ["truncated-jpeg"], mime_type="image/jpeg"), 422,
         "corrupt_image"),
    case("truncated-webp", multipart(CAPTION, ["truncated-webp"]), 422, "corrupt_image"),
    case("png-bad-crc", multipart(CAPTION, ["png-bad-crc"]), 422, "corrupt_image"),
    case("png-undecodable-idat", multipart(CAPTION, ["png-undecodable-idat"]), 422,
         "corrupt_image"),
    case("png-zero-width", multipart(CAPTION, ["png-zero-width"]), 422, "corrupt_image"),
    case("jpeg-eoi-before-scan", multipart(CAPTION, ["jpeg-eoi-before-scan"]), 422,
         "corrupt_image"),
    case("polyglot-png-header-then-html", multipart(CAPTION, ["polyglot-png-html"]), 422,
         "corrupt_image"),
    # Too big.
    case("png-bomb-100000x100000", multipart(CAPTION, ["png-bomb-100000x100000"]), 413,
         "image_too_large"),
    case("jpeg-bomb-65000x65000", multipart(CAPTION, ["jpeg-bomb-65000x65000"]), 413,
         "image_too_large"),
    case("webp-bomb-16384x16384", multipart(CAPTION, ["webp-bomb-16384x16384"]), 413,
         "image_too_large"),
    case("real-png-over-max-pixels",
         multipart(CAPTION, ["real-png-over-max-pixels"]), 413,
         "image_too_large"),
    case("image-over-max-image-bytes", multipart(CAPTION, ["over-max-image-bytes"]), 413,
         "payload_too_large"),
    case("form-field-over-1mb", multipart({"task": "ask", "prompt": "x" * (1024 * 1024 + 1)}),
         413, "payload_too_large"),
    # How many images.
    case("17-images", multipart({"task": "ask", "prompt": "?"}, [PNG] * 17), 422,
         "too_many_images"),
    case("17-images-json", json_body({"task": "ask", "prompt": "?",
                                      "images": _json_images(*[PNG] * 17)}), 422,
         "too_many_images"),
    case("caption-with-2-images", multipart(CAPTION, [PNG, JPEG]), 422, "too_many_images"),
    case("compare-with-1-image", multipart({"task": "compare"}), 422, "too_few_images"),
    case("no-image-field", multipart(CAPTION, []), 422, "missing_image"),
    # Multipart structure.
    case("image-as-text-field", multipart({"task": "caption", "image": "not a file"}, []), 422,
         "invalid_request"),
    case("unknown-form-field", multipart({"task": "caption", "colour": "red"}), 422,
         "invalid_request"),
    case("task-given-twice", multipart({"task": ["caption", "detect"]}), 422, "invalid_request"),
    case("multipart-without-boundary", raw_body(b"task=caption", "multipart/form-data"), 400,
         "invalid_multipart"),
    case("multipart-garbage", raw_body(b"\x00garbage", "multipart/form-data; boundary=xyz"),
         400, "invalid_multipart"),
    # A new user's trial: the task part, last and unterminated, was dropped (missing_task).
    case("multipart-unterminated-task-last", unterminated(CAPTION, []), 400,
         "invalid_multipart"),
    case("multipart-unterminated-image-last", unterminated(CAPTION, [PNG]), 400,
         "invalid_multipart"),
    case("multipart-empty-body", raw_body(b"", f"multipart/form-data; boundary={BOUNDARY}"),
         400, "invalid_multipart"),
    # Task, model, labels, prompt.
    case("unknown-task", multipart({"task": "paint"}), 422, "unknown_task"),
    case("missing-task", multipart({}), 422, "missing_task"),
    case("model-with-space", multipart(CAPTION | {"model": "gemini 2.5"}), 422, "invalid_model"),
    case("model-path-traversal", multipart(CAPTION | {"model": "../../v1/files"}), 422,
         "invalid_model"),
    case("model-101-chars", multipart(CAPTION | {"model": "g" * 101}), 422, "invalid_model"),
    case("classify-without-labels", multipart({"task": "classify"}), 422, "missing_labels"),
    case("classify-empty-label", multipart({"task": "classify", "labels": ["cat", " "]}), 422,
         "missing_labels"),
    case("classify-trailing-comma", multipart({"task": "classify", "labels": "cat,dog,"}), 422,
         "missing_labels"),
    case("duplicate-labels", multipart({"task": "classify", "labels": "cat,dog,Cat"}), 422,
         "duplicate_labels"),
    case("201-labels", multipart({"task": "classify",
                                  "labels": ",".join(f"l{i}" for i in range(201))}), 422,
         "too_many_labels"),
    case("label-201-chars", multipart({"task": "classify", "labels": ["a" * 201, "b"]}), 422,
         "label_too_long"),
    case("labels-not-strings", multipart({"task": "classify", "labels": "[1, 2]"}), 422,
         "invalid_request"),
    case("labels-bad-json", multipart({"task": "classify", "labels": '["a", "b"'}), 422,
         "invalid_request"),
    case("labels-lone-surrogate", multipart({"task": "classify", "labels": '["\\ud800", "b"]'}),
         422, "invalid_request"),
    case("labels-on-caption", multipart(CAPTION | {"labels": "cat,dog"}), 422,
         "unexpected_labels"),
    case("ask-without-prompt", multipart({"task": "ask"}), 422, "missing_prompt"),
    case("ask-blank-prompt", multipart({"task": "ask", "prompt": " \n\t "}), 422,
         "missing_prompt"),
    case("custom-without-prompt", multipart({"task": "custom"}), 422, "missing_prompt"),
    case("prompt-over-limit", multipart({"task": "ask", "prompt": "x" * (MAX_PROMPT_CHARS + 1)}),
         422, "prompt_too_long"),
    case("nul-in-prompt", multipart({"task": "ask", "prompt": "what\x00is this"}), 422,
         "invalid_text"),
    case("nul-in-label", multipart({"task": "classify", "labels": ["c\x00at", "dog"]}), 422,
         "invalid_text"),
    # Options.
    case("options-not-an-object", multipart(CAPTION | {"options": "[1, 2]"}), 422,
         "invalid_options"),
    case("options-bad-json", multipart(CAPTION | {"options": "{temperature: 1}"}), 422,
         "invalid_options"),
    case("unknown-option", multipart(CAPTION | {"options": '{"temprature": 1}'}), 422,
         "invalid_options"),
    case("temperature-hot", multipart(CAPTION | {"options": '{"temperature": "hot"}'}), 422,
         "invalid_options"),
    case("temperature-nan", multipart(CAPTION | {"options": '{"temperature": NaN}'}), 422,
         "invalid_options"),
    case("negative-max-side", multipart(CAPTION | {"options": '{"max_side": -1}'}), 422,
         "invalid_options"),
    case("max-side-huge-integer",
         multipart(CAPTION | {"options": '{"max_side": 1' + "0" * 5000 + "}"}), 422,
         "invalid_options"),
    case("media-resolution-count-mismatch",
         multipart(CAPTION | {"options": '{"image_media_resolution": ["LOW", "HIGH"]}'}), 422,
         "invalid_options"),
    # Schemas (task custom).
    case("schema-invalid", multipart(CUSTOM | {"schema": '{"type": "nope"}'}), 422,
         "invalid_schema"),
    case("schema-invalid-regex", multipart(CUSTOM | {"schema": '{"pattern": "("}'}), 422,
         "invalid_schema"),
    case("schema-remote-ref", multipart(CUSTOM | {"schema": '{"$ref": "http://127.0.0.1:9/s"}'}),
         422, "invalid_schema"),
    case("schema-file-ref", multipart(CUSTOM | {"schema": '{"$ref": "file:///etc/passwd"}'}),
         422, "invalid_schema"),
    # Issue 17: a $ref that resolves to nothing was accepted, billed, blamed on Gemini.
    case("schema-ref-to-nothing", multipart(CUSTOM | {"schema": json.dumps(UNRESOLVABLE)}), 422,
         "invalid_schema"),
    case("schema-ref-not-a-subschema",
         multipart(CUSTOM | {"schema": '{"$defs": {"x": {}}, "items": {"$ref": "#/$defs"}}'}),
         422, "invalid_schema"),
    case("schema-not-an-object", multipart(CUSTOM | {"schema": '["type", "string"]'}), 422,
         "invalid_schema"),
    case("schema-bad-json", multipart(CUSTOM | {"schema": '{"type": '}), 422, "invalid_schema"),
    case("schema-nested-too-deep", multipart(CUSTOM | {"schema": json.dumps(_nested(100))}),
         422, "invalid_schema"),
    case("schema-json-nested-3000", multipart(CUSTOM | {"schema": '{"a":' + "[" * 3000 + "]"
                                                        * 3000 + "}"}), 422, "invalid_schema"),
    case("schema-huge-integer",
         multipart(CUSTOM | {"schema": '{"maximum": 1' + "0" * 5000 + "}"}), 422,
         "invalid_schema"),
    case("schema-lone-surrogate", multipart(CUSTOM | {"schema": '{"title": "\\udc00"}'}), 422,
         "invalid_schema"),
    case("schema-too-large", multipart(CUSTOM | {"schema": json.dumps(_big_schema())}), 422,
         "schema_too_large"),
    case("schema-on-caption", multipart(CAPTION | {"schema": '{"type": "string"}'}), 422,
         "unexpected_schema"),
    case("schema-nul", json_body(CUSTOM | {"schema": {"title": "a\x00b"},
                                           "images": _json_images(PNG)}), 422, "invalid_text"),
    case("schema-nan-json", _with_json_images(CUSTOM | {"schema": {"maximum": "<NaN>"}}), 422,
         "invalid_schema"),
    case("schema-infinity-json", _with_json_images(CUSTOM | {"schema": {"maximum": "<INF>"}}),
         422, "invalid_schema"),
    case("schema-not-an-object-json", json_body(CUSTOM | {"schema": [1],
                                                          "images": _json_images(PNG)}), 422,
         "invalid_schema"),
    # Image URLs (SSRF) and idempotency keys.
    case("url-file-scheme", _url_job("file:///etc/passwd"), 422, "url_scheme_not_allowed"),
    case("url-loopback", _url_job("http://127.0.0.1:9/x.png"), 422, "url_host_not_allowed"),
    case("url-decimal-ip", _url_job("http://2130706433/x.png"), 422, "url_host_not_allowed"),
    case("url-metadata", _url_job("http://169.254.169.254/latest/meta-data/"), 422,
         "url_host_not_allowed"),
    case("url-and-data", json_body(CAPTION | {"images": [{"url": "http://a.example/x.png",
                                                          "data": PNG_B64}]}), 422,
         "invalid_request"),
    case("url-not-a-url", _url_job("not a url"), 422, "url_invalid"),
    case("idempotency-key-with-spaces", json_with_headers(
        CAPTION | {"images": _json_images(PNG)}, **{"Idempotency-Key": "a b"}), 400,
         "invalid_idempotency_key"),
    case("idempotency-key-too-long", json_with_headers(
        CAPTION | {"images": _json_images(PNG)}, **{"Idempotency-Key": "k" * 300}), 400,
         "invalid_idempotency_key"),
    # JSON bodies.
    case("invalid-json", raw_body(b'{"task": "caption", ', "application/json"), 422,
         "invalid_request"),
    case("json-not-an-object", json_body([CAPTION]), 422, "invalid_request"),
    case("json-a-string", json_body("caption"), 422, "invalid_request"),
    case("json-unknown-field", json_body(CAPTION | {"colour": "red",
                                                    "images": _json_images(PNG)}), 422,
         "invalid_request"),
    case("json-unknown-image-field", json_body(CAPTION | {"images": [{"data": PNG_B64,
                                                                      "colour": "red"}]}), 422,
         "invalid_request"),
    case("json-no-images", json_body(CAPTION | {"images": []}), 422, "invalid_request"),
    case("json-task-not-a-string", json_body({"task": 7, "images": _json_images(PNG)}), 422,
         "invalid_request"),
    case("json-invalid-base64", json_body(CAPTION | {"images": [{"data": "%%%not base64%%%"}]}),
         422, "invalid_base64"),
    case("json-base64-one-char-over", json_body(CAPTION | {"images": [{"data": "QUJD" + "Q"}]}),
         422, "invalid_base64"),
    case("json-empty-image", json_body(CAPTION | {"images": [{"data": ""}]}), 422,
         "empty_image"),
    case("json-text-declared-png", json_body(CAPTION | {"images": [
        {"data": base64.b64encode(b"plain text").decode(), "mime_type": "image/png"}]}), 415,
         "unsupported_media_type"),
    case("json-png-bomb", json_body(CAPTION | {
        "images": _json_images(IMAGES["png-bomb-100000x100000"])}), 413, "image_too_large"),
    case("json-lone-surrogate-prompt", _with_json_images({"task": "ask",
                                                          "prompt": "<SURROGATE>"}), 422,
         "invalid_request"),
    case("json-options-not-an-object", json_body(CAPTION | {"options": "fast",
                                                            "images": _json_images(PNG)}), 422,
         "invalid_options"),
    case("json-temperature-hot", json_body(CAPTION | {"options": {"temperature": "hot"},
                                                      "images": _json_images(PNG)}), 422,
         "invalid_options"),
    # Transport.
    case("content-type-text-plain", raw_body(b"task=caption", "text/plain"), 415,
         "unsupported_media_type"),
    case("content-type-urlencoded", raw_body(b"task=caption",
                                             "application/x-www-form-urlencoded"), 415,
         "unsupported_media_type"),
    # Authentication.
    case("no-authorization", _unauthenticated({}), 401, "unauthorized"),
    case("basic-auth", _unauthenticated({"Authorization": "Basic dXNlcjpwYXNz"}), 401,
         "unauthorized"),
    case("empty-bearer", _unauthenticated({"Authorization": "Bearer"}), 401, "unauthorized"),
    case("unknown-bearer-key", _unauthenticated({"Authorization": "Bearer vq_nope"}), 401,
         "invalid_api_key"),
    case("revoked-key", multipart(CAPTION, key="revoked"), 401, "invalid_api_key"),
    # The other routes.
    case("get-job-not-a-uuid", get("/v1/jobs/not-a-uuid"), 404, "job_not_found"),
    case("get-job-unknown-uuid", get(f"/v1/jobs/{UUID}"), 404, "job_not_found"),
    case("cancel-job-not-a-uuid", get("/v1/jobs/not-a-uuid/cancel", method="POST"), 404,
         "job_not_found"),
    case("annotated-png-not-a-uuid", get("/v1/jobs/not-a-uuid/annotated.png"), 404,
         "job_not_found"),
    case("mask-index-not-a-number", get(f"/v1/jobs/{UUID}/masks/first.png"), 422,
         "invalid_request"),
    case("list-cursor-garbage", get("/v1/jobs", {"cursor": "garbage"}), 400, "invalid_cursor"),
    case("list-cursor-deeply-nested", get("/v1/jobs", {"cursor": _deep_cursor()}), 400,
         "invalid_cursor"),
    case("list-limit-0", get("/v1/jobs", {"limit": "0"}), 422, "invalid_request"),
    case("list-limit-not-a-number", get("/v1/jobs", {"limit": "ten"}), 422, "invalid_request"),
    case("list-status-bogus", get("/v1/jobs", {"status": "bogus"}), 422, "invalid_request"),
    case("delete-jobs", get("/v1/jobs", method="DELETE"), 405, "method_not_allowed"),
    case("unknown-route", get("/v1/nothing-here"), 404, "not_found"),
    case("estimate-unknown-task", multipart({"task": "paint"}, path="/v1/estimate"), 422,
         "unknown_task"),
    case("estimate-corrupt-image", multipart(CAPTION, ["truncated-png"], path="/v1/estimate"),
         422, "corrupt_image"),
    case("estimate-invalid-json", raw_body(b"{", "application/json", path="/v1/estimate"), 422,
         "invalid_request"),
    case("estimate-text-plain", raw_body(b"x", "text/plain", path="/v1/estimate"), 415,
         "unsupported_media_type"),
    case("estimate-bad-option", json_body(CAPTION | {"options": {"max_side": -5},
                                                     "images": _json_images(PNG)},
                                          path="/v1/estimate"), 422, "invalid_options"),
    case("estimate-revoked-key", multipart(CAPTION, path="/v1/estimate", key="revoked"), 401,
         "invalid_api_key"),
]  # fmt: skip


@pytest.mark.parametrize(("send", "status", "code"), CASES)
def test_malformed_request_is_refused(corpus: Corpus, send: Send, status: int, code: str) -> None:
    before = corpus.job_count()
    response = send(corpus)
    assert_error(response, status, code)
    assert corpus.job_count() == before, "a refused request left a job behind"


# The cases run end to end too, on each database: one of each refusal code (the first case
# that gives it), so every error path is also seen through the served app.
END_TO_END = [case for index, case in enumerate(CASES) if case.values[2] not in
              {other.values[2] for other in CASES[:index]}]  # fmt: skip


@pytest.mark.parametrize(("send", "status", "code"), END_TO_END)
def test_malformed_request_is_refused_end_to_end(
    stack_corpus: Corpus, send: Send, status: int, code: str
) -> None:
    before = stack_corpus.job_count()
    response = send(stack_corpus)
    assert_error(response, status, code)
    assert stack_corpus.job_count() == before, "a refused request left a job behind"


def test_an_unresolvable_ref_is_named_in_the_refusal(corpus: Corpus) -> None:
    before = corpus.job_count()
    response = multipart(CUSTOM | {"schema": json.dumps(UNRESOLVABLE)})(corpus)
    assert_error(response, 422, "invalid_schema")
    message = response.json()["error"]["message"]
    assert "'#/$defs/item/'" in message and "#/properties/items/items/$ref" in message
    assert corpus.job_count() == before


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 45
    assert len({param.id for param in CASES}) == len(CASES)


def test_a_bad_file_is_named_by_its_file_name(corpus: Corpus) -> None:
    """Issue 17, bug 3: the error named "Image #1", not the file the user sent."""
    before = corpus.job_count()
    with corpus.client() as client:
        response = client.post(
            "/v1/jobs",
            data={"task": "compare"},
            files=[
                ("image", ("shapes.png", PNG, "image/png")),
                ("image", ("coffee.gif", b"not an image at all\n", "image/gif")),
            ],
        )
    assert_error(response, 415, "unsupported_media_type")
    message = response.json()["error"]["message"]
    assert message.startswith("Image 'coffee.gif': ") and "#" not in message
    assert corpus.job_count() == before
