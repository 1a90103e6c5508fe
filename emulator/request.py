"""Parse generateContent/countTokens bodies into typed parts, accepting both key casings.

The real API reads ProtoJSON, so ``inlineData`` and ``inline_data`` are the same field;
the SDK mixes the two (camelCase at the top, snake_case inside nested objects).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from visionq.emulator import errors

IMAGE_MIME_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"})
TEXT_MIME_TYPES = frozenset({"text/plain"})


@dataclass(frozen=True)
class TextPart:
    """A text part of a prompt."""

    text: str


@dataclass(frozen=True)
class ImagePart:
    """An inline image, already base64-decoded."""

    mime_type: str
    data: bytes
    media_resolution: str | None = None


@dataclass(frozen=True)
class FilePart:
    """A reference to an uploaded file (File API)."""

    file_uri: str
    mime_type: str | None
    media_resolution: str | None = None


Part = TextPart | ImagePart | FilePart


@dataclass(frozen=True)
class GenerationSettings:
    """The generationConfig fields the emulator acts on."""

    response_mime_type: str | None = None
    response_schema: dict[str, Any] | None = None
    media_resolution: str | None = None
    max_output_tokens: int | None = None
    thinking_budget: int | None = None
    thinking_level: str | None = None
    include_thoughts: bool = False


@dataclass(frozen=True)
class GenerateRequest:
    """A parsed request: all parts in order, the system text and the settings."""

    parts: list[Part] = field(default_factory=list)
    system_text: str = ""
    generation: GenerationSettings = field(default_factory=GenerationSettings)

    @property
    def images(self) -> list[ImagePart]:
        """The images (inline, or files once resolved), in prompt order."""
        return [p for p in self.parts if isinstance(p, ImagePart)]

    @property
    def prompt_text(self) -> str:
        """All user text parts joined by newlines."""
        return "\n".join(p.text for p in self.parts if isinstance(p, TextPart))


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(word.capitalize() for word in rest)


def get_field(obj: Mapping[str, Any], snake: str) -> Any:
    """``obj[snake]`` or its camelCase twin, or None."""
    if snake in obj:
        return obj[snake]
    return obj.get(_camel(snake))


def parse_json_body(raw: bytes) -> dict[str, Any]:
    """Decode a request body that must be a JSON object."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        position = getattr(exc, "pos", 0)
        raise errors.invalid_json(f"Unexpected token at position {position}.") from exc
    if not isinstance(body, dict):
        raise errors.invalid_json("Expected a JSON object.")
    return body


