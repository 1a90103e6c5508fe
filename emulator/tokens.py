"""Token accounting by the documented per-model-family rules (see GEMINI.md, "Token rules").

The image rule is looked up per model in a small table so that a deployment can switch a
model to another rule (e.g. the flat 258 seen in the field) without touching the code.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

TOKENS_PER_TILE = 258
SMALL_IMAGE_SIDE = 384
TILE_SIDE = 768

# Gemini 3 media_resolution levels (generation- or part-level).
GEMINI3_RESOLUTION_TOKENS: dict[str, int] = {
    "MEDIA_RESOLUTION_LOW": 280,
    "MEDIA_RESOLUTION_MEDIUM": 560,
    "MEDIA_RESOLUTION_HIGH": 1120,
    "MEDIA_RESOLUTION_ULTRA_HIGH": 2240,
}
# Gemini 2.5 only lowers the cost for LOW/MEDIUM; HIGH/unspecified keeps tiling.
GEMINI2_RESOLUTION_TOKENS: dict[str, int] = {
    "MEDIA_RESOLUTION_LOW": 64,
    "MEDIA_RESOLUTION_MEDIUM": 256,
}


@dataclass(frozen=True)
class ImageInput:
    """What the token rules need to know about one image."""

    width: int
    height: int
    media_resolution: str | None = None


ImageRule = Callable[[ImageInput], int]


def flat_258(image: ImageInput) -> int:
    """Every image costs one tile, whatever its size (observed on 2.5 in the field)."""
    return TOKENS_PER_TILE


def _is_small(image: ImageInput) -> bool:
    return image.width <= SMALL_IMAGE_SIDE and image.height <= SMALL_IMAGE_SIDE


def tiles_768(image: ImageInput) -> int:
    """Gemini 2.0/2.5: 258 when both sides <= 384, else 258 per 768x768 tile."""
    reduced = GEMINI2_RESOLUTION_TOKENS.get(image.media_resolution or "")
    if reduced is not None:
        return reduced
    if _is_small(image):
        return TOKENS_PER_TILE
    tiles = math.ceil(image.width / TILE_SIDE) * math.ceil(image.height / TILE_SIDE)
    return tiles * TOKENS_PER_TILE


def crop_unit(image: ImageInput) -> int:
    """Gemini 1.5: 258 when small, else tiles of side min(w, h) / 1.5 clamped to 256..768."""
    if _is_small(image):
        return TOKENS_PER_TILE
    unit = min(max(min(image.width, image.height) / 1.5, 256.0), 768.0)
    tiles = math.ceil(image.width / unit) * math.ceil(image.height / unit)
    return tiles * TOKENS_PER_TILE


def media_resolution(image: ImageInput) -> int:
    """Gemini 3: a fixed budget per image by media_resolution (default HIGH = 1120)."""
    level = image.media_resolution or "MEDIA_RESOLUTION_HIGH"
    return GEMINI3_RESOLUTION_TOKENS.get(level, GEMINI3_RESOLUTION_TOKENS["MEDIA_RESOLUTION_HIGH"])


IMAGE_RULES: dict[str, ImageRule] = {
    "flat_258": flat_258,
    "tiles_768": tiles_768,
    "crop_unit": crop_unit,
    "media_resolution": media_resolution,
}

# Model-name prefix -> rule name; the longest matching prefix wins.
DEFAULT_RULE_BY_PREFIX: dict[str, str] = {
    "gemini-1.5": "crop_unit",
    "gemini-2.0": "tiles_768",
    "gemini-2.5": "tiles_768",
    "gemini-3": "media_resolution",
}


def rule_name_for(model: str, table: Mapping[str, str] = DEFAULT_RULE_BY_PREFIX) -> str:
    """The rule name for ``model`` from a prefix table (default: 2.x tiling)."""
    matches = [prefix for prefix in table if model.startswith(prefix)]
    return table[max(matches, key=len)] if matches else "tiles_768"


def text_tokens(text: str) -> int:
    """About four characters per token; an empty text costs nothing."""
    return math.ceil(len(text) / 4)


@dataclass(frozen=True)
class PromptTokens:
    """Prompt tokens split by modality."""

    text: int
    image: int

    @property
    def total(self) -> int:
        """Text and image tokens together."""
        return self.text + self.image

    def details(self) -> list[dict[str, Any]]:
        """``promptTokensDetails`` as the API reports it (IMAGE only when present)."""
        details: list[dict[str, Any]] = [{"modality": "TEXT", "tokenCount": self.text}]
        if self.image:
            details.append({"modality": "IMAGE", "tokenCount": self.image})
        return details


def count_prompt(
    model: str,
    texts: Sequence[str],
    images: Sequence[ImageInput],
    table: Mapping[str, str] = DEFAULT_RULE_BY_PREFIX,
) -> PromptTokens:
    """Prompt tokens for ``texts`` (one entry per text part) and ``images``."""
    rule = IMAGE_RULES[rule_name_for(model, table)]
    return PromptTokens(
        text=sum(text_tokens(t) for t in texts),
        image=sum(rule(image) for image in images),
    )


def usage_metadata(prompt: PromptTokens, answer: str) -> dict[str, Any]:
    """The ``usageMetadata`` object of a generateContent response."""
    candidates = text_tokens(answer)
    return {
        "promptTokenCount": prompt.total,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt.total + candidates,
        "promptTokensDetails": prompt.details(),
        "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": candidates}],
    }
