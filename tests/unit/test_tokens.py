"""Image and text token rules (vision.tokens), each rule exercised on ModelRule objects.

The packaged catalogue now holds only media_resolution rules (every usable model is a
Gemini 3 model), but the tile rules stay for catalogue overrides and older models, so their
arithmetic is tested on rules built here with the figures Google documents.
"""

from typing import Any

import pytest
from pydantic import ValidationError

from visionq.vision.catalogue import load_catalogue
from visionq.vision.levels import normalise_level
from visionq.vision.prepare import _fit
from visionq.vision.tokens import (
    ModelRule,
    cheapest_max_side,
    cheapest_size,
    crop_unit_side,
    fit_within,
    image_tokens,
    text_tokens,
)

# Gemini 2.0 / 2.5: 258 per 768 tile, one tile when both sides <= 384; LOW/MEDIUM levels.
TILES = ModelRule(
    image_rule="tiles_768",
    tile_tokens=258,
    small_max_side=384,
    media_resolution={"LOW": 64, "MEDIUM": 256},
)
# Gemini 1.5: the crop-unit rule.
CROP = ModelRule(image_rule="crop_unit", tile_tokens=258, small_max_side=384)
# Gemini 3: tokens by media-resolution level, whatever the size.
LEVELS = ModelRule(
    image_rule="media_resolution",
    media_resolution={"LOW": 280, "MEDIUM": 560, "HIGH": 1120, "ULTRA_HIGH": 2240},
    default_level="HIGH",
)
FLAT = ModelRule(image_rule="flat", tile_tokens=258)


def test_packaged_models_carry_the_gemini_3_rule() -> None:
    catalogue = load_catalogue()
    for model in ("gemini-3.8-flash", "gemini-3.6-flash", "gemini-3.5-flash-lite"):
        entry = catalogue.entry(model)
        assert entry is not None
        assert entry.image_tokens == LEVELS


@pytest.mark.parametrize(
    ("size", "tokens"),
    [
        ((300, 300), 258),
        ((384, 384), 258),
        ((385, 384), 258),  # not small, but a single 768 tile
        ((1000, 800), 4 * 258),
        ((768, 768), 258),
        ((769, 768), 2 * 258),
        ((3840, 2160), 5 * 3 * 258),
        ((1, 5000), 7 * 258),
    ],
)
def test_tiles_768(size: tuple[int, int], tokens: int) -> None:
    assert image_tokens(TILES, *size) == tokens


def test_tiles_768_media_resolution_levels() -> None:
    assert image_tokens(TILES, 3840, 2160, "LOW") == 64
    assert image_tokens(TILES, 3840, 2160, "MEDIUM") == 256
    assert image_tokens(TILES, 300, 300, "MEDIA_RESOLUTION_LOW") == 64
    assert image_tokens(TILES, 300, 300, "medium") == 256
    # HIGH (or unspecified) has no entry: the tile rule stays in force.
    assert image_tokens(TILES, 1000, 800, "HIGH") == 1032
    assert image_tokens(TILES, 1000, 800, "MEDIA_RESOLUTION_UNSPECIFIED") == 1032


@pytest.mark.parametrize(
    ("size", "unit", "tokens"),
    [
        ((960, 540), 360, 3 * 2 * 258),  # the example of Google's page
        ((300, 200), None, 258),
        ((384, 384), None, 258),
        ((500, 300), 256, 2 * 2 * 258),  # 300 / 1.5 = 200 < 256: clamped up
        ((3840, 2160), 768, 5 * 3 * 258),  # 1440: clamped down
        ((1200, 600), 400, 3 * 2 * 258),  # exact tile boundary: 1200 / 400 = 3
        ((802, 401), None, 3 * 2 * 258),  # unit 267.33..., 802 / unit = 3 exactly
    ],
)
def test_crop_unit(size: tuple[int, int], unit: int | None, tokens: int) -> None:
    if unit is not None:
        assert crop_unit_side(*size) == unit
    assert image_tokens(CROP, *size) == tokens


def test_gemini_3_levels() -> None:
    assert image_tokens(LEVELS, 300, 300) == 1120  # default HIGH, whatever the size
    assert image_tokens(LEVELS, 8000, 8000) == 1120
    assert image_tokens(LEVELS, 100, 100, "LOW") == 280
    assert image_tokens(LEVELS, 100, 100, "MEDIUM") == 560
    assert image_tokens(LEVELS, 100, 100, "MEDIA_RESOLUTION_HIGH") == 1120
    assert image_tokens(LEVELS, 100, 100, "ULTRA_HIGH") == 2240
    assert image_tokens(LEVELS, 100, 100, "media_resolution_ultra_high") == 2240


