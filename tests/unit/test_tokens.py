"""Image and text token rules (vision.tokens) and the rules table."""

import json
from importlib import resources
from typing import Any

import pytest

from vision.prepare import _fit
from vision.tokens import (
    ModelRule,
    TokenRules,
    TokenRulesError,
    cheapest_max_side,
    cheapest_size,
    crop_unit_side,
    image_tokens,
    load_token_rules,
    normalise_level,
    parse_token_rules,
    text_tokens,
)

RULES = load_token_rules()


def rule(model: str) -> ModelRule:
    found = RULES.rule_for(model)
    assert found is not None, model
    return found


def test_packaged_table_is_the_shared_format() -> None:
    raw = json.loads(resources.files("vision").joinpath("data/token_rules.json").read_text())
    assert set(raw) == {"version", "text", "models"}
    assert raw["text"] == {"chars_per_token": 4}
    assert raw["models"]["gemini-2.5"] == {
        "image_rule": "tiles_768",
        "tile_tokens": 258,
        "small_max_side": 384,
        "media_resolution": {"LOW": 64, "MEDIUM": 256},
    }
    assert RULES.version == raw["version"]
    assert set(RULES.models) == {"gemini-1.5", "gemini-2.0", "gemini-2.5", "gemini-3"}


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
    assert image_tokens(rule("gemini-2.5-flash"), *size) == tokens
    assert image_tokens(rule("gemini-2.0-flash"), *size) == tokens


def test_tiles_768_media_resolution_levels() -> None:
    flash = rule("gemini-2.5-flash")
    assert image_tokens(flash, 3840, 2160, "LOW") == 64
    assert image_tokens(flash, 3840, 2160, "MEDIUM") == 256
    assert image_tokens(flash, 300, 300, "MEDIA_RESOLUTION_LOW") == 64
    assert image_tokens(flash, 300, 300, "medium") == 256
    # HIGH (or unspecified) has no entry: the tile rule stays in force.
    assert image_tokens(flash, 1000, 800, "HIGH") == 1032
    assert image_tokens(flash, 1000, 800, "MEDIA_RESOLUTION_UNSPECIFIED") == 1032


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
    assert image_tokens(rule("gemini-1.5-pro"), *size) == tokens


def test_gemini_3_levels() -> None:
    pro = rule("gemini-3.1-pro-preview")
    assert image_tokens(pro, 300, 300) == 1120  # default HIGH, whatever the size
    assert image_tokens(pro, 8000, 8000) == 1120
    assert image_tokens(pro, 100, 100, "LOW") == 280
    assert image_tokens(pro, 100, 100, "MEDIUM") == 560
    assert image_tokens(pro, 100, 100, "MEDIA_RESOLUTION_HIGH") == 1120
    assert image_tokens(pro, 100, 100, "ULTRA_HIGH") == 2240


def test_flat_rule() -> None:
    flat = ModelRule(image_rule="flat", tile_tokens=258)
    for size in [(1, 1), (768, 1280), (1024, 1024), (3840, 2160)]:
        assert image_tokens(flat, *size) == 258


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="positive"):
        image_tokens(rule("gemini-2.5-flash"), 0, 10)
    with pytest.raises(ValueError, match="unknown media_resolution 'EXTREME'"):
        image_tokens(rule("gemini-2.5-flash"), 10, 10, "EXTREME")
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
    assert RULES.text_tokens("abcdefghi") == 3


def test_longest_prefix_wins() -> None:
    table = parse_token_rules(
        {
            "version": "t",
            "models": {
                "gemini-2.5-flash": {"image_rule": "flat", "tile_tokens": 1},
                "gemini-2.5-flash-lite": {"image_rule": "flat", "tile_tokens": 2},
                "gemini-2.5": {"image_rule": "flat", "tile_tokens": 3},
            },
        }
    )
    assert table.match("gemini-2.5-flash-lite-preview-09-2025") == (
        "gemini-2.5-flash-lite",
        table.models["gemini-2.5-flash-lite"],
    )
    assert image_tokens(rule_of(table, "gemini-2.5-flash-lite"), 9, 9) == 2
    assert table.match("gemini-2.5-flash")[0] == "gemini-2.5-flash"  # type: ignore[index]
    assert table.match("models/gemini-2.5-pro")[0] == "gemini-2.5"  # type: ignore[index]
    assert table.rule_for("gemini-2.0-flash") is None
    assert table.text.chars_per_token == 4  # the default text rule


def test_unknown_model_has_no_rule() -> None:
    assert RULES.rule_for("gpt-4o") is None
    assert RULES.rule_for("gemma-3") is None
    assert RULES.match("claude") is None


