"""usageMetadata and countTokens by the documented token rules."""

from __future__ import annotations

import math

import pytest
from google import genai
from google.genai import types

from tests.emulator.helpers import ask, image_part, parts
from visionq.emulator.shapes import draw_scene, encode

PROMPT = "How big is it?"  # 14 characters -> 4 text tokens


def _blank(width: int, height: int) -> bytes:
    return encode(draw_scene(width, height, []))


@pytest.mark.parametrize(
    ("model", "size", "image_tokens", "thoughts"),
    [
        ("gemini-3.5-flash-lite", (300, 300), 1120, 8),  # MINIMAL by default
        ("gemini-3.8-flash", (1000, 800), 1120, 48),  # MEDIUM by default
        ("gemini-3-flash-preview", (300, 300), 1120, 96),  # HIGH by default
        ("gemini-3.1-pro-preview", (2000, 1000), 1120, 96),
    ],
)
def test_usage_metadata_per_model_rule(
    client: genai.Client, model: str, size: tuple[int, int], image_tokens: int, thoughts: int
) -> None:
    reply = ask(client, _blank(*size), PROMPT, model=model)
    usage = reply.usage_metadata
    assert usage is not None
    text_tokens = math.ceil(len(PROMPT) / 4)
    assert usage.prompt_token_count == image_tokens + text_tokens
    details = {d.modality: d.token_count for d in usage.prompt_tokens_details or []}
    assert details == {
        types.MediaModality.TEXT: text_tokens,
        types.MediaModality.IMAGE: image_tokens,
    }
    answer = reply.text or ""
    assert usage.candidates_token_count == math.ceil(len(answer) / 4)
    # 3.x models think by default; thoughts are billed and in the total.
    assert usage.thoughts_token_count == thoughts
    assert usage.total_token_count == (
        usage.prompt_token_count + usage.candidates_token_count + thoughts
    )
    assert reply.model_version == model
    assert reply.response_id


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        (types.MediaResolution.MEDIA_RESOLUTION_LOW, 280),
        (types.MediaResolution.MEDIA_RESOLUTION_MEDIUM, 560),
        (types.MediaResolution.MEDIA_RESOLUTION_HIGH, 1120),
    ],
)
def test_gemini3_media_resolution(
    client: genai.Client, level: types.MediaResolution, expected: int
) -> None:
    reply = ask(
        client,
        _blank(640, 480),
        "",
        model="gemini-3-flash-preview",
        config=types.GenerateContentConfig(media_resolution=level),
    )
    assert reply.usage_metadata is not None
    assert reply.usage_metadata.prompt_token_count == expected


def test_count_tokens_matches_generate_usage(client: genai.Client) -> None:
    data = _blank(1000, 800)
    counted = client.models.count_tokens(
        model="gemini-3.5-flash-lite", contents=parts(image_part(data), PROMPT)
    )
    assert counted.total_tokens == 1120 + 4
    usage = ask(client, data, PROMPT).usage_metadata
    assert usage is not None
    assert usage.prompt_token_count == counted.total_tokens


def test_count_tokens_text_only(client: genai.Client) -> None:
    counted = client.models.count_tokens(model="gemini-3.8-flash", contents=parts("12345", ""))
    assert counted.total_tokens == 2


def test_max_output_tokens_truncates(client: genai.Client) -> None:
    reply = ask(
        client,
        _blank(640, 480),
        "Write a caption.",
        config=types.GenerateContentConfig(max_output_tokens=13),
    )
    assert reply.candidates is not None
    assert reply.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    # The default MINIMAL thinking (8 tokens) shares the cap: 5 tokens are left for text.
    assert len(reply.text or "") == 20
    assert reply.usage_metadata is not None
    assert reply.usage_metadata.thoughts_token_count == 8