def decode_base64(data: str, where: str) -> bytes:
    """Decode standard or URL-safe base64, with or without padding."""
    normalised = data.strip().replace("-", "+").replace("_", "/")
    normalised += "=" * (-len(normalised) % 4)
    try:
        return base64.b64decode(normalised, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise errors.invalid_argument(
            f"Invalid value at '{where}' (TYPE_BYTES), Base64 decoding failed."
        ) from exc


def _media_resolution(part: Mapping[str, Any]) -> str | None:
    value = get_field(part, "media_resolution")
    if isinstance(value, Mapping):
        value = get_field(value, "level")
    return value if isinstance(value, str) else None


def _inline_part(blob: Any, part: Mapping[str, Any], where: str) -> Part:
    if not isinstance(blob, Mapping):
        raise errors.invalid_argument(f"Invalid value at '{where}.inline_data'.")
    mime_type = get_field(blob, "mime_type")
    data = get_field(blob, "data")
    if not isinstance(mime_type, str) or not mime_type:
        raise errors.invalid_argument(f"* {where}.inline_data.mime_type: mime_type is required")
    mime_type = mime_type.split(";")[0].strip().lower()
    if mime_type not in IMAGE_MIME_TYPES | TEXT_MIME_TYPES:
        raise errors.unsupported_mime_type(mime_type)
    raw = decode_base64(data if isinstance(data, str) else "", f"{where}.inline_data.data")
    if mime_type in TEXT_MIME_TYPES:
        return TextPart(raw.decode("utf-8", errors="replace"))
    return ImagePart(mime_type=mime_type, data=raw, media_resolution=_media_resolution(part))


def _file_part(ref: Any, part: Mapping[str, Any], where: str) -> Part:
    if not isinstance(ref, Mapping) or not isinstance(get_field(ref, "file_uri"), str):
        raise errors.invalid_argument(f"* {where}.file_data.file_uri: file_uri is required")
    mime_type = get_field(ref, "mime_type")
    return FilePart(
        file_uri=get_field(ref, "file_uri"),
        mime_type=mime_type if isinstance(mime_type, str) else None,
        media_resolution=_media_resolution(part),
    )


def parse_part(part: Any, where: str) -> Part | None:
    """One part; None for parts the emulator ignores (thoughts, function calls)."""
    if not isinstance(part, Mapping):
        raise errors.invalid_argument(f"Invalid value at '{where}': expected an object.")
    if get_field(part, "thought") is True:
        return None
    text = get_field(part, "text")
    if isinstance(text, str):
        return TextPart(text)
    blob = get_field(part, "inline_data")
    if blob is not None:
        return _inline_part(blob, part, where)
    ref = get_field(part, "file_data")
    if ref is not None:
        return _file_part(ref, part, where)
    return None


def _content_parts(content: Any, where: str) -> list[Part]:
    if isinstance(content, str):
        return [TextPart(content)]
    if not isinstance(content, Mapping):
        raise errors.invalid_argument(f"Invalid value at '{where}': expected an object.")
    raw_parts = get_field(content, "parts") or []
    if not isinstance(raw_parts, list):
        raise errors.invalid_argument(f"Invalid value at '{where}.parts': expected a list.")
    parsed = (parse_part(p, f"{where}.parts[{i}]") for i, p in enumerate(raw_parts))
    return [p for p in parsed if p is not None]


def parse_contents(contents: Any) -> list[Part]:
    """All parts of all contents, flattened in order."""
    if not isinstance(contents, list) or not contents:
        raise errors.invalid_argument(
            "* GenerateContentRequest.contents: contents is not specified"
        )
    parts: list[Part] = []
    for index, content in enumerate(contents):
        parts.extend(_content_parts(content, f"contents[{index}]"))
    return parts


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_generation_config(config: Any) -> GenerationSettings:
    """The generationConfig fields the emulator uses; unknown fields are ignored."""
    if config is None:
        return GenerationSettings()
    if not isinstance(config, Mapping):
        raise errors.invalid_argument("Invalid value at 'generation_config': expected an object.")
    schema = get_field(config, "response_json_schema")
    if schema is None:
        schema = get_field(config, "response_schema")
    mime_type = get_field(config, "response_mime_type")
    resolution = get_field(config, "media_resolution")
    thinking = get_field(config, "thinking_config")
    thinking = thinking if isinstance(thinking, Mapping) else {}
    level = get_field(thinking, "thinking_level")
    return GenerationSettings(
        response_mime_type=mime_type if isinstance(mime_type, str) else None,
        response_schema=dict(schema) if isinstance(schema, Mapping) else None,
        media_resolution=resolution if isinstance(resolution, str) else None,
        max_output_tokens=_int_or_none(get_field(config, "max_output_tokens")),
        thinking_budget=_int_or_none(get_field(thinking, "thinking_budget")),
        thinking_level=level if isinstance(level, str) else None,
        include_thoughts=get_field(thinking, "include_thoughts") is True,
    )


def parse_generate_request(body: Mapping[str, Any]) -> GenerateRequest:
    """A generateContent body (also the inner request of countTokens)."""
    system = get_field(body, "system_instruction")
    system_parts = _content_parts(system, "system_instruction") if system is not None else []
    return GenerateRequest(
        parts=parse_contents(get_field(body, "contents")),
        system_text="\n".join(p.text for p in system_parts if isinstance(p, TextPart)),
        generation=parse_generation_config(get_field(body, "generation_config")),
    )


def parse_count_tokens_request(body: Mapping[str, Any]) -> GenerateRequest:
    """A countTokens body: ``contents`` or a full ``generateContentRequest``."""
    inner = get_field(body, "generate_content_request")
    if isinstance(inner, Mapping):
        return parse_generate_request(inner)
    return parse_generate_request(body)
