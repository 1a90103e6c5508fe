"""generateContent response bodies: normal answers, thinking, blocks and empty answers.

Thoughts share ``maxOutputTokens`` with the answer, as on Gemini 3: when the thoughts use
the whole cap the candidate has no parts, finishReason MAX_TOKENS, and the call is still
billed (``thoughtsTokenCount``). Forced outcomes (fault settings) replace the answer:
``promptFeedback.blockReason`` without candidates, a candidate stopped for a safety-like
reason without content, or an empty answer.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from visionq.emulator.tokens import PromptTokens, TokenTable, usage_metadata

THOUGHT_SUMMARY = "**Looking at the request**\n\n[synthetic thought summary, emulator] "
SAFETY_CATEGORIES = (
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
)


@dataclass(frozen=True)
class Reply:
    """What one generate call produced before the body is laid out."""

    model_version: str
    prompt: PromptTokens
    text: str
    thoughts: int
    max_output_tokens: int
    include_thoughts: bool


def _safety_ratings(blocked: bool) -> list[dict[str, Any]]:
    ratings: list[dict[str, Any]] = [
        {"category": category, "probability": "NEGLIGIBLE"} for category in SAFETY_CATEGORIES
    ]
    if blocked:
        ratings[-1] = {
            "category": SAFETY_CATEGORIES[-1],
            "probability": "HIGH",
            "blocked": True,
        }
    return ratings


def _signature(text: str) -> str:
    # Opaque to callers, like the real one; derived from the text so it is stable.
    return base64.b64encode(hashlib.sha256(text.encode()).digest() * 2).decode("ascii")


def _envelope(reply: Reply, usage: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        **fields,
        "usageMetadata": usage,
        "modelVersion": reply.model_version,
        "responseId": secrets.token_urlsafe(16),
    }


def answer_body(reply: Reply, table: TokenTable) -> dict[str, Any]:
    """A normal answer: thoughts first, then the text in what is left of the cap."""
    thoughts = min(reply.thoughts, reply.max_output_tokens)
    room = reply.max_output_tokens - thoughts
    text, finish = reply.text, "STOP"
    if table.text_tokens(text) > room:
        text, finish = text[: table.chars_for(room)], "MAX_TOKENS"
    content: dict[str, Any] = {"role": "model"}
    if text:
        answer_part: dict[str, Any] = {"text": text}
        parts: list[dict[str, Any]] = []
        if reply.include_thoughts and thoughts > 0:
            parts.append({"text": THOUGHT_SUMMARY + "reading the image.", "thought": True})
            answer_part["thoughtSignature"] = _signature(text)
        parts.append(answer_part)
        content["parts"] = parts
    candidate = {"content": content, "finishReason": finish, "index": 0}
    usage = usage_metadata(reply.prompt, table.text_tokens(text), thoughts)
    return _envelope(reply, usage, candidates=[candidate])


def outcome_body(reply: Reply, setting: str, value: str) -> dict[str, Any]:
    """A forced outcome (``setting`` is the fault setting that asked for it)."""
    if setting == "prompt_block_reason":
        # A blocked prompt is refused before any thinking: only the prompt is billed.
        feedback: dict[str, Any] = {"blockReason": value}
        if value == "SAFETY":
            feedback["safetyRatings"] = _safety_ratings(blocked=True)
        return _envelope(reply, usage_metadata(reply.prompt, 0, 0), promptFeedback=feedback)
    usage = usage_metadata(reply.prompt, 0, min(reply.thoughts, reply.max_output_tokens))
    if setting == "blocked_finish_reason":
        candidate: dict[str, Any] = {"finishReason": value, "index": 0}
        if value in ("SAFETY", "IMAGE_SAFETY"):
            candidate["safetyRatings"] = _safety_ratings(blocked=True)
        return _envelope(reply, usage, candidates=[candidate])
    if value == "no_candidates":
        return _envelope(reply, usage)
    content: dict[str, Any] = {"role": "model"}
    if value == "empty_text":
        content["parts"] = [{"text": ""}]
    return _envelope(
        reply, usage, candidates=[{"content": content, "finishReason": "STOP", "index": 0}]
    )
