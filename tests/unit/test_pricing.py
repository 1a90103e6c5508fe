"""Prices and cost arithmetic (vision.pricing), prices as the catalogue gives them, and the
cost of a call (vision.costing.CostBook.call_cost)."""

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from visionq.vision.catalogue import CatalogueError, ServiceTier, load_catalogue
from visionq.vision.costing import CostBook, from_nano, reservation_nusd, to_nano, usd_text
from visionq.vision.estimate import StoredEstimate
from visionq.vision.pricing import ModelPrice, cost, format_usd, usage_cost

CATALOGUE = load_catalogue()
DAY = dt.date(2026, 12, 5)
# Gemini 2.5 Flash's list price (GEMINI.md), for arithmetic on a flat price.
FLASH_25 = ModelPrice(input=Decimal("0.30"), output=Decimal("2.50"))
# Gemini 2.5 Pro's: a long-context tier above 200k prompt tokens.
PRO_25 = ModelPrice.model_validate(
    {
        "tiers": [
            {"max_prompt_tokens": 200000, "input": "1.25", "output": "10.00"},
            {"input": "2.50", "output": "15.00"},
        ]
    }
)


def price(model: str, tier: ServiceTier = ServiceTier.STANDARD, day: dt.date = DAY) -> ModelPrice:
    entry = CATALOGUE.entry(model)
    assert entry is not None, model
    found = entry.price(day, tier)
    assert found is not None, (model, tier, day)
    return found


def test_packaged_prices_are_the_gemini_md_list_prices() -> None:
    lite = price("gemini-3.5-flash-lite")
    assert (lite.input, lite.output) == (Decimal("0.30"), Decimal("2.50"))
    six = price("gemini-3.6-flash")
    assert (six.input, six.output) == (Decimal("1.50"), Decimal("7.50"))
    eight = price("gemini-3.8-flash")
    assert (eight.input, eight.output) == (Decimal("0.75"), Decimal("3.75"))
    old_lite = price("gemini-3.1-flash-lite")
    assert (old_lite.input, old_lite.output) == (Decimal("0.25"), Decimal("1.50"))
    preview = price("gemini-3-flash-preview")
    assert (preview.input, preview.output) == (Decimal("0.50"), Decimal("3.00"))
    pro = price("gemini-3.1-pro-preview").tier_for(1)
    assert (pro.input, pro.output, pro.max_prompt_tokens) == (
        Decimal("2.00"),
        Decimal("12.00"),
        200_000,
    )
    # Every usable model has a standard price today: budgets can bound every job.
    for model in CATALOGUE.usable():
        assert price(model) is not None


def test_batch_and_flex_are_half_price() -> None:
    for model in ("gemini-3.8-flash", "gemini-3.6-flash", "gemini-3.5-flash-lite"):
        standard = price(model)
        for tier in (ServiceTier.BATCH, ServiceTier.FLEX):
            half = price(model, tier)
            assert (half.input, half.output) == (standard.input / 2, standard.output / 2)
    batch_pro = price("gemini-3.1-pro-preview", ServiceTier.BATCH).all_tiers()
    assert [(t.input, t.output) for t in batch_pro] == [
        (Decimal("1.00"), Decimal("6.00")),
        (Decimal("2.00"), Decimal("9.00")),
    ]


def test_decimal_precision() -> None:
    assert cost(FLASH_25, prompt_tokens=258, output_tokens=0) == Decimal("0.0000774")
    assert format_usd(cost(FLASH_25, prompt_tokens=258, output_tokens=0)) == "0.0000774"
    assert cost(FLASH_25, prompt_tokens=1, output_tokens=0) == Decimal("0.0000003")
    assert cost(FLASH_25, prompt_tokens=0, output_tokens=1) == Decimal("0.0000025")
    assert cost(FLASH_25, prompt_tokens=1_000_000, output_tokens=1_000_000) == Decimal("2.80")
    batch_lite = price("gemini-3.5-flash-lite", ServiceTier.BATCH)
    assert cost(batch_lite, prompt_tokens=1, output_tokens=0) == Decimal("0.00000015")
    assert format_usd(Decimal("0.00000005")) == "0.00000005"
    # A JSON float becomes exactly the decimal it spells.
    assert ModelPrice.model_validate({"input": 0.35, "output": 3.0}).input == Decimal("0.35")


