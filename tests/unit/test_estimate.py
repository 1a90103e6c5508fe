"""Job estimates and the economy plan (vision.estimate)."""

import json
from decimal import Decimal
from typing import Any

import pytest

from vision.estimate import Estimate, economy_plan, estimate_job
from vision.pricing import load_prices
from vision.tasks import JobOptions, TaskKind, build_prompt
from vision.tokens import load_token_rules

RULES = load_token_rules()
PRICES = load_prices()
KEYS = {
    "model",
    "images",
    "text_tokens",
    "input_tokens",
    "output_tokens_max",
    "cost_usd",
    "rule",
    "prices_as_of",
    "known",
    "assumptions",
    "reason",
}


def estimate(model: str = "gemini-2.5-flash", **overrides: Any) -> Estimate:
    arguments: dict[str, Any] = {
        "model": model,
        "task": TaskKind.CAPTION,
        "prompt_text": "x" * 60,
        "images": [(1000, 800)],
        "max_output_tokens": None,
        "thinking_budget": None,
        "media_resolution": None,
        "rules": RULES,
        "prices": PRICES,
    }
    arguments.update(overrides)
    return estimate_job(**arguments)


def test_flash_caption_serialises_exactly() -> None:
    result = estimate()
    data = json.loads(result.model_dump_json())
    assert set(data) == KEYS
    assert data["model"] == "gemini-2.5-flash"
    assert data["images"] == [{"width": 1000, "height": 800, "tokens": 1032}]
    assert data["text_tokens"] == 15
    assert data["input_tokens"] == 1047
    # 8192 default output + 24576 dynamic-thinking allowance.
    assert data["output_tokens_max"] == 8192 + 24576
    assert data["cost_usd"] == {"min": "0.0003141", "max": "0.0822341"}
    assert data["rule"] == "gemini-2.5"
    assert data["prices_as_of"] == "2026-11-01"
    assert data["known"] is True
    assert data["reason"] is None
    assert any("thinks by default" in note for note in data["assumptions"])
    assert any("8192" in note for note in data["assumptions"])
    # Exact Decimals in Python, and a lossless round trip.
    assert result.cost_usd is not None
    assert result.cost_usd.min == Decimal("0.0003141")
    assert Estimate.model_validate(data) == result


