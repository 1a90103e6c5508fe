"""Token accounting by a per-model rule table (see GEMINI.md, "Images" / "Token rules").

The table has the JSON format shared with the main code (``vision/data/token_rules.json``);
the emulator reads the same format itself and never imports ``vision``::

    {
      "version": "2026-11-24",
      "text": {"chars_per_token": 4},
      "models": {
        "gemini-2.5": {"image_rule": "tiles_768", "tile_tokens": 258, "small_max_side": 384,
                       "media_resolution": {"LOW": 64, "MEDIUM": 256}},
        ...
      }
    }

``models`` keys are model-name prefixes; the longest matching prefix wins. Image rules:

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
written without the ``MEDIA_RESOLUTION_`` prefix in the table; requests use the full enum
name. Text costs ceil(len / ``text.chars_per_token``).

A deployment overrides the built-in table with a file in the same format: its ``models``
entries replace (whole entries) or add prefixes, its ``version`` and ``text`` replace the
defaults when present. ``flat_image_tokens`` bills every image a flat N for every model.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

# The built-in table: identical to the shared JSON format's defaults.
DEFAULT_TOKEN_RULES: Final[Mapping[str, Any]] = {
    "version": "2026-11-24",
    "text": {"chars_per_token": 4},
    "models": {
        "gemini-1.5": {"image_rule": "crop_unit", "tile_tokens": 258, "small_max_side": 384},
        "gemini-2.0": {
            "image_rule": "tiles_768",
            "tile_tokens": 258,
            "small_max_side": 384,
            "media_resolution": {"LOW": 64, "MEDIUM": 256},
        },
        "gemini-2.5": {
            "image_rule": "tiles_768",
            "tile_tokens": 258,
            "small_max_side": 384,
            "media_resolution": {"LOW": 64, "MEDIUM": 256},
        },
        "gemini-3": {
            "image_rule": "media_resolution",
            "media_resolution": {"LOW": 280, "MEDIUM": 560, "HIGH": 1120, "ULTRA_HIGH": 2240},
            "default_level": "HIGH",
        },
    },
}

IMAGE_RULE_NAMES: Final = ("tiles_768", "crop_unit", "flat", "media_resolution")
LEVELS: Final = ("LOW", "MEDIUM", "HIGH", "ULTRA_HIGH")
LEVEL_PREFIX: Final = "MEDIA_RESOLUTION_"
TILE_SIDE: Final = 768
CROP_UNIT_MIN: Final = 256.0
CROP_UNIT_MAX: Final = 768.0
# thinking_budget > 0 reports min(budget, THOUGHTS_TOKENS_CAP) thoughts tokens.
THOUGHTS_TOKENS_CAP: Final = 64


class TokenRulesError(ValueError):
    """A token rules table (or the file holding it) is not valid; the message says why."""


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


# Models that match no prefix (the emulator only serves configured models, so rarely used).
FALLBACK_RULE: Final = ModelRule(image_rule="tiles_768", tile_tokens=258, small_max_side=384)


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
    """A parsed, validated rule table (plus the optional flat-image override)."""

    version: str
    chars_per_token: float
    models: Mapping[str, ModelRule]
    flat_image_tokens: int | None = None

    def rule_for(self, model: str) -> ModelRule:
        """The entry of the longest prefix of ``model``, else ``FALLBACK_RULE``."""
        matches = [prefix for prefix in self.models if model.startswith(prefix)]
        return self.models[max(matches, key=len)] if matches else FALLBACK_RULE

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
    """One ``models`` entry; unknown keys are ignored, known ones are checked."""
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


def _chars_per_token(text: Any, where: str) -> float:
    value = _object(text, where).get("chars_per_token")
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise TokenRulesError(f"{where}.chars_per_token: expected a positive number, got {value!r}")
    return value


def parse_token_rules(
    data: Any, base: TokenTable | None = None, where: str = "token rules"
) -> TokenTable:
    """Validate ``data`` (the parsed JSON) into a table.

    Without ``base`` every section is required (the built-in table). With ``base`` the
    data overrides it: ``models`` (required) replaces or adds entries per prefix, and
    ``version``/``text`` replace the base's when present. Errors read
    ``"{where}: $.models['gemini-2.5'].tile_tokens: expected a positive integer, got 0"``.
    """
    try:
        return _parse_table(data, base)
    except TokenRulesError as exc:
        raise TokenRulesError(f"{where}: {exc}") from exc


def _parse_table(data: Any, base: TokenTable | None) -> TokenTable:
    top = _object(data, "$")
    if "version" in top or base is None:
        version = top.get("version")
        if not isinstance(version, str) or not version:
            raise TokenRulesError(f"$.version: expected a non-empty string, got {version!r}")
    else:
        version = base.version
    if "text" in top or base is None:
        chars_per_token = _chars_per_token(top.get("text"), "$.text")
    else:
        chars_per_token = base.chars_per_token
    if "models" not in top:
        raise TokenRulesError("$.models: required (model-name prefix -> rule)")
    models = dict(base.models) if base is not None else {}
    for prefix, entry in _object(top["models"], "$.models").items():
        if not prefix:
            raise TokenRulesError("$.models: a model-name prefix must not be empty")
        models[prefix] = parse_model_rule(entry, f"$.models[{prefix!r}]")
    return TokenTable(version=version, chars_per_token=chars_per_token, models=models)


DEFAULT_TABLE: Final = parse_token_rules(DEFAULT_TOKEN_RULES, where="built-in token rules")


def build_token_table(
    overrides: Mapping[str, Any] | None = None,
    flat_image_tokens: int | None = None,
    where: str = "token_rules",
) -> TokenTable:
    """The built-in table, overridden by ``overrides`` and/or a flat image price."""
    table = (
        DEFAULT_TABLE if overrides is None else parse_token_rules(overrides, DEFAULT_TABLE, where)
    )
    if flat_image_tokens is not None:
        _positive_int(flat_image_tokens, "flat_image_tokens")
        table = TokenTable(table.version, table.chars_per_token, table.models, flat_image_tokens)
    return table


def load_token_rules_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a rules file; returns the parsed JSON for ``token_rules``.

    Raises ``TokenRulesError`` naming the file and the problem (unreadable, not JSON,
    or not a valid table).
    """
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8") as handle:
            raw = handle.read()
    except OSError as exc:
        raise TokenRulesError(f"cannot read token rules file {name}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise TokenRulesError(f"token rules file {name}: not UTF-8 text") from exc
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise TokenRulesError(
            f"token rules file {name}: invalid JSON at line {exc.lineno} column {exc.colno}: "
            f"{exc.msg}"
        ) from exc
    parse_token_rules(data, DEFAULT_TABLE, where=f"token rules file {name}")
    return dict(_object(data, name))


# --- convenience wrappers over the built-in table and the usage object ------------------


def rule_name_for(model: str, table: TokenTable = DEFAULT_TABLE) -> str:
    """The image rule name for ``model``."""
    return table.rule_name_for(model)


def text_tokens(text: str, table: TokenTable = DEFAULT_TABLE) -> int:
    """Text tokens under ``table`` (built-in: about four characters per token)."""
    return table.text_tokens(text)


def count_prompt(
    model: str,
    texts: Sequence[str],
    images: Sequence[ImageInput],
    table: TokenTable = DEFAULT_TABLE,
) -> PromptTokens:
    """Prompt tokens for ``texts`` and ``images`` under ``table``."""
    return table.count_prompt(model, texts, images)


def thoughts_tokens(thinking_budget: int | None) -> int:
    """Deterministic thoughts: min(budget, 64) when budget > 0; 0 (off) otherwise.

    A budget of 0 turns thinking off, and an absent or dynamic (-1) budget reports no
    thoughts either, so usage stays predictable in tests.
    """
    if thinking_budget is None or thinking_budget <= 0:
        return 0
    return min(thinking_budget, THOUGHTS_TOKENS_CAP)


def usage_metadata(
    prompt: PromptTokens,
    answer: str,
    thoughts: int = 0,
    table: TokenTable = DEFAULT_TABLE,
) -> dict[str, Any]:
    """The ``usageMetadata`` object of a generateContent response.

    ``thoughtsTokenCount`` appears only when ``thoughts`` > 0; the total is prompt +
    candidates + thoughts, as on the API.
    """
    candidates = table.text_tokens(answer)
    usage: dict[str, Any] = {
        "promptTokenCount": prompt.total,
        "candidatesTokenCount": candidates,
    }
    if thoughts > 0:
        usage["thoughtsTokenCount"] = thoughts
    usage["totalTokenCount"] = prompt.total + candidates + thoughts
    usage["promptTokensDetails"] = prompt.details()
    usage["candidatesTokensDetails"] = [{"modality": "TEXT", "tokenCount": candidates}]
    return usage
