"""Per-model thinking and media-resolution rules, through the real SDK."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from google import genai
from google.genai import errors, types

from tests.emulator.conftest import API_KEY
from tests.emulator.helpers import ask, blank, image_part, image_tokens, parts

PROMPT = "How big is it?"


def _thinking(**fields: Any) -> types.GenerateContentConfig:
    return types.GenerateContentConfig(thinking_config=types.ThinkingConfig(**fields))


def _error(client: genai.Client, model: str, config: types.GenerateContentConfig) -> str:
    with pytest.raises(errors.ClientError) as info:
        ask(client, blank(64, 64), PROMPT, model=model, config=config)
    assert (info.value.code, info.value.status) == (400, "INVALID_ARGUMENT")
    return info.value.message or ""


@pytest.mark.parametrize(
    ("model", "config", "message"),
    [
        (
            "gemini-3.5-flash-lite",
            _thinking(thinking_budget=0),
            "Budget 0 is invalid. This model only works in thinking mode.",
        ),
        (
            "gemini-3.8-flash",
            _thinking(thinking_budget=0),
            "Budget 0 is invalid. This model only works in thinking mode.",
        ),
        (
            "gemini-3.5-flash-lite",
            _thinking(thinking_budget=100),
            "The thinking budget 100 is invalid. Please choose a value between 512 and 24576.",
        ),
        (
            "gemini-3.1-pro-preview",
            _thinking(thinking_budget=40000),
            "The thinking budget 40000 is invalid. Please choose a value between 128 and 32768.",
        ),
        (
            "gemini-3.8-flash",
            _thinking(thinking_level=types.ThinkingLevel.MINIMAL),
            "Thinking level MINIMAL is not supported for this model. Please retry with other"
            " thinking level.",
        ),
        (
            "gemini-3.1-pro-preview",
            _thinking(thinking_level=types.ThinkingLevel.MINIMAL),
            "Thinking level MINIMAL is not supported for this model. Please retry with other"
            " thinking level.",
        ),
        (
            "gemini-3.8-flash",
            _thinking(thinking_level=types.ThinkingLevel.LOW, thinking_budget=1024),
            "You can only set only one of thinking budget and thinking level.",
        ),
    ],
)
def test_thinking_400s(
    client: genai.Client, model: str, config: types.GenerateContentConfig, message: str
) -> None:
    assert _error(client, model, config) == message


@pytest.mark.parametrize(
    ("model", "config", "thoughts"),
    [
        ("gemini-3.8-flash", None, 48),  # MEDIUM by default
        ("gemini-3.8-flash", _thinking(thinking_level=types.ThinkingLevel.LOW), 24),
        ("gemini-3.8-flash", _thinking(thinking_level=types.ThinkingLevel.HIGH), 96),
        ("gemini-3.5-flash-lite", None, 8),  # MINIMAL by default
        ("gemini-3.5-flash-lite", _thinking(thinking_level=types.ThinkingLevel.MINIMAL), 8),
        ("gemini-3.5-flash-lite", _thinking(thinking_budget=512), 64),  # min(budget, 64)
        ("gemini-3.8-flash", _thinking(thinking_budget=10), 10),
        ("gemini-3.8-flash", _thinking(thinking_budget=-1), 48),  # dynamic: the default
    ],
)
def test_thoughts_are_deterministic(
    client: genai.Client, model: str, config: types.GenerateContentConfig | None, thoughts: int
) -> None:
    usage = ask(client, blank(64, 64), PROMPT, model=model, config=config).usage_metadata
    assert usage is not None
    assert usage.thoughts_token_count == thoughts
    assert usage.total_token_count == (
        (usage.prompt_token_count or 0) + (usage.candidates_token_count or 0) + thoughts
    )


def test_thoughts_that_use_the_whole_cap_leave_an_empty_billed_candidate(
    client: genai.Client,
) -> None:
    config = types.GenerateContentConfig(
        max_output_tokens=30, thinking_config=types.ThinkingConfig(thinking_level="HIGH")
    )
    reply = ask(client, blank(64, 64), "Write a caption.", model="gemini-3.8-flash", config=config)
    assert reply.candidates is not None
    candidate = reply.candidates[0]
    assert candidate.finish_reason == types.FinishReason.MAX_TOKENS
    assert candidate.content is not None and not candidate.content.parts
    assert reply.text is None
    usage = reply.usage_metadata
    assert usage is not None
    assert usage.thoughts_token_count == 30  # thoughts stop at the cap
    assert usage.candidates_token_count is None
    assert usage.total_token_count == (usage.prompt_token_count or 0) + 30


def test_include_thoughts_returns_a_thought_part_and_a_signature(client: genai.Client) -> None:
    config = _thinking(include_thoughts=True)
    reply = ask(client, blank(64, 64), "Write a caption.", model="gemini-3.8-flash", config=config)
    assert reply.candidates is not None and reply.candidates[0].content is not None
    thought, answer = reply.candidates[0].content.parts or []
    assert thought.thought is True and (thought.text or "").startswith("**Looking")
    assert answer.thought is None and answer.thought_signature
    # The SDK's .text leaves thoughts out; a client that joins all parts would not.
    assert reply.text == answer.text
    assert "synthetic caption" in (answer.text or "")


def test_per_part_media_resolution_needs_support() -> None:
    # Only 2.x lacks it; 2.5 Flash-Lite answers an existing project.
    from tests.emulator.conftest import make_client
    from tests.emulator.helpers import serving
    from visionq.emulator.config import EmulatorConfig

    low = types.Part(
        inline_data=types.Blob(data=blank(64, 64), mime_type="image/png"),
        media_resolution=types.PartMediaResolution(
            level=types.PartMediaResolutionLevel.MEDIA_RESOLUTION_LOW
        ),
    )
    with serving(EmulatorConfig(api_keys=(API_KEY,), existing_project=True)) as url:
        sdk = make_client(url)
        try:
            with pytest.raises(errors.ClientError) as info:
                sdk.models.generate_content(
                    model="gemini-2.5-flash-lite", contents=parts(low, PROMPT)
                )
            assert (
                info.value.message == "Per part media resolution is not supported for this Model."
            )
            usage = sdk.models.generate_content(
                model="gemini-3.8-flash", contents=parts(low, PROMPT)
            ).usage_metadata
            assert image_tokens(usage) == 280
        finally:
            sdk.close()


def test_ultra_high_only_per_part(client: genai.Client, emulator_url: str) -> None:
    ultra = types.Part(
        inline_data=types.Blob(data=blank(64, 64), mime_type="image/png"),
        media_resolution=types.PartMediaResolution(
            level=types.PartMediaResolutionLevel.MEDIA_RESOLUTION_ULTRA_HIGH
        ),
    )
    usage = client.models.generate_content(
        model="gemini-3.8-flash", contents=parts(ultra, image_part(blank(64, 64)), PROMPT)
    ).usage_metadata
    assert image_tokens(usage) == 2240 + 1120
    # The SDK's enum has no ULTRA_HIGH for generationConfig; send it raw.
    body = {
        "contents": [{"parts": [{"text": PROMPT}]}],
        "generationConfig": {"mediaResolution": "MEDIA_RESOLUTION_ULTRA_HIGH"},
    }
    response = httpx.post(
        f"{emulator_url}/v1beta/models/gemini-3.8-flash:generateContent",
        json=body,
        headers={"x-goog-api-key": API_KEY},
    )
    assert response.status_code == 400
    assert "MEDIA_RESOLUTION_ULTRA_HIGH" in response.json()["error"]["message"]
