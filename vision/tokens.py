"""Prompt-token rules per model family: how many tokens an image and a text will cost.

Pure: the only data read is the packaged default table (``vision/data/token_rules.json``,
through importlib.resources). Corrections come in as already-parsed dicts (the caller reads
the user's file), because real billing differs from the documented rules for some models
(GEMINI.md, "Images": field reports of a flat 258 on 2.5 models).

The table's JSON format is shared with the emulator::

    {"version": "2026-11-24",
     "text": {"chars_per_token": 4},
     "models": {"<model-name prefix>": {"image_rule": "tiles_768" | "crop_unit" | "flat"
                                                      | "media_resolution",
                                         "tile_tokens": 258, "small_max_side": 384,
                                         "media_resolution": {"LOW": 64, "MEDIUM": 256},
                                         "default_level": "HIGH"}}}

The longest model-name prefix wins. A model no prefix matches has no rule: callers must
say "no estimate" rather than guess.

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

import json
import math
from fractions import Fraction
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from vision.validation import describe_errors

ImageRuleName = Literal["tiles_768", "crop_unit", "flat", "media_resolution"]
MediaLevel = Literal["LOW", "MEDIUM", "HIGH", "ULTRA_HIGH"]
MEDIA_LEVELS: tuple[MediaLevel, ...] = ("LOW", "MEDIUM", "HIGH", "ULTRA_HIGH")

TILE_SIDE = 768
CROP_UNIT_MIN = 256
CROP_UNIT_MAX = 768
DEFAULT_CHARS_PER_TOKEN = 4
_API_LEVEL_PREFIX = "MEDIA_RESOLUTION_"
_PACKAGE_FILE = "token_rules.json"


class TokenRulesError(ValueError):
    """A token-rules table (packaged or override) that does not validate."""


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


class TokenRules(BaseModel):
    """The whole table: a version, the text rule, and image rules by model-name prefix."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(min_length=1)
    text: TextRule = TextRule()
    models: dict[str, ModelRule]

    @model_validator(mode="after")
    def _check_prefixes(self) -> TokenRules:
        if any(not prefix.strip() for prefix in self.models):
            raise ValueError("model prefixes must be non-empty")
        return self

    def match(self, model: str) -> tuple[str, ModelRule] | None:
        """(prefix, rule) of the longest prefix of ``model``; None for an unknown model.

        A leading ``models/`` (the API's resource name) is ignored.
        """
        name = model.removeprefix("models/")
        prefixes = [prefix for prefix in self.models if name.startswith(prefix)]
        if not prefixes:
            return None
        best = max(prefixes, key=len)
        return best, self.models[best]

    def rule_for(self, model: str) -> ModelRule | None:
        """The image rule for ``model``; None means unknown: give no estimate."""
        found = self.match(model)
        return found[1] if found else None

    def text_tokens(self, text: str) -> int:
        """Text tokens by this table's characters-per-token ratio."""
        return text_tokens(text, chars_per_token=self.text.chars_per_token)


def parse_token_rules(data: Any, *, source: str = "table") -> TokenRules:
    """Validate a whole table (a parsed JSON object); raises TokenRulesError."""
    try:
        return TokenRules.model_validate(data)
    except ValidationError as error:
        raise TokenRulesError(describe_errors(error, "token rules", source)) from error


def default_token_rules_data() -> dict[str, Any]:
    """The packaged default table as parsed JSON (a fresh copy)."""
    text = resources.files("vision").joinpath("data", _PACKAGE_FILE).read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def load_token_rules(override: dict[str, Any] | None = None) -> TokenRules:
    """The packaged defaults, with ``override`` (same format, every key optional) applied.

    The override's ``models`` entries replace or add whole entries per prefix (a replaced
    entry keeps nothing of the default one); ``text`` and ``version`` replace the
    defaults' when given. Raises TokenRulesError naming the offending keys.
    """
    data = default_token_rules_data()
    if override is None:
        return parse_token_rules(data, source="packaged defaults")
    if not isinstance(override, dict):
        raise TokenRulesError(
            f"invalid token rules (override): expected a JSON object, got {type(override).__name__}"
        )
    unknown = sorted(set(override) - {"version", "text", "models"})
    if unknown:
        raise TokenRulesError(
            "invalid token rules (override): unknown top-level keys "
            f"{', '.join(unknown)} (allowed: version, text, models)"
        )
    models = override.get("models", {})
    if not isinstance(models, dict):
        raise TokenRulesError("invalid token rules (override): 'models' must be an object")
    merged = {
        "version": override.get("version", data["version"]),
        "text": override.get("text", data["text"]),
        "models": {**data["models"], **models},
    }
    return parse_token_rules(merged, source="override")


def normalise_level(level: str | None) -> MediaLevel | None:
    """LOW/MEDIUM/HIGH/ULTRA_HIGH from any accepted spelling; None for unset/unspecified."""
    if level is None:
        return None
    name = level.strip().upper().removeprefix(_API_LEVEL_PREFIX)
    if name in ("", "UNSPECIFIED"):
        return None
    for known in MEDIA_LEVELS:
        if name == known:
            return known
    raise ValueError(
        f"unknown media_resolution {level!r}; expected one of {', '.join(MEDIA_LEVELS)}"
    )


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
