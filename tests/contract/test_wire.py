"""The contract checks themselves can fail: bodies the schema does not allow are reported."""

from __future__ import annotations

import json

from tests.contract.wire import Exchange, request_problems, response_problems

GENERATE = "http://emulator/v1beta/models/gemini-x:generateContent"


def test_a_request_with_an_unknown_field_is_reported() -> None:
    body = {"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"thinkingBudget": 0}}
    [problem] = request_problems(Exchange("POST", GENERATE, json.dumps(body).encode()))
    assert "Unknown name \"thinkingBudget\" at 'generation_config'" in problem


def test_a_request_without_parts_is_reported() -> None:
    body = json.dumps({"contents": [{"role": "user", "parts": []}]}).encode()
    [problem] = request_problems(Exchange("POST", GENERATE, body))
    assert problem.endswith("contents.parts must not be empty.")


def test_answers_and_errors_outside_the_schema_are_reported() -> None:
    answer = {
        "candidates": [
            {"content": {"parts": [{"text": "x", "thought_summary": "y"}]}, "finishReason": "DONE"}
        ],
        "usageMetadata": {"promptTokenCount": "many"},
    }
    ok = Exchange("POST", GENERATE, b"{}", 200, json.dumps(answer).encode(), "application/json")
    assert len(response_problems(ok)) == 3
    stream = Exchange(
        "POST",
        GENERATE.replace("generate", "streamGenerate"),
        b"{}",
        200,
        f"data: {json.dumps(answer)}\r\n\r\n".encode(),
        "text/event-stream",
    )
    assert len(response_problems(stream)) == 3
    error = {
        "error": {
            "code": 429,
            "message": "m",
            "status": "TOO_MANY_REQUESTS",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": 2}],
        }
    }
    refused = Exchange("POST", GENERATE, b"{}", 429, json.dumps(error).encode(), "application/json")
    assert len(response_problems(refused)) == 2
