"""Token accounting: how one model bills text and images (see GEMINI.md, "Images").

A model's billing rule lives in the emulator's own catalogue (``catalog.py``,
``data/models.json``), one entry per exact model id, for example::

    "billing": {"image_rule": "tiles_768", "tile_tokens": 258, "small_max_side": 384,
                "media_resolution": {"LOW": 64, "MEDIUM": 256}}

Image rules:

- ``tiles_768``: ``tile_tokens`` if both sides <= ``small_max_side``, else
  ceil(w / 768) * ceil(h / 768) tiles of ``tile_tokens``.
- ``crop_unit``: ``tile_tokens`` if both sides <= ``small_max_side``, else tiles of side
  unit = clamp(min(w, h) / 1.5, 256, 768): ceil(w / unit) * ceil(h / unit) tiles.
- ``flat``: always ``tile_tokens``.
- ``media_resolution``: the ``media_resolution`` tokens of the image's level (the part's
  ``mediaResolution.level``, else ``generationConfig.mediaResolution``), else those of
  ``default_level``.

For the other rules, an entry's optional ``media_resolution`` map (2.x: LOW 64, MEDIUM
256) wins when the image's level is in it; any other level keeps the rule. Levels are
written without the ``MEDIA_RESOLUTION_`` prefix; requests use the full enum name. Text
costs ceil(len / ``chars_per_token``). ``flat_image_tokens`` bills every image a flat N.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

IMAGE_RULE_NAMES: Final = ("tiles_768", "crop_unit", "flat", "media_resolution")
LEVELS: Final = ("LOW", "MEDIUM", "HIGH", "ULTRA_HIGH")
LEVEL_PREFIX: Final = "MEDIA_RESOLUTION_"
TILE_SIDE: Final = 768
CROP_UNIT_MIN: Final = 256.0
CROP_UNIT_MAX: Final = 768.0


class TokenRulesError(ValueError):
    """A billing rule is not valid (or a model has none); the message says why."""


@dataclass(frozen=True)
class ImageInput:
    """What the token rules need to know about one image (upright size, request level)."""

    width: int
    height: int
    media_resolution: str | None = None


def normalise_level(value: str | None) -> str | None:
    """``MEDIA_RESOLUTION_LOW`` (or ``LOW``) -> ``LOW``; unspecified/absent -> None."""
    if not value:
        return None
    level = value.strip().upper().removeprefix(LEVEL_PREFIX)
    return None if level in ("", "UNSPECIFIED") else level


@dataclass(frozen=True)
class ModelRule:
    """One ``models`` entry of the table."""

    image_rule: str
    tile_tokens: int = 0
    small_max_side: int = 0
    media_resolution: Mapping[str, int] = field(default_factory=dict)
    default_level: str | None = None

    def _is_small(self, image: ImageInput) -> bool:
        return image.width <= self.small_max_side and image.height <= self.small_max_side

    def image_tokens(self, image: ImageInput) -> int:
        """Tokens for one image under this rule."""
        level = normalise_level(image.media_resolution)
        if self.image_rule == "media_resolution":
            assert self.default_level is not None
            if level is not None and level in self.media_resolution:
                return self.media_resolution[level]
            return self.media_resolution[self.default_level]
        if level is not None and level in self.media_resolution:
            return self.media_resolution[level]
        if self.image_rule == "flat" or self._is_small(image):
            return self.tile_tokens
        if self.image_rule == "crop_unit":
            shorter = min(image.width, image.height) / 1.5
            unit = min(max(shorter, CROP_UNIT_MIN), CROP_UNIT_MAX)
            tiles = math.ceil(image.width / unit) * math.ceil(image.height / unit)
        else:
            tiles = math.ceil(image.width / TILE_SIDE) * math.ceil(image.height / TILE_SIDE)
        return tiles * self.tile_tokens


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


@dataclass(frozen=True)
class TokenTable:
    """The billing rules of every served model id (plus the optional flat-image override)."""

    version: str
    chars_per_token: float
    models: Mapping[str, ModelRule]
    flat_image_tokens: int | None = None

    def rule_for(self, model: str) -> ModelRule:
        """The billing rule of exactly ``model`` (a served id, aliases already resolved)."""
        try:
            return self.models[model]
        except KeyError:
            raise TokenRulesError(f"no billing rule for model {model!r}") from None

    def rule_name_for(self, model: str) -> str:
        """The image rule that bills ``model`` (``flat`` under ``flat_image_tokens``)."""
        return "flat" if self.flat_image_tokens is not None else self.rule_for(model).image_rule

    def image_tokens(self, model: str, image: ImageInput) -> int:
        """Tokens for one image sent to ``model``."""
        if self.flat_image_tokens is not None:
            return self.flat_image_tokens
        return self.rule_for(model).image_tokens(image)

    def text_tokens(self, text: str) -> int:
        """ceil(len / chars_per_token); an empty text costs nothing."""
        return math.ceil(len(text) / self.chars_per_token)

    def chars_for(self, tokens: int) -> int:
        """The longest text length that costs at most ``tokens``."""
        return math.floor(tokens * self.chars_per_token)

    def count_prompt(
        self, model: str, texts: Sequence[str], images: Sequence[ImageInput]
    ) -> PromptTokens:
        """Prompt tokens for ``texts`` (one entry per text part) and ``images``."""
        return PromptTokens(
            text=sum(self.text_tokens(t) for t in texts),
            image=sum(self.image_tokens(model, image) for image in images),
        )


# --- parsing and validation -------------------------------------------------------------


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise TokenRulesError(f"{where}: expected a positive integer, got {value!r}")
    return value


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise TokenRulesError(f"{where}: expected a JSON object, got {type(value).__name__}")
    return value


def _levels(value: Any, where: str) -> dict[str, int]:
    levels: dict[str, int] = {}
    for key, tokens in _object(value, where).items():
        if key not in LEVELS:
            raise TokenRulesError(
                f"{where}: unknown level {key!r} (expected one of {', '.join(LEVELS)})"
            )
        levels[key] = _positive_int(tokens, f"{where}.{key}")
    return levels


def parse_model_rule(entry: Any, where: str) -> ModelRule:
    """One model's ``billing`` object; unknown keys are ignored, known ones are checked."""
    data = _object(entry, where)
    rule = data.get("image_rule")
    if rule not in IMAGE_RULE_NAMES:
        raise TokenRulesError(
            f"{where}.image_rule: expected one of {', '.join(IMAGE_RULE_NAMES)}, got {rule!r}"
        )
    levels: dict[str, int] = {}
    if "media_resolution" in data:
        levels = _levels(data["media_resolution"], f"{where}.media_resolution")
    if rule == "media_resolution":
        if not levels:
            raise TokenRulesError(f"{where}.media_resolution: required (level -> tokens)")
        default = data.get("default_level")
        if default not in levels:
            raise TokenRulesError(
                f"{where}.default_level: expected one of the levels in media_resolution "
                f"({', '.join(levels)}), got {default!r}"
            )
        return ModelRule(image_rule=rule, media_resolution=levels, default_level=default)
    required = ("tile_tokens",) if rule == "flat" else ("tile_tokens", "small_max_side")
    sizes: dict[str, int] = {}
    for key in required:
        if key not in data:
            raise TokenRulesError(f"{where}.{key}: required for image_rule {rule!r}")
        sizes[key] = _positive_int(data[key], f"{where}.{key}")
    return ModelRule(
        image_rule=rule,
        tile_tokens=sizes["tile_tokens"],
        small_max_side=sizes.get("small_max_side", 0),
        media_resolution=levels,
    )


def parse_chars_per_token(text: Any, where: str) -> float:
    """``text.chars_per_token``: a positive number."""
    value = _object(text, where).get("chars_per_token")
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise TokenRulesError(f"{where}.chars_per_token: expected a positive number, got {value!r}")
    return value


def usage_metadata(
    prompt: PromptTokens,
    candidates: int,
    thoughts: int,
) -> dict[str, Any]:
    """The ``usageMetadata`` object of a generateContent response.

    ``candidatesTokenCount`` and ``thoughtsTokenCount`` appear only when > 0, as the API
    leaves zero counts out; the total is prompt + candidates + thoughts.
    """
    usage: dict[str, Any] = {"promptTokenCount": prompt.total}
    if candidates > 0:
        usage["candidatesTokenCount"] = candidates
    if thoughts > 0:
        usage["thoughtsTokenCount"] = thoughts
    usage["totalTokenCount"] = prompt.total + candidates + thoughts
    usage["promptTokensDetails"] = prompt.details()
    if candidates > 0:
        usage["candidatesTokensDetails"] = [{"modality": "TEXT", "tokenCount": candidates}]
    return usage
