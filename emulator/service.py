"""The API methods themselves: parsed request in, response body out (no HTTP here)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

import anyio.to_thread

from emulator import errors, gate
from emulator.answers import answer, is_structured
from emulator.config import EmulatorConfig
from emulator.files import FileStore, id_from_uri
from emulator.request import (
    IMAGE_MIME_TYPES,
    TEXT_MIME_TYPES,
    FilePart,
    GenerateRequest,
    ImagePart,
    Part,
    TextPart,
    parse_count_tokens_request,
    parse_generate_request,
)
from emulator.scene import SceneFacts, UndecodableImageError, analyse_bytes, image_size
from emulator.state import EmulatorState
from emulator.tokens import ImageInput, PromptTokens, TokenTable, thoughts_tokens, usage_metadata


def _resolve_file(part: FilePart, store: FileStore) -> Part:
    file_id = id_from_uri(part.file_uri)
    if file_id is None:
        raise errors.unsupported_file_uri(part.file_uri)
    stored, data = store.for_prompt(file_id)
    # The stored MIME type is the truth; the part's own mime_type is only a hint.
    if stored.mime_type in IMAGE_MIME_TYPES:
        return ImagePart(
            mime_type=stored.mime_type, data=data, media_resolution=part.media_resolution
        )
    if stored.mime_type in TEXT_MIME_TYPES:
        return TextPart(data.decode("utf-8", errors="replace"))
    raise errors.unsupported_mime_type(stored.mime_type)


def resolve_files(request: GenerateRequest, store: FileStore) -> tuple[GenerateRequest, int]:
    """Replace fileData parts by the stored content they name, or fail like the API.

    Returns the request and how many file parts it used. Files never count against the
    inline request limit: only the HTTP body does, as on the real service.
    """
    parts: list[Part] = []
    used = 0
    for part in request.parts:
        if isinstance(part, FilePart):
            parts.append(_resolve_file(part, store))
            used += 1
        else:
            parts.append(part)
    resolved = GenerateRequest(
        parts=parts, system_text=request.system_text, generation=request.generation
    )
    return resolved, used


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
    return state.token_table.count_prompt(model, texts, inputs)


async def _simulate_latency(config: EmulatorConfig) -> None:
    if config.latency_ms > 0:
        # asyncio.sleep, not time.sleep: concurrent requests must overlap like on the API.
        await asyncio.sleep(config.latency_ms / 1000)


def _truncate(text: str, max_tokens: int | None, table: TokenTable) -> tuple[str, str]:
    if max_tokens is None or table.text_tokens(text) <= max_tokens:
        return text, "STOP"
    return text[: table.chars_for(max_tokens)], "MAX_TOKENS"


async def generate_content(
    state: EmulatorState, model: str, body: Mapping[str, Any]
) -> dict[str, Any]:
    """The generateContent response body for ``body``.

    The call has passed the fault stage (``gate.fault_stage``, which counts it); the
    quota windows admit it here, once its prompt tokens are known.
    """
    parsed = parse_generate_request(body)
    inline = len(parsed.images)
    request, file_parts = resolve_files(parsed, state.files)
    state.counters.file_parts_used += file_parts
    state.counters.inline_parts_used += inline
    # Image analysis is CPU-bound Pillow work; a worker thread keeps the loop responsive.
    scenes = await anyio.to_thread.run_sync(_analyse_all, request.images)
    prompt = _prompt_tokens(state, model, request, [(s.width, s.height) for s in scenes])
    # After every check that can refuse the request, so only calls answered 200 count.
    gate.admit(state, model, prompt.total)
    await _simulate_latency(state.config)
    invalid = is_structured(request) and state.take_invalid_turn()
    reply = answer(request, scenes, invalid_structured=invalid)
    table = state.token_table
    text, finish_reason = _truncate(reply, request.generation.max_output_tokens, table)
    thoughts = thoughts_tokens(request.generation.thinking_budget)
    state.counters.answered_ok += 1
    return {
        "candidates": [
            {
                "content": {"parts": [{"text": text}], "role": "model"},
                "finishReason": finish_reason,
                "index": 0,
            }
        ],
        "usageMetadata": usage_metadata(prompt, text, thoughts, table),
        "modelVersion": model,
        "responseId": secrets.token_urlsafe(16),
    }


async def count_tokens(state: EmulatorState, model: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """The countTokens response body for ``body``."""
    state.counters.count_tokens_calls += 1
    request, _ = resolve_files(parse_count_tokens_request(body), state.files)
    sizes = _sizes(request.images)
    await _simulate_latency(state.config)
    prompt = _prompt_tokens(state, model, request, sizes)
    return {"totalTokens": prompt.total, "promptTokensDetails": prompt.details()}