def test_output_covers_thoughts_in_usage_cost() -> None:
    usage = {
        "promptTokenCount": 1290,
        "candidatesTokenCount": 100,
        "thoughtsTokenCount": 400,
        "totalTokenCount": 1790,
    }
    expected = (1290 * Decimal("0.30") + 500 * Decimal("2.50")) / 1_000_000
    assert usage_cost(FLASH_25, usage) == expected == Decimal("0.001637")
    snake = {"prompt_token_count": 1290, "candidates_token_count": 500}
    assert usage_cost(FLASH_25, snake) == expected
    assert usage_cost(FLASH_25, {}) == 0


def test_long_context_tier_switch_at_200k() -> None:
    at = cost(PRO_25, prompt_tokens=200_000, output_tokens=1000)
    above = cost(PRO_25, prompt_tokens=200_001, output_tokens=1000)
    assert at == Decimal("0.25") + Decimal("0.01")
    assert above == (200_001 * Decimal("2.50") + 1000 * Decimal("15.00")) / 1_000_000
    assert above == Decimal("0.5150025")
    pro = price("gemini-3.1-pro-preview")
    assert cost(pro, prompt_tokens=200_000, output_tokens=0) == Decimal("0.40")
    assert cost(pro, prompt_tokens=200_001, output_tokens=0) == Decimal("0.800004")
    batch = price("gemini-3.1-pro-preview", ServiceTier.BATCH)
    assert cost(batch, prompt_tokens=200_001, output_tokens=0) == Decimal("0.400002")


def test_cached_tokens() -> None:
    # No cached price: cached tokens cost the input price.
    assert cost(FLASH_25, prompt_tokens=1000, output_tokens=0, cached_tokens=600) == cost(
        FLASH_25, prompt_tokens=1000, output_tokens=0
    )
    cheap = ModelPrice(input=Decimal("0.30"), output=Decimal("2.50"), cached_input=Decimal("0.03"))
    assert cost(cheap, prompt_tokens=1000, output_tokens=0, cached_tokens=600) == Decimal(
        "0.000138"
    )
    usage = {"promptTokenCount": 1000, "cachedContentTokenCount": 600}
    assert usage_cost(cheap, usage) == Decimal("0.000138")
    with pytest.raises(ValueError, match="cannot exceed"):
        cost(FLASH_25, prompt_tokens=10, output_tokens=0, cached_tokens=11)
    with pytest.raises(ValueError, match=">= 0"):
        cost(FLASH_25, prompt_tokens=-1, output_tokens=0)


PRICED = "models.gemini-3.6-flash.prices.0.standard"


@pytest.mark.parametrize(
    ("standard", "message"),
    [
        ({"input": 1}, "needs both 'input' and 'output'"),
        ({"input": -1, "output": 1}, f"{PRICED}.input"),
        ({"input": "abc", "output": 1}, f"{PRICED}.input"),
        ({"input": 1, "output": 1, "tiers": []}, "not both"),
        ({"tiers": []}, "must not be empty"),
        (
            {"tiers": [{"max_prompt_tokens": 10, "input": 1, "output": 1}]},
            "the last tier must have no 'max_prompt_tokens'",
        ),
        (
            {
                "tiers": [
                    {"max_prompt_tokens": 10, "input": 1, "output": 1},
                    {"max_prompt_tokens": 5, "input": 1, "output": 1},
                    {"input": 1, "output": 1},
                ]
            },
            "must increase",
        ),
        (
            {"tiers": [{"input": 1, "output": 1}, {"input": 1, "output": 1}]},
            "every tier but the last needs 'max_prompt_tokens'",
        ),
        ({"input": 1, "output": 1, "extra": 1}, f"{PRICED}.extra"),
    ],
)
def test_invalid_price_is_a_clear_error(standard: dict[str, Any], message: str) -> None:
    with pytest.raises(CatalogueError) as caught:
        load_catalogue({"models": {"gemini-3.6-flash": {"prices": [{"standard": standard}]}}})
    assert "invalid model catalogue (override)" in str(caught.value)
    assert PRICED in str(caught.value)
    assert message in str(caught.value)