def test_real_prompt_text() -> None:
    prompt = build_prompt(TaskKind.CAPTION, prompt=None, labels=None, options=JobOptions())
    result = estimate(prompt_text=prompt, images=[(300, 300)])
    assert result.text_tokens == -(-len(prompt) // 4)
    assert result.input_tokens == 258 + result.text_tokens


@pytest.mark.parametrize(
    ("model", "task", "max_output", "budget", "expected"),
    [
        ("gemini-2.5-flash", TaskKind.CAPTION, 500, 1024, 1524),
        ("gemini-2.5-flash", TaskKind.CAPTION, 500, 0, 500),
        ("gemini-2.5-flash", TaskKind.CAPTION, None, -1, 8192 + 24576),
        ("gemini-2.5-flash", TaskKind.DETECT, None, None, 8192),  # the worker sends budget 0
        ("gemini-2.5-flash", TaskKind.SEGMENT, 2000, None, 2000),
        ("gemini-2.5-pro", TaskKind.DETECT, None, None, 8192 + 32768),  # pro cannot turn it off
        ("gemini-2.5-pro", TaskKind.CAPTION, 100, None, 100 + 32768),
        ("gemini-2.5-flash-lite", TaskKind.CAPTION, None, None, 8192),  # no thinking by default
        ("gemini-2.5-flash-lite", TaskKind.CAPTION, None, -1, 8192 + 24576),
        ("gemini-2.0-flash", TaskKind.CAPTION, None, None, 8192),
        ("gemini-2.0-flash", TaskKind.CAPTION, None, -1, 8192),
        ("gemini-3-flash-preview", TaskKind.CAPTION, 1000, None, 1000 + 32768),
    ],
)
def test_output_bound(
    model: str, task: TaskKind, max_output: int | None, budget: int | None, expected: int
) -> None:
    result = estimate(model, task=task, max_output_tokens=max_output, thinking_budget=budget)
    assert result.output_tokens_max == expected


def test_default_max_output_parameter() -> None:
    result = estimate("gemini-2.0-flash", default_max_output=1000)
    assert result.output_tokens_max == 1000


def test_costs_min_is_input_only_max_adds_full_output() -> None:
    result = estimate("gemini-2.0-flash", max_output_tokens=1000, images=[(300, 300)] * 3)
    assert result.input_tokens == 3 * 258 + 15
    assert result.cost_usd is not None
    assert result.cost_usd.min == Decimal(789) * Decimal("0.10") / 1_000_000
    assert result.cost_usd.max == result.cost_usd.min + Decimal(1000) * Decimal("0.40") / 10**6
    batch = estimate(
        "gemini-2.0-flash", max_output_tokens=1000, images=[(300, 300)] * 3, batch=True
    )
    assert batch.cost_usd is not None
    assert batch.cost_usd.max == result.cost_usd.max / 2
    assert any("batch" in note for note in batch.assumptions)


def test_pro_long_context_tier() -> None:
    # 52 4K images at 3870 tokens: 201,240 prompt tokens, above the 200k tier.
    result = estimate(
        "gemini-2.5-pro",
        task=TaskKind.ASK,
        prompt_text="",
        images=[(3840, 2160)] * 52,
        max_output_tokens=1000,
        thinking_budget=128,
    )
    assert result.input_tokens == 201_240
    assert result.output_tokens_max == 1128
    assert result.cost_usd is not None
    assert result.cost_usd.min == Decimal("0.5031")  # 201,240 x 2.50 / 1M
    assert result.cost_usd.max == Decimal("0.5031") + Decimal("0.01692")  # 1128 x 15.00 / 1M
    small = estimate("gemini-2.5-pro", images=[(300, 300)], max_output_tokens=1000)
    assert small.cost_usd is not None
    assert small.cost_usd.min == Decimal(273) * Decimal("1.25") / 1_000_000


def test_media_resolution() -> None:
    low = estimate(images=[(3840, 2160), (300, 300)], media_resolution="LOW")
    assert [image.tokens for image in low.images] == [64, 64]
    three = estimate(
        "gemini-3-flash-preview",
        images=[(100, 100), (100, 100), (100, 100)],
        media_resolution="MEDIA_RESOLUTION_MEDIUM",
        image_media_resolution=[None, "ULTRA_HIGH", "LOW"],
    )
    assert [image.tokens for image in three.images] == [560, 2240, 280]
    assert estimate("gemini-3-flash-preview").images[0].tokens == 1120
    with pytest.raises(ValueError, match="ULTRA_HIGH can only be set per image"):
        estimate("gemini-3-flash-preview", media_resolution="ULTRA_HIGH")
    with pytest.raises(ValueError, match="2 per-image media resolutions for 1 images"):
        estimate("gemini-3-flash-preview", image_media_resolution=["LOW", "LOW"])


def test_unknown_model_gives_no_estimate() -> None:
    result = estimate("gpt-4o", images=[(640, 480)])
    data = json.loads(result.model_dump_json())
    assert set(data) == KEYS
    assert data["known"] is False
    assert data["images"] == [{"width": 640, "height": 480, "tokens": None}]
    for key in ("text_tokens", "input_tokens", "output_tokens_max", "cost_usd", "rule"):
        assert data[key] is None
    assert data["reason"] == "no token rule for model gpt-4o; add it to the token rules file"
    bare = Estimate.unknown("x", "why").model_dump(mode="json")
    assert bare["known"] is False
    assert bare["images"] == []
    assert bare["reason"] == "why"


def test_rule_without_price_gives_tokens_but_no_cost() -> None:
    result = estimate("gemini-1.5-pro", images=[(960, 540)])
    assert result.known is True
    assert result.images[0].tokens == 1548
    assert result.input_tokens == 1548 + 15
    assert result.cost_usd is None
    assert result.reason == "no price for model gemini-1.5-pro; add it to the prices file"


def test_flat_override_changes_the_estimate() -> None:
    flat = load_token_rules({"models": {"gemini-2.5": {"image_rule": "flat", "tile_tokens": 258}}})
    result = estimate(rules=flat, images=[(3840, 2160), (768, 1280)])
    assert [image.tokens for image in result.images] == [258, 258]


def test_economy_plan_for_a_caption() -> None:
    plan = economy_plan(
        model="gemini-2.5-flash",
        task=TaskKind.CAPTION,
        images=[(1000, 800), (300, 300), (3840, 2160)],
        media_resolution=None,
        rules=RULES,
    )
    data = plan.model_dump(mode="json")
    assert data["applies"] is True
    assert data["max_side"] == 768
    assert data["rule"] == "gemini-2.5"
    assert data["images"] == [
        {
            "width": 1000,
            "height": 800,
            "tokens": 1032,
            "target": {"width": 768, "height": 614, "tokens": 258},
            "tokens_saved": 774,
        },
        {"width": 300, "height": 300, "tokens": 258, "target": None, "tokens_saved": 0},
        {
            "width": 3840,
            "height": 2160,
            "tokens": 3870,
            "target": {"width": 768, "height": 432, "tokens": 258},
            "tokens_saved": 3612,
        },
    ]
    assert data["tokens_saved"] == 774 + 3612
    assert data["reason"] is None


def test_economy_plan_crop_unit() -> None:
    plan = economy_plan(
        model="gemini-1.5-flash",
        task=TaskKind.CLASSIFY,
        images=[(960, 540)],
        media_resolution=None,
        rules=RULES,
    )
    assert plan.max_side == 384
    target = plan.images[0].target
    assert target is not None
    assert (target.width, target.height, target.tokens) == (384, 216, 258)
    assert plan.tokens_saved == 1548 - 258


@pytest.mark.parametrize(
    ("model", "task", "media_resolution", "reason"),
    [
        ("gemini-2.5-flash", TaskKind.DETECT, None, "task detect needs the full resolution"),
        ("gemini-2.5-flash", TaskKind.SEGMENT, None, "task segment needs the full resolution"),
        ("gemini-3-flash-preview", TaskKind.ASK, None, "does not depend on image size"),
        ("gemini-2.5-flash", TaskKind.CAPTION, "LOW", "already in the cheapest token tier"),
        ("gpt-4o", TaskKind.CAPTION, None, "no token rule for model gpt-4o"),
    ],
)
def test_economy_plan_leaves_images_alone(
    model: str, task: TaskKind, media_resolution: str | None, reason: str
) -> None:
    plan = economy_plan(
        model=model,
        task=task,
        images=[(3840, 2160)],
        media_resolution=media_resolution,
        rules=RULES,
    )
    assert plan.applies is False
    assert plan.max_side is None
    assert plan.tokens_saved == 0
    assert plan.images[0].target is None
    assert plan.reason is not None
    assert reason in plan.reason
