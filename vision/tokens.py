"""Image- and text-token rules: how many tokens an image and a text will cost.

Pure. Each model's rule is its ``image_tokens`` entry in the model catalogue
(``vision/catalogue.py``), because real billing differs from the documented rules for some
models (GEMINI.md, "Images": field reports of a flat 258 on 2.5 models) and a rule can be
corrected per model from observed usage. A model without a rule gets no estimate, never a
guess.

Image rules (``w`` x ``h`` pixels as the model receives them):

- ``flat``: always ``tile_tokens``.
- ``tiles_768``: ``tile_tokens`` when both sides <= ``small_max_side``, else
  ``ceil(w / 768) * ceil(h / 768) * tile_tokens``.
- ``crop_unit``: ``tile_tokens`` when both sides <= ``small_max_side``, else with
  ``unit = clamp(min(w, h) / 1.5, 256, 768)``: ``ceil(w / unit) * ceil(h / unit) *
  tile_tokens``. Computed with exact fractions (no float rounding at tile boundaries).
- ``media_resolution``: the tokens of the requested level, ``default_level`` otherwise.

A requested media_resolution level found in a tile rule's ``media_resolution`` map (LOW and
MEDIUM on 2.x) replaces the tile count; other levels (HIGH) leave the tile rule in force.
Levels are written LOW, MEDIUM, HIGH, ULTRA_HIGH; the API's spelling
(``MEDIA_RESOLUTION_LOW``) and lower case are accepted as well.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from visionq.vision.levels import MediaLevel, normalise_level

ImageRuleName = Literal["tiles_768", "crop_unit", "flat", "media_resolution"]

TILE_SIDE = 768
CROP_UNIT_MIN = 256
CROP_UNIT_MAX = 768
DEFAULT_CHARS_PER_TOKEN = 4


class TextRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    chars_per_token: float = Field(default=DEFAULT_CHARS_PER_TOKEN, gt=0)


class ModelRule(BaseModel):
    """How one model family counts image tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    image_rule: ImageRuleName
    tile_tokens: int | None = Field(default=None, ge=0)
    small_max_side: int | None = Field(default=None, ge=1)
    media_resolution: dict[MediaLevel, int] | None = None
    default_level: MediaLevel | None = None

    @model_validator(mode="after")
    def _check_fields_for_rule(self) -> ModelRule:
        rule = self.image_rule
        if rule in ("tiles_768", "crop_unit") and (
            self.tile_tokens is None or self.small_max_side is None
        ):
            raise ValueError(f"image_rule {rule!r} needs 'tile_tokens' and 'small_max_side'")
        if rule == "flat" and self.tile_tokens is None:
            raise ValueError("image_rule 'flat' needs 'tile_tokens'")
        if rule == "media_resolution":
            if not self.media_resolution or self.default_level is None:
                raise ValueError(
                    "image_rule 'media_resolution' needs a 'media_resolution' map of level "
                    "-> tokens and a 'default_level'"
                )
            if self.default_level not in self.media_resolution:
                raise ValueError(
                    f"default_level {self.default_level!r} is not in the media_resolution map "
                    f"({', '.join(self.media_resolution)})"
                )
        elif self.default_level is not None:
            raise ValueError("'default_level' is only for image_rule 'media_resolution'")
        if any(tokens < 0 for tokens in (self.media_resolution or {}).values()):
            raise ValueError("media_resolution token counts must be >= 0")
        return self


def _tile_tokens(rule: ModelRule) -> int:
    assert rule.tile_tokens is not None  # guaranteed by ModelRule's validator
    return rule.tile_tokens


def _is_small(rule: ModelRule, width: int, height: int) -> bool:
    assert rule.small_max_side is not None  # guaranteed by ModelRule's validator
    return width <= rule.small_max_side and height <= rule.small_max_side


def crop_unit_side(width: int, height: int) -> Fraction:
    """The crop unit of the 1.5 rule: min(w, h) / 1.5 clamped to [256, 768], exactly."""
    unit = Fraction(2 * min(width, height), 3)
    return min(max(unit, Fraction(CROP_UNIT_MIN)), Fraction(CROP_UNIT_MAX))


def _ceil_div(value: int, unit: Fraction) -> int:
    return math.ceil(Fraction(value) / unit)


def image_tokens(
    rule: ModelRule, width: int, height: int, media_resolution: str | None = None
) -> int:
    """Tokens of one ``width`` x ``height`` image under ``rule``.

    ``media_resolution`` is the level that applies to this image (the part's level, else
    the request's). Raises ValueError for a non-positive size, an unknown level, or a level
    the media_resolution rule has no entry for.
    """
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    level = normalise_level(media_resolution)
    levels = rule.media_resolution or {}
    if rule.image_rule == "media_resolution":
        chosen = level or rule.default_level
        assert chosen is not None  # guaranteed by ModelRule's validator
        if chosen not in levels:
            raise ValueError(
                f"media_resolution {chosen} has no token count in this rule "
                f"(known: {', '.join(levels)})"
            )
        return levels[chosen]
    if level is not None and level in levels:
        return levels[level]
    tile = _tile_tokens(rule)
    if rule.image_rule == "flat":
        return tile
    if _is_small(rule, width, height):
        return tile
    if rule.image_rule == "tiles_768":
        return math.ceil(width / TILE_SIDE) * math.ceil(height / TILE_SIDE) * tile
    unit = crop_unit_side(width, height)
    return _ceil_div(width, unit) * _ceil_div(height, unit) * tile


def text_tokens(text: str, chars_per_token: float = DEFAULT_CHARS_PER_TOKEN) -> int:
    """ceil(len(text) / chars_per_token); 0 for an empty text."""
    if chars_per_token <= 0:
        raise ValueError("chars_per_token must be positive")
    return math.ceil(len(text) / chars_per_token)


def fit_within(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) scaled so the longer side is ``max_side``, shorter rounded half up.

    The same arithmetic as ``vision.prepare.downscale``, so ``max_side`` passed there
    produces exactly this size.
    """
    longer, shorter = max(width, height), min(width, height)
    scaled = max(1, (2 * shorter * max_side + longer) // (2 * longer))
    return (max_side, scaled) if width >= height else (scaled, max_side)


def cheapest_max_side(rule: ModelRule) -> int | None:
    """The largest longer side whose images all cost one tile under ``rule``.

    tiles_768: both sides <= max(small_max_side, 768) is one tile (a 768x432 image costs
    258 like a 384x216 one). crop_unit: only the small tier (<= small_max_side) is one tile.
    None for rules whose cost does not depend on the size (flat, media_resolution).
    """
    if rule.image_rule == "tiles_768":
        assert rule.small_max_side is not None
        return max(rule.small_max_side, TILE_SIDE)
    if rule.image_rule == "crop_unit":
        assert rule.small_max_side is not None
        return rule.small_max_side
    return None


def cheapest_size(rule: ModelRule, width: int, height: int) -> tuple[int, int] | None:
    """The largest size (aspect kept) in the rule's cheapest token tier.

    None when the rule's cost does not depend on the size (flat, media_resolution) or the
    image is already in that tier. The size is what ``vision.prepare.downscale`` produces
    with ``max_side = cheapest_max_side(rule)``.
    """
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    max_side = cheapest_max_side(rule)
    if max_side is None or max(width, height) <= max_side:
        return None
    return fit_within(width, height, max_side)
