"""The API methods themselves: parsed request in, response body out (no HTTP here)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread

from emulator import errors
from emulator.answers import answer
from emulator.config import EmulatorConfig
from emulator.request import (
    FilePart,
    GenerateRequest,
    ImagePart,
    Part,
    TextPart,
    parse_count_tokens_request,
    parse_generate_request,
)
from emulator.scene import SceneFacts, UndecodableImageError, analyse_bytes, image_size
from emulator.tokens import (
    DEFAULT_RULE_BY_PREFIX,
    ImageInput,
    PromptTokens,
    count_prompt,
    text_tokens,
    usage_metadata,
)


@dataclass
class EmulatorState:
    """Per-app state: the config, the token rule table and files known by URI.

    ``files`` maps a file URI to (MIME type, bytes); the File API fills it, and fileData
    parts naming an unknown URI are rejected.
    """

    config: EmulatorConfig
    token_rules: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_RULE_BY_PREFIX))
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)


def resolve_files(
    request: GenerateRequest, files: Mapping[str, tuple[str, bytes]]
) -> GenerateRequest:
    """Replace fileData parts by the inline image they name, or fail like the API."""
    parts: list[Part] = []
    for part in request.parts:
        if not isinstance(part, FilePart):
            parts.append(part)
            continue
        known = files.get(part.file_uri)
        if known is None:
            raise errors.unsupported_file_uri(part.file_uri)
        parts.append(ImagePart(mime_type=known[0], data=known[1]))
    return GenerateRequest(
        parts=parts, system_text=request.system_text, generation=request.generation
    )


def _analyse_all(images: Sequence[ImagePart]) -> list[SceneFacts]:
    try:
        return [analyse_bytes(image.data) for image in images]
    except UndecodableImageError as exc:
        raise errors.undecodable_image() from exc


def _sizes(images: Sequence[ImagePart]) -> list[tuple[int, int]]:
    try:
        return [image_size(image.data) for image in images]
    except UndecodableImageError as exc:
        raise errors.undecodable_image() from exc


def _prompt_tokens(
    state: EmulatorState, model: str, request: GenerateRequest, sizes: Sequence[tuple[int, int]]
) -> PromptTokens:
    texts = [p.text for p in request.parts if isinstance(p, TextPart)]
    if request.system_text:
        texts.append(request.system_text)
    default_resolution = request.generation.media_resolution
    inputs = [
        ImageInput(width=w, height=h, media_resolution=image.media_resolution or default_resolution)
        for image, (w, h) in zip(request.images, sizes, strict=True)
    ]
    return count_prompt(model, texts, inputs, state.token_rules)


async def _simulate_latency(config: EmulatorConfig) -> None:
    if config.latency_ms > 0:
        # asyncio.sleep, not time.sleep: concurrent requests must overlap like on the API.
        await asyncio.sleep(config.latency_ms / 1000)


def _truncate(text: str, max_tokens: int | None) -> tuple[str, str]:
    if max_tokens is None or text_tokens(text) <= max_tokens:
        return text, "STOP"
    return text[: max_tokens * 4], "MAX_TOKENS"


async def generate_content(
    state: EmulatorState, model: str, body: Mapping[str, Any]
) -> dict[str, Any]:
    """The generateContent response body for ``body``."""
    request = resolve_files(parse_generate_request(body), state.files)
    # Image analysis is CPU-bound Pillow work; a worker thread keeps the loop responsive.
    scenes = await anyio.to_thread.run_sync(_analyse_all, request.images)
    await _simulate_latency(state.config)
    prompt = _prompt_tokens(state, model, request, [(s.width, s.height) for s in scenes])
    text, finish_reason = _truncate(answer(request, scenes), request.generation.max_output_tokens)
    return {
        "candidates": [
            {
                "content": {"parts": [{"text": text}], "role": "model"},
                "finishReason": finish_reason,
                "index": 0,
            }
        ],
        "usageMetadata": usage_metadata(prompt, text),
        "modelVersion": model,
        "responseId": secrets.token_urlsafe(16),
    }


async def count_tokens(state: EmulatorState, model: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """The countTokens response body for ``body``."""
    request = resolve_files(parse_count_tokens_request(body), state.files)
    sizes = _sizes(request.images)
    await _simulate_latency(state.config)
    prompt = _prompt_tokens(state, model, request, sizes)
    return {"totalTokens": prompt.total, "promptTokensDetails": prompt.details()}
