"""Gemini's 200 answers as Google sends them (JSON as documented and captured in public
threads, read by the SDK's own types): each way of answering without an answer has its
own error code and a message a user can act on."""

from __future__ import annotations

from typing import Any

import pytest
from google.genai import types

from visionq.vision.tasks import JobOptions, TaskKind
from visionq.worker.answers import routed_model
from visionq.worker.gemini import GeminiCallError, _answer_from_response
from visionq.worker.thinking import answer_allowance, exhausted_message, raised_cap

USAGE = {"promptTokenCount": 1290, "candidatesTokenCount": 12, "totalTokenCount": 1302}


def _response(
    *,
    parts: list[dict[str, Any]] | None = None,
    finish: str | None = "STOP",
    candidates: bool = True,
    usage: dict[str, Any] | None = None,
    **extra: Any,
) -> types.GenerateContentResponse:
    body: dict[str, Any] = {
        "usageMetadata": usage or USAGE,
        "modelVersion": "gemini-3.6-flash",
        "responseId": "abc",
        **extra,
    }
    if candidates:
        candidate: dict[str, Any] = {"index": 0}
        if parts is not None:
            candidate["content"] = {"role": "model", "parts": parts}
        if finish is not None:
            candidate["finishReason"] = finish
        body["candidates"] = [candidate]
    return types.GenerateContentResponse.model_validate(body)


def _error(response: types.GenerateContentResponse) -> GeminiCallError:
    with pytest.raises(GeminiCallError) as caught:
        _answer_from_response(response)
    return caught.value


def test_thought_parts_and_signatures_stay_out_of_the_text() -> None:
    response = _response(
        parts=[
            {"text": "**Looking at the image** I see two shapes...", "thought": True},
            {"text": "A red square", "thoughtSignature": "c2lnbmF0dXJl"},
            {"text": " and a blue disc."},
        ],
        usage={**USAGE, "thoughtsTokenCount": 230},
    )
    answer = _answer_from_response(response)
    assert answer.text == "A red square and a blue disc."
    assert answer.usage is not None and answer.usage.thoughts_tokens == 230
    assert answer.model_version == "gemini-3.6-flash" and answer.finish_reason == "STOP"


@pytest.mark.parametrize(
    "reason", ["SAFETY", "OTHER", "BLOCKLIST", "PROHIBITED_CONTENT", "IMAGE_SAFETY"]
)
def test_a_blocked_prompt_names_its_reason(reason: str) -> None:
    response = _response(
        candidates=False,
        promptFeedback={"blockReason": reason, "blockReasonMessage": "The prompt was blocked."},
        usage={"promptTokenCount": 1290, "totalTokenCount": 1290},
    )
    error = _error(response)
    assert error.code == "blocked_prompt" and not error.retryable
    assert f"({reason})" in error.message and "change the image or the prompt" in error.message
    # Google bills the prompt of a blocked request: the usage is kept for the cost.
    assert error.usage is not None and error.usage.prompt_tokens == 1290


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        ("SAFETY", "safety filters"),
        ("RECITATION", "description or summary"),
        ("PROHIBITED_CONTENT", "prohibited"),
        ("IMAGE_SAFETY", "the image"),
        ("BLOCKLIST", "blocklist"),
        ("SPII", "personal"),
    ],
)
def test_a_withheld_answer_names_its_finish_reason(reason: str, words: str) -> None:
    # A withheld candidate has no content (or only what was generated before the stop).
    error = _error(_response(parts=None, finish=reason))
    assert error.code == "blocked_output" and not error.retryable
    assert f"finish reason {reason}" in error.message and words in error.message
    with_text = _error(_response(parts=[{"text": "Once upon"}], finish=reason))
    assert with_text.code == "blocked_output"


@pytest.mark.parametrize("reason", ["MALFORMED_RESPONSE", "MALFORMED_FUNCTION_CALL"])
def test_a_malformed_answer_is_retried(reason: str) -> None:
    error = _error(_response(parts=[{"text": '{"box_2d": [1, 2'}], finish=reason))
    assert error.code == "malformed_response" and error.retryable
    assert reason in error.message


