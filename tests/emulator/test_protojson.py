"""The ProtoJSON checker on its own: value rules that no request of the SDK exercises."""

from __future__ import annotations

from typing import Any

import pytest

from visionq.emulator.apischema import load_schema, route_pattern
from visionq.emulator.protojson import check

V1BETA = load_schema("v1beta")
FILE_REQUEST = "google.ai.generativelanguage.v1beta.CreateFileRequest"
ERROR = "google.apis.design.Error"


def _problems(body: Any, message: str = FILE_REQUEST) -> list[str]:
    return [v.description for v in check(body, V1BETA, message)]


@pytest.mark.parametrize(
    "file",
    [
        {"sizeBytes": "9223372036854775807"},  # int64 as a string, at its maximum
        {"sizeBytes": 12},
        {"sizeBytes": 1e3},  # an integral number in exponent form
        {"sha256Hash": "q83v"},  # bytes, standard alphabet, unpadded
        {"sha256Hash": "-_-_"},  # bytes, URL-safe alphabet
        {"createTime": "2026-12-05T01:02:03.123456789Z"},
        {"expirationTime": "2026-12-05T01:02:03+01:00"},
        {"state": "ACTIVE"},
        {"state": 10},  # an enum by its number
        {"error": {"code": 3, "message": "m", "details": []}},
        {"videoMetadata": {"videoDuration": "1.5s"}},
    ],
)
def test_accepted_values(file: dict[str, Any]) -> None:
    assert _problems({"file": file}) == []


@pytest.mark.parametrize(
    ("file", "problem"),
    [
        ({"sizeBytes": "9223372036854775808"}, '(TYPE_INT64), "9223372036854775808"'),
        ({"sizeBytes": True}, "(TYPE_INT64), true"),
        ({"sha256Hash": "abcde"}, '(TYPE_BYTES), Base64 decoding failed for "abcde"'),
        ({"createTime": "2026-12-05"}, "(type.googleapis.com/google.protobuf.Timestamp)"),
        (
            {"videoMetadata": {"videoDuration": 1.5}},
            "(type.googleapis.com/google.protobuf.Duration)",
        ),
        ({"state": "active"}, '.File.State), "active"'),
        ({"state": 7}, ".File.State), 7"),
    ],
)
def test_refused_values(file: dict[str, Any], problem: str) -> None:
    [description] = _problems({"file": file})
    assert description.startswith("Invalid value at 'file.")
    assert problem in description


def test_supplement_enum_values_without_numbers_are_names_only() -> None:
    request = "google.ai.generativelanguage.v1beta.GenerateContentRequest"
    for level, problems in (("LOW", 0), (2, 1), ("XHIGH", 1)):
        body = {"generationConfig": {"thinkingConfig": {"thinkingLevel": level}}}
        assert len(_problems(body, request)) == problems


def test_error_bodies_and_their_any_details() -> None:
    detail: dict[str, Any] = {
        "@type": "type.googleapis.com/google.rpc.RetryInfo",
        "retryDelay": "2s",
    }
    body: dict[str, Any] = {"error": {"code": 429, "message": "m", "status": "RESOURCE_EXHAUSTED",
                      "details": [detail]}}  # fmt: skip
    assert _problems(body, ERROR) == []
    body["error"]["status"] = "TOO_MANY"
    detail["retryDelay"] = "soon"
    detail["extra"] = 1
    assert len(_problems(body, ERROR)) == 3
    body = {"error": {"details": [{"@type": "type.googleapis.com/google.rpc.Nope"}]}}
    [problem] = _problems(body, ERROR)
    assert "unknown type URL" in problem


def test_a_body_that_is_not_an_object() -> None:
    [problem] = _problems(["file"])
    assert problem.startswith("Invalid value at '' (type.googleapis.com/")


def test_routes_follow_the_http_rules() -> None:
    pattern = route_pattern("/v1beta/{model=models/*}:generateContent")
    assert pattern.fullmatch("/v1beta/models/gemini-3.5-flash-lite:generateContent")
    assert not pattern.fullmatch("/v1beta/models/a/b:generateContent")
    assert V1BETA.route("post", "/upload/v1beta/files") is V1BETA.method("CreateFile")
    assert V1BETA.route("delete", "/v1beta/files/abc") is V1BETA.method("DeleteFile")
    assert V1BETA.route("get", "/v1beta/models") is V1BETA.method("ListModels")
    assert load_schema("v1").route("get", "/v1/files") is None
