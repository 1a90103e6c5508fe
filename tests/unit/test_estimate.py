"""Job estimates (vision.estimate), from the model catalogue."""

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest

from tests.unit.tile_models import CATALOGUE
from visionq.vision.catalogue import Catalogue, ServiceTier, load_catalogue
from visionq.vision.costing import CostBook
from visionq.vision.estimate import MAX_COVERS, Estimate, estimate_job
from visionq.vision.tasks import JobOptions, TaskKind, build_prompt

DAY = dt.date(2026, 12, 5)
KEYS = {
    "model",
    "tier",
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


def estimate(
    model: str = "gemini-3.5-flash-lite",
    *,
    catalogue: Catalogue = CATALOGUE,
    task: TaskKind = TaskKind.CAPTION,
    prompt_text: str = "x" * 60,
    images: list[tuple[int, int]] | None = None,
    day: dt.date = DAY,
    tier: ServiceTier = ServiceTier.STANDARD,
    **options: Any,
) -> Estimate:
    return estimate_job(
        model=model,
        task=task,
        prompt_text=prompt_text,
        images=images if images is not None else [(1000, 800)],
        options=JobOptions.model_validate(options),
        catalogue=catalogue,
        day=day,
        tier=tier,
    )


def test_default_model_caption_serialises_exactly() -> None:
    result = estimate()
    data = json.loads(result.model_dump_json())
    assert set(data) == KEYS
    assert data["model"] == "gemini-3.5-flash-lite"
    assert data["tier"] == "standard"
    assert data["images"] == [{"width": 1000, "height": 800, "tokens": 1120}]
    assert data["text_tokens"] == 15
    assert data["input_tokens"] == 1135
    # A caption's 256 answer tokens + the 1024 its MINIMAL thinking may use (issue 17: the
    # 32,768 held before made a $1 budget refuse the 13th caption).
    assert data["output_tokens_max"] == 256 + 1024
    # 1135 x 0.30 / 1M; + 1280 x 2.50 / 1M.
    assert data["cost_usd"] == {"min": "0.0003405", "max": "0.0035405"}
    assert data["rule"] == "gemini-3.5-flash-lite"
    assert data["prices_as_of"] == "2026-12-04"
    assert data["known"] is True
    assert data["reason"] is None
    assert any("thinks at MINIMAL" in note for note in data["assumptions"])
    assert any("256 for a caption answer" in note for note in data["assumptions"])
    # The max is one call's: the estimate says so, and what a second call would be.
    assert MAX_COVERS in data["assumptions"]
    assert MAX_COVERS.startswith("cost_usd.max covers one call")
    # Exact Decimals in Python, and a lossless round trip.
    assert result.cost_usd is not None
    assert result.cost_usd.min == Decimal("0.0003405")
    assert Estimate.model_validate(data) == result


@pytest.mark.parametrize(
    ("task", "phrase"),
    [(TaskKind.ASK, "for an ask answer"), (TaskKind.DETECT, "for a detect answer")],
)
def test_the_answer_allowance_note_has_the_right_article(task: TaskKind, phrase: str) -> None:
    notes = estimate(task=task).assumptions
    assert any(phrase in note for note in notes), notes


def test_real_prompt_text() -> None:
    prompt = build_prompt(TaskKind.CAPTION, prompt=None, labels=None, options=JobOptions())
    result = estimate("test-tiles", prompt_text=prompt, images=[(300, 300)])
    assert result.text_tokens == -(-len(prompt) // 4)
    assert result.input_tokens == 258 + result.text_tokens


@pytest.mark.parametrize(
    ("model", "task", "options", "expected"),
    [
        # Thinking shares max_output_tokens: with a cap, the cap bounds answer and thoughts.
        ("test-tiles", TaskKind.CAPTION, {"max_output_tokens": 500, "thinking_budget": 1024}, 500),
        ("test-tiles", TaskKind.CAPTION, {"max_output_tokens": 500, "thinking_budget": 0}, 500),
        ("gemini-3.8-flash", TaskKind.CAPTION, {"max_output_tokens": 500}, 500),
        ("gemini-3.8-flash", TaskKind.DETECT, {"max_output_tokens": 2000}, 2000),
        # Without one: the task's answer bound plus what its thinking may add.
        ("test-tiles", TaskKind.CAPTION, {"thinking_budget": 1024}, 256 + 1024),
        ("test-tiles", TaskKind.CAPTION, {"thinking_budget": -1}, 256 + 24576),
        ("test-tiles", TaskKind.CAPTION, {}, 256),  # the worker sends budget 0
        ("test-tiles", TaskKind.ASK, {}, 1024 + 2048),  # budget 2048 for LOW
        ("test-tiles", TaskKind.DETECT, {}, 64 + 40 * 50),  # budget 0
        ("test-tiles", TaskKind.SEGMENT, {"max_objects": 4}, 64 + 600 * 4),
        ("test-tiles-lite", TaskKind.CAPTION, {}, 256),  # no thinking by default
        ("test-tiles-lite", TaskKind.CAPTION, {"thinking_budget": -1}, 256 + 24576),
        ("test-crop", TaskKind.CUSTOM, {}, 4096),  # no thinking rule
        ("gemini-3.8-flash", TaskKind.CAPTION, {}, 256 + 1024),
        ("gemini-3.8-flash", TaskKind.COMPARE, {}, 1536 + 2048),
        # The job's own level is counted at the model's most.
        ("gemini-3.8-flash", TaskKind.CAPTION, {"thinking_level": "high"}, 256 + 24576),
        # Gemini 3 cannot turn thinking off: its lowest level gets the task's room.
        ("gemini-3.8-flash", TaskKind.DETECT, {}, 64 + 40 * 50 + 1024),
        ("gemini-3.5-flash-lite", TaskKind.DETECT, {"max_objects": 10}, 64 + 400 + 1024),
    ],
)
def test_output_bound(model: str, task: TaskKind, options: dict[str, Any], expected: int) -> None:
    result = estimate(model, task=task, **options)
    assert result.output_tokens_max == expected


def test_a_cap_bounds_thinking_and_says_so() -> None:
    capped = estimate("gemini-3.8-flash", max_output_tokens=1000)
    assert capped.output_tokens_max == 1000
    assert capped.cost_usd is not None
    assert capped.cost_usd.max - capped.cost_usd.min == Decimal(1000) * Decimal("3.75") / 10**6
    assert any("thinking shares max_output_tokens" in note for note in capped.assumptions)
    uncapped = estimate("gemini-3.8-flash")
    assert any("1024 thinking tokens allowed" in note for note in uncapped.assumptions)
    asked = estimate("gemini-3.8-flash", thinking_level="medium")
    assert any("24576 thinking tokens" in note for note in asked.assumptions)


def test_a_dollar_holds_hundreds_of_captions() -> None:
    """Issue 17: a $1 daily budget refused the 13th caption, its hold ~400x the real cost.
    The hold (cost max) is now within a small multiple of the input cost plus a real
    one-sentence caption (~40 answer tokens and MINIMAL thinking's few)."""
    result = estimate()
    assert result.cost_usd is not None
    typical = result.cost_usd.min + Decimal(40 + 64) * Decimal("2.50") / 10**6
    assert result.cost_usd.max <= 10 * typical
    assert int(Decimal(1) / result.cost_usd.max) >= 250


def test_default_max_output_parameter() -> None:
    result = estimate_job(
        model="test-crop",
        task=TaskKind.CAPTION,
        prompt_text="",
        images=[(10, 10)],
        options=JobOptions(),
        catalogue=CATALOGUE,
        day=DAY,
        default_max_output=1000,
    )
    assert result.output_tokens_max == 1000


def test_costs_min_is_input_only_max_adds_full_output() -> None:
    result = estimate("test-tiles-lite", max_output_tokens=1000, images=[(300, 300)] * 3)
    assert result.input_tokens == 3 * 258 + 15
    assert result.cost_usd is not None
    assert result.cost_usd.min == Decimal(789) * Decimal("0.10") / 1_000_000
    assert result.cost_usd.max == result.cost_usd.min + Decimal(1000) * Decimal("0.40") / 10**6


def test_batch_tier_prices() -> None:
    standard = estimate("test-tiles", max_output_tokens=1000, images=[(300, 300)] * 3)
    batch = estimate(
        "test-tiles", max_output_tokens=1000, images=[(300, 300)] * 3, tier=ServiceTier.BATCH
    )
    assert standard.cost_usd is not None
    assert batch.cost_usd is not None
    assert batch.tier is ServiceTier.BATCH
    assert batch.cost_usd.max == standard.cost_usd.max / 2
    assert any("batch" in note for note in batch.assumptions)


def test_dated_prices_change_the_estimate() -> None:
    before = estimate("gemini-3.8-flash", max_output_tokens=100, day=dt.date(2026, 12, 31))
    after = estimate("gemini-3.8-flash", max_output_tokens=100, day=dt.date(2027, 1, 1))
    assert before.cost_usd is not None
    assert after.cost_usd is not None
    assert before.cost_usd.min == Decimal(1135) * Decimal("0.75") / 10**6
    assert after.cost_usd.min == 2 * before.cost_usd.min
    assert after.cost_usd.max == 2 * before.cost_usd.max
    assert any("2027-01-01" in note for note in after.assumptions)


def test_long_context_tier() -> None:
    # 179 images at 1120 tokens: 200,480 prompt tokens, above the 200k tier.
    result = estimate(
        "gemini-3.1-pro-preview",
        task=TaskKind.ASK,
        prompt_text="",
        images=[(300, 300)] * 179,
        max_output_tokens=1000,
    )
    assert result.input_tokens == 200_480
    assert result.output_tokens_max == 1000
    assert result.cost_usd is not None
    assert result.cost_usd.min == Decimal("0.80192")  # 200,480 x 4.00 / 1M
    assert result.cost_usd.max == Decimal("0.80192") + Decimal("0.018")  # 1000 x 18.00 / 1M
    small = estimate(
        "gemini-3.1-pro-preview",
        task=TaskKind.ASK,
        prompt_text="",
        images=[(300, 300)] * 178,
        max_output_tokens=1000,
    )
    assert small.cost_usd is not None
    assert small.cost_usd.min == Decimal(199_360) * Decimal("2.00") / 1_000_000


def test_media_resolution() -> None:
    low = estimate("test-tiles", images=[(3840, 2160), (300, 300)], media_resolution="LOW")
    assert [image.tokens for image in low.images] == [64, 64]
    three = estimate(
        "gemini-3.8-flash",
        task=TaskKind.ASK,
        images=[(100, 100), (100, 100), (100, 100)],
        media_resolution="MEDIA_RESOLUTION_MEDIUM",
        image_media_resolution=[None, "ULTRA_HIGH", "low"],
    )
    assert [image.tokens for image in three.images] == [560, 2240, 280]
    assert estimate("gemini-3.8-flash").images[0].tokens == 1120
    with pytest.raises(ValueError, match="2 per-image media resolutions for 1 images"):
        estimate("gemini-3.8-flash", image_media_resolution=["LOW", "LOW"])


def test_unknown_model_gives_no_estimate() -> None:
    result = estimate("gpt-4o", images=[(640, 480)])
    data = json.loads(result.model_dump_json())
    assert set(data) == KEYS
    assert data["known"] is False
    assert data["images"] == [{"width": 640, "height": 480, "tokens": None}]
    for key in ("text_tokens", "input_tokens", "output_tokens_max", "cost_usd", "rule"):
        assert data[key] is None
    assert "gpt-4o is not in the model catalogue" in data["reason"]
    assert "VISIONQ_MODELS_FILE" in data["reason"]
    # A retired family has no token rule either: no guess.
    assert estimate("gemini-2.0-flash").known is False
    bare = Estimate.unknown("x", "why").model_dump(mode="json")
    assert bare["known"] is False
    assert bare["images"] == []
    assert bare["reason"] == "why"


@pytest.mark.parametrize(
    ("model", "day", "tier"),
    [
        ("test-crop", DAY, ServiceTier.STANDARD),  # no prices at all
        ("test-later", DAY, ServiceTier.STANDARD),  # priced from 2027 only
        ("gemini-3-flash-preview", DAY, ServiceTier.PRIORITY),  # the tier is not listed
    ],
)
def test_no_price_gives_tokens_but_no_cost(model: str, day: dt.date, tier: ServiceTier) -> None:
    result = estimate(model, images=[(960, 540)], day=day, tier=tier)
    assert result.known is True
    assert result.images[0].tokens is not None
    assert result.input_tokens == result.images[0].tokens + 15
    assert result.cost_usd is None
    assert result.reason == (
        f"no {tier} price for model {model} on {day.isoformat()}; add it to the "
        "VISIONQ_MODELS_FILE catalogue"
    )
    if model == "test-crop":
        assert result.images[0].tokens == 1548
    if model == "test-later":
        assert estimate(model, day=dt.date(2027, 1, 1)).cost_usd is not None


def test_flat_override_changes_the_estimate() -> None:
    flat = load_catalogue(
        {
            "models": {
                "gemini-3.5-flash-lite": {
                    "image_tokens": {"image_rule": "flat", "tile_tokens": 258}
                }
            }
        }
    )
    result = estimate(catalogue=flat, task=TaskKind.ASK, images=[(3840, 2160), (768, 1280)])
    assert [image.tokens for image in result.images] == [258, 258]


def test_cost_book_estimate_uses_the_downscaled_size_and_real_prompt() -> None:
    book = CostBook(CATALOGUE)
    result = book.estimate(
        task=TaskKind.CLASSIFY,
        model="test-tiles",
        prompt=None,
        labels=["cat", "dog"],
        options=JobOptions(max_side=768),
        sizes=[(1000, 800)],
        day=DAY,
        tier=ServiceTier.BATCH,
    )
    assert [(image.width, image.height, image.tokens) for image in result.images] == [
        (768, 614, 258)
    ]
    prompt = build_prompt(
        TaskKind.CLASSIFY, prompt=None, labels=["cat", "dog"], options=JobOptions()
    )
    assert result.text_tokens == -(-len(prompt) // 4)
    assert result.tier is ServiceTier.BATCH