def test_finish_reason_other_fails_saying_so() -> None:
    error = _error(_response(parts=None, finish="OTHER"))
    assert error.code == "answer_stopped" and not error.retryable
    assert "OTHER" in error.message and "again later" in error.message


def test_no_candidate_or_a_candidate_without_text_is_retried() -> None:
    none = _error(_response(candidates=False))
    assert none.code == "empty_answer" and none.retryable and "no candidate" in none.message
    no_parts = _error(_response(parts=None, finish="STOP"))
    assert no_parts.code == "empty_answer" and no_parts.retryable
    assert "no parts" in no_parts.message
    empty_parts = _error(_response(parts=[], finish="STOP"))
    assert empty_parts.code == "empty_answer"
    thoughts_only = _error(_response(parts=[{"text": "hmm", "thought": True}], finish="STOP"))
    assert thoughts_only.code == "empty_answer" and "only thoughts" in thoughts_only.message


def test_thoughts_that_use_the_whole_cap_are_never_an_empty_success() -> None:
    # python-genai#782/#2062: max_output_tokens 256 on a thinking model; no text at all.
    usage = {"promptTokenCount": 1290, "thoughtsTokenCount": 252, "totalTokenCount": 1542}
    response = _response(parts=None, finish="MAX_TOKENS", usage=usage)
    error = _error(response)
    assert error.code == "max_tokens_exhausted" and not error.retryable
    assert "252" in error.message and "MAX_TOKENS" in error.message
    assert error.usage is not None and error.usage.thoughts_tokens == 252
    # Some text cut short is not an answer either (issue 17: a cut caption was kept).
    cut = _error(_response(parts=[{"text": "A red"}], finish="MAX_TOKENS"))
    assert cut.code == "answer_truncated" and not cut.retryable and "MAX_TOKENS" in cut.message


def test_routing_is_another_model_not_a_version_suffix() -> None:
    assert routed_model("gemini-2.5-flash", "gemini-3.5-flash-lite") == "gemini-3.5-flash-lite"
    assert routed_model("gemini-2.5-flash", "gemini-3.5-flash-lite-001") == (
        "gemini-3.5-flash-lite-001"
    )
    assert routed_model("gemini-2.5-flash", "models/gemini-2.5-flash-lite") == (
        "gemini-2.5-flash-lite"
    )
    assert routed_model("gemini-3.6-flash", "gemini-3.6-flash-001") is None
    assert routed_model("gemini-3.6-flash-001", "gemini-3.6-flash") is None
    assert routed_model("gemini-3.6-flash", None) is None


def test_the_cap_is_raised_once_within_the_model_limit() -> None:
    # Twice the cap, or the thoughts plus the answer's allowance, whichever is more.
    assert raised_cap(cap=256, thoughts=252, allowance=1024) == 252 + 1024
    assert raised_cap(cap=4000, thoughts=3990, allowance=1024) == 8000
    assert raised_cap(cap=40_000, thoughts=39_990, allowance=1024, limit=65_536) == 65_536
    # Nothing higher to ask for: the cap is the model's limit (or was not set at all).
    assert raised_cap(cap=65_536, thoughts=65_000, allowance=1024) is None
    assert raised_cap(cap=None, thoughts=65_000, allowance=1024) is None
    detect = answer_allowance(TaskKind.DETECT, JobOptions(max_objects=10))
    assert detect == 64 + 40 * 10
    assert answer_allowance(TaskKind.CAPTION, JobOptions()) == 256


def test_the_final_message_says_what_thinking_used_and_what_to_change() -> None:
    message = exhausted_message(cap=1276, thoughts=1270, first_cap=256)
    assert "1270 of the 1276 output tokens" in message and "raised once from 256" in message
    assert "options.max_output_tokens" in message and "thinking_level" in message
    assert "thinking_budget" in message