def test_override_replaces_a_model_and_adds_others() -> None:
    rules = load_token_rules(
        {
            "models": {
                "gemini-2.5": {"image_rule": "flat", "tile_tokens": 258},
                "gemma-3": {"image_rule": "flat", "tile_tokens": 256},
            }
        }
    )
    assert image_tokens(rule_of(rules, "gemini-2.5-flash"), 3840, 2160) == 258
    # The replaced entry keeps nothing of the default (no LOW level any more).
    assert image_tokens(rule_of(rules, "gemini-2.5-flash"), 3840, 2160, "LOW") == 258
    assert image_tokens(rule_of(rules, "gemma-3-27b"), 10, 10) == 256
    assert image_tokens(rule_of(rules, "gemini-2.0-flash"), 3840, 2160) == 3870  # untouched
    assert rules.version == RULES.version
    again = load_token_rules({"version": "mine", "text": {"chars_per_token": 3}})
    assert again.version == "mine"
    assert again.text_tokens("abcdef") == 2
    assert load_token_rules() == RULES  # defaults are not mutated by overrides


def rule_of(rules: TokenRules, model: str) -> ModelRule:
    found = rules.rule_for(model)
    assert found is not None
    return found


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"models": {"gemini-2.5": {"image_rule": "tiles_768"}}}, "needs 'tile_tokens'"),
        ({"models": {"gemini-2.5": {"image_rule": "tiles"}}}, "models.gemini-2.5.image_rule"),
        (
            {"models": {"gemini-2.5": {"image_rule": "flat", "tile_tokens": 258, "tile": 1}}},
            "models.gemini-2.5.tile: Extra inputs are not permitted",
        ),
        ({"models": {"x": {"image_rule": "flat", "tile_tokens": -1}}}, "models.x.tile_tokens"),
        (
            {"models": {"x": {"image_rule": "media_resolution", "media_resolution": {"LOW": 1}}}},
            "needs a 'media_resolution' map",
        ),
        (
            {
                "models": {
                    "x": {
                        "image_rule": "media_resolution",
                        "media_resolution": {"LOW": 1},
                        "default_level": "HIGH",
                    }
                }
            },
            "default_level 'HIGH' is not in the media_resolution map",
        ),
        (
            {"models": {"x": {"image_rule": "flat", "tile_tokens": 1, "default_level": "LOW"}}},
            "only for image_rule 'media_resolution'",
        ),
        (
            {
                "models": {
                    "x": {"image_rule": "flat", "tile_tokens": 1, "media_resolution": {"X": 1}}
                }
            },
            "models.x.media_resolution.X",
        ),
        ({"text": {"chars_per_token": 0}}, "text.chars_per_token"),
        ({"modles": {}}, "unknown top-level keys modles"),
        ({"models": []}, "'models' must be an object"),
        ({"models": {"": {"image_rule": "flat", "tile_tokens": 1}}}, "prefixes must be non-empty"),
    ],
)
def test_invalid_override_is_a_clear_error(override: dict[str, Any], message: str) -> None:
    with pytest.raises(TokenRulesError) as caught:
        load_token_rules(override)
    assert "invalid token rules (override)" in str(caught.value)
    assert message in str(caught.value)


def test_invalid_whole_table() -> None:
    with pytest.raises(TokenRulesError, match=r"version: Field required"):
        parse_token_rules({"models": {}})
    with pytest.raises(TokenRulesError, match="expected a JSON object"):
        load_token_rules([])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("model", "size", "target"),
    [
        ("gemini-2.5-flash", (1000, 800), (768, 614)),
        ("gemini-2.5-flash", (3840, 2160), (768, 432)),
        ("gemini-2.5-flash", (800, 3000), (205, 768)),
        ("gemini-2.5-flash", (768, 500), None),  # already a single tile
        ("gemini-2.5-flash", (300, 300), None),
        ("gemini-1.5-pro", (960, 540), (384, 216)),
        ("gemini-1.5-pro", (385, 100), (384, 100)),
        ("gemini-1.5-pro", (384, 200), None),
        ("gemini-3-flash-preview", (3840, 2160), None),  # size does not matter
    ],
)
def test_cheapest_size(model: str, size: tuple[int, int], target: tuple[int, int] | None) -> None:
    model_rule = rule(model)
    assert cheapest_size(model_rule, *size) == target
    if target is not None:
        assert image_tokens(model_rule, *target) == model_rule.tile_tokens
        # The same size vision.prepare.downscale produces for this max_side.
        max_side = cheapest_max_side(model_rule)
        assert max_side is not None
        assert _fit(*size, max_side) == target


def test_cheapest_size_is_the_largest_in_the_tier() -> None:
    for model in ("gemini-2.5-flash", "gemini-1.5-pro"):
        model_rule = rule(model)
        max_side = cheapest_max_side(model_rule)
        assert max_side is not None
        assert image_tokens(model_rule, max_side, max_side) == 258
        assert image_tokens(model_rule, max_side + 1, max_side) > 258


def test_cheapest_size_flat_and_bad_size() -> None:
    assert cheapest_size(ModelRule(image_rule="flat", tile_tokens=258), 4000, 3000) is None
    with pytest.raises(ValueError, match="positive"):
        cheapest_size(rule("gemini-2.5-flash"), -1, 3)