def test_flat_rule() -> None:
    for size in [(1, 1), (768, 1280), (1024, 1024), (3840, 2160)]:
        assert image_tokens(FLAT, *size) == 258
    # A level the flat rule has no entry for leaves it in force.
    assert image_tokens(FLAT, 10, 10, "LOW") == 258


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="positive"):
        image_tokens(TILES, 0, 10)
    with pytest.raises(ValueError, match="unknown media_resolution 'EXTREME'"):
        image_tokens(TILES, 10, 10, "EXTREME")
    no_ultra = ModelRule(
        image_rule="media_resolution", media_resolution={"LOW": 1, "HIGH": 2}, default_level="HIGH"
    )
    with pytest.raises(ValueError, match="ULTRA_HIGH has no token count"):
        image_tokens(no_ultra, 10, 10, "ULTRA_HIGH")
    assert normalise_level(None) is None
    assert normalise_level(" low ") == "LOW"


def test_text_tokens() -> None:
    assert text_tokens("") == 0
    assert text_tokens("a") == 1
    assert text_tokens("abcd") == 1
    assert text_tokens("abcde") == 2
    assert text_tokens("x" * 400) == 100
    assert text_tokens("abcde", chars_per_token=2.5) == 2
    assert load_catalogue().text_tokens("abcdefghi") == 3
    with pytest.raises(ValueError, match="chars_per_token must be positive"):
        text_tokens("abc", chars_per_token=0)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"image_rule": "tiles_768"}, "needs 'tile_tokens' and 'small_max_side'"),
        ({"image_rule": "crop_unit", "tile_tokens": 258}, "needs 'tile_tokens' and 'small"),
        ({"image_rule": "tiles"}, "image_rule"),
        ({"image_rule": "flat"}, "image_rule 'flat' needs 'tile_tokens'"),
        ({"image_rule": "flat", "tile_tokens": 258, "tile": 1}, "Extra inputs are not permitted"),
        ({"image_rule": "flat", "tile_tokens": -1}, "tile_tokens"),
        (
            {"image_rule": "media_resolution", "media_resolution": {"LOW": 1}},
            "needs a 'media_resolution' map",
        ),
        (
            {
                "image_rule": "media_resolution",
                "media_resolution": {"LOW": 1},
                "default_level": "HIGH",
            },
            "default_level 'HIGH' is not in the media_resolution map",
        ),
        (
            {"image_rule": "flat", "tile_tokens": 1, "default_level": "LOW"},
            "only for image_rule 'media_resolution'",
        ),
        ({"image_rule": "flat", "tile_tokens": 1, "media_resolution": {"X": 1}}, "X"),
        (
            {"image_rule": "flat", "tile_tokens": 1, "media_resolution": {"LOW": -1}},
            "token counts must be >= 0",
        ),
    ],
)
def test_invalid_rules_are_clear_errors(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ModelRule.model_validate(fields)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("rule", "size", "target"),
    [
        (TILES, (1000, 800), (768, 614)),
        (TILES, (3840, 2160), (768, 432)),
        (TILES, (800, 3000), (205, 768)),
        (TILES, (768, 500), None),  # already a single tile
        (TILES, (300, 300), None),
        (CROP, (960, 540), (384, 216)),
        (CROP, (385, 100), (384, 100)),
        (CROP, (384, 200), None),
        (LEVELS, (3840, 2160), None),  # size does not matter
    ],
)
def test_cheapest_size(
    rule: ModelRule, size: tuple[int, int], target: tuple[int, int] | None
) -> None:
    assert cheapest_size(rule, *size) == target
    if target is not None:
        assert image_tokens(rule, *target) == rule.tile_tokens
        # The same size vision.prepare.downscale produces for this max_side.
        max_side = cheapest_max_side(rule)
        assert max_side is not None
        assert _fit(*size, max_side) == target
        assert fit_within(*size, max_side) == target


def test_cheapest_size_is_the_largest_in_the_tier() -> None:
    for rule in (TILES, CROP):
        max_side = cheapest_max_side(rule)
        assert max_side is not None
        assert image_tokens(rule, max_side, max_side) == 258
        assert image_tokens(rule, max_side + 1, max_side) > 258


def test_cheapest_size_flat_and_bad_size() -> None:
    assert cheapest_max_side(FLAT) is None
    assert cheapest_max_side(LEVELS) is None
    assert cheapest_size(FLAT, 4000, 3000) is None
    with pytest.raises(ValueError, match="positive"):
        cheapest_size(TILES, -1, 3)