def test_call_cost_uses_the_price_of_the_day_and_tier() -> None:
    book = CostBook(CATALOGUE)
    usage = {"promptTokenCount": 1000, "candidatesTokenCount": 100, "thoughtsTokenCount": 300}
    before = book.call_cost("gemini-3.8-flash", usage, day=dt.date(2026, 12, 31))
    after = book.call_cost("gemini-3.8-flash", usage, day=dt.date(2027, 1, 1))
    assert before == (1000 * Decimal("0.75") + 400 * Decimal("3.75")) / 1_000_000
    assert before == Decimal("0.00225")
    assert after == 2 * before
    batch = book.call_cost("gemini-3.8-flash", usage, day=DAY, tier=ServiceTier.BATCH)
    assert batch == before / 2
    # A served version (modelVersion) is priced as its model.
    assert book.call_cost("gemini-3.6-flash-001", usage, day=DAY) == Decimal("0.00450")
    # No price: no guess.
    # gemini-3-flash-preview lists standard and batch prices only.
    preview = "gemini-3-flash-preview"
    assert book.call_cost(preview, usage, day=DAY) is not None
    assert book.call_cost(preview, usage, day=DAY, tier=ServiceTier.PRIORITY) is None
    assert book.call_cost("gpt-4o", usage, day=DAY) is None
    assert book.call_cost("gemini-2.0-flash", usage, day=DAY) is None  # shut down: no prices
    assert book.call_cost("gemini-3.8-flash", None, day=DAY) is None


def test_cost_book_load_applies_the_override() -> None:
    book = CostBook.load(
        {"models": {"gemini-3.6-flash": {"prices": [{"standard": {"input": 1, "output": 2}}]}}}
    )
    usage = {"promptTokenCount": 1_000_000}
    assert book.call_cost("gemini-3.6-flash", usage, day=DAY) == Decimal(1)
    assert book.call_cost("gemini-3.6-flash", usage, day=DAY, tier=ServiceTier.BATCH) is None
    assert CostBook.load().catalogue == CATALOGUE


def test_nano_usd() -> None:
    assert to_nano(Decimal("0.0000774")) == 77_400
    assert to_nano(Decimal("0.0000000001")) == 0
    assert to_nano(Decimal("0.0000000001"), up=True) == 1
    assert from_nano(77_400) == Decimal("0.0000774")
    assert usd_text(77_400) == "0.0000774"
    assert usd_text(2_000_000_000) == "2"
    priced = StoredEstimate.model_validate(
        {"model": "m", "cost_usd": {"min": "0", "max": "0.0822605"}}
    )
    assert reservation_nusd(priced) == 82_260_500
    assert reservation_nusd(StoredEstimate(model="m")) == 0
    # The hold is the maximum as shown (10 decimals), whatever precision the sum had.
    exact = StoredEstimate(model="m", cost_usd={"min": "0", "max": Decimal("1.00000000004")})
    assert reservation_nusd(exact) == 1_000_000_000


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (Decimal(0), "0"),
        (Decimal("0.0000774"), "0.0000774"),
        (Decimal("1.50"), "1.5"),
        (Decimal("12"), "12"),
        (Decimal("0.00000000004"), "0"),
        (Decimal("0.00000000006"), "0.0000000001"),
        (Decimal("1E+3"), "1000"),
    ],
)
def test_format_usd(amount: Decimal, text: str) -> None:
    assert format_usd(amount) == text
