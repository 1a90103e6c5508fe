"""The API methods themselves: parsed request in, response body out (no HTTP here)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import anyio.to_thread

from visionq.emulator import errors, gate, quota_errors
from visionq.emulator.answers import answer, is_structured
from visionq.emulator.catalog import ModelSpec
from visionq.emulator.config import EmulatorConfig
from visionq.emulator.files import id_from_uri
from visionq.emulator.remote import fetch, is_web_uri
from visionq.emulator.replies import Reply, answer_body, outcome_body
from visionq.emulator.request import (
    IMAGE_MIME_TYPES,
    TEXT_MIME_TYPES,
    FilePart,
    GenerateRequest,
    ImagePart,
    Part,
    TextPart,
    get_field,
    parse_count_tokens_request,
    parse_generate_request,
)
from visionq.emulator.rules import check_media_resolution, thoughts_for
from visionq.emulator.scene import SceneFacts, UndecodableImageError, analyse_bytes, image_size
from visionq.emulator.spend import call_cost_usd
from visionq.emulator.state import EmulatorState
from visionq.emulator.tokens import ImageInput, PromptTokens

SERVICE_TIERS = ("standard", "flex", "priority")
SERVICE_TIER_HEADER = "x-gemini-service-tier"
# The tier of batch lines (priced by the catalogue's "batch" factor; never a serviceTier).
BATCH_TIER = "batch"


@dataclass(frozen=True)
class Call:
    """One model call: the id asked for, the model that answers it, where it came in."""

    requested: str
    spec: ModelSpec
    api_version: str
    base_url: str


@dataclass(frozen=True)
class Result:
    """A response body and the extra headers that go with it."""

    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def _stored_part(mime_type: str, data: bytes, media_resolution: str | None) -> Part:
    if mime_type in IMAGE_MIME_TYPES:
        return ImagePart(mime_type=mime_type, data=data, media_resolution=media_resolution)
    if mime_type in TEXT_MIME_TYPES:
        return TextPart(data.decode("utf-8", errors="replace"))
    raise errors.unsupported_mime_type(mime_type)


async def _resolve_file(part: FilePart, state: EmulatorState, base_url: str) -> Part:
    file_id = id_from_uri(part.file_uri)
    if file_id is not None:
        stored, data = state.files.for_prompt(file_id)
        # The stored MIME type is the truth; the part's own mime_type is only a hint.
        return _stored_part(stored.mime_type, data, part.media_resolution)
    if not is_web_uri(part.file_uri):
        raise errors.unsupported_file_uri(part.file_uri)
    mime_type, data = await fetch(
        part.file_uri,
        own_base=base_url,
        public=state.public,
        allowed=state.config.fetch_allowed_hosts,
        limit=state.config.file_max_bytes,
    )
    if mime_type not in IMAGE_MIME_TYPES | TEXT_MIME_TYPES and part.mime_type:
        mime_type = part.mime_type
    state.counters.web_parts_used += 1
    return _stored_part(mime_type, data, part.media_resolution)


async def resolve_files(
    request: GenerateRequest, state: EmulatorState, base_url: str = ""
) -> tuple[GenerateRequest, int]:
    """Replace fileData parts by the content they name, or fail like the API.

    File API URIs name stored files; web URLs are fetched (remote.py). Returns the
    request and how many File API parts it used. Files never count against the inline
    request limit: only the HTTP body does, as on the real service.
    """
    parts: list[Part] = []
    used = 0
    for part in request.parts:
        if isinstance(part, FilePart):
            parts.append(await _resolve_file(part, state, base_url))
            used += id_from_uri(part.file_uri) is not None
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


def _service_tier(state: EmulatorState, body: Mapping[str, Any]) -> str:
    """The tier that serves the call: ``serviceTier`` of the body, after the tier faults."""
    raw = get_field(body, "service_tier")
    if raw is None:
        return "standard"
    tier = raw.strip().lower().removeprefix("service_tier_") if isinstance(raw, str) else None
    if tier in ("", "unspecified"):
        return "standard"
    if tier not in SERVICE_TIERS:
        raise errors.invalid_argument(
            f"Invalid value at 'service_tier' (type.googleapis.com/google.ai."
            f"generativelanguage.v1beta.GenerateContentRequest.ServiceTier), {raw!r}"
        )
    settings = state.faults
    if tier == "priority" and settings.priority_downgrade:
        return "standard"
    # Drawn only when the rate is set, so seeded flex draws stay where they were.
    rate = settings.priority_downgrade_rate
    if tier == "priority" and rate > 0 and state.tier_rng.random() < rate:
        state.counters.faults["priority_downgraded"] = (
            state.counters.faults.get("priority_downgraded", 0) + 1
        )
        return "standard"
    if tier == "flex" and state.tier_rng.random() < settings.flex_shed_rate:
        state.counters.faults["flex_shed"] = state.counters.faults.get("flex_shed", 0) + 1
        raise errors.failure(503)
    return tier


async def generate_content(state: EmulatorState, call: Call, body: Mapping[str, Any]) -> Result:
    """The generateContent response for ``body``, answered by ``call.spec``.

    The call has passed the fault stage (``gate.fault_stage``, which counts it); the
    quota windows admit it on arrival, once its prompt tokens are known (from the images'
    headers), before the images are analysed. A flex call that is
    not shed waits ``flex_latency_ms`` more (flex is slower by design).
    """
    tier = _service_tier(state, body)
    if tier == "flex" and state.faults.flex_latency_ms > 0:
        await asyncio.sleep(state.faults.flex_latency_ms / 1000)
    return await answer_call(state, call, body, tier)


async def answer_call(
    state: EmulatorState, call: Call, body: Mapping[str, Any], tier: str
) -> Result:
    """The one answer core: ``body`` (a GenerateContentRequest) answered by ``call.spec``
    and billed at ``tier``; EmulatorError for a request the API refuses.

    generateContent and every Batch API line go through here. Batch lines (tier
    ``batch``) skip the rpm/tpm windows, the spend limit and the simulated latency: the
    batch has its own pace (batches.py) and does not use the synchronous quota.
    """
    batch = tier == BATCH_TIER
    spec = call.spec
    parsed = parse_generate_request(body)
    check_media_resolution(spec, parsed.generation, parsed.parts)
    thoughts = thoughts_for(spec, parsed.generation, state.catalogue)
    if thoughts > 0 and state.faults.thoughts_tokens is not None:
        thoughts = state.faults.thoughts_tokens
    inline = len(parsed.images)
    request, file_parts = await resolve_files(parsed, state, call.base_url)
    state.counters.file_parts_used += file_parts
    state.counters.inline_parts_used += inline
    # Prompt tokens need only the images' sizes (their headers): the quota is checked on
    # arrival, before the model runs, as Gemini's front door does (/work/shared/GEMINI.md,
    # Errors: a 429 is an error body with QuotaFailure/RetryInfo and no usageMetadata, so
    # nothing of the model ran). Counting it after the analysis below would stamp it late
    # by the analysis time, which a busy machine makes long and uneven.
    prompt = _prompt_tokens(state, spec.id, request, _sizes(request.images))
    if not batch:
        _check_spend(state, spec.id)
        # After every check of the request itself, so refused requests never count.
        gate.admit(state, spec.id, prompt.total)
    # Image analysis is CPU-bound Pillow work; a worker thread keeps the loop responsive.
    scenes = await anyio.to_thread.run_sync(_analyse_all, request.images)
    if not batch:
        await _simulate_latency(state.config)
    reply = Reply(
        model_version=spec.id,
        prompt=prompt,
        text="",
        thoughts=thoughts,
        max_output_tokens=request.generation.max_output_tokens or spec.output_token_limit,
        include_thoughts=request.generation.include_thoughts,
    )
    outcome = state.take_outcome_turn()
    if not batch:
        state.counters.answered_ok += 1
    state.counters.calls_by_tier[tier] = state.counters.calls_by_tier.get(tier, 0) + 1
    headers = {SERVICE_TIER_HEADER: tier}
    if outcome is not None:
        body = outcome_body(reply, *outcome)
    else:
        invalid = is_structured(request) and state.take_invalid_turn()
        mask_format = state.faults.mask_format or spec.mask_format
        text = answer(request, scenes, invalid_structured=invalid, mask_format=mask_format)
        body = answer_body(replace(reply, text=text), state.token_table)
    _record_spend(state, spec, tier, body["usageMetadata"])
    return Result(body, headers)


def _check_spend(state: EmulatorState, model: str) -> None:
    settings = state.faults
    if settings.spend_limit_usd is None:
        return
    wait = state.spend.wait_s(state.monotonic(), settings.spend_window_s, settings.spend_limit_usd)
    if wait is not None:
        state.counters.spend_rejections += 1
        raise quota_errors.spend_limit_exceeded(
            model, settings.spend_tier, wait, limit_usd=settings.spend_limit_usd
        )


def _record_spend(
    state: EmulatorState, spec: ModelSpec, tier: str, usage: Mapping[str, Any]
) -> None:
    output = usage.get("candidatesTokenCount", 0) + usage.get("thoughtsTokenCount", 0)
    usd = call_cost_usd(
        state.catalogue, spec, tier, (usage["promptTokenCount"], output), state.clock()
    )
    state.spend.record(state.monotonic(), usd)
    by_tier = state.counters.billed_usd_by_tier
    by_tier[tier] = by_tier.get(tier, 0.0) + usd


async def count_tokens(state: EmulatorState, call: Call, body: Mapping[str, Any]) -> Result:
    """The countTokens response body for ``body``."""
    state.counters.count_tokens_calls += 1
    parsed = parse_count_tokens_request(body)
    check_media_resolution(call.spec, parsed.generation, parsed.parts)
    request, _ = await resolve_files(parsed, state, call.base_url)
    sizes = _sizes(request.images)
    await _simulate_latency(state.config)
    prompt = _prompt_tokens(state, call.spec.id, request, sizes)
    return Result({"totalTokens": prompt.total, "promptTokensDetails": prompt.details()})
